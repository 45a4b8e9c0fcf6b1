"""Keep-alive HTTP/1.1 connections for the synchronous client, on the standard library.

Every action is one small form POST to one server, so the synchronous `Client` does not need a
general HTTP client's machinery (URL merging, cookies, redirects, streaming models). Through
httpx a call cost a worker about 0.5 ms of CPU; through `http.client` it costs a fraction of
that, and a worker reports once per task. `Client(transport=...)` still goes through httpx,
for tests that answer in-process.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from typing import cast
from urllib.parse import urlencode, urlsplit

__all__ = ["RequestTimeout", "WirePool"]


class RequestTimeout(Exception):
    """The server took longer to answer than the call's timeout."""


class WirePool:
    """Idle connections to one server, taken by one request at a time; thread-safe.

    Args:
        endpoint: the server's `http://` or `https://` URL; its path is where requests go.
        headers: sent with every request.
        connect_timeout: seconds to wait for a new connection.
    """

    def __init__(self, endpoint: str, headers: dict[str, str], connect_timeout: float) -> None:
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path.rstrip("/") or "") + "/"
        self._headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
        self._connect_timeout = connect_timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post_form(self, params: dict[str, str], timeout: float) -> tuple[int, bytes]:
        """POST ``params`` form-encoded; the answer's status and body.

        Raises:
            RequestTimeout: no complete answer within ``timeout`` seconds.
            OSError: the server could not be reached, or closed the connection.
            http.client.HTTPException: the answer was not HTTP.
        """
        connection = self._take()
        body = urlencode(params).encode("ascii")
        if connection.sock is None:
            try:
                connection.connect()  # a timeout here is an OSError: cannot reach the server
                sock = cast(socket.socket, connection.sock)  # set by connect()
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except BaseException:
                connection.close()
                raise
        try:
            connection.sock.settimeout(timeout)
            # http.client sends the headers and a bytes body in one write.
            connection.request("POST", self._path, body, self._headers)
            response = connection.getresponse()
            content = response.read()
        except TimeoutError:
            connection.close()
            raise RequestTimeout from None
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._give_back(connection)
        return response.status, content

    def close(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._new()
            if not _went_away(connection):
                return connection
            connection.close()

    def _new(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)

    def _give_back(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()


def _went_away(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (readable while idle means EOF).

    Reusing it would send a request the server never reads; checking first means a POST is
    never sent twice.
    """
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
