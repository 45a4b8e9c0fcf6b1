"""The seed scenario end to end, as `make demo` shows it.

A `relayflow server` (SQLite store) and a `relayflow worker` in its own process, both on the
embedded queue transport unless ``--transport`` names another; the three-task flow
`seed-three-tasks.yaml` created and started through the API; each task shown as it is sent,
picked up and reported; then the execution's history as a table, and its output.

    python contrib/examples/seed_demo.py [--transport redis://127.0.0.1:6379/0] [--keep]

Everything runs in a temporary folder, removed at the end unless ``--keep`` is given; the
server and the worker are stopped with SIGTERM whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relayflow.client import Client, ClientError

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("relayflow"))
FLOW, QUEUE, EXECUTION = "seed", "fnf-demo", "demo-1"
OUTCOME = re.compile(r"step=(\S+) outcome=(\S+) duration_ms=(\d+)")
SERVING = re.compile(r"serving the API on (http://[^\s,]+)")
DEADLINE = 60  # seconds for the whole execution


def say(text: str) -> None:
    print(text, flush=True)


class Demo:
    """The processes and files of one run."""

    def __init__(self, folder: Path, transport: str) -> None:
        self.folder = folder
        self.config = folder / "relayflow.toml"
        self.config.write_text(
            f'[engine]\nstore = "sqlite:///{folder}/store.db"\n\n[server]\nport = 0\n\n'
            f'[integrations.mns]\ntransport = "{transport}"\n',
            encoding="utf-8",
        )
        self.processes: list[subprocess.Popen[bytes]] = []
        self.began = time.monotonic()

    def start(self, name: str, *args: str) -> Path:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            env = {**os.environ, "PYTHONPATH": str(HERE)}  # seed_worker, demo_worker
            self.processes.append(
                subprocess.Popen([EXE, *args], cwd=self.folder, stdout=out, stderr=out, env=env)
            )
        return log

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    def at(self) -> str:
        return f"[{time.monotonic() - self.began:5.2f}s]"


def wait_for_endpoint(demo: Demo, log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = SERVING.search(log.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found[1]
        if demo.processes[-1].poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"relayflow server did not start; its log:\n{log.read_text()}")


def new_lines(log: Path, seen: int) -> tuple[list[str], int]:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return lines[seen:], len(lines)


def describe(event: Any, scheduled: dict[int, str]) -> str | None:
    """One line for the events that show a task's way, None for the rest."""
    detail = event.detail or {}
    if event.type == "ExecutionStarted":
        return f"execution {EXECUTION} started with input {json.dumps(detail.get('input'))}"
    if event.type == "TaskScheduled":
        scheduled[event.event_id] = event.step_name
        return f"{event.step_name:<9} message with a task token sent to queue {QUEUE}"
    if event.type == "TaskSubmitted":
        return f"{event.step_name:<9} on the queue as {detail.get('MessageId', '?')[:12]}..."
    if event.type == "TaskSucceeded":
        return f"{event.step_name:<9} ReportTaskSucceeded: {json.dumps(detail.get('output'))}"
    if event.type in ("TaskFailed", "TaskTimedOut"):
        return f"{event.step_name:<9} {event.type}: {detail.get('error')} {detail.get('cause')}"
    if event.type.startswith("Execution") and event.type != "ExecutionStarted":
        return f"execution {EXECUTION}: {event.type}"
    return None


def watch(demo: Demo, client: Client, worker_log: Path) -> None:
    """Print each task as it moves, from the history and the worker's log, until the end."""
    shown, worker_seen = 0, 0
    scheduled: dict[int, str] = {}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        # Whether it has ended is read first: the history read after it then holds the end.
        ended = client.describe_execution(FLOW, EXECUTION).done
        events = list(client.iter_history(FLOW, EXECUTION))
        for event in events[shown:]:
            line = describe(event, scheduled)
            if line:
                say(f"{demo.at()} engine  {line}")
        shown = len(events)
        lines, worker_seen = new_lines(worker_log, worker_seen)
        for line in lines:
            done = OUTCOME.search(line)
            if done:
                step, outcome, ms = done.groups()
                say(
                    f"{demo.at()} worker  {step:<9} {outcome} in {ms} ms: reported with the "
                    "token, then the message deleted"
                )
            elif "picked up" in line:
                say(f"{demo.at()} worker  {line}")
        if ended:
            return
        time.sleep(0.05)
    raise SystemExit(f"the execution did not end within {DEADLINE} s")


def run(folder: Path, transport: str) -> int:
    demo = Demo(folder, transport)
    try:
        say(f"relayflow seed demo in {folder}")
        say(f"queue transport: {transport}")
        log = demo.start("server", "server", "--config", str(demo.config))
        endpoint = wait_for_endpoint(demo, log)
        with demo.config.open("a", encoding="utf-8") as config:
            config.write(f'\n[client]\nendpoint = "{endpoint}"\n')
        say(f"{demo.at()} server  listening on {endpoint} (pid {demo.processes[-1].pid})")
        worker_log = demo.start(
            "worker", "worker", QUEUE, "--handler", "demo_worker:handle",
            "--config", str(demo.config),
        )  # fmt: skip
        pid = demo.processes[-1].pid
        say(f"{demo.at()} worker  serving {QUEUE} in its own process (pid {pid})")
        with Client(endpoint) as client:
            client.create_flow(FLOW, (HERE / "seed-three-tasks.yaml").read_text(encoding="utf-8"))
            say(f"{demo.at()} client  flow {FLOW} created: extract -> transform -> load")
            client.start_execution(FLOW, {"source": "s3://demo/input.csv"}, name=EXECUTION)
            watch(demo, client, worker_log)
            final = client.describe_execution(FLOW, EXECUTION)
        say("")
        say(f"history of {FLOW}/{EXECUTION}:")
        cli = [EXE, "executions", "history", FLOW, EXECUTION, "--config", str(demo.config)]
        subprocess.run(cli, check=True)
        say("")
        say(f"status: {final.status}")
        say(f"output: {json.dumps(final.output)}")
        return 0 if final.succeeded else 1
    except ClientError as exc:
        say(f"relayflow demo: {exc}")
        return 1
    finally:
        demo.stop()


@contextlib.contextmanager
def folder_for(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="relayflow-demo-"))
    try:
        yield path
    finally:
        if keep:
            say(f"kept {path} (relayflow.toml, store.db, server.log, worker.log)")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--transport",
        help="kombu URL of the queues (default: the embedded SQLite transport in the folder)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder and its logs")
    args = parser.parse_args(argv)
    with folder_for(args.keep) as folder:
        transport = args.transport or f"relayflow-sqlite:///{folder}/queues.db"
        return run(folder, transport)


if __name__ == "__main__":
    raise SystemExit(main())
