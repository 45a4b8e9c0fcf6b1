"""Benchmark the HTTP API of a real `relayflow server`: starts per second and report latency.

The script starts `relayflow server` as a subprocess in a temporary folder (SQLite store, one
admin key, port 0, and a queue plugin that appends every task attempt to a file, standing in
for MNS), then measures over HTTP, with requests signed as the official SDKs sign them:

1. ``starts``: StartExecution calls per second, ``--concurrency`` requests in flight at once
   (httpx.AsyncClient, one connection each). The flow is the seed scenario's shape: its first
   step is a waitForCallback task on the queue, so each start commits ExecutionStarted,
   StepEntered and TaskScheduled with the task's outbox row before it answers; the message is
   then sent to the queue asynchronously, and TaskStarted and TaskSubmitted are committed in a
   second transaction. The figure counts answered calls; the time until every message reached
   the queue is printed too.
2. ``reports``: ReportTaskSucceeded round trips, one after the other, on executions parked by
   the first part. The next step (a second queue task) is entered in the same transaction as
   the report, so when the call returns, its StepEntered is durable: the round trip is the
   latency from report to next step. A sample of executions is checked for that StepEntered
   right after their report returns.

The raw SQLite commit rate (one-row insert per commit, WAL) is measured in the same run, and the
round trip of ``GET /health`` as the HTTP floor.

    .venv/bin/python contrib/bench/bench_api.py [--starts 5000] [--concurrency 64]
        [--reports 500] [--synchronous full|normal] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_fdl import sqlite_commits_per_second

from relayflow.signing import signed_params

KEY_ID, SECRET = "bench-admin", "bench-secret-0123456789"
QUEUE = "acs:mns:::/queues/jobs/messages"
SERVING = re.compile(r"relayflow serving the API on http://[^\s:]+:(?P<port>\d+)")

FLOW = f"""version: v1
type: flow
steps:
  - type: task
    name: first
    resourceArn: {QUEUE}
    pattern: waitForCallback
    inputMappings:
      - target: job
        source: $input.job
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
  - type: task
    name: second
    resourceArn: {QUEUE}
    pattern: waitForCallback
    inputMappings:
      - target: job
        source: $input.job
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
"""

QUEUE_PLUGIN = textwrap.dedent(
    '''\
    """A stand-in for an MNS queue: each task attempt becomes a JSON line in messages.jsonl."""

    import itertools
    import json
    from pathlib import Path

    from relayflow.engine import FunctionIntegration, Submitted
    from relayflow.plugins import hookimpl

    MESSAGES = Path(__file__).with_name("messages.jsonl").open("a", encoding="utf-8")
    _ids = itertools.count(1)


    async def send(request):
        message_id = str(next(_ids))
        MESSAGES.write(
            json.dumps(
                {"execution": request.execution_name, "step": request.step_name,
                 "token": request.token, "MessageId": message_id}
            )
            + "\\n"
        )
        MESSAGES.flush()
        return Submitted({"MessageId": message_id})


    @hookimpl
    def relayflow_register_integrations(register):
        register(
            "queue",
            lambda settings: FunctionIntegration(
                {"acs:mns:::/queues/jobs/messages": send}, name="queue"
            ),
        )
    '''
)


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


class Server:
    """A `relayflow server` subprocess in a folder of its own."""

    def __init__(self, folder: Path, synchronous: str, command: list[str]) -> None:
        self.folder = folder
        (folder / "relayflow.toml").write_text(
            f'[engine]\nstore = "sqlite:///bench.db?synchronous={synchronous}"\n\n'
            "[server]\nport = 0\n\n"
            f'[[server.access_keys]]\nid = "{KEY_ID}"\nsecret = "{SECRET}"\nrole = "admin"\n\n'
            '[plugins]\nmodules = ["queue_plugin"]\ndisable = ["mns"]\n',
            encoding="utf-8",
        )
        (folder / "queue_plugin.py").write_text(QUEUE_PLUGIN, encoding="utf-8")
        self.log = folder / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "server", "--config", "relayflow.toml"],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.port = self._wait_for_port()

    def _wait_for_port(self, timeout: float = 20) -> int:
        """The port from the log line "relayflow serving the API on http://HOST:PORT"."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"relayflow server exited:\n{self.log.read_text()}")
            port = self._listening_port()
            if port:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                        return port
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.process.kill()
        raise SystemExit(f"relayflow server did not start within {timeout} s")

    def _listening_port(self) -> int | None:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        found = SERVING.search(text)
        return int(found["port"]) if found else None

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def messages(self) -> list[dict[str, Any]]:
        path = self.folder / "messages.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        return [json.loads(line) for line in lines if line.endswith("\n")]


def signed(params: dict[str, str]) -> dict[str, str]:
    return signed_params(KEY_ID, SECRET, "POST", {"Version": "2019-03-15", **params})


class HttpxClient:
    """httpx.AsyncClient, one keep-alive connection per request in flight."""

    def __init__(self, port: int, concurrency: int) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
        )

    async def post(self, form: dict[str, str]) -> tuple[int, bytes]:
        answer = await self.client.post("/", data=form)
        return answer.status_code, answer.content

    async def get(self, path: str) -> int:
        return (await self.client.get(path)).status_code

    async def close(self) -> None:
        await self.client.aclose()


class RawClient:
    """HTTP/1.1 keep-alive over asyncio streams: what the server costs, with little client cost.

    Each request is one write (headers and form body together); each connection carries one
    request at a time.
    """

    def __init__(self, port: int, concurrency: int) -> None:
        self.port = port
        self.size = concurrency
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle is None:
            self.idle = asyncio.Queue()
            for _ in range(self.size):
                self.idle.put_nowait(await asyncio.open_connection("127.0.0.1", self.port))
        return await self.idle.get()

    async def _send(self, head: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connection()
        writer.write(head)
        lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        assert self.idle is not None
        self.idle.put_nowait((reader, writer))
        return status, body

    async def post(self, form: dict[str, str]) -> tuple[int, bytes]:
        body = urlencode(form).encode()
        return await self._send(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    async def get(self, path: str) -> int:
        return (await self._send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()))[0]

    async def close(self) -> None:
        while self.idle is not None and not self.idle.empty():
            _reader, writer = self.idle.get_nowait()
            writer.close()


Client = HttpxClient | RawClient


async def call(client: Client, params: dict[str, str]) -> dict[str, Any]:
    status, body = await client.post(signed(params))
    if status != 200:
        raise RuntimeError(f"{params['Action']} answered {status}: {body.decode()}")
    doc: dict[str, Any] = json.loads(body)
    return doc


async def bench_starts(
    server: Server, client: Client, starts: int, concurrency: int
) -> dict[str, Any]:
    await call(client, {"Action": "CreateFlow", "Name": "bench", "Definition": FLOW})
    names = iter(range(starts))
    latencies: list[float] = []

    async def starter() -> None:
        for i in names:
            params = {
                "Action": "StartExecution",
                "FlowName": "bench",
                "ExecutionName": f"s{i:07d}",
                "Input": json.dumps({"job": i}),
            }
            began = time.perf_counter()
            doc = await call(client, params)
            latencies.append(time.perf_counter() - began)
            assert doc["Status"] == "Running", doc

    began = time.perf_counter()
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    await asyncio.gather(*(starter() for _ in range(concurrency)))
    answered = time.perf_counter() - began
    server_cpu, client_cpu = server.cpu_seconds() - server_cpu, time.process_time() - client_cpu
    while len(server.messages()) < starts:
        if time.perf_counter() - began > 300:
            raise RuntimeError(f"only {len(server.messages())} of {starts} messages were sent")
        await asyncio.sleep(0.05)
    queued = time.perf_counter() - began
    return {
        "starts": starts,
        "concurrency": concurrency,
        "seconds": answered,
        "starts_per_s": starts / answered,
        "latency_ms_p50": percentile(latencies, 50) * 1000,
        "latency_ms_p99": percentile(latencies, 99) * 1000,
        "server_cpu_ms_per_start": server_cpu * 1000 / starts,
        "client_cpu_ms_per_start": client_cpu * 1000 / starts,
        "all_messages_queued_seconds": queued,
        "queued_per_s": starts / queued,
    }


async def bench_reports(server: Server, client: Client, reports: int) -> dict[str, Any]:
    await asyncio.sleep(1.0)  # let the last TaskSubmitted commits of the starts land
    firsts = [m for m in server.messages() if m["step"] == "first"][:reports]
    if len(firsts) < reports:
        raise RuntimeError(f"only {len(firsts)} executions are waiting; start more")
    latencies: list[float] = []
    checked = 0
    for n, message in enumerate(firsts):
        params = signed(
            {
                "Action": "ReportTaskSucceeded",
                "TaskToken": message["token"],
                "Output": json.dumps({"done": n}),
            }
        )
        began = time.perf_counter()
        status, body = await client.post(params)
        latencies.append(time.perf_counter() - began)
        if status != 200:
            raise RuntimeError(f"ReportTaskSucceeded answered {status}: {body.decode()}")
        if n % 50 == 0:  # the next step is entered and durable once the report returns
            history = await call(
                client,
                {
                    "Action": "GetExecutionHistory",
                    "FlowName": "bench",
                    "ExecutionName": message["execution"],
                    "Limit": "999",
                },
            )
            entered = [e["StepName"] for e in history["Events"] if e["Type"] == "StepEntered"]
            assert entered == ["first", "second"], entered
            checked += 1
    return {
        "reports": reports,
        "checked_next_step_entered": checked,
        "latency_ms_p50": percentile(latencies, 50) * 1000,
        "latency_ms_p90": percentile(latencies, 90) * 1000,
        "latency_ms_p99": percentile(latencies, 99) * 1000,
        "latency_ms_mean": statistics.fmean(latencies) * 1000,
    }


async def bench_health(client: Client, n: int = 500) -> dict[str, Any]:
    latencies = []
    for _ in range(n):
        began = time.perf_counter()
        status = await client.get("/health")
        latencies.append(time.perf_counter() - began)
        assert status == 200
    return {"latency_ms_p50": percentile(latencies, 50) * 1000}


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    command = (
        shlex.split(args.server_command)
        if args.server_command
        else [str(Path(sys.executable).with_name("relayflow"))]
    )
    server = Server(folder, args.synchronous, command)
    figures: dict[str, Any] = {}
    try:
        kind = HttpxClient if args.client == "httpx" else RawClient
        client = kind(server.port, args.concurrency)
        try:
            figures["health"] = await bench_health(client)
            figures["starts"] = await bench_starts(server, client, args.starts, args.concurrency)
            figures["reports"] = await bench_reports(server, client, args.reports)
        finally:
            await client.close()
    finally:
        code = server.stop()
    figures["server_exit_code"] = code
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=5000, help="StartExecution calls")
    parser.add_argument("--concurrency", type=int, default=64, help="starts in flight at once")
    parser.add_argument("--reports", type=int, default=500, help="sequential reports")
    parser.add_argument("--synchronous", default="full", choices=["full", "normal"])
    parser.add_argument(
        "--client",
        default="raw",
        choices=["raw", "httpx"],
        help="a minimal HTTP/1.1 load generator (default: it leaves the CPU to the server), "
        "or httpx.AsyncClient, a typical Python client",
    )
    parser.add_argument(
        "--server-command",
        default="",
        help="the command that runs relayflow's CLI (default: the relayflow next to Python)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.reports > args.starts:
        parser.error("--reports must not exceed --starts")

    figures: dict[str, Any] = {
        "synchronous": args.synchronous,
        "client": args.client,
        "reference_sqlite_commits_per_s_full": sqlite_commits_per_second("FULL"),
        "reference_sqlite_commits_per_s_normal": sqlite_commits_per_second("NORMAL"),
    }
    with tempfile.TemporaryDirectory() as folder:
        figures.update(asyncio.run(run(args, Path(folder))))
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0 if figures["server_exit_code"] == 0 else 1

    commit_ms = 1000 / figures[f"reference_sqlite_commits_per_s_{args.synchronous}"]
    s, r = figures["starts"], figures["reports"]
    print(
        f"store: SQLite WAL, synchronous={args.synchronous}; client: {args.client}, "
        f"on the same machine as the server ({os.cpu_count()} cores)"
    )
    print(
        f"reference: one-row commit, synchronous=FULL    "
        f"{figures['reference_sqlite_commits_per_s_full']:>10,.0f} commits/s"
    )
    print(
        f"reference: one-row commit, synchronous=NORMAL  "
        f"{figures['reference_sqlite_commits_per_s_normal']:>10,.0f} commits/s"
    )
    print(
        "reference: GET /health round trip, p50         "
        f"{figures['health']['latency_ms_p50']:.2f} ms"
    )
    print(
        f"StartExecution, {s['starts']:,} calls, {s['concurrency']} in flight: "
        f"{s['starts_per_s']:,.0f} starts/s (target >= 1,000/s); "
        f"call p50 {s['latency_ms_p50']:.1f} ms, p99 {s['latency_ms_p99']:.1f} ms"
    )
    print(
        f"  CPU per start: server {s['server_cpu_ms_per_start']:.2f} ms, "
        f"this client {s['client_cpu_ms_per_start']:.2f} ms"
    )
    print(
        f"  every message on the queue after {s['all_messages_queued_seconds']:.2f} s "
        f"({s['queued_per_s']:,.0f} executions/s fully submitted)"
    )
    print(
        f"ReportTaskSucceeded -> next step entered (durable), {r['reports']:,} sequential: "
        f"p50 {r['latency_ms_p50']:.2f} ms (target < 2 ms), p90 {r['latency_ms_p90']:.2f} ms, "
        f"p99 {r['latency_ms_p99']:.2f} ms  ({r['latency_ms_p50'] / commit_ms:.1f} x one commit)"
    )
    print(
        "  checked: the next step's StepEntered is in the history as soon as the report "
        f"returns ({r['checked_next_step_entered']} executions sampled)"
    )
    print(f"server exit code on SIGTERM: {figures['server_exit_code']}")
    return 0 if figures["server_exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
