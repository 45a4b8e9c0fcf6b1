"""The server's TLS context: `[server] tls_cert_file` and `tls_key_file`, checked at start.

`relayflow.server` serves HTTPS with the context `tls_context` makes; every problem with the
files is one sentence naming the key and the file (a `ConfigError`), before anything starts.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

from relayflow.config import ConfigError, ServerConfig

__all__ = ["EXPIRY_WARNING_DAYS", "expiry_warning", "tls_context"]

_TLS_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
#: A certificate that ends within this many days gets a warning when the server starts.
EXPIRY_WARNING_DAYS = 14


def _read_pem(source: str, key: str, path: str) -> bytes:
    """The bytes of the file ``server.<key>`` names, or `ConfigError` saying why not."""
    where = f"{source}: server.{key}"
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: {path} is a folder, not a PEM file") from None
    except PermissionError:
        raise ConfigError(
            f"{where}: {path} cannot be read by this user (permission denied)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None


def tls_context(settings: ServerConfig, source: str = "(defaults)") -> ssl.SSLContext | None:
    """The TLS context `[server] tls_cert_file` and `tls_key_file` make, or None for HTTP.

    Both files are read and checked here, before anything starts: each must exist, be
    readable and hold PEM of the right kind, and the key must belong to the certificate.
    The context accepts `tls_min_version` (TLS 1.2 by default) and newer, with Python's
    default cipher list (forward-secret suites only; docs/security.md lists them), and
    neither compression nor renegotiation.

    Raises:
        ConfigError: one sentence naming the key and what is wrong with its file.
    """
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = (
            ("tls_cert_file", "tls_key_file")
            if key is None
            else (
                "tls_key_file",
                "tls_cert_file",
            )
        )
        raise ConfigError(
            f"{source}: server.{given} is set but server.{missing} is not; give both to serve "
            "HTTPS, or neither for plain HTTP"
        )
    cert_pem = _read_pem(source, "tls_cert_file", cert)
    key_pem = _read_pem(source, "tls_key_file", key)
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise ConfigError(
            f"{source}: server.tls_cert_file: {cert} holds no PEM certificate "
            "(a -----BEGIN CERTIFICATE----- block)"
        )
    if b"PRIVATE KEY-----" not in key_pem:
        raise ConfigError(
            f"{source}: server.tls_key_file: {key} holds no PEM private key "
            "(a -----BEGIN PRIVATE KEY----- block)"
        )
    encrypted = b"ENCRYPTED" in key_pem
    if encrypted and not settings.tls_key_password:
        raise ConfigError(
            f"{source}: server.tls_key_file: {key} is encrypted; set server.tls_key_password "
            "(or $RELAYFLOW_SERVER__TLS_KEY_PASSWORD), or give the key unencrypted"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[settings.tls_min_version]
    context.options |= ssl.OP_NO_RENEGOTIATION  # a client-driven CPU cost, and never needed
    context.set_alpn_protocols(["http/1.1"])
    password = (settings.tls_key_password or "").encode()
    try:
        # A callable password: OpenSSL never prompts on a terminal for it.
        context.load_cert_chain(cert, key, password=lambda: password)
    except ssl.SSLError as exc:
        reason = str(exc.reason or exc)
        if "KEY_VALUES_MISMATCH" in reason or "key values mismatch" in reason.lower():
            message = (
                f"server.tls_key_file: {key} is not the private key of the certificate in "
                f"server.tls_cert_file ({cert})"
            )
        elif encrypted and any(word in reason.lower() for word in ("decrypt", "pem lib")):
            # OpenSSL says only "PEM lib" when the password does not open the key.
            message = f"server.tls_key_password does not decrypt server.tls_key_file ({key})"
        else:
            message = (
                f"server.tls_cert_file ({cert}) and server.tls_key_file ({key}) cannot be used "
                f"for TLS: {reason}"
            )
        raise ConfigError(f"{source}: {message}") from None
    return context


def expiry_warning(cert_file: str, now: float | None = None) -> str | None:
    """A sentence when the certificate in ``cert_file`` has expired or soon will, else None.

    The server still starts (a client may trust it for other reasons); the warning says why
    relayflow's clients, which check dates, refuse it. None too when the date cannot be read.
    """
    # The standard library reads a certificate's dates only through this (private) helper;
    # without it, there is no warning, nothing else changes.
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:
        return None
    try:
        not_after = ssl.cert_time_to_seconds(decode(cert_file)["notAfter"])
    except (OSError, ValueError, KeyError, ssl.SSLError):
        return None
    moment = time.time() if now is None else now
    ends = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
    if not_after <= moment:
        return (
            f"server.tls_cert_file: the certificate in {cert_file} expired on {ends}; clients "
            "that check it (relayflow's always do) refuse every connection until it is replaced"
        )
    days = (not_after - moment) / 86400
    if days < EXPIRY_WARNING_DAYS:
        return (
            f"server.tls_cert_file: the certificate in {cert_file} expires on {ends}, in "
            f"{days:.0f} day(s); replace it and restart before then"
        )
    return None
