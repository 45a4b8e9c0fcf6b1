"""docs/security.md's TLS section runs: its openssl recipe makes files a server serves HTTPS with.

The `sh` block is run as written (it needs `openssl` on the PATH), the server starts with the
files it made, and a client that trusts only the recipe's CA calls it, also with the stricter
certificate checks that newer Pythons apply by default. The `[server]` example is a valid table.
"""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
import tomllib
from pathlib import Path

import httpx
import pytest

from relayflow.client import Client
from relayflow.config import ServerConfig
from tests.api_server import stop_server
from tests.tls_certs import start_https_server

SECURITY_MD = Path(__file__).resolve().parents[1] / "docs" / "security.md"


def section(title: str) -> str:
    text = SECURITY_MD.read_text(encoding="utf-8")
    start = text.index(f"### {title}\n")
    end = text.find("\n##", start + 4)
    return text[start:end]


def block(text: str, info: str) -> str:
    found = re.search(rf"^```{info}\n(.*?)^```$", text, re.M | re.S)
    assert found, f"no ```{info} block"
    return found.group(1)


def test_the_server_example_is_a_valid_server_table() -> None:
    table = tomllib.loads(block(section("The server"), "toml"))["server"]
    settings = ServerConfig(**table)
    assert settings.tls_cert_file and settings.tls_key_file


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_openssl_recipe_makes_a_certificate_the_server_serves(tmp_path: Path) -> None:
    recipe = block(section("A certificate from a private CA"), "sh")
    done = subprocess.run(
        ["sh", "-e", "-c", recipe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "server.pem: OK" in done.stdout
    (tmp_path / "relayflow.toml").write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path}/store.db"\n\n'
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        'tls_cert_file = "server.pem"\ntls_key_file = "server-key.pem"\n',
        encoding="utf-8",
    )
    process, port = start_https_server(tmp_path)
    try:
        for host in ("localhost", "127.0.0.1"):
            with Client(f"https://{host}:{port}", ca_file=tmp_path / "ca.pem") as client:
                assert client.list_flows().items == []
        strict = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        strict.verify_flags |= ssl.VERIFY_X509_STRICT
        answer = httpx.get(f"https://localhost:{port}/health", verify=strict)
        assert answer.json() == {"Status": "ok"}
    finally:
        assert stop_server(process) == 0
