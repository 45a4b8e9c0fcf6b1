"""The console's ASGI application: routing, sessions and the JSON endpoints (see the package)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from relayflow import jsontext
from relayflow.api.auth import Authenticator
from relayflow.engine.engine import Engine

__all__ = ["ConsoleApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ConsoleApp:
    """Serves `/console` for one engine.

    Args:
        engine: the engine the console reads and acts through.
        auth: the API's access keys (their roles and secrets sign people in).
        address: the host and port the server listens on (the origin POSTs must come from).
        session_minutes: how long a sign-in lasts.
        secure: whether the server speaks HTTPS (the cookie is then `Secure`).
    """

    def __init__(
        self,
        engine: Engine,
        auth: Authenticator,
        *,
        address: tuple[str, int],
        session_minutes: int = 480,
        secure: bool = False,
    ) -> None:
        self.engine = engine
        self.auth = auth
        self.address = address
        self.session_minutes = session_minutes
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request under `/console`."""
        await self._json(send, 501, {"Code": "NotBuilt", "Message": "the console is being built"})

    @staticmethod
    async def _json(send: Send, status: int, doc: dict[str, Any]) -> None:
        body = jsontext.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
