"""What both clients share: the endpoint, the key, the timeout, TLS and the mapping of failures."""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING, Any

import httpx

from relayflow import __version__
from relayflow.client import _wire
from relayflow.client._calls import Call, Credentials
from relayflow.client._errors import ClientError
from relayflow.client._tls import client_context, tls_failure

if TYPE_CHECKING:  # the configuration (pydantic-settings) is the caller's to load, not ours
    from relayflow.config import ClientConfig, Config

__all__ = ["USER_AGENT", "_Base", "_client_config"]

USER_AGENT = f"relayflow-client/{__version__}"


def _endpoint(endpoint: str) -> str:
    text = endpoint.strip()
    if not text:
        raise ValueError("the endpoint is empty; give one such as http://127.0.0.1:8765")
    if "://" not in text:
        text = "http://" + text
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"the endpoint {endpoint!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(
            f"the endpoint {endpoint!r} must be an http:// or https:// URL with a host"
        )
    return text.rstrip("/")


def _client_config(config: Config | ClientConfig) -> ClientConfig:
    client = getattr(config, "client", None)  # a whole Config, with its [client] table
    return config if client is None else client  # type: ignore[return-value]


class _Base:
    """What both clients share: the endpoint, the key, the timeout and error mapping."""

    def __init__(
        self,
        endpoint: str,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        timeout: float = 30.0,
        ca_file: str | os.PathLike[str] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be more than 0 seconds, got {timeout}")
        self.endpoint = _endpoint(endpoint)
        self.credentials = Credentials(access_key_id or None, access_key_secret or None)
        self.timeout = float(timeout)
        self.ca_file = None if ca_file is None else str(ca_file)
        # Made now, for https:// only: a wrong ca_file is refused before any call.
        self._tls: ssl.SSLContext | None = (
            client_context(ca_file) if self.endpoint.startswith("https://") else None
        )

    @property
    def access_key_id(self) -> str | None:
        """The access key requests are signed with; None when they are sent unsigned."""
        return self.credentials.access_key_id

    def __repr__(self) -> str:
        key = self.credentials.access_key_id
        return f"{type(self).__name__}({self.endpoint!r}, access_key_id={key!r})"

    def _timeout(self, call: Call[Any]) -> httpx.Timeout:
        return httpx.Timeout(self.timeout + call.extra_timeout, connect=self.timeout)

    def _failed(self, call: Call[Any], exc: Exception) -> ClientError:
        timed_out = isinstance(exc, httpx.TimeoutException) and not isinstance(
            exc, httpx.ConnectTimeout
        )
        if timed_out or isinstance(exc, _wire.RequestTimeout):
            seconds = self.timeout + call.extra_timeout
            return ClientError(
                "RequestTimeout",
                f"{call.action}: no answer from {self.endpoint} within {seconds:g} seconds",
            )
        tls = tls_failure(exc, self.endpoint)
        if tls is not None:
            return ClientError(*tls)
        reason = str(exc) or type(exc).__name__
        if self._tls is None and isinstance(exc, ConnectionResetError | httpx.RemoteProtocolError):
            # What a server that expects a TLS handshake does with a plain request.
            reason += "; if the server serves HTTPS, the endpoint must start with https://"
        return ClientError(
            "ConnectionFailed", f"cannot reach the server at {self.endpoint}: {reason}"
        )
