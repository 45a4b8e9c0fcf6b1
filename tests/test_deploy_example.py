"""The deployment examples in contrib/deploy/ work as docs/deploy.md says.

- `haproxy.cfg` runs, with only its addresses changed to free loopback ports, in front of two
  real `relayflow server` replicas: calls through it reach both, and when one replica gets
  SIGTERM (or SIGKILL) haproxy's checks on GET /ready take it out of rotation while every call
  keeps succeeding. The replicas share one PostgreSQL database when the PostgreSQL driver is
  installed (then any replica answers any call, as in production), else each has its own
  SQLite store and only calls that need no shared state are made.
- `relayflow.service` passes `systemd-analyze verify` where that program exists.
- `relayflow-replica.toml` is a configuration relayflow accepts.

haproxy comes from Debian's package of that name; without it the routing tests are skipped,
unless RELAYFLOW_REQUIRE_SERVICES is set (CI sets it), as with the other real servers.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from relayflow.client import Client, ClientError
from relayflow.testing import bounded, make_engine
from tests.api_server import EXE, server_env, start_server, stop_server
from tests.helpers import ROOT
from tests.services import _missing, free_port

sys.path.insert(0, str(ROOT / "contrib" / "bench"))

from replicas import local_haproxy_config

DEPLOY = ROOT / "contrib" / "deploy"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"
UNIT = DEPLOY / "relayflow.service"
REPLICA_TOML = DEPLOY / "relayflow-replica.toml"
ADMIN = ("deploy-admin", "deploy-admin-secret-0123456789")
FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: hello\n"
WAITING = "version: v1\ntype: flow\nsteps:\n  - type: wait\n    name: later\n    duration: 3600\n"
# The most DescribeExecution's WaitTimeSeconds may ask for (docs/api.md).
LONGEST_POLL = 60
# Bounds for waits on real processes: far above what they take, so a slow machine passes.
UP_WITHIN = 30.0
DOWN_WITHIN = 30.0
REPLICA_NAMES = ("replica1", "replica2")
EXIT_WITHIN = 30.0


def _program(name: str) -> str | None:
    """Where ``name`` is installed; Debian puts haproxy in /usr/sbin, often not on a user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _postgres_driver() -> bool:
    """Whether this relayflow has the PostgreSQL store driver."""
    try:
        import relayflow.store.postgres  # noqa: F401
    except ImportError:
        return False
    return True


HAPROXY = _program("haproxy")


# -- haproxy.cfg ------------------------------------------------------------------------------


def _seconds(value: str) -> float:
    """An haproxy time (`75s`, `500ms`, `2m`, a bare number of milliseconds) in seconds."""
    found = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", value)
    assert found, f"haproxy.cfg: {value!r} is not a time haproxy reads"
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1e-3}
    return int(found[1]) * unit[found[2]]


def _directives(text: str) -> list[str]:
    """The configuration's lines without comments and surrounding blanks."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_haproxy_cfg_checks_ready_and_outwaits_long_polls() -> None:
    lines = _directives(HAPROXY_CFG.read_text(encoding="utf-8"))
    assert "option httpchk GET /ready" in lines
    assert "http-check expect status 200" in lines
    timeouts = {line.split()[1]: _seconds(line.split()[2]) for line in lines if "timeout" in line}
    # A long poll's answer comes after up to LONGEST_POLL seconds of silence on both sides.
    assert timeouts["server"] > LONGEST_POLL, timeouts
    assert timeouts["client"] > LONGEST_POLL, timeouts
    # A stopping replica answers its own pending calls: haproxy must not cut them.
    assert not [line for line in lines if "shutdown-sessions" in line]
    servers = [line.split() for line in lines if line.startswith("server ")]
    # Three replicas, each a second time in the backend that routes by execution, following
    # the first's health checks.
    assert len(servers) == 6
    assert [words[-2:] for words in servers[3:]] == [
        ["track", f"replicas/{words[1]}"] for words in servers[:3]
    ]
    assert "balance hdr(X-Relayflow-Route)" in lines
    assert "use_backend by_execution if { req.hdr(X-Relayflow-Route) -m found }" in lines


@dataclass
class Haproxy:
    """A running haproxy and a way to read its view of the replicas."""

    process: subprocess.Popen[bytes]
    port: int
    stats: Path
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def servers(self, backend: str = "replicas") -> dict[str, dict[str, str]]:
        """`show stat` for ``backend``'s servers: name -> its fields (`status`, `stot`, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(str(self.stats))
            conn.sendall(b"show stat\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: row
            for row in rows
            if row.get("pxname") == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_status(self, name: str, status: str, within: float) -> None:
        """Wait until haproxy reports ``name``'s status as ``status``."""
        deadline = time.monotonic() + within
        while True:
            found = self.servers()[name]["status"]
            if found == status:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"haproxy still sees {name} as {found}, not {status}, after {within} s:\n"
                    + self.log.read_text(errors="replace")
                )
            time.sleep(0.1)

    def sessions(self, name: str, backend: str = "replicas") -> int:
        """How many requests haproxy has sent ``name`` of ``backend`` so far."""
        return int(self.servers(backend)[name]["stot"])


def start_haproxy(folder: Path, replicas: list[int]) -> Haproxy:
    """Start haproxy from the example, in the foreground, in front of ``replicas``."""
    assert HAPROXY is not None
    port = free_port()
    # A short folder of its own: unix socket paths are limited to about 100 bytes.
    stats = Path(tempfile.mkdtemp(prefix="rf-haproxy-")) / "admin.sock"
    config = folder / "haproxy.cfg"
    config.write_text(
        local_haproxy_config(
            HAPROXY_CFG.read_text(encoding="utf-8"),
            port,
            [("127.0.0.1", replica) for replica in replicas],
            stats,
        )
    )
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, f"haproxy -c refused the example:\n{checked.stdout}"
    log = folder / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + UP_WITHIN
    while not stats.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"haproxy did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.02)
    return Haproxy(process, port, stats, log)


# -- the replicas -----------------------------------------------------------------------------


def example_timings() -> tuple[dict[str, float], dict[str, float]]:
    """The example replica's `[engine]` lease and poll and its `[server]` drain, as it sets them."""
    example = tomllib.loads(REPLICA_TOML.read_text(encoding="utf-8"))
    engine = {k: v for k, v in example["engine"].items() if k in ("lease_seconds", "poll_seconds")}
    server = {k: v for k, v in example["server"].items() if k == "drain_seconds"}
    return engine, server


def replica_config(store: str) -> str:
    """relayflow.toml for one test replica: the store, any free port, one admin key.

    The lease, poll and drain are the example replica's, so that the test stops replicas the
    way docs/deploy.md says they stop.
    """
    key_id, secret = ADMIN
    engine, server = example_timings()
    return (
        f'[engine]\nstore = "{store}"\n'
        + "".join(f"{key} = {value}\n" for key, value in engine.items())
        + '\n[server]\nhost = "127.0.0.1"\nport = 0\n'
        + "".join(f"{key} = {value}\n" for key, value in server.items())
        + f'\n[[server.access_keys]]\nid = "{key_id}"\nsecret = "{secret}"\nrole = "admin"\n\n'
        + '[plugins]\ndisable = ["mns"]\n'
    )


def test_drain_outlasts_the_checks_that_take_a_replica_out() -> None:
    """The example replica serves after SIGTERM until haproxy has marked it down."""
    lines = _directives(HAPROXY_CFG.read_text(encoding="utf-8"))
    [words] = [line.split() for line in lines if line.startswith("default-server ")]
    inter, fall = (words[words.index(name) + 1] for name in ("inter", "fall"))
    _, drain = example_timings()
    assert drain.get("drain_seconds", 0) >= _seconds(inter) * int(fall), (drain, inter, fall)


def wait_ready(port: int) -> None:
    """Wait until a replica's GET /ready answers 200."""
    deadline = time.monotonic() + UP_WITHIN
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica on port {port} was not ready within {UP_WITHIN} s")
        time.sleep(0.05)


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The store URL of each of two replicas: one fresh PostgreSQL database, or two SQLite files.

    The PostgreSQL fixture is asked for only when the driver exists, so a relayflow without it
    still tests the routing.
    """
    if not _postgres_driver():
        return [f"sqlite:///{tmp_path / f'replica{n}.db'}" for n in (1, 2)]
    import psycopg

    server: str = request.getfixturevalue("postgres_url")
    database = f"deploy_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")
    url = f"{server.rsplit('/', 1)[0]}/{database}"
    return [url, url]


@dataclass
class Cluster:
    """Two replicas behind haproxy, and a client that goes through haproxy."""

    replicas: list[subprocess.Popen[bytes]]
    ports: list[int]
    haproxy: Haproxy
    client: Client
    shared: bool


@pytest.fixture
def cluster(stores: list[str], tmp_path: Path) -> Iterator[Cluster]:
    """Two `relayflow server` replicas with the example haproxy in front of them."""
    if HAPROXY is None:
        _missing("haproxy")
    replicas: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    proxy: Haproxy | None = None
    try:
        for number, store in enumerate(stores, 1):
            folder = tmp_path / f"replica{number}"
            folder.mkdir()
            (folder / "relayflow.toml").write_text(replica_config(store))
            process, port = start_server(folder)
            replicas.append(process)
            ports.append(port)
        for port in ports:
            wait_ready(port)
        shared = stores[0] == stores[1]
        for port in ports if not shared else ports[:1]:
            with Client(f"http://127.0.0.1:{port}", *ADMIN) as direct:
                direct.create_flow("hello", FLOW)
        proxy = start_haproxy(tmp_path, ports)
        for name in REPLICA_NAMES:
            proxy.wait_status(name, "UP", UP_WITHIN)
        with Client(proxy.endpoint, *ADMIN, timeout=30) as client:
            yield Cluster(replicas, ports, proxy, client, shared)
    finally:
        if proxy is not None:
            proxy.process.terminate()
            proxy.process.wait(timeout=10)
            shutil.rmtree(proxy.stats.parent, ignore_errors=True)
        for process in replicas:
            stop_server(process)


def calls(cluster: Cluster, count: int) -> None:
    """``count`` rounds of calls through haproxy; every one must succeed."""
    for _ in range(count):
        assert [flow.name for flow in cluster.client.list_flows().items] == ["hello"]
        run = cluster.client.start_execution("hello", {"n": 1}, name=f"e-{uuid.uuid4().hex}")
        if cluster.shared:
            # Any replica answers any call: the one asked may not be the one that started it.
            ended = cluster.client.describe_execution("hello", run.name, wait_seconds=10)
            assert ended.status == "Succeeded", ended


def test_the_calls_of_one_execution_go_to_one_replica(cluster: Cluster) -> None:
    """Starts, stops and reports name their execution; haproxy hashes on it (see _route)."""
    proxy = cluster.haproxy
    chosen: list[str] = []
    for _ in range(20):
        name = f"e-{uuid.uuid4().hex}"
        before = {server: proxy.sessions(server, "by_execution") for server in REPLICA_NAMES}
        cluster.client.start_execution("hello", {"n": 1}, name=name)
        for _ in range(2):
            with contextlib.suppress(ClientError):  # stopped already, or ended: still routed
                cluster.client.stop_execution("hello", name)
        grew = {
            server: proxy.sessions(server, "by_execution") - count
            for server, count in before.items()
        }
        [(server, count)] = [(server, count) for server, count in grew.items() if count]
        assert count == 3, grew
        chosen.append(server)
    # Twenty executions, hashed over two replicas: both get some (or the hash is not used).
    assert set(chosen) == set(REPLICA_NAMES), chosen


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_haproxy_routes_around_a_stopped_replica(cluster: Cluster, stop: signal.Signals) -> None:
    proxy = cluster.haproxy
    calls(cluster, 20)
    # Both replicas served some of those calls: no stickiness.
    assert proxy.sessions("replica1") > 0 and proxy.sessions("replica2") > 0, proxy.servers()

    stopping = cluster.replicas[0]
    stopping.send_signal(stop)
    if stop == signal.SIGKILL:
        # A call the replica holds when it dies fails (the client must try it again, as with
        # any server that dies): wait until it is gone, and calls must then succeed.
        stopping.wait(timeout=EXIT_WITHIN)
    # Calls made while haproxy notices go to the replica still running, or are sent again
    # to it when the stopped one refuses the connection: none fails.
    deadline = time.monotonic() + DOWN_WITHIN
    while proxy.servers()["replica1"]["status"] != "DOWN":
        calls(cluster, 1)
        assert time.monotonic() < deadline, f"replica1 still in rotation: {proxy.servers()}"
    stopping.wait(timeout=EXIT_WITHIN)
    if stop == signal.SIGTERM:
        assert stopping.returncode == 0, f"a replica told to stop exited {stopping.returncode}"

    before = proxy.sessions("replica1")
    calls(cluster, 10)
    assert proxy.sessions("replica1") == before, "haproxy sent requests to a stopped replica"
    assert proxy.servers()["replica2"]["status"] == "UP"


def test_a_stopping_replica_answers_its_long_poll_through_haproxy(cluster: Cluster) -> None:
    """A long poll held by a replica told to stop is answered, neither cut nor left to run out."""
    if not cluster.shared:
        pytest.skip("a long poll through haproxy needs one store shared by the replicas")
    proxy = cluster.haproxy
    cluster.client.create_flow("waits", WAITING)
    cluster.client.start_execution("waits", {}, name="held")
    answers: list[object] = []

    def poll() -> None:
        with Client(proxy.endpoint, *ADMIN, timeout=30) as own:
            try:
                answers.append(own.describe_execution("waits", "held", wait_seconds=LONGEST_POLL))
            except Exception as exc:  # reported by the assertion below
                answers.append(exc)

    waiting = threading.Thread(target=poll, daemon=True)
    waiting.start()
    deadline = time.monotonic() + UP_WITHIN
    while True:
        holding = [name for name, row in proxy.servers().items() if int(row["scur"]) > 0]
        if holding:
            break
        assert time.monotonic() < deadline, "the long poll never reached a replica"
        time.sleep(0.05)
    stopping = cluster.replicas[int(holding[0].removeprefix("replica")) - 1]
    stopping.send_signal(signal.SIGTERM)
    # Half the poll's 60 s: a replica that let its long polls run out would not answer by then.
    waiting.join(timeout=LONGEST_POLL / 2)
    assert not waiting.is_alive(), "the stopping replica did not answer its pending long poll"
    [answer] = answers
    assert getattr(answer, "status", None) == "Running", answer
    stopping.wait(timeout=EXIT_WITHIN)
    assert stopping.returncode == 0
    # The execution is still there for the replica that remains.
    assert cluster.client.describe_execution("waits", "held").status == "Running"


# -- the unit and the replica's configuration -------------------------------------------------


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    verify = _program("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed: the unit's syntax is not checked")
    text = UNIT.read_text(encoding="utf-8")
    start = re.search(r"^ExecStart=(\S+)", text, re.MULTILINE)
    assert start, "relayflow.service has no ExecStart"
    # verify insists that the program exists: point it at this checkout's relayflow.
    unit = tmp_path / "relayflow.service"
    unit.write_text(text.replace(start[1], EXE))
    checked = subprocess.run(
        [verify, "verify", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    # verify exits 0 on unknown keys and bad values, with a line naming the file: none may come.
    problems = [line for line in checked.stderr.splitlines() if "relayflow.service" in line]
    assert checked.returncode == 0 and not problems, checked.stderr
    for key in ("KillSignal=SIGTERM", "Restart=on-failure", "EnvironmentFile="):
        assert key in text, f"relayflow.service does not set {key}"
    assert re.search(r"^TimeoutStopSec=\d+", text, re.MULTILINE)


def test_replica_toml_is_accepted(tmp_path: Path) -> None:
    env = {
        **server_env(),
        "RELAYFLOW_DB_PASSWORD": "not-a-real-password",
        "RELAYFLOW_SERVER__ACCESS_KEYS": (
            '[{"id": "admin", "secret": "an-admin-secret-0123456789", "role": "admin"}]'
        ),
    }
    shown = subprocess.run(
        [EXE, "config", "show", "--config", str(REPLICA_TOML)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert shown.returncode == 0, shown.stderr
    assert "not-a-real-password" not in shown.stdout + shown.stderr
    assert "postgresql://" in shown.stdout


# -- docs/deploy.md ---------------------------------------------------------------------------

DEPLOY_MD = ROOT / "docs" / "deploy.md"
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCED = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_deploy_md_links_resolve() -> None:
    text = DEPLOY_MD.read_text(encoding="utf-8")
    anchors = {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
    broken = []
    for target in _LINK.findall(text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        found = (DEPLOY_MD.parent / path).exists() if path else anchor in anchors
        if not found:
            broken.append(target)
    assert not broken, f"docs/deploy.md links to what does not exist: {broken}"


def test_deploy_md_quotes_the_examples() -> None:
    """The snippets of the example files in docs/deploy.md are what the files say."""
    text = DEPLOY_MD.read_text(encoding="utf-8")
    sources = {"toml": REPLICA_TOML, "ini": UNIT}
    for kind, body in _FENCED.findall(text):
        if kind not in sources:
            continue
        lines = set(_directives(sources[kind].read_text(encoding="utf-8")))
        shown = [line for line in _directives(body) if not line.startswith("[")]
        missing = [line for line in shown if line not in lines]
        assert not missing, f"docs/deploy.md shows lines {sources[kind].name} lacks: {missing}"
    cfg = set(_directives(HAPROXY_CFG.read_text(encoding="utf-8")))
    quoted = re.findall(r"`((?:option|timeout|retries|balance|http-check) [^`]+)`", text)
    assert quoted
    missing = [line for line in quoted if line not in cfg]
    assert not missing, f"docs/deploy.md quotes haproxy lines haproxy.cfg lacks: {missing}"


# -- backups of the embedded store, as docs/deploy.md shows them ------------------------------


@bounded(seconds=60)
async def test_sqlite_online_backup_is_a_store(tmp_path: Path) -> None:
    """`VACUUM INTO` and `.backup`, taken while an engine runs, are stores that carry on."""
    live = tmp_path / "relayflow.db"
    copies = [tmp_path / "vacuumed.db"]
    async with make_engine(store=f"sqlite:///{live}") as engine:
        await engine.create_flow("waits", WAITING)
        await engine.start_execution("waits", {}, name="held")
        with contextlib.closing(sqlite3.connect(live)) as db:
            db.execute("VACUUM INTO ?", (str(copies[0]),))
        cli = _program("sqlite3")
        if cli is not None:  # the command docs/deploy.md shows, where it is installed
            copies.append(tmp_path / "backed-up.db")
            subprocess.run([cli, str(live), f".backup {copies[1]}"], check=True, timeout=30)
    for copy in copies:
        async with make_engine(store=f"sqlite:///{copy}") as restored:
            run = await restored.describe_execution("waits", "held")
            assert run.status == "Running", (copy.name, run)
