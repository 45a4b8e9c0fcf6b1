"""A small TCP load balancer for relayflow replicas: round robin, with health checks on /ready.

haproxy is not installed on the benchmark machine, so the benchmarks and the multi-replica
tests put this in front of several `relayflow server` processes instead. It does what the
haproxy configuration in the deployment docs does, and no more:

- each new client connection goes to the next healthy backend in turn (connections, not
  requests: a keep-alive connection stays with the replica it was given, as in haproxy's
  `mode tcp`);
- every ``interval`` seconds each backend is asked `GET /ready`; ``fall`` failed checks in a
  row (no answer within ``timeout``, or not 200) take it out of the rotation, ``rise``
  good ones put it back;
- when a backend is taken out, the connections it holds are closed (haproxy's
  `on-marked-down shutdown-sessions`), so that clients waiting on a frozen replica find out
  and try again instead of waiting for their own timeout;
- a backend that refuses a new connection is skipped for that connection and marked down.

Run it in a thread of your own program (`Balancer.start_in_thread`) or as a process:

    .venv/bin/python contrib/bench/balancer.py --port 8700 \
        --backend 127.0.0.1:8701 --backend 127.0.0.1:8702 [--interval 0.25] [--timeout 0.5]

As a process it prints `balancing on http://127.0.0.1:PORT` once it listens, and a line each
time a backend goes down or comes back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

__all__ = ["Backend", "Balancer"]

CHUNK = 64 * 1024


@dataclass(eq=False)
class Backend:
    """One replica behind the balancer, and what the balancer knows of it.

    Attributes:
        host: its address.
        port: its port.
        healthy: in the rotation now.
        streak: checks in a row that disagreed with ``healthy`` (counts towards rise/fall).
        connections: how many client connections it was given since the start.
        changes: (monotonic time, healthy) each time it went down or came back.
    """

    host: str
    port: int
    healthy: bool = True
    streak: int = 0
    connections: int = 0
    changes: list[tuple[float, bool]] = field(default_factory=list)
    sessions: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    @property
    def name(self) -> str:
        """`host:port`."""
        return f"{self.host}:{self.port}"


class Balancer:
    """Round-robin TCP proxy over ``backends`` with active `GET /ready` checks.

    Args:
        backends: (host, port) of each replica.
        host: the address to listen on.
        port: the port to listen on; 0 picks a free one (see `port` once started).
        interval: seconds between two checks of one backend.
        timeout: seconds a check may take before it counts as failed.
        rise: good checks in a row that put a down backend back.
        fall: failed checks in a row that take a backend out.
        ready_path: the path checked.
        log: print a line when a backend goes down or comes back.
    """

    def __init__(
        self,
        backends: list[tuple[str, int]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        interval: float = 0.25,
        timeout: float = 0.5,
        rise: int = 1,
        fall: int = 2,
        ready_path: str = "/ready",
        log: bool = False,
    ) -> None:
        if not backends:
            raise ValueError("the balancer needs at least one backend")
        self.backends = [Backend(h, p) for h, p in backends]
        self.host, self.port = host, port
        self.interval, self.timeout = interval, timeout
        self.rise, self.fall = rise, fall
        self.ready_path = ready_path
        self.log = log
        self._next = 0
        self._server: asyncio.Server | None = None
        self._checks: list[asyncio.Task[None]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        """The balancer's `http://host:port`."""
        return f"http://{self.host}:{self.port}"

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen, and start checking the backends."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._checks = [asyncio.create_task(self._watch(b)) for b in self.backends]

    async def close(self) -> None:
        """Stop listening and checking; close every connection still open."""
        for task in self._checks:
            task.cancel()
        for task in self._checks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            self._server.close()
        for backend in self.backends:
            self._shut(backend)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def start_in_thread(self) -> Balancer:
        """Run the balancer on an event loop of its own in a daemon thread; returns self."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # handed to the caller below
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name="balancer", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        """Stop a balancer started with `start_in_thread` and wait for its thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def healthy(self) -> list[str]:
        """The backends in the rotation now, as `host:port`."""
        return [b.name for b in self.backends if b.healthy]

    # -- health checks -------------------------------------------------------------------------

    async def _check(self, backend: Backend) -> bool:
        request = (
            f"GET {self.ready_path} HTTP/1.1\r\nHost: {backend.host}\r\nConnection: close\r\n\r\n"
        ).encode()
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(backend.host, backend.port)
                writer.write(request)
                await writer.drain()
                status = await reader.readline()
            return status.split(b" ")[1:2] == [b"200"]
        except (TimeoutError, OSError, IndexError):
            return False
        finally:
            if writer is not None:
                writer.close()

    async def _watch(self, backend: Backend) -> None:
        while True:
            good = await self._check(backend)
            if good == backend.healthy:
                backend.streak = 0
            else:
                backend.streak += 1
                if backend.streak >= (self.rise if good else self.fall):
                    self._mark(backend, good)
            await asyncio.sleep(self.interval)

    def _mark(self, backend: Backend, healthy: bool) -> None:
        backend.healthy, backend.streak = healthy, 0
        backend.changes.append((time.monotonic(), healthy))
        if self.log:
            print(f"backend {backend.name} {'up' if healthy else 'down'}", flush=True)
        if not healthy:
            self._shut(backend)

    @staticmethod
    def _shut(backend: Backend) -> None:
        for writer in list(backend.sessions):
            writer.close()
        backend.sessions.clear()

    # -- proxying ------------------------------------------------------------------------------

    def _pick(self, tried: set[int]) -> Backend | None:
        count = len(self.backends)
        for step in range(count):
            index = (self._next + step) % count
            backend = self.backends[index]
            if backend.healthy and index not in tried:
                self._next = index + 1
                tried.add(index)
                return backend
        return None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        tried: set[int] = set()
        while True:
            backend = self._pick(tried)
            if backend is None:  # nothing healthy (or nothing that answers): drop the client
                client_w.close()
                return
            try:
                async with asyncio.timeout(self.timeout * 2):
                    server_r, server_w = await asyncio.open_connection(backend.host, backend.port)
                break
            except (TimeoutError, OSError):
                if backend.healthy:
                    self._mark(backend, False)
        backend.connections += 1
        backend.sessions.update((client_w, server_w))
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            backend.sessions.discard(client_w)
            backend.sessions.discard(server_w)
            client_w.close()
            server_w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # One side ended: end the other too, so that neither waits on a half-open pair.
            writer.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"a backend is HOST:PORT, got {text!r}")
    return host, int(port)


async def _run(balancer: Balancer) -> None:
    await balancer.start()
    print(f"balancing on {balancer.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await balancer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backend", type=_address, action="append", required=True)
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--rise", type=int, default=1)
    parser.add_argument("--fall", type=int, default=2)
    args = parser.parse_args(argv)
    balancer = Balancer(
        args.backend,
        args.host,
        args.port,
        interval=args.interval,
        timeout=args.timeout,
        rise=args.rise,
        fall=args.fall,
        log=True,
    )
    try:
        asyncio.run(_run(balancer))
    except OSError as exc:
        print(f"balancer: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
