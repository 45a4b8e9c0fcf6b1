"""`HttpIntegration`: task steps with `action: http:Request` call HTTP APIs through httpx.

One `httpx.AsyncClient` per integration (per event loop) pools connections across tasks.
Redirects are not followed: a 3xx answer fails the task like any answer that is not 2xx, so a
request never reaches a host that `allowed_hosts` or `header_env` did not see. The client keeps
no cookies, so nothing one request earned travels with another flow's.

httpx logs every request's whole URL (query and all) at INFO, and httpcore its traffic at DEBUG;
while this plugin sends, their records below WARNING are dropped, and its own log lines show
`scheme://host/path` only.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Final

import httpx

from relayflow.engine.integration import (
    Failed,
    Integration,
    Submitted,
    Succeeded,
    TaskOutcome,
    TaskRequest,
)
from relayflow_http.errors import (
    ERROR_CONNECTION,
    ERROR_HOST_NOT_ALLOWED,
    ERROR_INVALID_PARAMETER,
    ERROR_RESPONSE_TOO_DEEP,
    ERROR_RESPONSE_TOO_LARGE,
    ERROR_TIMEOUT,
    CallFailed,
    status_error,
)
from relayflow_http.params import Call, header_problem, parse_call, reserved_reason
from relayflow_http.response import (
    TooDeep,
    describe_url,
    local,
    read_body,
    read_prefix,
    snippet,
)
from relayflow_http.secret_headers import SecretHeaders, redact
from relayflow_http.settings import HttpSettings, host_rule

__all__ = ["ACTION", "HEADER_TOKEN", "USER_AGENT", "HttpIntegration"]

log = logging.getLogger("relayflow_http")

#: The action name a task step uses.
ACTION: Final = "http:Request"
#: The header that carries the task token of a waitForCallback step.
HEADER_TOKEN: Final = "X-Relayflow-Task-Token"
USER_AGENT: Final = "relayflow-http/0.1.0"
# An error answer is quoted, not kept: read no more of it than a cause shows.
_ERROR_BODY_BYTES: Final = 4096
# The loggers httpx and httpcore write requests to (httpcore creates some of them lazily).
_LIBRARY_LOGGERS: Final = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
# True while this plugin sends: httpx and httpcore records are then about our requests.
_SENDING: ContextVar[bool] = ContextVar("relayflow_http_sending", default=False)


class _QuietWhileSending(logging.Filter):
    """Drops httpx's and httpcore's records below WARNING about this plugin's requests.

    They print whole URLs, query strings included, and httpcore prints headers; the plugin logs
    what is safe itself. Other code's use of httpx in the same process keeps its records.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _SENDING.get()


_QUIET = _QuietWhileSending()


def _quiet_library_loggers() -> None:
    known = logging.root.manager.loggerDict
    names = {*_LIBRARY_LOGGERS, *(n for n in known if n.startswith(("httpx.", "httpcore.")))}
    for name in names:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


class HttpIntegration(Integration):
    """Sends the HTTP request a task step's serviceParams describe.

    Attributes:
        settings: the validated `[integrations.http]` table.
    """

    name = "http"
    patterns = frozenset({"requestResponse", "waitForCallback"})
    config_model = HttpSettings

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self.settings = settings if settings is not None else HttpSettings()
        self._allowed = [host_rule(pattern) for pattern in self.settings.allowed_hosts]
        self._secrets = SecretHeaders(self.settings.header_env)
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def claims(self, resource: str) -> bool:
        """Whether ``resource`` is the action `http:Request`."""
        return resource == ACTION

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Send the request; see the README for the outcome of each pattern."""
        sending = _SENDING.set(True)
        try:
            return await self._invoke(request)
        finally:
            _SENDING.reset(sending)

    async def _invoke(self, request: TaskRequest) -> TaskOutcome:
        try:
            call = parse_call(request.service_params)
            host, port = _host_port(call.url)
            self._check_host(call, host, port)
            secrets = self._secrets.for_host(host, port)
        except CallFailed as failure:
            return Failed(failure.error, failure.cause)
        try:
            return await self._exchange(request, call, secrets)
        except CallFailed as failure:
            return Failed(failure.error, redact(failure.cause, secrets.values()))

    async def aclose(self) -> None:
        """Close the pooled connections; `Engine.close` calls this. A later task opens new ones."""
        client, self._client = self._client, None
        loop, self._client_loop = self._client_loop, None
        if client is not None and loop is asyncio.get_running_loop():
            sending = _SENDING.set(True)
            try:
                await client.aclose()
            finally:
                _SENDING.reset(sending)

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # Pooled connections belong to the loop that opened them; a new loop (a second
            # asyncio.run in one process) needs a client of its own.
            self._client = httpx.AsyncClient(
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                # A jar that accepts no cookie: tasks of different flows share this client.
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
            )
            self._client_loop = loop
            _quiet_library_loggers()
        return self._client

    def _check_host(self, call: Call, host: str, port: int) -> None:
        if self._allowed and not any(rule.matches(host, port) for rule in self._allowed):
            raise CallFailed(
                ERROR_HOST_NOT_ALLOWED,
                f"{call.method} {describe_url(call.url)} was not sent: {host} is not in "
                "allowed_hosts of [integrations.http]",
            )

    def _timeout(self, call: Call, request: TaskRequest) -> float:
        seconds = call.timeout if call.timeout is not None else self.settings.timeout_seconds
        if request.timeout_seconds:
            seconds = min(seconds, float(request.timeout_seconds))
        return seconds

    async def _exchange(
        self, request: TaskRequest, call: Call, secrets: dict[str, str]
    ) -> TaskOutcome:
        for name, value in request.headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                raise CallFailed(
                    ERROR_INVALID_PARAMETER, f"header {name}, added by a plugin, {problem}"
                )
            reason = reserved_reason(name)
            if reason is not None:
                raise CallFailed(
                    ERROR_INVALID_PARAMETER,
                    f"header {name}, added by a plugin, cannot be set: {reason}",
                )
        # Later sources win: plugins' headers, the step's, the configured secrets, the token.
        headers = httpx.Headers(request.headers)
        headers.update(call.headers)
        if call.content_type is not None and "content-type" not in headers:
            headers["Content-Type"] = call.content_type
        headers.update(secrets)
        if request.pattern == "waitForCallback":
            headers[HEADER_TOKEN] = request.token
        seconds = self._timeout(call, request)
        client = self._http()
        # httpx 0.28 lets `params=` replace the URL's own query; merge them instead.
        url = call.url.copy_merge_params(call.query) if call.query else call.url
        outgoing = client.build_request(
            call.method,
            url,
            headers=headers,
            content=call.content,
            timeout=seconds,
        )
        where = f"{call.method} {describe_url(call.url)}"
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange.
            async with asyncio.timeout(seconds):
                # An empty Auth: httpx never turns URL credentials into an Authorization.
                response = await client.send(
                    outgoing, stream=True, auth=httpx.Auth(), follow_redirects=False
                )
                try:
                    return await self._answer(request, where, response, secrets)
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            raise CallFailed(
                ERROR_TIMEOUT, f"{where} got no complete answer within {seconds:g} seconds"
            ) from None
        except httpx.TransportError as exc:
            problem = _transport_problem(exc)
            log.debug("%s failed: %s", where, problem)
            raise CallFailed(ERROR_CONNECTION, f"{where} failed: {problem}") from None

    async def _answer(
        self,
        request: TaskRequest,
        where: str,
        response: httpx.Response,
        secrets: dict[str, str],
    ) -> TaskOutcome:
        status = response.status_code
        log.debug("%s answered %d", where, status)
        if not 200 <= status < 300:
            limit = min(_ERROR_BODY_BYTES, self.settings.max_response_bytes)
            prefix, truncated = await read_prefix(response, limit)
            quoted = snippet(response, prefix, truncated)
            cause = f"{where} answered {status} {response.reason_phrase}".rstrip()
            if 300 <= status < 400:
                cause += " (redirects are not followed)"
            cause += f": {quoted}" if quoted else " with an empty body"
            return Failed(status_error(status), redact(cause, secrets.values()))
        if request.pattern == "waitForCallback":
            return Submitted({"StatusCode": status})
        limit = self.settings.max_response_bytes
        body = await read_body(response, limit)
        if body is None:
            raise CallFailed(
                ERROR_RESPONSE_TOO_LARGE,
                f"{where} answered {status} with a body larger than {limit} bytes "
                "(max_response_bytes of [integrations.http])",
            )
        depth = self.settings.max_json_depth
        try:
            return Succeeded(local(response, body, depth))
        except TooDeep:
            raise CallFailed(
                ERROR_RESPONSE_TOO_DEEP,
                f"{where} answered {status} with JSON nested more than {depth - 1} levels deep; "
                f"the step's local, one level above it, may nest {depth} "
                "(max_json_depth of [integrations.http])",
            ) from None


def _host_port(url: httpx.URL) -> tuple[str, int]:
    """The host as patterns see it (lowercase, punycode, IPv6 bare) and the effective port."""
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    return url.raw_host.decode("ascii").lower(), port


def _transport_problem(exc: httpx.TransportError) -> str:
    """What went wrong, in words that carry no header (h11 quotes bad headers)."""
    if isinstance(exc, httpx.LocalProtocolError):
        return "the request could not be encoded"
    detail = " ".join(str(exc).split())
    return detail or type(exc).__name__
