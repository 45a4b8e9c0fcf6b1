"""Certificates for `https://` endpoints: which CAs a client trusts, and what a failure means.

Every client verifies the server's certificate and its host name; there is no switch to turn
that off. A client trusts:

- the CAs in `ca_file` when one is given (`[client] ca_file`, `--ca-file`,
  `$RELAYFLOW_CLIENT__CA_FILE`): a PEM file of one or more CA certificates, or a folder of
  them prepared with `openssl rehash`, and then only those;
- otherwise, as httpx does, the file or folder named by `$SSL_CERT_FILE` or `$SSL_CERT_DIR`,
  else the public CAs of the `certifi` bundle.
"""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

__all__ = ["CA_FILE_HELP", "client_context", "tls_failure"]

#: Where a client's CA file can be given, for messages.
CA_FILE_HELP = "[client] ca_file, --ca-file or $RELAYFLOW_CLIENT__CA_FILE"


def _default_context() -> ssl.SSLContext:
    return _trusting(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _trusting(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    # Loading certifi's bundle takes some 40 ms: one context per process, shared by clients
    # (an SSLContext is safe to share between threads and connections).
    if cert_file:
        return ssl.create_default_context(cafile=cert_file)
    if cert_dir:
        return ssl.create_default_context(capath=cert_dir)
    import certifi  # httpx's own dependency: loaded only for https:// endpoints

    return ssl.create_default_context(cafile=certifi.where())


def client_context(ca_file: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A TLS context that verifies servers against ``ca_file``'s CAs, or the default ones.

    Raises:
        ValueError: ``ca_file`` does not exist, cannot be read, or holds no PEM certificate.
    """
    if ca_file is None:
        return _default_context()
    path = Path(ca_file)
    where = f"ca_file {str(ca_file)!r}"
    if path.is_dir():
        return ssl.create_default_context(capath=str(path))
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{where} does not exist; give the PEM file of the server's CA") from None
    except OSError as exc:
        raise ValueError(f"{where} cannot be read: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError(f"{where} holds no PEM certificate (a -----BEGIN CERTIFICATE----- block)")
    try:
        return ssl.create_default_context(cadata=pem.decode("ascii", errors="replace"))
    except ssl.SSLError as exc:
        raise ValueError(f"{where} holds a certificate that cannot be read: {exc.reason}") from None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, innermost last."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def tls_failure(exc: BaseException, endpoint: str) -> tuple[str, str] | None:
    """The code and sentence for a failed TLS handshake, or None when ``exc`` is not one.

    A certificate the client does not accept is `InvalidCertificate`, naming OpenSSL's reason
    (an unknown CA, a name the certificate does not cover, an expired certificate); any other
    TLS failure, such as an `https://` endpoint that speaks plain HTTP, is `ConnectionFailed`.
    """
    for found in _chain(exc):
        if isinstance(found, ssl.SSLCertVerificationError):
            reason = found.verify_message or found.reason or "certificate verify failed"
            return (
                "InvalidCertificate",
                f"the server at {endpoint} presented a certificate this client does not "
                f"accept ({reason}); if a private CA signed it, give that CA's certificate "
                f"with {CA_FILE_HELP}",
            )
    for found in _chain(exc):
        if isinstance(found, ssl.SSLError):
            reason = str(found.reason or found).lower().replace("_", " ")
            hint = (
                "; it seems to speak plain HTTP: use an http:// endpoint, or turn on TLS "
                "on the server ([server] tls_cert_file and tls_key_file)"
                if "wrong version number" in reason or "record layer" in reason
                else ""
            )
            return (
                "ConnectionFailed",
                f"cannot reach the server at {endpoint}: the TLS handshake failed ({reason}){hint}",
            )
    return None
