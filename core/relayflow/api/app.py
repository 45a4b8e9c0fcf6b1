"""The HTTP API as a small ASGI application.

Routes:

- `POST /` and `GET /` — the RPC actions: `Action=...&Version=2019-03-15` and the action's
  parameters, in the query string or an `application/x-www-form-urlencoded` body, signed
  (see `relayflow.api.auth`). Answers are JSON with a `RequestId`; refusals are JSON with
  `Code`, `Message` and `RequestId`, and an HTTP status that fits.
- `GET /health` — 200 while the process runs.
- `GET /ready` — 200 while the engine takes work, 503 otherwise.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from relayflow import jsontext
from relayflow.api.actions import run_action
from relayflow.api.auth import Authenticator
from relayflow.engine.engine import Engine
from relayflow.errors import EngineError

__all__ = ["API_VERSION", "ApiApp"]

log = logging.getLogger("relayflow.api")

API_VERSION = "2019-03-15"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _TooLarge(Exception):
    pass


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


class ApiApp:
    """The ASGI application serving one engine."""

    def __init__(self, engine: Engine, auth: Authenticator, max_body_bytes: int = 1 << 20) -> None:
        self.engine = engine
        self.auth = auth
        self.max_body_bytes = max_body_bytes

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
            ready = self.engine.accepting
            await self._json(send, 200 if ready else 503, {"Status": "ok" if ready else "starting"})
        elif path != "/":
            await self._error(
                send,
                EngineError("NotFound", f"no such path {path}; the API is at /", 404),
                _request_id(),
            )
        elif method not in ("GET", "POST"):
            await self._error(
                send, EngineError("MethodNotAllowed", "use POST / or GET /", 405), _request_id()
            )
        else:
            await self._rpc(scope, receive, send)

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
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _request_id()
        try:
            body = await self._body(receive)
        except _TooLarge:
            await self._error(
                send,
                EngineError(
                    "EntityTooLarge",
                    f"the request body is larger than {self.max_body_bytes} bytes "
                    "(server.max_body_bytes)",
                    413,
                ),
                request_id,
            )
            return
        try:
            params = dict(
                parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)
            )
            if body:
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            await self._error(
                send,
                EngineError("InvalidParameter", "the parameters are not UTF-8", 400),
                request_id,
            )
            return
        action = params.get("Action", "")
        try:
            if not action:
                raise EngineError("MissingParameter", "the parameter Action is required", 400)
            version = params.get("Version", API_VERSION)
            if version != API_VERSION:
                raise EngineError(
                    "APIVersionNotSupported",
                    f"Version {version!r} is not supported; use {API_VERSION}",
                    400,
                )
            self.auth.check(scope["method"], params, action)
            result = await run_action(self.engine, action, params)
        except EngineError as exc:
            await self._error(send, exc, request_id)
            return
        except Exception:
            log.exception("action %s failed (request %s)", action, request_id)
            await self._error(
                send,
                EngineError(
                    "InternalError", f"the server failed; see its log for request {request_id}", 500
                ),
                request_id,
            )
            return
        await self._json(send, 200, {**result, "RequestId": request_id})

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
