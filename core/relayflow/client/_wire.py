"""Keep-alive HTTP/1.1 connections for the synchronous client, on plain or TLS sockets.

Every action is one small form POST to one server, so the synchronous `Client` needs none of a
general HTTP client's machinery (URL merging, cookies, redirects, streaming models, e-mail
style header parsing). A worker reports once per task, so this is on its hot path: a call
through httpx cost a worker about 0.5 ms of CPU, through `http.client` about 0.2 ms, and
through this module less still. It writes the request in one piece and reads answers framed
by Content-Length, chunked encoding, or the end of the connection. For `https://` it wraps
each socket in TLS (`ssl`, verifying the certificate and the host name) and is otherwise the
same. `Client(transport=...)` still goes through httpx, for tests that answer in-process.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from typing import BinaryIO
from urllib.parse import urlencode, urlsplit

__all__ = ["ProtocolError", "RequestTimeout", "WirePool"]

_MAX_LINE = 65_536
_MAX_HEADERS = 100


class RequestTimeout(Exception):
    """The server took longer to answer than the call's timeout."""


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.x as this client reads it."""


class _Connection:
    """One socket to the server and its buffered reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def went_away(self) -> bool:
        """Whether the server closed this idle connection (readable while idle means EOF).

        Reusing it would send a request the server never reads; checking first means a POST
        is never sent twice.
        """
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True  # TLS data nobody asked for: not a connection to reuse
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class WirePool:
    """Idle connections to one server, taken by one request at a time; thread-safe.

    Args:
        endpoint: the server's `http://` or `https://` URL; its path is where requests go.
        headers: sent with every request.
        connect_timeout: seconds to wait for a new connection (and its TLS handshake).
        tls: for `https://`, the context that verifies the server's certificate.
    """

    def __init__(
        self,
        endpoint: str,
        headers: dict[str, str],
        connect_timeout: float,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(endpoint)
        if (parts.scheme == "https") != (tls is not None):
            raise ValueError(f"{endpoint}: a TLS context goes with https:// and only with it")
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if tls is not None else 80)
        self._tls = tls
        path = (parts.path.rstrip("/") or "") + "/"
        fixed = {"Host": parts.netloc, **headers}
        fixed["Content-Type"] = "application/x-www-form-urlencoded"
        self._head = f"POST {path} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fixed.items()
        )
        self._connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post_form(
        self, params: dict[str, str], timeout: float, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """POST ``params`` form-encoded, with ``headers`` besides the fixed ones; the answer.

        The caller checks that header values hold no line breaks.

        Raises:
            RequestTimeout: no complete answer within ``timeout`` seconds.
            OSError: the server could not be reached, or closed the connection.
            ProtocolError: the answer was not HTTP.
        """
        connection = self._take()
        body = urlencode(params).encode("ascii")
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = f"{self._head}{extra}Content-Length: {len(body)}\r\n\r\n"
        request = head.encode("latin-1") + body
        try:
            connection.sock.settimeout(timeout)
            connection.sock.sendall(request)
            status, content, keep = _read_response(connection.reader)
        except TimeoutError:
            connection.close()
            raise RequestTimeout from None
        except BaseException:
            connection.close()
            raise
        if keep:
            self._give_back(connection)
        else:
            connection.close()
        return status, content

    def close(self) -> None:
        """Close every idle connection; connections in use close when their request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> _Connection:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect()
            if not connection.went_away():
                return connection
            connection.close()

    def _connect(self) -> _Connection:
        # A timeout here is an OSError: the caller reports that the server cannot be reached.
        sock = socket.create_connection((self._host, self._port), timeout=self._connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:  # the handshake, certificate check included, within the connect timeout
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            except BaseException:
                sock.close()
                raise
        return _Connection(sock)

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise ProtocolError("the server sent a line longer than 64 KiB")
    return line


def _read_response(reader: BinaryIO) -> tuple[int, bytes, bool]:
    """Read one answer: its status, its body, and whether the connection may be reused."""
    first = _line(reader)
    if not first:
        raise ConnectionResetError("the server closed the connection without answering")
    parts = first.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"the answer does not start with an HTTP status line: {first[:80]!r}")
    status = int(parts[1])
    keep = parts[0] == b"HTTP/1.1"
    length: int | None = None
    chunked = False
    for _ in range(_MAX_HEADERS):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise ConnectionResetError("the server closed the connection within the headers")
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            if not value.isdigit():
                raise ProtocolError(f"Content-Length is not a number: {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"connection":
            tokens = {token.strip() for token in value.split(b",")}
            keep = b"keep-alive" in tokens if parts[0] == b"HTTP/1.0" else b"close" not in tokens
    else:
        raise ProtocolError(f"the answer has more than {_MAX_HEADERS} headers")
    if status in (204, 304) or 100 <= status < 200:
        return status, b"", keep
    if chunked:
        return status, _read_chunked(reader), keep
    if length is not None:
        content = reader.read(length)
        if len(content) < length:
            raise ConnectionResetError("the server closed the connection within the body")
        return status, content, keep
    return status, reader.read(), False  # framed by the end of the connection


def _read_chunked(reader: BinaryIO) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunk = reader.read(size)
        if len(chunk) < size:
            raise ConnectionResetError("the server closed the connection within a chunk")
        chunks.append(chunk)
        _line(reader)  # the CRLF after the chunk
