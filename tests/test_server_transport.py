"""The server's write-joining transport (relayflow.server._CoalescingTransport)."""

from __future__ import annotations

import asyncio
from typing import Any

from relayflow.server import _CoalescingTransport


class Recorder:
    """Stands in for uvloop's transport: records writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_of_one_loop_turn_reach_the_socket_as_one() -> None:
    async def main() -> Recorder:
        inner = Recorder()
        joined = _CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        joined.write(b"{}")
        assert inner.writes == []  # nothing yet: the turn is not over
        await asyncio.sleep(0)
        joined.write(b"next")
        joined.close()  # flushes what is pending before closing
        assert joined.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest passes through
        return inner

    inner = asyncio.run(main())
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"next"]
    assert inner.closed
