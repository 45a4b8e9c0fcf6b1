"""The HTTP API as a small ASGI application.

Routes:

- `POST /` and `GET /` — the RPC actions: `Action=...&Version=2019-03-15` and the action's
  parameters, in the query string or an `application/x-www-form-urlencoded` body, signed
  (see `relayflow.api.auth`). Answers are JSON with a `RequestId`; refusals are JSON with
  `Code`, `Message` and `RequestId`, and an HTTP status that fits.
- `GET /health` — 200 while the process runs.
- `GET /ready` — for load balancers: 200 only while the engine takes work and its store answers
  a read within a second; otherwise 503 with `Status` (`starting`, `stopping` or
  `unavailable`) and a `Reason`. From the moment the server is told to stop it answers 503.
- the paths plugins serve (`relayflow_register_http_routes`, such as `/metrics`): `GET` and
  `HEAD` go to the plugin's ASGI app, other methods are refused with 405.

Once each RPC request is answered, whatever the answer, the plugins' `api_request_finished`
hook hears of it (only if a plugin implements it: otherwise nothing is timed).

With a store shared by several replicas, each signed request's nonce is also recorded in the
store (`Authenticator.check_shared`), so a request replayed to another replica is refused.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from relayflow import jsontext
from relayflow.api.actions import ACTIONS, run_action
from relayflow.api.auth import READ_ACTIONS, Authenticator, SharedNonces
from relayflow.engine.engine import Engine
from relayflow.errors import EngineError
from relayflow.masking import mask_text
from relayflow.plugins.events import ApiRequestEvent
from relayflow.store import StoreError

if TYPE_CHECKING:
    from relayflow.plugins import PluginManager

__all__ = ["API_VERSION", "ApiApp"]

log = logging.getLogger("relayflow.api")

API_VERSION = "2019-03-15"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: The ASGI app a plugin serves a path with (see `relayflow.plugins.hookspecs.AsgiApp`).
RouteApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_FORM = "application/x-www-form-urlencoded"
# How long the store may take to answer /ready's read before the replica counts as sick.
READY_TIMEOUT = 1.0
_SAME_ORIGIN = frozenset({"same-origin", "none"})  # Sec-Fetch-Site of a page's own requests
# What GET may call without access keys: the read actions, and UpdateMapRun, which the new
# SDK sends as GET and which changes nothing here (FDL has no distributed map: not found).
_KEYLESS_GET = READ_ACTIONS | {"UpdateMapRun"}


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def local_hosts(host: str, port: int) -> frozenset[str]:
    """The `Host` values that name a loopback server at ``host``:``port``, in lower case."""
    names = {"localhost", host.lower()}
    bracketed = {f"[{name}]" if ":" in name else name for name in names}
    hosts = {f"{name}:{port}" for name in bracketed}
    if port == 80:
        hosts |= bracketed
    return frozenset(hosts)


class ApiApp:
    """The ASGI application serving one engine.

    Args:
        engine: the engine whose actions are served.
        auth: checks signed requests; without access keys, it lets every request through.
        max_body_bytes: larger bodies are refused with EntityTooLarge.
        address: the host and port the server listens on. Without access keys, requests
            must be addressed to it (`Host`) and must not come from a web page of another
            origin (`Origin`, `Sec-Fetch-Site`), and GET may only read: a browser sends such
            requests for any page without asking, and they would need no key.
        plugins: told of each answered RPC request (`api_request_finished`).
        routes: extra `GET` paths, each served by a plugin's ASGI app
            (`PluginManager.http_routes`, which checks them).
        console: the web console (`relayflow.console.ConsoleApp`), served at `/console`
            and below; None when `[server] console = false` (those paths are then not found).
    """

    def __init__(
        self,
        engine: Engine,
        auth: Authenticator,
        max_body_bytes: int = 1 << 20,
        *,
        address: tuple[str, int],
        plugins: PluginManager | None = None,
        routes: Mapping[str, RouteApp] | None = None,
        console: RouteApp | None = None,
    ) -> None:
        self.engine = engine
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.hosts = local_hosts(*address)
        self.origins = frozenset(
            f"{scheme}://{host}" for scheme in ("http", "https") for host in self.hosts
        )
        # One process's nonce cache cannot see replays sent to another replica: the store can.
        self.shared_nonces: SharedNonces | None = (
            None if engine.store.single_engine else engine.use_nonce
        )
        self.routes: dict[str, RouteApp] = dict(routes or {})
        self.console = console
        self._plugins = plugins
        # Decided once: without a plugin that listens, a request costs no timing at all.
        self._observed = plugins is not None and plugins.implements(
            "relayflow_api_request_finished"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/health":
            await self._json(send, 200, {"Status": "ok"})
        elif path == "/ready":
            await self._json(send, *await self._readiness())
        elif self.console is not None and (path == "/console" or path.startswith("/console/")):
            await self.console(scope, receive, send)
        elif path in self.routes:
            if method in ("GET", "HEAD"):
                await self._plugin_route(self.routes[path], scope, receive, send)
            else:
                await self._error(
                    send,
                    EngineError("MethodNotAllowed", f"{path[:200]} answers GET and HEAD", 405),
                    _request_id(),
                )
        elif path != "/":
            await self._error(
                send,
                EngineError("NotFound", f"no such path {path[:200]}; the API is at /", 404),
                _request_id(),
            )
        elif method not in ("GET", "POST"):
            await self._error(
                send, EngineError("MethodNotAllowed", "use POST / or GET /", 405), _request_id()
            )
        else:
            await self._rpc(scope, receive, send)

    async def _plugin_route(
        self, app: RouteApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serve a plugin's path; a plugin that fails gets a 500, never the server's end."""
        answered = False

        async def tracked(message: Message) -> None:
            nonlocal answered
            answered = answered or message.get("type") == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
        except Exception:
            log.exception("the plugin serving %s failed", scope["path"][:200])
            if not answered:
                await self._error(
                    send,
                    EngineError(
                        "InternalError", "the plugin serving this path failed; see the log", 500
                    ),
                    _request_id(),
                )

    async def _readiness(self) -> tuple[int, dict[str, Any]]:
        """/ready's status and answer: ready only if the engine runs and the store answers."""
        engine = self.engine
        if engine.closing:
            return 503, {"Status": "stopping", "Reason": "the server is shutting down"}
        if not engine.accepting:
            return 503, {"Status": "starting", "Reason": "the engine has not started yet"}
        if not await engine.ping(READY_TIMEOUT):
            return 503, {
                "Status": "unavailable",
                "Reason": f"the store did not answer a read within {READY_TIMEOUT:g} s",
            }
        return 200, {"Status": "ok"}

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected  # what arrived is not the whole request
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _check_headers(self, scope: Scope) -> str | None:
        """The request's content type; refuses what a web page may have sent without keys.

        Raises:
            EngineError: without access keys, a request not addressed to this server, or
                sent by a page of another origin.
        """
        content_type = None
        keyless = not self.auth.enabled
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif not keyless:
                continue
            elif name == b"host":
                host = value.decode("latin-1")
                if host.lower() not in self.hosts:
                    raise EngineError(
                        "InvalidHost",
                        f"the Host header {host[:200]!r} does not name this server "
                        f"({', '.join(sorted(self.hosts))}); without access keys the API "
                        "answers only requests addressed to its loopback address",
                        403,
                    )
            elif name == b"origin":
                origin = value.decode("latin-1")
                if origin.lower() not in self.origins:
                    raise EngineError(
                        "CrossOriginRequest",
                        f"a request from the web page at {origin[:200]!r} is refused: without "
                        "access keys the API answers programs on this machine, not web pages "
                        "of other origins",
                        403,
                    )
            elif name == b"sec-fetch-site":
                site = value.decode("latin-1")
                if site.lower() not in _SAME_ORIGIN:
                    raise EngineError(
                        "CrossOriginRequest",
                        f"a request that the browser marks Sec-Fetch-Site: {site[:40]} is "
                        "refused: without access keys the API answers programs on this "
                        "machine, not web pages of other origins",
                        403,
                    )
        return content_type

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter() if self._observed else 0.0
        request_id = _request_id()
        params: dict[str, str] = {}
        try:
            params = await self._params(scope, receive)
            result = await self._run(scope, params, request_id)
        except EngineError as exc:
            status, code = exc.status, exc.code
            await self._error(send, exc, request_id)
        else:
            status, code = 200, ""
            await self._json(send, 200, {**result, "RequestId": request_id})
        if self._observed:
            assert self._plugins is not None
            action = params.get("Action", "")
            self._plugins.api_request_finished(
                ApiRequestEvent(
                    action if action in ACTIONS else "Unknown",
                    status,
                    code,
                    time.perf_counter() - started,
                )
            )

    async def _params(self, scope: Scope, receive: Receive) -> dict[str, str]:
        """The request's parameters: its query string, then its form body.

        Raises:
            EngineError: the headers, the body or its encoding are refused.
        """
        content_type = self._check_headers(scope)
        try:
            body = await self._body(receive)
        except _Disconnected:
            # The client has gone: this answer goes nowhere, but completes the request.
            raise EngineError(
                "IncompleteBody", "the connection closed within the body", 400
            ) from None
        except _TooLarge:
            raise EngineError(
                "EntityTooLarge",
                f"the request body is larger than {self.max_body_bytes} bytes "
                "(server.max_body_bytes)",
                413,
            ) from None
        if body and (content_type or "").partition(";")[0].strip().lower() != _FORM:
            got = f"{content_type[:100]!r}" if content_type is not None else "no Content-Type"
            raise EngineError(
                "UnsupportedMediaType",
                f"a request body must be {_FORM} (the parameters as a form), got {got}",
                415,
            )
        try:
            # errors="strict": a %-escaped byte that is not UTF-8 is refused like a raw one,
            # rather than silently becoming U+FFFD.
            params = dict(
                parse_qsl(
                    scope.get("query_string", b"").decode(),
                    keep_blank_values=True,
                    errors="strict",
                )
            )
            if body:
                params.update(parse_qsl(body.decode(), keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            raise EngineError("InvalidParameter", "the parameters are not UTF-8", 400) from None
        return params

    async def _run(self, scope: Scope, params: dict[str, str], request_id: str) -> dict[str, Any]:
        """Check the request's action, version and signature, and run the action.

        Raises:
            EngineError: a refusal; a failing store or a bug become one too (503, 500).
        """
        action = params.get("Action", "")
        try:
            if not action:
                raise EngineError("MissingParameter", "the parameter Action is required", 400)
            if scope["method"] == "GET" and not self.auth.enabled and action not in _KEYLESS_GET:
                # A link or an image on any web page can send a GET, with no Origin.
                raise EngineError(
                    "MethodNotAllowed",
                    f"without access keys, GET may only call {', '.join(sorted(_KEYLESS_GET))}; "
                    f"send {action[:100]} as POST with a form body",
                    405,
                )
            version = params.get("Version", API_VERSION)
            if version != API_VERSION:
                raise EngineError(
                    "APIVersionNotSupported",
                    f"Version {version!r} is not supported; use {API_VERSION}",
                    400,
                )
            if self.shared_nonces is None:
                self.auth.check(scope["method"], params, action)
            else:
                await self.auth.check_shared(scope["method"], params, action, self.shared_nonces)
            return await run_action(self.engine, action, params)
        except EngineError:
            raise
        except StoreError as exc:
            # The database is away or refused: the caller may retry, here or on another
            # replica. One line in the log, not a traceback per request.
            message = mask_text(str(exc))
            log.error("action %s failed (request %s): %s", action, request_id, message)
            raise EngineError(
                "ServiceUnavailable", f"the store cannot be used now: {message}; retry later", 503
            ) from None
        except Exception:
            log.exception("action %s failed (request %s)", action, request_id)
            raise EngineError(
                "InternalError", f"the server failed; see its log for request {request_id}", 500
            ) from None

    async def _error(self, send: Send, exc: EngineError, request_id: str) -> None:
        await self._json(
            send, exc.status, {"Code": exc.code, "Message": exc.message, "RequestId": request_id}
        )

    @staticmethod
    async def _json(send: Send, status: int, doc: dict[str, Any]) -> None:
        body = jsontext.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
