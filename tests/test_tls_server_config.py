"""`[server] tls_cert_file` and `tls_key_file`: checked at start, one sentence when wrong.

`relayflow.server.tls_context` reads and checks both files before anything starts; the cases
run in-process, and one runs `relayflow server` to see the exit code and the single line.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from relayflow.config import ConfigError, ServerConfig
from relayflow.server import tls_context
from relayflow.server_tls import expiry_warning
from tests.api_server import EXE, server_env
from tests.tls_certs import TlsFiles, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_certs(tmp_path_factory.mktemp("certs"))


def refusal(**settings: str) -> str:
    with pytest.raises(ConfigError) as caught:
        tls_context(ServerConfig(**settings), "relayflow.toml")
    message = str(caught.value)
    assert message.startswith("relayflow.toml: ") and "\n" not in message, message
    return message


def test_without_files_the_server_speaks_plain_http() -> None:
    assert tls_context(ServerConfig()) is None


def test_both_files_make_a_server_context_of_tls_1_2_or_newer(certs: TlsFiles) -> None:
    context = tls_context(
        ServerConfig(tls_cert_file=str(certs.cert_file), tls_key_file=str(certs.key_file))
    )
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_NO_COMPRESSION
    newer = tls_context(
        ServerConfig(
            tls_cert_file=str(certs.cert_file),
            tls_key_file=str(certs.key_file),
            tls_min_version="TLSv1.3",
        )
    )
    assert newer is not None and newer.minimum_version == ssl.TLSVersion.TLSv1_3


def test_one_file_without_the_other_is_refused(certs: TlsFiles) -> None:
    message = refusal(tls_cert_file=str(certs.cert_file))
    assert "server.tls_cert_file is set but server.tls_key_file is not" in message
    message = refusal(tls_key_file=str(certs.key_file))
    assert "server.tls_key_file is set but server.tls_cert_file is not" in message


def test_a_missing_file_or_a_folder_is_named(certs: TlsFiles, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    message = refusal(tls_cert_file=str(certs.cert_file), tls_key_file=str(missing))
    assert f"server.tls_key_file: {missing} does not exist" in message
    message = refusal(tls_cert_file=str(tmp_path), tls_key_file=str(certs.key_file))
    assert f"server.tls_cert_file: {tmp_path} is a folder" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_named(certs: TlsFiles, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(certs.key_file.read_bytes())
    key.chmod(0)
    message = refusal(tls_cert_file=str(certs.cert_file), tls_key_file=str(key))
    assert "server.tls_key_file" in message and "permission denied" in message


def test_files_that_hold_the_wrong_thing_are_named(certs: TlsFiles) -> None:
    message = refusal(tls_cert_file=str(certs.key_file), tls_key_file=str(certs.key_file))
    assert "server.tls_cert_file" in message and "holds no PEM certificate" in message
    message = refusal(tls_cert_file=str(certs.cert_file), tls_key_file=str(certs.cert_file))
    assert "server.tls_key_file" in message and "holds no PEM private key" in message


def test_a_key_of_another_certificate_is_refused(certs: TlsFiles, tmp_path: Path) -> None:
    other = make_certs(tmp_path)
    message = refusal(tls_cert_file=str(certs.cert_file), tls_key_file=str(other.key_file))
    assert "is not the private key of the certificate in server.tls_cert_file" in message


def test_an_encrypted_key_needs_its_password(certs: TlsFiles, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(certs.key_file.read_bytes(), None)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"right-password"),
        )
    )
    files = {"tls_cert_file": str(certs.cert_file), "tls_key_file": str(encrypted)}
    message = refusal(**files)
    assert "is encrypted; set server.tls_key_password" in message
    message = refusal(**files, tls_key_password="wrong-password")
    assert "server.tls_key_password does not decrypt server.tls_key_file" in message
    assert "wrong-password" not in message
    assert tls_context(ServerConfig(**files, tls_key_password="right-password")) is not None


def test_the_server_command_exits_2_with_one_line(certs: TlsFiles, tmp_path: Path) -> None:
    missing = tmp_path / "missing-key.pem"
    (tmp_path / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path}/store.db"\n\n[server]\nport = 0\n'
        f'tls_cert_file = "{certs.cert_file}"\ntls_key_file = "{missing}"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [EXE, "server", "--config", "relayflow.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(),
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line and not line[:4].isdigit()]
    assert lines == [
        f"relayflow: InvalidConfig: relayflow.toml: server.tls_key_file: {missing} does not exist"
    ], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store.db").exists()  # checked before the store was opened


def test_an_expired_or_ending_certificate_gets_a_warning(certs: TlsFiles, tmp_path: Path) -> None:
    assert expiry_warning(str(certs.cert_file)) is None  # 30 days left
    expired = make_certs(tmp_path, days=-1)
    warning = expiry_warning(str(expired.cert_file))
    assert warning is not None and "expired on" in warning, warning
    soon = expiry_warning(str(certs.cert_file), now=time.time() + 25 * 86400)
    assert soon is not None and "expires on" in soon and "in 5 day(s)" in soon, soon
    assert expiry_warning(str(tmp_path / "missing.pem")) is None
