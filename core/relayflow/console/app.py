"""The console's ASGI application: routing, sessions and the JSON endpoints (see the package).

Who may do what is decided here, on every request, from the signed cookie and the server's
access keys now (`relayflow.api.auth.ROLE_ACTIONS`); nothing the page says is trusted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from relayflow import jsontext
from relayflow.api.actions import ACTIONS, run_action
from relayflow.api.app import local_hosts
from relayflow.api.auth import ROLE_ACTIONS, Authenticator
from relayflow.console import session as sessions
from relayflow.console.session import Session, Throttle
from relayflow.console.static_files import StaticFiles
from relayflow.engine.engine import Engine
from relayflow.errors import EngineError
from relayflow.masking import mask_text
from relayflow.store import StoreError

__all__ = ["CSRF_HEADER", "ConsoleApp"]

log = logging.getLogger("relayflow.console")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The header every POST carries with the session's CSRF value.
CSRF_HEADER = "X-Relayflow-CSRF"
#: Headers on every answer: no framing, no sniffing, scripts and styles only from the console.
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
# A sign-in's body holds a key id and secret, or a token: never more than this.
_SIGN_IN_BYTES = 8192
# Deeper than the deepest Input the engine may accept (engine.max_json_depth <= 150), plus
# the object around the parameters: refused before anything else looks at it.
_MAX_BODY_DEPTH = 151
_ACTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,99}")
_PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._]{0,99}")
_JSON = "application/json"
# Sec-Fetch-Site values of a page's requests to its own origin.
_SAME_SITE = frozenset({"same-origin"})
_KEYLESS_SESSION = Session("", "admin", 0, "keyless")


@dataclass
class Answer:
    """One response: status, body and headers (the security headers are added on sending)."""

    status: int
    body: bytes = b""
    content_type: bytes = b"application/json"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    cache: bytes = b"no-store"


class _MethodNotAllowed(EngineError):
    def __init__(self, allow: str) -> None:
        super().__init__(
            "MethodNotAllowed",
            f"this console path answers only {allow}",
            405,
        )
        self.allow = allow


def _json(
    status: int, doc: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> Answer:
    return Answer(status, jsontext.dumps(doc).encode(), headers=headers or [])


def _refusal(code: str, message: str, status: int) -> EngineError:
    return EngineError(code, message, status)


def _not_signed_in() -> EngineError:
    return _refusal(
        "NotSignedIn", "sign in first: there is no console session, or it has ended", 401
    )


def _header(scope: Scope, name: bytes) -> str | None:
    """The value of header ``name`` (lower case), or None; several are joined as HTTP says."""
    values = [value.decode("latin-1") for key, value in scope["headers"] if key == name]
    return ", ".join(values) if values else None


def _cookie(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key != b"cookie":
            continue
        text: str = value.decode("latin-1")
        for part in text.split(";"):
            name, _, found = part.strip().partition("=")
            if name == sessions.COOKIE:
                return found
    return None


class ConsoleApp:
    """Serves `/console` for one engine.

    Args:
        engine: the engine the console reads and acts through.
        auth: the API's access keys (their roles and secrets sign people in).
        address: the host and port the server listens on (the origin POSTs must come from
            when no access keys are configured).
        session_minutes: how long a sign-in lasts.
        secure: whether the server speaks HTTPS (the cookie is then `Secure`).
        max_body_bytes: larger bodies of `/console/api/<Action>` are refused (413).
    """

    def __init__(
        self,
        engine: Engine,
        auth: Authenticator,
        *,
        address: tuple[str, int],
        session_minutes: int = 480,
        secure: bool = False,
        max_body_bytes: int = 1 << 20,
    ) -> None:
        self.engine = engine
        self.auth = auth
        self.address = address
        self.session_minutes = session_minutes
        self.secure = secure
        self.max_body_bytes = max_body_bytes
        self.hosts = local_hosts(*address)
        self.origins = frozenset(
            f"{scheme}://{host}" for scheme in ("http", "https") for host in self.hosts
        )
        self.throttle = Throttle()
        self.static = StaticFiles()
        self._keys: tuple[bytes, bytes] | None = None

    # -- the request's way through ------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request under `/console`."""
        try:
            answer = await self._route(scope, receive)
        except EngineError as exc:
            answer = _json(exc.status, {"Code": exc.code, "Message": exc.message})
            if isinstance(exc, _MethodNotAllowed):
                answer.headers.append((b"allow", exc.allow.encode()))
        except StoreError as exc:
            message = mask_text(str(exc))
            log.error("a console request failed on the store: %s", message)
            answer = _json(
                503,
                {
                    "Code": "ServiceUnavailable",
                    "Message": f"the store cannot be used now: {message}; retry later",
                },
            )
        except Exception:
            reference = str(uuid.uuid4())
            log.exception("a console request failed (reference %s)", reference)
            answer = _json(
                500,
                {
                    "Code": "InternalError",
                    "Message": f"the server failed; see its log for reference {reference}",
                },
            )
        await self._send(send, answer, head=scope["method"] == "HEAD")

    async def _route(self, scope: Scope, receive: Receive) -> Answer:
        path, method = scope["path"], scope["method"]
        if not self.auth.enabled:
            self._check_host(scope)
        if path == "/console":
            return Answer(308, headers=[(b"location", b"/console/")], content_type=b"")
        if path == "/console/" or path.startswith("/console/static/"):
            self._method(method, "GET")
            name = "index.html" if path == "/console/" else path.removeprefix("/console/static/")
            return self._static_answer(scope, name)
        if path == "/console/session":
            if method == "POST":
                self._check_origin(scope)
                return await self._sign_in(scope, receive)
            if method not in ("GET", "HEAD"):
                raise _MethodNotAllowed("GET, HEAD, POST")
            return self._session_answer(self._session(scope))
        if path == "/console/session/end":
            self._method(method, "POST")
            return self._sign_out(scope)
        if path.startswith("/console/api/"):
            self._method(method, "POST")
            return await self._action(scope, receive, path.removeprefix("/console/api/"))
        if path in ("/console/graph", "/console/view"):
            self._method(method, "GET")
            return await self._drawing(scope, path.removeprefix("/console/"))
        raise _refusal(
            "NotFound",
            f"the console has no page {path[:200]!r}; it starts at /console/",
            404,
        )

    @staticmethod
    def _method(method: str, wanted: str) -> None:
        if method == wanted or (wanted == "GET" and method == "HEAD"):
            return
        raise _MethodNotAllowed("GET, HEAD" if wanted == "GET" else "POST")

    async def _send(self, send: Send, answer: Answer, *, head: bool) -> None:
        headers = [
            *SECURITY_HEADERS,
            (b"cache-control", answer.cache),
            (b"content-length", str(len(answer.body)).encode()),
            *answer.headers,
        ]
        if answer.content_type:
            headers.append((b"content-type", answer.content_type))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else answer.body})

    # -- where a request comes from ---------------------------------------------------------------

    def _check_host(self, scope: Scope) -> None:
        """Without access keys, only requests addressed to the loopback address are served.

        A page of another site could otherwise read the console through a DNS name that it
        points at 127.0.0.1 (DNS rebinding).
        """
        host = _header(scope, b"host") or ""
        if host.lower() not in self.hosts:
            raise _refusal(
                "InvalidHost",
                f"the Host header {host[:200]!r} does not name this server "
                f"({', '.join(sorted(self.hosts))}); without access keys the console answers "
                "only requests addressed to its loopback address",
                403,
            )

    def _own_origins(self, scope: Scope) -> frozenset[str]:
        """The origins the console's own page has, as `Origin` spells them (lower case)."""
        if not self.auth.enabled:
            return self.origins
        host = (_header(scope, b"host") or "").lower()
        if not host:
            return frozenset()
        # Behind a proxy that ends TLS the page is https while this server speaks http.
        schemes = ("https",) if self.secure else ("http", "https")
        return frozenset(f"{scheme}://{host}" for scheme in schemes)

    def _check_origin(self, scope: Scope) -> None:
        """A POST must come from the console's own page: `Origin`, else `Sec-Fetch-Site`."""
        origin = _header(scope, b"origin")
        site = _header(scope, b"sec-fetch-site")
        if site is not None and site.lower() not in _SAME_SITE:
            raise _refusal(
                "CrossOriginRequest",
                f"a request the browser marks Sec-Fetch-Site: {site[:40]} is refused: the "
                "console acts only on requests from its own pages",
                403,
            )
        if origin is not None:
            if origin.lower() not in self._own_origins(scope):
                raise _refusal(
                    "CrossOriginRequest",
                    f"a request from the web page at {origin[:200]!r} is refused: the console "
                    "acts only on requests from its own pages",
                    403,
                )
        elif site is None:
            raise _refusal(
                "CrossOriginRequest",
                "a POST to the console must say where it comes from (Origin or "
                "Sec-Fetch-Site, which browsers send): the console acts only on requests "
                "from its own pages",
                403,
            )

    def _check_csrf(self, scope: Scope, session: Session) -> None:
        given = _header(scope, CSRF_HEADER.lower().encode())
        if not given:
            raise _refusal(
                "CSRFTokenMissing",
                f"the request lacks the {CSRF_HEADER} header; the console's page sends it "
                "(reload the page)",
                403,
            )
        if not hmac.compare_digest(given.encode(), self._csrf(session).encode()):
            raise _refusal(
                "CSRFTokenInvalid",
                f"the {CSRF_HEADER} header does not belong to this session (reload the page)",
                403,
            )

    # -- sessions -------------------------------------------------------------------------------

    def _signing_keys(self) -> tuple[bytes, bytes]:
        """The session and CSRF keys (derived once the engine has started)."""
        if self._keys is None:
            if not self.engine.accepting:
                raise _refusal(
                    "ServiceUnavailable",
                    "the engine is starting or stopping; retry in a moment",
                    503,
                )
            self._keys = (
                self.engine.derived_key("console-session"),
                self.engine.derived_key("console-csrf"),
            )
        return self._keys

    def _csrf(self, session: Session) -> str:
        return sessions.csrf_value(self._signing_keys()[1], session.session_id)

    def _key_table(self) -> dict[str, tuple[str, str]]:
        return {key.id: (key.role, key.secret) for key in self.auth.keys.values()}

    def _session(self, scope: Scope) -> Session | None:
        """The request's session: keyless, from a valid cookie, or None."""
        if not self.auth.enabled:
            return _KEYLESS_SESSION
        value = _cookie(scope)
        if not value:
            return None
        return sessions.read_cookie(self._signing_keys()[0], value, self._key_table())

    def _session_doc(self, session: Session | None) -> dict[str, Any]:
        if session is None:
            return {
                "signedIn": False,
                "keyless": False,
                "keyId": "",
                "role": "",
                "csrf": "",
                "expires": 0,
            }
        return {
            "signedIn": True,
            "keyless": not self.auth.enabled,
            "keyId": session.key_id,
            "role": session.role,
            "csrf": self._csrf(session),
            "expires": session.expires,
        }

    def _session_answer(self, session: Session | None) -> Answer:
        return _json(200, self._session_doc(session))

    def _set_cookie(self, value: str, max_age: int) -> tuple[bytes, bytes]:
        secure = "; Secure" if self.secure else ""
        text = (
            f"{sessions.COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )
        return (b"set-cookie", text.encode("latin-1"))

    async def _sign_in(self, scope: Scope, receive: Receive) -> Answer:
        doc = await self._json_body(scope, receive, _SIGN_IN_BYTES)
        if not self.auth.enabled:
            return self._session_answer(_KEYLESS_SESSION)  # nobody needs to sign in
        address = str((scope.get("client") or ("unknown",))[0])
        if set(doc) == {"token"} and isinstance(doc["token"], str):
            key_id = await self._token_key(doc["token"], address)
        elif (
            set(doc) == {"accessKeyId", "accessKeySecret"}
            and isinstance(doc["accessKeyId"], str)
            and isinstance(doc["accessKeySecret"], str)
        ):
            key_id = self._check_secret(doc["accessKeyId"], doc["accessKeySecret"], address)
        else:
            raise _refusal(
                "InvalidParameter",
                'sign in with {"accessKeyId": ..., "accessKeySecret": ...} or {"token": ...} '
                "(from relayflow console token), all strings",
                400,
            )
        key = self.auth.keys[key_id]
        session = sessions.new_session(key.id, key.role, self.session_minutes)
        log.info("console sign-in: access key %s (%s) from %s", key.id, key.role, address)
        cookie = sessions.session_cookie(self._signing_keys()[0], session, key.secret)
        return _json(
            200,
            self._session_doc(session),
            [self._set_cookie(cookie, self.session_minutes * 60)],
        )

    def _throttled(self, key_id: str, address: str) -> None:
        reason = self.throttle.blocked(key_id, address)
        if reason is not None:
            raise _refusal(
                "Throttling.SignIn",
                f"sign-in refused for now: {reason}; wait a few minutes and try again",
                429,
            )

    def _check_secret(self, key_id: str, secret: str, address: str) -> str:
        """The key id once its secret matches; counts a failure and refuses otherwise."""
        self._throttled(key_id, address)
        key = self.auth.keys.get(key_id)
        # Digests are compared, so neither the secret's length nor whether the key exists
        # shows in the time taken.
        expected = hashlib.sha256((key.secret if key else "\0").encode()).digest()
        given = hashlib.sha256(secret.encode()).digest()
        if hmac.compare_digest(expected, given) and key is not None:
            return key.id
        self.throttle.failed(key_id if key is not None else None, address)
        raise _refusal(
            "SignInFailed",
            "the access key id or its secret is wrong (both are in [[server.access_keys]])",
            401,
        )

    async def _token_key(self, token: str, address: str) -> str:
        """The key id a console token signs in; refuses a forged, expired or used one."""
        claim = sessions.read_token(token)
        if claim is None:
            self.throttle.failed(None, address)
            raise _refusal(
                "InvalidToken",
                "the console token is not one relayflow console token prints (was it cut "
                "short when copied?)",
                401,
            )
        self._throttled(claim.key_id, address)
        key = self.auth.keys.get(claim.key_id)
        if key is None or not claim.signed_by(key.secret):
            self.throttle.failed(claim.key_id if key is not None else None, address)
            raise _refusal(
                "InvalidToken",
                "the console token was not signed by an access key of this server (forged, "
                "or its key's secret has changed); print a new one with relayflow console token",
                401,
            )
        now = time.time()
        if now >= claim.expires:
            raise _refusal(
                "TokenExpired",
                f"the console token expired at {_utc(claim.expires)}; print a new one with "
                "relayflow console token",
                401,
            )
        if claim.expires > now + sessions.MAX_TOKEN_MINUTES * 60 + 60:
            raise _refusal(
                "InvalidToken",
                f"the console token claims to last more than {sessions.MAX_TOKEN_MINUTES} "
                "minutes, which relayflow console token never prints",
                401,
            )
        nonce = hashlib.sha256(f"console-token\0{key.id}\0{claim.nonce}".encode()).hexdigest()
        if not await self.engine.use_nonce(nonce, claim.expires - now + 60):
            raise _refusal(
                "TokenUsed",
                "this console token signed someone in already; print a new one with "
                "relayflow console token",
                401,
            )
        return key.id

    def _sign_out(self, scope: Scope) -> Answer:
        self._check_origin(scope)
        session = self._session(scope)
        if session is not None and self.auth.enabled:
            self._check_csrf(scope, session)
        headers = [self._set_cookie("", 0)] if self.auth.enabled else []
        doc = self._session_doc(_KEYLESS_SESSION if not self.auth.enabled else None)
        return _json(200, doc, headers)

    def _signed_in(self, scope: Scope, action: str) -> Session:
        """The request's session, whose role may call ``action``."""
        session = self._session(scope)
        if session is None:
            raise _not_signed_in()
        self._authorize(session, action)
        return session

    @staticmethod
    def _authorize(session: Session, action: str) -> None:
        allowed = ROLE_ACTIONS.get(session.role, frozenset())
        if allowed is not None and action not in allowed:
            raise _refusal(
                "AccessDenied",
                f"access key {session.key_id!r} has role {session.role}, which may not "
                f"call {action}",
                403,
            )

    # -- actions and drawings -----------------------------------------------------------------

    async def _json_body(self, scope: Scope, receive: Receive, limit: int) -> dict[str, Any]:
        """The request's body, a JSON object of at most ``limit`` bytes ({} when empty)."""
        content_type = (_header(scope, b"content-type") or "").partition(";")[0].strip().lower()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _refusal("IncompleteBody", "the connection closed within the body", 400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _refusal(
                    "EntityTooLarge",
                    f"the request body is larger than {limit} bytes"
                    + (" (server.max_body_bytes)" if limit == self.max_body_bytes else ""),
                    413,
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if not body:
            return {}
        if content_type != _JSON:
            raise _refusal(
                "UnsupportedMediaType",
                f"a console request body must be {_JSON}, got {content_type[:100] or 'none'}",
                415,
            )
        try:
            doc = jsontext.loads_input(body)
        except ValueError as exc:
            raise _refusal(
                "InvalidJSON", f"the request body is not JSON: {str(exc)[:200]}", 400
            ) from None
        if not isinstance(doc, dict):
            raise _refusal("InvalidJSON", "the request body must be a JSON object", 400)
        if jsontext.too_deep(doc, _MAX_BODY_DEPTH):
            raise _refusal(
                "InvalidJSON",
                f"the request body nests deeper than {_MAX_BODY_DEPTH} levels",
                400,
            )
        return doc

    async def _action(self, scope: Scope, receive: Receive, action: str) -> Answer:
        if not _ACTION_NAME.fullmatch(action):
            raise _refusal(
                "ActionNotSupported",
                f"{action[:100]!r} is not an action name (such as ListExecutions)",
                400,
            )
        session = self._session(scope)
        if session is None:
            raise _not_signed_in()
        self._check_origin(scope)
        self._check_csrf(scope, session)
        if action in ACTIONS:
            self._authorize(session, action)
        doc = await self._json_body(scope, receive, self.max_body_bytes)
        params = {name: text for name, text in _params(doc).items() if text is not None}
        return _json(200, await run_action(self.engine, action, params))

    async def _drawing(self, scope: Scope, which: str) -> Answer:
        query = _query(scope)
        flow = query.get("flow", "")
        if not flow:
            raise _refusal("MissingParameter", f"/console/{which} needs ?flow=NAME", 400)
        if which == "graph":
            session = self._signed_in(scope, "DescribeFlow")
            execution = query.get("execution", "")
            if execution:
                # The definition that execution runs: its view's node ids are this graph's.
                self._authorize(session, "DescribeExecution")
                run = await self.engine.describe_execution(flow, execution)
                return _json(200, await self._draw(flow, run.flow_definition))
            version = query.get("version", "")
            info = await (
                self.engine.describe_flow(flow, version)
                if version
                else self.engine.describe_flow(flow)
            )
            return _json(200, await self._draw(info.name, info.definition))
        session = self._signed_in(scope, "GetExecutionHistory")
        execution = query.get("execution", "")
        if not execution:
            raise _refusal("MissingParameter", "/console/view needs &execution=NAME", 400)
        view = await self._view(flow, execution)
        allowed = ROLE_ACTIONS.get(session.role, frozenset())
        if allowed is not None and "ReportTaskSucceeded" not in allowed:
            # A task token lets its holder report the task: only for roles that may report.
            view = _without_tokens(view)
        return _json(200, view)

    async def _draw(self, flow: str, definition: str) -> dict[str, Any]:
        """The graph of ``definition``, with what `relayflow validate --strict` says of it here."""
        from relayflow.console.graph import flow_graph
        from relayflow.engine.coverage import integration_problems
        from relayflow.engine.engine import served

        # Read within the engine's own budgets, on its thread for definitions: the stored
        # text passed them when it was stored.
        parsed = await self.engine._validate_definition(flow, definition)
        result: dict[str, Any] = flow_graph(parsed)
        # A stored definition passed every check but this one, which depends on the plugins
        # installed now (one may have been removed since). Off the loop: it reads the text.
        problems = await asyncio.to_thread(
            integration_problems,
            parsed,
            served(self.engine.integrations),
            definition,
            flow,
            self.engine._runtime.definition_limits,
        )
        result["problems"] = [problem.to_dict() for problem in problems]
        return result

    async def _view(self, flow: str, execution: str) -> dict[str, Any]:
        from relayflow.console import view

        build = getattr(view, "execution_view", None)
        if build is None:
            raise _refusal("NotBuilt", "the execution view is not built yet", 501)
        result: dict[str, Any] = await build(self.engine, flow, execution)
        return result

    # -- static files -----------------------------------------------------------------------------

    def _static_answer(self, scope: Scope, name: str) -> Answer:
        found = self.static.get(name, raw_path=scope.get("raw_path"))
        if found is None:
            raise _refusal(
                "NotFound",
                f"the console has no file {name[:200]!r}; it starts at /console/",
                404,
            )
        headers = [(b"etag", found.etag.encode())]
        if_none_match = _header(scope, b"if-none-match")
        # A page's files change only with relayflow: check each time, send only if changed.
        cache = b"no-cache"
        if if_none_match is not None and found.etag in {
            tag.strip() for tag in if_none_match.split(",")
        }:
            return Answer(304, headers=headers, content_type=b"", cache=cache)
        return Answer(200, found.body, found.content_type, headers, cache)


def _params(doc: dict[str, Any]) -> dict[str, str | None]:
    """A JSON object's values as the API's text parameters (None: leave the parameter out).

    Text stays text; numbers and booleans become their JSON text (`10`, `true`); objects and
    arrays become JSON text, as the API takes `Input` and `Environment`.
    """
    params: dict[str, str | None] = {}
    for name, value in doc.items():
        if not _PARAM_NAME.fullmatch(name):
            raise _refusal(
                "InvalidParameter",
                f"{name[:100]!r} is not a parameter name (such as FlowName)",
                400,
            )
        if value is None:
            params[name] = None
        elif isinstance(value, str):
            params[name] = value
        else:
            params[name] = jsontext.dumps(value)
    return params


def _utc(moment: int) -> str:
    """An epoch time as RFC 3339 UTC text (the number itself if no calendar holds it)."""
    try:
        return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(moment)


def _without_tokens(value: Any) -> Any:
    """``value`` with every `taskToken` entry of its objects left out."""
    if isinstance(value, dict):
        return {k: _without_tokens(v) for k, v in value.items() if k != "taskToken"}
    if isinstance(value, list):
        return [_without_tokens(item) for item in value]
    return value


def _query(scope: Scope) -> dict[str, str]:
    try:
        return dict(
            parse_qsl(
                scope.get("query_string", b"").decode(), keep_blank_values=True, errors="strict"
            )
        )
    except UnicodeDecodeError:
        raise _refusal("InvalidParameter", "the query string is not UTF-8", 400) from None
