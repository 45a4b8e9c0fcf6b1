"""`relayflow server` with [server] log_format = "json": every line it writes is one JSON object."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.api_server import KEYS, config_text, serving


def test_server_writes_json_lines_while_serving_and_stopping(tmp_path: Path) -> None:
    config = config_text(keys=KEYS, server={"log_format": '"json"'})  # type: ignore[dict-item]
    with serving(tmp_path, config) as server:
        assert server.http.get("/ready").status_code == 200
        refused = server.http.post("/", data={"Action": "ListFlows"})  # unsigned: refused
        assert 400 <= refused.status_code < 500
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"NOT HTTP\r\n\r\n")  # uvicorn's own business: it answers 400
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
    lines = (tmp_path / "server.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 2  # at least "serving" and "stopped"
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert isinstance(entry, dict)
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["time"].endswith("Z") and entry["level"] in {"INFO", "WARNING", "ERROR"}
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("relayflow serving the API on http://127.0.0.1:") for m in messages)
    assert messages[-1] == "stopped"
