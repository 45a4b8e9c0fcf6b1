"""The API's hooks, on a real `relayflow server`: answered requests, and the paths plugins serve.

One server runs for the module (`tests/api_server.py` starts it) with two plugin modules: one
that records each answered RPC request as a JSON line and serves `/probe` and a broken `/boom`,
and one that raises in every hook. Route registrations a server must refuse are checked on a
`PluginManager`, and once through `relayflow server`, which exits 2 with the sentence.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relayflow.config import ConfigError
from relayflow.plugins import PluginManager, hookimpl
from relayflow.testing import eventually_sync
from tests.api_server import EXE, config_text, server_env, start_server, stop_server

WATCH_PLUGIN = textwrap.dedent(
    '''\
    """Records answered API requests; serves /probe, and /boom, which fails."""

    import json
    from pathlib import Path

    from relayflow.plugins import hookimpl

    SEEN = Path(__file__).with_name("requests.jsonl")


    @hookimpl
    def relayflow_api_request_finished(request):
        line = [request.action, request.status, request.code, request.seconds]
        with SEEN.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\\n")


    async def probe(scope, receive, send):
        body = f"{scope['method']} {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})


    async def boom(scope, receive, send):
        raise RuntimeError("a broken route")


    @hookimpl
    def relayflow_register_http_routes(register):
        register("/probe", probe)
        register("/boom", boom)
    '''
)
BROKEN_PLUGIN = textwrap.dedent(
    '''\
    """Raises in every hook it has."""

    from relayflow.plugins import hookimpl


    @hookimpl
    def relayflow_api_request_finished(request):
        raise RuntimeError("a broken plugin")


    @hookimpl
    def relayflow_register_http_routes(register):
        raise RuntimeError("a broken plugin")
    '''
)
GREEDY_PLUGIN = textwrap.dedent(
    """\
    from relayflow.plugins import hookimpl


    @hookimpl
    def relayflow_register_http_routes(register):
        register("/probe", lambda scope, receive, send: None)
        register("/health", lambda scope, receive, send: None)
    """
)
FORM = {"content-type": "application/x-www-form-urlencoded"}


def write_server(folder: Path, *modules: str) -> None:
    (folder / "watch_plugin.py").write_text(WATCH_PLUGIN)
    (folder / "broken_plugin.py").write_text(BROKEN_PLUGIN)
    (folder / "greedy_plugin.py").write_text(GREEDY_PLUGIN)
    listed = ", ".join(f'"{m}"' for m in modules)
    (folder / "relayflow.toml").write_text(
        config_text(plugin=False) + f"\n[plugins]\nmodules = [{listed}]\n"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, httpx.Client]]:
    folder = tmp_path_factory.mktemp("apihooks")
    write_server(folder, "watch_plugin", "broken_plugin")
    process, port = start_server(folder)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield folder, http
    finally:
        assert stop_server(process) == 0


def seen(folder: Path) -> list[list[Any]]:
    path = folder / "requests.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_answered_request_reaches_the_plugin(server: tuple[Path, httpx.Client]) -> None:
    folder, http = server
    before = len(seen(folder))
    ok = http.post("/", content="Action=ListFlows&Version=2019-03-15", headers=FORM)
    assert ok.status_code == 200
    unknown = http.post("/", content="Action=DropEverything", headers=FORM)
    assert unknown.json()["Code"] == "ActionNotSupported"
    wrong_type = http.post("/", content="Action=ListFlows", headers={"content-type": "text/csv"})
    assert wrong_type.status_code == 415
    missing = http.get("/", params={"Action": "DescribeFlow", "Name": "nope"})
    assert missing.json()["Code"] == "FlowNotExists"
    foreign = http.post("/", content="Action=ListFlows", headers={**FORM, "host": "evil.example"})
    assert foreign.status_code == 403
    got = eventually_sync(lambda: seen(folder)[before:] if len(seen(folder)) >= before + 5 else [])
    assert [line[:3] for line in got] == [
        ["ListFlows", 200, ""],
        ["Unknown", 400, "ActionNotSupported"],  # a name not in the table never becomes a label
        ["Unknown", 415, "UnsupportedMediaType"],
        ["DescribeFlow", 404, "FlowNotExists"],
        ["Unknown", 403, "InvalidHost"],
    ]
    assert all(isinstance(line[3], float) and line[3] >= 0 for line in got)


def test_plugin_paths_answer_get_and_head_only(server: tuple[Path, httpx.Client]) -> None:
    _, http = server
    got = http.get("/probe")
    assert (got.status_code, got.text) == (200, "GET /probe")
    assert http.head("/probe").status_code == 200
    refused = http.post("/probe", content="x=1", headers=FORM)
    assert refused.status_code == 405 and refused.json()["Code"] == "MethodNotAllowed"
    assert "GET and HEAD" in refused.json()["Message"]
    assert http.get("/probe/more").status_code == 404  # exact paths only


def test_a_failing_plugin_path_answers_500_and_the_server_goes_on(
    server: tuple[Path, httpx.Client],
) -> None:
    _, http = server
    failed = http.get("/boom")
    assert failed.status_code == 500 and failed.json()["Code"] == "InternalError"
    assert http.get("/health").status_code == 200
    assert http.get("/probe").status_code == 200


def routes_of(*plugins: object) -> dict[str, Any]:
    manager = PluginManager()
    for index, plugin in enumerate(plugins):
        manager.register(plugin, f"plugin{index}")
    return manager.http_routes()


class Serves:
    """A plugin that serves the paths it is given."""

    def __init__(self, *paths: object) -> None:
        self.paths = paths

    @hookimpl
    def relayflow_register_http_routes(self, register: Any) -> None:
        for path in self.paths:
            register(path, self.app)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("paths", "sentence"),
    [
        (["/health"], "plugin plugin0: /health is served by relayflow itself"),
        (["/"], "plugin plugin0: / is served by relayflow itself"),
        (["/console/x"], "/console/x is served by relayflow itself"),
        (["metrics"], "a route must be an absolute path"),
        (["/a b"], "without spaces, ? or #"),
        (["/" + "m" * 300], "at most 200 characters"),
    ],
)
def test_reserved_and_malformed_paths_are_refused(paths: list[str], sentence: str) -> None:
    with pytest.raises(ConfigError, match=sentence.replace("?", r"\?")):
        routes_of(Serves(*paths))


def test_two_plugins_cannot_serve_one_path() -> None:
    with pytest.raises(ConfigError) as info:
        routes_of(Serves("/metrics"), Serves("/metrics"))
    # pluggy calls the plugin registered last first: it keeps the path.
    assert str(info.value) == "plugin plugin0: /metrics is already served by plugin plugin1"
    assert set(routes_of(Serves("/metrics"), Serves("/other"))) == {"/metrics", "/other"}


def test_the_server_refuses_to_start_on_a_route_conflict(tmp_path: Path) -> None:
    write_server(tmp_path, "watch_plugin", "greedy_plugin")
    done = subprocess.run(
        [EXE, "server", "--config", "relayflow.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=server_env(),
    )
    assert done.returncode == 2, done.stderr
    assert "InvalidConfig" in done.stderr
    assert "/health is served by relayflow itself" in done.stderr
    assert "/probe is already served by plugin" in done.stderr
    assert "Traceback" not in done.stderr
