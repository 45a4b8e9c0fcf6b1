"""Certificates made at test time: a private CA and a server certificate it signs.

    from tests.tls_certs import make_certs

    certs = make_certs(tmp_path)            # files under tmp_path/tls/
    certs.ca_file                           # the CA's certificate: what a client trusts
    certs.cert_file, certs.key_file         # the server's: [server] tls_cert_file / tls_key_file

The server certificate names `localhost`, `127.0.0.1` and `::1`, is valid from a day ago for
30 days, and is signed by the CA; the keys are P-256 ECDSA (quick to make).
`make_certs` never reuses files: every call makes a new CA, so a second call gives a CA that
the first server's certificate does not chain to (for "wrong CA" tests).

`server_tls_lines(certs)` is the `[server]` TOML that serves HTTPS with them, and
`start_https_server(folder)` starts `relayflow server` there and returns its HTTPS port.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsFiles", "make_certs", "server_tls_lines", "start_https_server"]

HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files `make_certs` wrote.

    Attributes:
        ca_file: the CA's certificate (give it to clients: `[client] ca_file`, `--ca-file`).
        ca_key_file: the CA's private key.
        cert_file: the server's certificate (`[server] tls_cert_file`).
        key_file: the server's private key, unencrypted (`[server] tls_key_file`).
    """

    ca_file: Path
    ca_key_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_certs(folder: Path, hosts: tuple[str, ...] = HOSTS, *, days: int = 30) -> TlsFiles:
    """Make a CA and a server certificate for ``hosts`` under ``folder``/tls*/; return the paths.

    Args:
        folder: where to write (a `tls`, `tls-2`, ... folder is made inside it).
        hosts: the names and IP addresses the server certificate is valid for.
        days: how long the certificates are valid; a negative number makes them expired.
    """
    index = 1
    target = folder / "tls"
    while target.exists():
        index += 1
        target = folder / f"tls-{index}"
    target.mkdir(parents=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)
    if days < 0:
        start = end - datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"relayflow test CA {index}")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(
        ca_file=target / "ca.pem",
        ca_key_file=target / "ca-key.pem",
        cert_file=target / "server.pem",
        key_file=target / "server-key.pem",
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.ca_key_file, ca_key)
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.key_file, key)
    return files


def server_tls_lines(files: TlsFiles) -> str:
    """The `[server]` lines that make a server serve HTTPS with ``files`` (TOML text)."""
    return f'tls_cert_file = "{files.cert_file}"\ntls_key_file = "{files.key_file}"\n'


def start_https_server(folder: Path, timeout: float = 20.0) -> tuple[subprocess.Popen[bytes], int]:
    """Start `relayflow server` with ``folder``/relayflow.toml; the process and its HTTPS port.

    As `tests.api_server.start_server`, for a configuration with `server_tls_lines`: the log
    line says `https://`. Stop it with `tests.api_server.stop_server`.
    """
    from tests.api_server import start_server_scheme

    process, scheme, port = start_server_scheme(folder, timeout)
    assert scheme == "https", (folder / "server.log").read_text(errors="replace")
    return process, port
