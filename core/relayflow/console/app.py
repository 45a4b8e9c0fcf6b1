"""The console's ASGI application: routing, the JSON endpoints, drawings and static files.

`ConsoleApp` is the `/console` mount (see the package for the routes). Who may do what is
decided on every request by the checks it inherits from `ConsoleAccess` (`access.py`); the
request and answer plumbing both use is in `request_io.py`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl

from relayflow import jsontext
from relayflow.api.actions import ACTIONS, run_action
from relayflow.api.app import local_hosts
from relayflow.api.auth import ROLE_ACTIONS, Authenticator
from relayflow.console.access import CSRF_HEADER, ConsoleAccess
from relayflow.console.request_io import (
    Answer,
    Receive,
    Scope,
    Send,
    header_value,
    json_answer,
    not_signed_in,
    read_json_body,
    refusal_error,
)
from relayflow.console.session import Throttle
from relayflow.console.static_files import StaticFiles
from relayflow.engine.engine import Engine
from relayflow.errors import EngineError
from relayflow.masking import mask_text
from relayflow.store import StoreError

__all__ = ["CSRF_HEADER", "ConsoleApp"]

log = logging.getLogger("relayflow.console")

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
_ACTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,99}")
_PARAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._]{0,99}")


class _MethodNotAllowed(EngineError):
    def __init__(self, allow: str) -> None:
        super().__init__(
            "MethodNotAllowed",
            f"this console path answers only {allow}",
            405,
        )
        self.allow = allow


class ConsoleApp(ConsoleAccess):
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
            answer = json_answer(exc.status, {"Code": exc.code, "Message": exc.message})
            if isinstance(exc, _MethodNotAllowed):
                answer.headers.append((b"allow", exc.allow.encode()))
        except StoreError as exc:
            message = mask_text(str(exc))
            log.error("a console request failed on the store: %s", message)
            answer = json_answer(
                503,
                {
                    "Code": "ServiceUnavailable",
                    "Message": f"the store cannot be used now: {message}; retry later",
                },
            )
        except Exception:
            reference = str(uuid.uuid4())
            log.exception("a console request failed (reference %s)", reference)
            answer = json_answer(
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
        raise refusal_error(
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

    # -- actions and drawings -----------------------------------------------------------------

    async def _action(self, scope: Scope, receive: Receive, action: str) -> Answer:
        if not _ACTION_NAME.fullmatch(action):
            raise refusal_error(
                "ActionNotSupported",
                f"{action[:100]!r} is not an action name (such as ListExecutions)",
                400,
            )
        session = self._session(scope)
        if session is None:
            raise not_signed_in()
        self._check_origin(scope)
        self._check_csrf(scope, session)
        if action in ACTIONS:
            self._authorize(session, action)
        doc = await read_json_body(
            scope, receive, self.max_body_bytes, max_body_bytes=self.max_body_bytes
        )
        params = {name: text for name, text in _params(doc).items() if text is not None}
        return json_answer(200, await run_action(self.engine, action, params))

    async def _drawing(self, scope: Scope, which: str) -> Answer:
        query = _query(scope)
        flow = query.get("flow", "")
        if not flow:
            raise refusal_error("MissingParameter", f"/console/{which} needs ?flow=NAME", 400)
        if which == "graph":
            session = self._signed_in(scope, "DescribeFlow")
            execution = query.get("execution", "")
            if execution:
                # The definition that execution runs: its view's node ids are this graph's.
                self._authorize(session, "DescribeExecution")
                run = await self.engine.describe_execution(flow, execution)
                return json_answer(200, await self._draw(flow, run.flow_definition))
            version = query.get("version", "")
            info = await (
                self.engine.describe_flow(flow, version)
                if version
                else self.engine.describe_flow(flow)
            )
            return json_answer(200, await self._draw(info.name, info.definition))
        session = self._signed_in(scope, "GetExecutionHistory")
        execution = query.get("execution", "")
        if not execution:
            raise refusal_error("MissingParameter", "/console/view needs &execution=NAME", 400)
        view = await self._view(flow, execution)
        allowed = ROLE_ACTIONS.get(session.role, frozenset())
        if allowed is not None and "ReportTaskSucceeded" not in allowed:
            # A task token lets its holder report the task: only for roles that may report.
            view = _without_tokens(view)
        return json_answer(200, view)

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
            raise refusal_error("NotBuilt", "the execution view is not built yet", 501)
        result: dict[str, Any] = await build(self.engine, flow, execution)
        return result

    # -- static files -----------------------------------------------------------------------------

    def _static_answer(self, scope: Scope, name: str) -> Answer:
        found = self.static.get(name, raw_path=scope.get("raw_path"))
        if found is None:
            raise refusal_error(
                "NotFound",
                f"the console has no file {name[:200]!r}; it starts at /console/",
                404,
            )
        headers = [(b"etag", found.etag.encode())]
        if_none_match = header_value(scope, b"if-none-match")
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
            raise refusal_error(
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
        raise refusal_error("InvalidParameter", "the query string is not UTF-8", 400) from None
