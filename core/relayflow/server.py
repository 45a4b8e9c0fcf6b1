"""`relayflow server`: the engine and its HTTP API in one process, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import socket
from typing import Any, cast

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relayflow.api import ApiApp, Authenticator
from relayflow.config import Config, ConfigError
from relayflow.engine import Engine, Integration
from relayflow.plugins import PluginManager

__all__ = ["check_listen_address", "run_server", "serve"]

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

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a `_CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = _CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, coalescing))


async def serve(
    config: Config,
    integrations: list[Integration],
    plugins: PluginManager | None = None,
    *,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the engine and the API until a stop signal, then shut both down cleanly."""
    check_listen_address(config)
    settings = config.server
    engine = Engine.from_config(config, integrations=integrations, plugins=plugins)
    app = ApiApp(
        engine,
        Authenticator(settings.access_keys, settings.timestamp_window_seconds),
        settings.max_body_bytes,
    )
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
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, http=_Protocol)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    # Everything loaded so far (plugins, their libraries, the flows' code) lives as long as the
    # process: keep it out of the garbage collector's full passes, which otherwise walk it all.
    gc.freeze()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    host, port = sock.getsockname()[:2]
    log.info(
        "relayflow serving the API on http://%s:%s, engine on %s (config: %s)",
        host,
        port,
        config.engine.store,
        config.source,
    )
    if ready is not None:
        ready.set()
    try:
        await asyncio.wait(
            [serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        log.info("stopping: finishing in-flight requests and work")
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await engine.close(grace_seconds=config.engine.lease_seconds / 3)
        sock.close()
    log.info("stopped")


def run_server(
    config: Config, integrations: list[Integration], plugins: PluginManager | None = None
) -> None:
    """Run `serve` on uvloop (the faster event loop) until it returns."""
    uvloop.run(serve(config, integrations, plugins))
