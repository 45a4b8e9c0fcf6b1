"""Benchmark the start-up of the `relayflow` command: whole processes, as a user runs them.

Each command runs ``--runs`` times (default 10) as a fresh process; the table gives the median
and the fastest wall time, and the median's distance from the reference, ``python -c pass``
(the interpreter's own start-up, which no command can beat):

- ``relayflow --version`` and ``relayflow --help``: should import only what they print;
- ``relayflow validate contrib/examples/greeting.yaml``: loads the FDL models;
- ``relayflow executions describe FLOW NAME``: one signed call to a running server. The script
  starts that server itself (``relayflow server`` on a free port, in a temporary folder with
  its own relayflow.toml and SQLite store), creates a flow and an execution through the CLI
  first, and stops the server at the end.

Targets (issue 12, on the 2-core reference machine): ``--version`` within 150 ms of the
reference and ``executions describe`` within 300 ms of it.

    .venv/bin/python contrib/bench/bench_cli.py [--runs 10] [--json]
        [--command "python -c 'from relayflow.cli import main; main()'"]

``--command`` measures another build of the CLI, e.g. the base of a change checked out in a
worktree: ``PYTHONPATH=/tmp/base/core .venv/bin/python contrib/bench/bench_cli.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "contrib" / "examples" / "greeting.yaml"
KEY_ID, SECRET = "bench-admin", "bench-secret-0123456789"
SERVING = re.compile(r"relayflow serving the API on http://[^\s:]+:(?P<port>\d+)")
FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: hello\n"
#: Milliseconds above the reference each target allows.
TARGETS = {"relayflow --version": 150.0, "relayflow executions describe": 300.0}


def _environment() -> dict[str, str]:
    """The caller's environment without RELAYFLOW_* settings, which would change what runs."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RELAYFLOW_")}


class Server:
    """`relayflow server` in a folder of its own, on a port the system picks."""

    def __init__(self, folder: Path, command: list[str]) -> None:
        self.folder = folder
        self.config = folder / "relayflow.toml"
        self.config.write_text(
            '[engine]\nstore = "sqlite:///bench.db"\n\n[server]\nport = 0\n\n'
            f'[[server.access_keys]]\nid = "{KEY_ID}"\nsecret = "{SECRET}"\nrole = "admin"\n',
            encoding="utf-8",
        )
        self.log = folder / "server.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "server", "--config", str(self.config)],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_environment(),
            )
        port = self._wait_for_port()
        with self.config.open("a", encoding="utf-8") as file:
            file.write(
                f'\n[client]\nendpoint = "http://127.0.0.1:{port}"\n'
                f'access_key_id = "{KEY_ID}"\naccess_key_secret = "{SECRET}"\n'
            )

    def _wait_for_port(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"relayflow server exited:\n{self.log.read_text()}")
            found = SERVING.search(self.log.read_text(encoding="utf-8", errors="replace"))
            if found:
                return int(found["port"])
            time.sleep(0.05)
        self.process.kill()
        raise SystemExit(f"relayflow server did not start within {timeout} s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _check(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env=_environment(), timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def time_runs(args: list[str], runs: int, cwd: Path) -> list[float]:
    """Wall times in milliseconds of ``runs`` whole runs of ``args`` (one warm-up first)."""
    env = _environment()
    _check(args, cwd)  # warm the file cache and the bytecode
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument(
        "--command",
        default="",
        help="the command that runs relayflow's CLI (default: the relayflow next to Python)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    relayflow = (
        shlex.split(args.command)
        if args.command
        else [str(Path(sys.executable).with_name("relayflow"))]
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="relayflow-bench-cli-") as name:
        folder = Path(name)
        server = Server(folder, relayflow)
        try:
            config = str(server.config)
            (folder / "hello.yaml").write_text(FLOW, encoding="utf-8")
            _check(
                [
                    *relayflow,
                    "flows",
                    "create",
                    "hello",
                    "--definition",
                    "hello.yaml",
                    "--config",
                    config,
                ],
                folder,
            )
            execution = _check(
                [
                    *relayflow,
                    "executions",
                    "start",
                    "hello",
                    "--name",
                    "bench-1",
                    "--config",
                    config,
                ],
                folder,
            ).strip()
            commands = [
                ("python -c pass", [sys.executable, "-c", "pass"]),
                ("relayflow --version", [*relayflow, "--version"]),
                ("relayflow --help", [*relayflow, "--help"]),
                ("relayflow validate", [*relayflow, "validate", str(SAMPLE)]),
                (
                    "relayflow executions describe",
                    [*relayflow, "executions", "describe", "hello", execution, "--config", config],
                ),
            ]
            for label, command in commands:
                times = time_runs(command, args.runs, folder)
                results.append(
                    {
                        "command": label,
                        "median_ms": round(statistics.median(times), 1),
                        "min_ms": round(min(times), 1),
                    }
                )
        finally:
            server.stop()
    reference = results[0]["median_ms"]
    for row in results:
        row["over_reference_ms"] = round(row["median_ms"] - reference, 1)
        allowed = TARGETS.get(row["command"])
        if allowed is not None:
            row["target_ms"] = allowed
            row["met"] = row["over_reference_ms"] <= allowed
    if args.json:
        print(json.dumps({"runs": args.runs, "results": results}, indent=2))
        return
    print(f"relayflow command start-up, {args.runs} runs each (wall time, ms)")
    print(f"{'command':<32}{'median':>9}{'min':>9}{'+ref':>9}  target")
    for row in results:
        target = ""
        if "target_ms" in row:
            verdict = "met" if row["met"] else "NOT met"
            target = f"+{row['target_ms']:.0f} ms: {verdict}"
        print(
            f"{row['command']:<32}{row['median_ms']:>9.1f}{row['min_ms']:>9.1f}"
            f"{row['over_reference_ms']:>9.1f}  {target}"
        )


if __name__ == "__main__":
    main()
