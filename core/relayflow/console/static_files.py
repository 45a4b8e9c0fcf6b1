"""The console's files in `static/`: found by name, never outside the folder.

A name is served only if every one of its segments is plain (letters, digits, `.`, `_`, `-`,
not starting with a dot, so neither `..` nor hidden files), its type is one the console uses,
and the resolved file lies inside `static/`. The raw request path is checked too: an encoded
slash, backslash or NUL (`%2F`, `%5C`, `%00`) is refused rather than decoded into a path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CONTENT_TYPES", "StaticFile", "StaticFiles"]

#: The file types served, by suffix; anything else is not found.
CONTENT_TYPES: dict[str, bytes] = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".mjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".json": b"application/json",
    ".txt": b"text/plain; charset=utf-8",
    ".woff2": b"font/woff2",
}
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
_ENCODED = re.compile(rb"%(2f|5c|00)", re.IGNORECASE)
_MAX_SEGMENTS = 4


@dataclass(frozen=True)
class StaticFile:
    """A file's bytes, its content type and its ETag."""

    body: bytes
    content_type: bytes
    etag: str


class StaticFiles:
    """Reads files from one folder (by default the package's `static/`).

    Files are read when asked for, with their ETag kept while their size and time stay the
    same: a file changed on disk is served changed, with no restart.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = (folder or Path(__file__).with_name("static")).resolve()
        self._cache: dict[Path, tuple[tuple[int, int], StaticFile]] = {}

    def get(self, name: str, raw_path: bytes | None = None) -> StaticFile | None:
        """The file ``name`` (relative, `/`-separated), or None when it may not be served.

        Args:
            name: the decoded path below `static/`.
            raw_path: the request's path as sent, to refuse encoded separators and NULs.
        """
        if raw_path is not None and _ENCODED.search(raw_path):
            return None
        segments = name.split("/")
        if len(segments) > _MAX_SEGMENTS or not all(_SEGMENT.fullmatch(s) for s in segments):
            return None
        content_type = CONTENT_TYPES.get(Path(segments[-1]).suffix.lower())
        if content_type is None:
            return None
        path = self.folder.joinpath(*segments).resolve()
        if not path.is_relative_to(self.folder) or not path.is_file():
            return None
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        body = path.read_bytes()
        found = StaticFile(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
        self._cache[path] = (stamp, found)
        return found
