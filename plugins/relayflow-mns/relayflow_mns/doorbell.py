"""Wake-ups between processes sharing one embedded queue file.

A consumer of the embedded SQLite transport would otherwise learn of a new message only when
it next polls the file. Each waiting consumer opens a *doorbell*: a Unix datagram socket, plus
a marker file named after it in the folder ``<database>.bell``. A producer that has committed a
message sends one byte to every doorbell in that folder; a consumer waits on its socket,
for at most its polling interval, instead of sleeping.

The bell only shortens waits: polling stays the ground truth, so a lost or late ring costs one
polling interval, never a message. Sockets live in Linux's abstract namespace (no file, no path
length limit, gone with the process); elsewhere there is no doorbell and consumers poll.
Markers of processes that died are removed by the next producer that finds nobody behind them.
Processes in different network namespaces (containers sharing the file through a volume) cannot
reach each other's abstract sockets: their consumers simply poll. Every commit rings every
waiting consumer of the file, one datagram each, which suits the tens of consumers one SQLite
file serves well.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import threading
import uuid

__all__ = ["Doorbell", "ring"]

_PREFIX = b"\0relayflow-sqlite-"
SUPPORTED = sys.platform.startswith("linux") and hasattr(socket, "AF_UNIX")


def _address(token: str) -> bytes:
    return _PREFIX + token.encode("ascii")


class Doorbell:
    """One consumer's doorbell for the queue file at ``database_path``.

    Args:
        database_path: the queue file; the markers go to ``<database_path>.bell``.
    """

    def __init__(self, database_path: str) -> None:
        self.folder = database_path + ".bell"
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:16]}"
        self.rings_heard = 0
        self._sock: socket.socket | None = None

    def open(self) -> bool:
        """Start listening; False when this platform or folder cannot have doorbells."""
        if self._sock is not None:
            return True
        if not SUPPORTED:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(_address(self.token))
            sock.setblocking(False)
            os.makedirs(self.folder, exist_ok=True)
            with open(os.path.join(self.folder, self.token), "xb"):
                pass
        except OSError:
            sock.close()
            return False
        self._sock = sock
        return True

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a ring; True if one came. Empties the socket."""
        sock = self._sock
        if sock is None:
            return False
        readable, _, _ = select.select([sock], [], [], max(0.0, seconds))
        if not readable:
            return False
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while sock.recv(64):
                self.rings_heard += 1
        return True

    def close(self) -> None:
        """Stop listening and remove the marker."""
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.folder, self.token))


class _Ringer:
    """Sends rings for one queue file, re-reading the folder only when it changed."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._stamp = -1
        self._tokens: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def ring(self) -> None:
        try:
            stamp = os.stat(self.folder).st_mtime_ns
        except OSError:
            return  # nobody has ever waited on this file
        with self._lock:
            if stamp != self._stamp:
                with contextlib.suppress(OSError):
                    self._tokens = os.listdir(self.folder)
                    self._stamp = stamp
            tokens = list(self._tokens)
            for token in tokens:
                try:
                    self._sock.sendto(b"!", _address(token))
                except BlockingIOError:
                    pass  # its buffer is full of rings already: it is awake
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(OSError):  # its process died
                        os.unlink(os.path.join(self.folder, token))
                except OSError:
                    pass  # a ring is a hint; polling covers it


_ringers: dict[str, _Ringer] = {}
_ringers_lock = threading.Lock()


def ring(database_path: str) -> None:
    """Wake every consumer waiting on the queue file at ``database_path`` (a no-op elsewhere)."""
    if not SUPPORTED:
        return
    folder = database_path + ".bell"
    ringer = _ringers.get(folder)
    if ringer is None:
        with _ringers_lock:
            ringer = _ringers.setdefault(folder, _Ringer(folder))
    ringer.ring()
