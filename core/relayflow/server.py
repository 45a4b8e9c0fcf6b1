"""`relayflow server`: the engine and its HTTP API in one process, until SIGTERM or SIGINT.

Told to stop, a server at once answers `/ready` with 503 (so that a load balancer sends its
traffic elsewhere) and answers its pending long polls with the execution as it stands. It goes
on serving for `[server] drain_seconds` (0 by default), time for the balancer to notice; then it
stops taking connections, finishes the requests under way, and closes the engine, which gives
running integration calls a third of the lease to finish and hands back its leases. A second
signal ends the drain and skips the wait for requests under way.

With `[server] tls_cert_file` and `tls_key_file` it serves HTTPS instead: `relayflow.server_tls`
checks the files before anything starts, and at a stop idle TLS connections are closed at
once rather than waiting for a close_notify their clients never send.
"""

from __future__ import annotations

import asyncio
import http
import ipaddress
import json
import logging
import math
import resource
import signal
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, cast

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relayflow.api import ApiApp, Authenticator
from relayflow.api.service_actions import Region, set_region
from relayflow.config import Config, ConfigError, ServerConfig, mask_text
from relayflow.console import ConsoleApp
from relayflow.engine import Engine, Integration
from relayflow.engine.coverage import settings_problems
from relayflow.heap import settle_heap
from relayflow.plugins import PluginManager
from relayflow.server_tls import expiry_warning, tls_context

__all__ = ["check_listen_address", "run_server", "serve", "tls_context"]

log = logging.getLogger("relayflow.server")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen_address(config: Config) -> None:
    """Refuse to serve anything but loopback when no access key is configured.

    Raises:
        ConfigError: the server would be open to the network without authentication.
    """
    host = config.server.host
    if not config.server.access_keys and not _is_loopback(host):
        raise ConfigError(
            f"{config.source}: server.host is {host}, but without [[server.access_keys]] the "
            "API would accept anyone; add access keys, or listen on 127.0.0.1"
        )


class _CoalescingTransport:
    """A transport that hands the socket everything written in one event-loop turn at once.

    uvicorn writes an answer's status line and headers, then its body, as two writes: two
    system calls and two TCP segments for a few hundred bytes. Joining them saved about a
    tenth of the server's CPU in the queue benchmark, and the client reads one segment.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def write_eof(self) -> None:
        self._flush()
        # TLS has no half-close: the refused client reads `connection: close` and closes, or
        # the linger deadline does.
        if self._transport.can_write_eof():
            self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# What a connection is waiting for, and so which deadline applies.
_IDLE = 0  # nothing: a request is being answered, or uvicorn's keep-alive timer runs
_HEAD = 1  # a request's line and headers
_BODY = 2  # the rest of its body
_LINGER = 3  # refused: the client reads the answer while what it still sends is dropped

# How long closing a TLS connection waits for the client's close_notify before it just closes.
TLS_SHUTDOWN_SECONDS = 2.0

# After a refusal, how long to drop what the client still sends before closing. Closing a
# socket with unread data sends a reset, which can destroy the answer before it is read.
LINGER_SECONDS = 2.0


class _QuietAboutClients(logging.Filter):
    """Drop uvicorn's warning for each malformed request: any client could fill the log with it.

    The client gets its 400 all the same; malformed requests say nothing an operator can act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Invalid HTTP request received."


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a `_CoalescingTransport`, with limits.

    - A request head (request line and headers) is counted as it arrives and refused with 431
      past `max_header_bytes`: the parser never sees more, however much the client sends.
    - A head must arrive within `header_timeout` of the connection opening or of its first
      byte, and a body within `body_timeout` of its head; otherwise 408 and the connection
      closes. The time the application takes (a long poll) is not limited, and idle
      keep-alive connections are uvicorn's (closed after `timeout_keep_alive`).
    - Past `max_connections` open connections, a new one is answered 503 and closed.

    Deadlines cost one timer per connection, not per request: each request only moves
    `_deadline`, and the timer, when it fires early, sets itself again for the new deadline.
    The per-request callbacks call `HttpToolsProtocol`'s methods directly, not through
    `super()`, which costs more on Python 3.11; all this adds about a microsecond a request.
    The limits are class attributes, set on a subclass for each server (`_protocol`).
    """

    max_header_bytes: ClassVar[int] = 32 * 1024
    header_timeout: ClassVar[float] = 10.0
    body_timeout: ClassVar[float] = 30.0
    max_connections: ClassVar[int] = 1000

    _phase = _HEAD
    _in_head = True  # the bytes that come belong to a request head (counted)
    _head_bytes = 0
    _begun = False  # a byte of the current head has arrived
    _deadline = math.inf
    _timer: asyncio.TimerHandle | None = None
    _timer_at = math.inf  # when _timer fires

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = _CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, coalescing))
        if len(self.connections) > self.max_connections:
            # No lingering here: under a flood of connections each would hold a socket longer.
            self._answer(
                503,
                "ServiceUnavailable",
                f"the server has {self.max_connections} open connections, the most it takes "
                "(server.max_connections); retry later",
            )
            self.transport.close()
            return
        self._set_deadline(_HEAD, self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf
        self._phase = _IDLE
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == _LINGER:
            return
        while self._in_head:
            room = self.max_header_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                break
            # Feed only what the head may still take: if it has not ended by then, it is too
            # large. (A request that ends within it resets the count for the next head.)
            self._head_bytes = self.max_header_bytes
            if room:
                super().data_received(data[:room])
            if self.transport.is_closing() or self._phase == _LINGER:
                return
            if self._in_head and self._head_bytes == self.max_header_bytes:
                self._refuse(
                    431,
                    "RequestHeaderFieldsTooLarge",
                    f"the request line and headers are larger than {self.max_header_bytes} "
                    "bytes (server.max_header_bytes); send large parameters in a POST body",
                )
                return
            data = data[room:]
        HttpToolsProtocol.data_received(self, data)

    def shutdown(self) -> None:
        """At the server's stop: close an idle connection now, let a busy one finish.

        Over TLS an idle connection is aborted: a graceful close would wait for the client's
        close_notify, which a client holding an idle keep-alive connection never sends, and the
        stop would wait out its whole grace.
        """
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_extra_info("sslcontext") is not None:
            self.transport.abort()
            return
        HttpToolsProtocol.shutdown(self)

    def _unsupported_upgrade_warning(self) -> None:
        # The API has no WebSockets and answers such a request as plain HTTP; uvicorn would
        # log two warnings for each, at any client's bidding.
        return

    # httptools' callbacks

    def on_message_begin(self) -> None:
        self._begun = True
        if self._phase == _IDLE:
            self._set_deadline(_HEAD, self.header_timeout)
        HttpToolsProtocol.on_message_begin(self)

    def on_headers_complete(self) -> None:
        self._in_head = False
        # _set_deadline, inlined: the timer is nearly always due before this deadline.
        self._phase = _BODY
        deadline = self._deadline = self.loop.time() + self.body_timeout
        if self._timer_at > deadline:
            self._arm(deadline)
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._begun = False
        self._phase = _IDLE
        self._deadline = math.inf
        HttpToolsProtocol.on_message_complete(self)

    # deadlines

    def _set_deadline(self, phase: int, seconds: float) -> None:
        self._phase = phase
        deadline = self._deadline = self.loop.time() + seconds
        if self._timer_at > deadline:
            self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._expire)
        self._timer_at = deadline

    def _expire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        if self._phase == _IDLE or self.transport.is_closing():
            return
        if self.loop.time() < self._deadline:  # moved on since the timer was set
            self._arm(self._deadline)
        elif self._phase == _LINGER or (self._phase == _HEAD and not self._begun):
            self.transport.close()  # nothing to answer
        elif self._phase == _HEAD:
            self._refuse(
                408,
                "RequestTimeout",
                f"the request line and headers did not arrive within {self.header_timeout:g} "
                "seconds (server.header_timeout_seconds)",
            )
        else:
            self._refuse(
                408,
                "RequestTimeout",
                f"the request body did not arrive within {self.body_timeout:g} seconds of "
                "its headers (server.body_timeout_seconds)",
            )

    # refusals

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` if no answer is under way, and end the connection.

        The request being read is abandoned: its application sees the client gone, never a
        partial body. What the client still sends is dropped while it reads the answer.
        """
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            answer = True
        else:  # only when its own application has not answered, nor one queued before it
            answer = self._phase == _BODY and not self.pipeline and not cycle.response_started
            cycle.disconnected = True
            cycle.waiting_for_100_continue = False
            cycle.message_event.set()
        if not answer:
            self.transport.close()
            return
        self._answer(status, code, message)
        self.transport.write_eof()
        self._set_deadline(_LINGER, LINGER_SECONDS)

    def _answer(self, status: int, code: str, message: str) -> None:
        doc = {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper()}
        body = json.dumps(doc).encode()
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)


def _region(settings: ServerConfig, host: str, port: int) -> Region:
    """What DescribeRegions answers: the configured region, reached where the server listens."""
    endpoint = settings.region_endpoint
    if endpoint is None:
        if host in ("0.0.0.0", "::", ""):  # every address: the machine's name reaches one
            host = socket.gethostname()
        endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Region(settings.region_id, endpoint, settings.region_name or "")


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: `serve` handles the stop signals.

    uvicorn's own handler would only stop accepting connections and then wait for every
    request under way, a pending 20-second long poll included.

    With TLS, a connection reaches `_Protocol` (and its deadlines) only once its handshake is
    done; until then `handshake_timeout` bounds it, instead of the event loop's 60 seconds.
    Closing one waits at most `TLS_SHUTDOWN_SECONDS` for the client's close_notify (the loop's
    default is 30 seconds, a socket held that long after every keep-alive timeout).
    """

    handshake_timeout: float = 10.0

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Listen as uvicorn does, with `handshake_timeout` for TLS handshakes."""
        if self.config.ssl is None:
            await super().startup(sockets=sockets)
            return
        loop = asyncio.get_running_loop()
        create_server = loop.create_server
        timeout = self.handshake_timeout

        async def with_timeout(*args: Any, **kwargs: Any) -> asyncio.Server:
            return await create_server(
                *args,
                ssl_handshake_timeout=timeout,
                ssl_shutdown_timeout=TLS_SHUTDOWN_SECONDS,
                **kwargs,
            )

        # uvicorn offers no way to pass the timeout; only its own call is redirected, and only
        # while it starts listening.
        loop.create_server = with_timeout  # type: ignore[method-assign]
        try:
            await super().startup(sockets=sockets)
        finally:
            loop.create_server = create_server  # type: ignore[method-assign]


def _protocol(settings: ServerConfig) -> type[_Protocol]:
    """The protocol class with the limits of ``settings``."""
    return type(
        "_LimitedProtocol",
        (_Protocol,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "max_connections": settings.max_connections,
        },
    )


def _raise_file_limit(connections: int) -> None:
    """Let the process open enough sockets for ``connections`` (and its other files).

    Past the soft limit, accepting fails with EMFILE rather than with our clear 503.
    """
    wanted = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if new > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < wanted:
            log.warning(
                "the open-file limit (%d) is too low for server.max_connections = %d",
                new,
                connections,
            )


async def serve(
    config: Config,
    integrations: list[Integration],
    plugins: PluginManager | None = None,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the engine and the API until a stop signal, then shut both down cleanly.

    Raises:
        ConfigError: the server cannot listen where configured, an integration's settings
            cannot work (`relayflow.engine.coverage.settings_problems`), or plugins ask for
            paths they may not serve; nothing was started.
    """
    check_listen_address(config)
    problems = settings_problems(integrations)
    if problems:
        raise ConfigError(f"{config.source}: {'; '.join(problems)}")
    routes = plugins.http_routes() if plugins is not None else {}
    settings = config.server
    tls = tls_context(settings, config.source)
    if tls is not None and settings.tls_cert_file:
        warning = expiry_warning(settings.tls_cert_file)
        if warning:
            log.warning("%s", warning)
    engine = Engine.from_config(config, integrations=integrations, plugins=plugins)
    # IPPROTO_TCP, not 0: asyncio then sets TCP_NODELAY on every connection. Without it each
    # answer waits for the client's delayed ACK, some 40 ms.
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"{config.source}: cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    bound_host, bound_port = sock.getsockname()[:2]
    auth = Authenticator(
        settings.access_keys,
        settings.timestamp_window_seconds,
        settings.max_nonces_per_key,
        settings.max_nonce_length,
    )
    app = ApiApp(
        engine,
        auth,
        settings.max_body_bytes,
        address=(bound_host, bound_port),
        plugins=plugins,
        routes=routes,
        console=(
            ConsoleApp(
                engine,
                auth,
                address=(bound_host, bound_port),
                session_minutes=settings.console_session_minutes,
                secure=tls is not None,
                max_body_bytes=settings.max_body_bytes,
            )
            if settings.console
            else None
        ),
    )
    set_region(engine, _region(settings, bound_host, bound_port))
    _raise_file_limit(settings.max_connections)
    logging.getLogger("uvicorn.error").addFilter(_QuietAboutClients())
    # The grace for integration calls, and for requests under way, follows the effective lease.
    grace = (config.engine.lease_seconds or engine.store.default_lease_seconds) / 3
    server = _Server(
        uvicorn.Config(
            app,
            log_level="warning",
            # No logging config of uvicorn's own: its loggers propagate to the root handler,
            # so that they share `relayflow server`'s format (text or JSON lines).
            log_config=None,
            lifespan="off",
            access_log=False,
            http=_protocol(settings),
            ws="none",
            timeout_graceful_shutdown=max(1, math.ceil(grace)),
            ssl_context_factory=None if tls is None else (lambda _config, _default: tls),
        )
    )
    server.handshake_timeout = settings.header_timeout_seconds
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():  # a second signal: no drain, no wait for the requests under way
            hurry.set()
            server.force_exit = True
            return
        engine.begin_shutdown()  # /ready fails and long polls answer, before anything else
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await engine.start()
    # Everything loaded so far (plugins, their libraries, the flows' code) lives as long as the
    # process: keep it out of the garbage collector's passes, and make the young ones rarer.
    settle_heap()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    log.info(
        "relayflow serving the API on %s://%s:%s, engine on %s (config: %s)",
        "http" if tls is None else "https",
        bound_host,
        bound_port,
        mask_text(config.engine.store),
        config.source,
    )
    if ready is not None:
        ready.set()
    stopping = asyncio.create_task(stop.wait())
    hurrying = asyncio.create_task(hurry.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set() and settings.drain_seconds > 0:
            log.info(
                "stopping: /ready answers 503; serving %g s more (server.drain_seconds)",
                settings.drain_seconds,
            )
            await asyncio.wait(
                [serving, hurrying],
                timeout=settings.drain_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        log.info("stopping: finishing in-flight requests and work")
    finally:
        stopping.cancel()
        hurrying.cancel()
        engine.begin_shutdown()
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await engine.close(grace_seconds=grace)
        sock.close()
    log.info("stopped")


def run_server(
    config: Config, integrations: list[Integration], plugins: PluginManager | None = None
) -> None:
    """Run `serve` on uvloop (the faster event loop) until it returns."""
    uvloop.run(serve(config, integrations, plugins))
