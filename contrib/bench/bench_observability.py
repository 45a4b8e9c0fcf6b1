"""What tracing and metrics cost: executions per second with relayflow-otel and
relayflow-prometheus on and off, in the same run, taking turns.

Two measurements, each run ``--rounds`` times in every configuration, the configurations
taking turns within a round (and in the reverse order every other round), so a noisy
neighbour weighs on all of them alike:

1. ``engine``: bench_engine.py's throughput, ``--executions`` concurrent executions of a
   10-step flow of requestResponse tasks answered in-process, on the embedded SQLite store
   (synchronous=FULL), through an engine whose plugins are loaded from a relayflow.toml as
   `relayflow server` loads them. With the plugins on, the plugins' HTTP routes (`/metrics`)
   are served on the engine's event loop, as the server serves them, and scraped.
2. ``queue``: bench_queue.py's seed scenario (three serial waitForCallback tasks) with a real
   `relayflow server` (SQLite store), ``--workers`` `relayflow worker` processes and a
   redis-server this script starts: ``--count`` executions started through the client,
   executions per second until the last has Succeeded. With the plugins on, the server has
   the same [otel] and [prometheus] tables, and each worker exports its own spans
   (OTEL_EXPORTER_OTLP_ENDPOINT) and serves its metrics (``--metrics-port``).

"On" means: relayflow-otel at 100 % sampling exporting over OTLP/HTTP to otlp_sink.py (a
process of its own that decodes and counts every span, as a collector would), and
relayflow-prometheus enabled, every `/metrics` scraped once a second by a real Prometheus
(Debian's /usr/bin/prometheus, started here on a loopback port). "Off" is the same
configuration without those two tables: the installed plugins are loaded but inert. More
configurations with ``--modes``: ``on10`` (as on, tracing 10 % of the executions), ``otel``
(tracing alone), ``prometheus`` (metrics alone) and ``down`` (tracing on, its OTLP endpoint a
closed port: what an unreachable collector costs).

The figure is the ratio on/off of executions per second, round by round, and its median;
the target is >= 0.90 (no more than 10 % fewer executions per second at 100 % sampling). The
CPU time per execution is printed next to it, steadier than wall time on a shared machine:
for the engine, this process and any process a plugin starts, over the whole round (loading
the plugins, the run, the close and its flush); for the queue scenario, the server, the
workers (and their children), Redis and the client's calls, during the run.
The spans the sink received and the scrapes Prometheus made are printed too, to show the
plugins did their work. ``--save DIR`` keeps the raw material of docs/observability.md's
figures: the figures as JSON, Prometheus range queries over the run, and the spans of a
few traces of the queue scenario (observability_plots.py draws them).

    .venv/bin/python contrib/bench/bench_observability.py [engine|queue|all]
        [--rounds 3] [--executions 2000] [--count 500] [--workers 2] [--concurrency 4]
        [--modes off,on[,on10,otel,prometheus,down]] [--save DIR] [--json]

Every process started here (sinks, Prometheus, redis-server, servers, workers) is stopped at
the end, errors included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from relayflow_otel import ENGINE_PLUGIN_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import Stores, bench_throughput, load_plugins
from bench_queue import run_cluster, terminate_as_exit
from replicas import EXE, QUEUE, Cluster, Processes, cpu_seconds, free_port, spawn, start_redis

HERE = Path(__file__).resolve().parent
PROMETHEUS = "/usr/bin/prometheus"
TARGET = 0.90
#: The configurations ``--modes`` may name; "off" is the reference and always runs.
TITLES = {
    "off": "plugins off",
    "on": "otel 100 % + prometheus",
    "on10": "otel 10 % + prometheus",
    "otel": "otel 100 % alone",
    "prometheus": "prometheus alone",
    "down": "otel, collector down",
}


def plugin_tables(mode: str, otlp: str) -> str:
    """The relayflow.toml tables that turn the plugins on for ``mode`` ("" when off).

    Args:
        mode: one of `TITLES`.
        otlp: the OTLP/HTTP endpoint spans go to.
    """
    # A port nobody listens on: every export fails at once with "connection refused".
    endpoint = f"http://127.0.0.1:{free_port()}" if mode == "down" else otlp
    ratio = 0.1 if mode == "on10" else 1.0
    otel = (
        f'[otel]\nendpoint = "{endpoint}"\nsampling_ratio = {ratio}\nservice_name = "relayflow"\n'
    )
    prometheus = "[prometheus]\nenabled = true\n"
    both = f"{otel}\n{prometheus}"
    tables = {"on": both, "on10": both, "otel": otel, "down": otel, "prometheus": prometheus}
    return tables.get(mode, "")


def traced(mode: str) -> bool:
    """Whether ``mode`` exports spans to the sink (workers included)."""
    return mode in ("on", "on10", "otel")


def scraped(mode: str) -> bool:
    """Whether ``mode`` serves metrics that Prometheus scrapes."""
    return mode in ("on", "on10", "prometheus")


# -- the sink and Prometheus -------------------------------------------------------------------


def start_sink(procs: Processes, folder: Path, name: str, keep: bool) -> tuple[str, int]:
    """otlp_sink.py as a process; its endpoint and process id."""
    command = [sys.executable, str(HERE / "otlp_sink.py")]
    if keep:
        command += ["--keep", str(folder / f"{name}-spans.jsonl"), "--keep-traces", "30"]
    process = procs.start(command, folder, f"{name}.log")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = (folder / f"{name}.log").read_text(errors="replace")
        if "listening on " in text:
            return text.split("listening on ", 1)[1].split()[0], process.pid
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"otlp_sink.py did not start:\n{(folder / f'{name}.log').read_text()}")


def sink_stats(endpoint: str) -> dict[str, int]:
    """The sink's counts so far."""
    return dict(httpx.get(f"{endpoint}/stats", timeout=10).json())


class Prometheus:
    """Debian's Prometheus on a loopback port, scraping every second what `targets` names.

    The targets are a file_sd file rewritten for each configuration, so one Prometheus serves
    the whole run and keeps every sample for the plots.
    """

    def __init__(self, procs: Processes, folder: Path) -> None:
        self.folder = folder / "prometheus"
        self.folder.mkdir()
        self.targets_file = self.folder / "targets.json"
        self.set_targets([])
        (self.folder / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
            "scrape_configs:\n  - job_name: relayflow\n    file_sd_configs:\n"
            f"      - files: ['{self.targets_file}']\n        refresh_interval: 1s\n",
            encoding="utf-8",
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            PROMETHEUS,
            f"--config.file={self.folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process = procs.start(command, self.folder, "prometheus.log")
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "prometheus.log").read_text(errors="replace")
                raise SystemExit(f"Prometheus did not start within 30 s:\n{log[-2000:]}")
            time.sleep(0.1)

    def set_targets(self, targets: list[tuple[str, str]]) -> None:
        """Scrape these (address, `part` label) from now on; an empty list stops scraping."""
        groups = [{"targets": [address], "labels": {"part": part}} for address, part in targets]
        temporary = self.targets_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(groups), encoding="utf-8")
        temporary.replace(self.targets_file)  # whole or not at all, for the file watcher

    def wait_for_targets(self, count: int, timeout: float = 10) -> None:
        """Wait until Prometheus has picked up ``count`` active targets."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                reply = httpx.get(f"{self.url}/api/v1/targets", timeout=2).json()
                if len(reply["data"]["activeTargets"]) == count:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"Prometheus did not pick up {count} targets within {timeout} s")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return list(reply.json()["data"]["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Any]:
        """A range query's result matrix."""
        params: dict[str, str | float] = {"query": expr, "start": start, "end": end, "step": step}
        reply = httpx.get(f"{self.url}/api/v1/query_range", params=params, timeout=30)
        return list(reply.json()["data"]["result"])

    def scrapes(self, part: str) -> tuple[int, int, float]:
        """(successful, all, slowest in seconds) scrapes of the targets labelled ``part``."""

        def total(expr: str) -> float:
            return sum(float(r["value"][1]) for r in self.query(expr))

        up = f'up{{part="{part}"}}[1h]'
        slowest = total(f'max(max_over_time(scrape_duration_seconds{{part="{part}"}}[1h]))')
        ok, all_ = total(f"sum_over_time({up})"), total(f"count_over_time({up})")
        return int(ok), int(all_), slowest


# -- 1. the engine ------------------------------------------------------------------------------


async def plugin_routes_served(routes: dict[str, Any], port: int) -> Any:
    """Serve the plugins' HTTP routes on this event loop, as `relayflow server` does."""
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:
        route = routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await route(scope, receive, send)

    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not listen
        await asyncio.sleep(0.01)
    return server, task


async def engine_round(
    mode: str, config: Path, executions: int, prometheus: Prometheus
) -> dict[str, Any]:
    """One throughput run through an engine whose plugins ``config`` enables."""
    plugins = load_plugins(str(config))
    served = None
    if scraped(mode):
        routes = plugins.http_routes()
        port = free_port()
        served = await plugin_routes_served(routes, port)
        prometheus.set_targets([(f"127.0.0.1:{port}", "engine")])
        prometheus.wait_for_targets(1)
    try:
        # Frozen after start-up in every configuration, as `relayflow server` does (server.py):
        # otherwise full collections walk every module and plugin, the more often the more
        # objects a plugin keeps, which a server does not pay.
        return await bench_throughput(
            Stores(None, "full"), executions, 10, plugins, freeze_heap=True
        )
    finally:
        # A server ends with its process; here the next round makes new plugins, so the
        # tracer's exporter process and threads stop now rather than pile up round after round.
        tracer = plugins.pluggy_manager.get_plugin(ENGINE_PLUGIN_NAME)
        if tracer is not None:
            tracer.close()
        if served is not None:
            # Prometheus lets go of the target first: a scrape of a stopped server is no
            # failure of the plugin's.
            prometheus.set_targets([])
            prometheus.wait_for_targets(0)
            server, task = served
            server.should_exit = True
            await task


def process_cpu(exclude: set[int]) -> float:
    """CPU seconds of this process and of the processes it started, but those in ``exclude``.

    A plugin may do its work in a process of its own (an exporter, say): its CPU is the
    engine's cost all the same. Children already reaped count through `os.times`.
    """
    reaped = os.times()
    total = time.process_time() + reaped.children_user + reaped.children_system
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        with contextlib.suppress(OSError, IndexError):
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2 :].split()[1] == me:
                total += cpu_seconds(int(entry.name))
    return total


def bench_engine_part(
    args: argparse.Namespace,
    folder: Path,
    otlp: str,
    prometheus: Prometheus,
    exclude: set[int],
) -> dict[str, Any]:
    """``--rounds`` rounds of the engine's throughput in every mode, taking turns.

    A short round of each mode comes first, not counted: the first to load a plugin pays for
    importing its libraries. ``exclude`` are the processes not part of the engine (the sink,
    Prometheus), left out of its CPU.
    """
    configs = {}
    for mode in args.modes:
        configs[mode] = folder / f"engine-{mode}.toml"
        configs[mode].write_text(plugin_tables(mode, otlp), encoding="utf-8")
        asyncio.run(engine_round(mode, configs[mode], 50, prometheus))
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
    spans: dict[str, list[int]] = {mode: [] for mode in args.modes}
    windows = []
    for n in range(args.rounds):
        for mode in args.modes if n % 2 == 0 else args.modes[::-1]:
            before = sink_stats(otlp)["spans"]
            began = time.time()
            cpu = process_cpu(exclude)
            figures = asyncio.run(engine_round(mode, configs[mode], args.executions, prometheus))
            figures["round_cpu_seconds"] = process_cpu(exclude) - cpu
            windows.append({"part": "engine", "mode": mode, "start": began, "end": time.time()})
            figures["executions_per_s"] = figures["executions"] / figures["seconds"]
            runs[mode].append(figures)
            spans[mode].append(sink_stats(otlp)["spans"] - before)
        print(f"engine: round {n + 1} of {args.rounds} done", file=sys.stderr)
    return {"runs": runs, "spans": spans, "windows": windows}


# -- 2. the seed scenario on Redis ------------------------------------------------------------


class ObservedCluster(Cluster):
    """A bench cluster whose workers export spans (``otlp``) and serve metrics (``prometheus``).

    Once the workers have started, Prometheus is told to scrape the server and every worker.
    """

    def __init__(
        self, *args: Any, otlp: str | None, prometheus: Prometheus | None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.otlp, self.prometheus = otlp, prometheus
        self.metrics_ports: list[int] = []

    def start_workers(
        self, count: int, concurrency: int = 2, handler: str = "seed_worker:handle"
    ) -> None:
        """As `Cluster.start_workers`, with tracing and a metrics port each as configured."""
        command = [EXE, "worker", QUEUE, "--handler", handler, "--concurrency", str(concurrency)]
        command += ["--config", str(self.worker_config)]
        for n in range(len(self.workers), len(self.workers) + count):
            env: dict[str, str] = {}
            extra: list[str] = []
            if self.otlp is not None:
                env = {"OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp}
                env["OTEL_SERVICE_NAME"] = "relayflow-worker"
            if self.prometheus is not None:
                self.metrics_ports.append(free_port())
                extra = ["--metrics-port", str(self.metrics_ports[-1])]
            self.workers.append(spawn(command + extra, self.folder, f"worker{n}.log", **env))
        if self.prometheus is not None:
            for port in self.metrics_ports:  # a worker takes a moment to import and listen
                wait_for_port(port, 30)
            targets = [(f"{self.hosts[0]}:{self.port}", "server")]
            targets += [(f"127.0.0.1:{port}", "worker") for port in self.metrics_ports]
            self.prometheus.set_targets(targets)
            self.prometheus.wait_for_targets(len(targets))

    def stop(self) -> dict[str, Any]:
        """As `Cluster.stop`, once Prometheus has stopped scraping (a stopped process is no
        failed scrape)."""
        if self.prometheus is not None:
            self.prometheus.set_targets([])
            self.prometheus.wait_for_targets(0)
        return super().stop()


def wait_for_port(port: int, timeout: float) -> None:
    """Wait until something listens on the loopback ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def queue_round(
    mode: str,
    folder: Path,
    redis: str,
    others: dict[str, int],
    args: argparse.Namespace,
    otlp: str,
    prometheus: Prometheus,
) -> dict[str, Any]:
    """One seed-scenario throughput run with a fresh server and workers in ``mode``."""
    cluster = ObservedCluster(
        folder,
        f"sqlite:///{folder}/store.db",
        redis,
        1,
        lease_seconds=None,
        poll_seconds=None,
        visibility_timeout=30,
        balancer=None,
        extra_toml=plugin_tables(mode, otlp),
        otlp=otlp if traced(mode) else None,
        prometheus=prometheus if scraped(mode) else None,
    )
    return run_cluster(cluster, args, others, full=False)


def bench_queue_part(
    args: argparse.Namespace,
    folder: Path,
    procs: Processes,
    otlp: str,
    prometheus: Prometheus,
    others: dict[str, int],
) -> dict[str, Any]:
    """``--rounds`` rounds of the seed scenario on Redis in every mode, taking turns."""
    redis, redis_pid = start_redis(procs, folder)
    others = {**others, "redis-server": redis_pid}
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
    spans: dict[str, list[int]] = {mode: [] for mode in args.modes}
    windows = []
    for n in range(args.rounds):
        for mode in args.modes if n % 2 == 0 else args.modes[::-1]:
            before = sink_stats(otlp)["spans"]
            began = time.time()
            here = folder / f"queue-{n}-{mode}"
            figures = queue_round(mode, here, f"{redis}/0", others, args, otlp, prometheus)
            windows.append({"part": "queue", "mode": mode, "start": began, "end": time.time()})
            if figures["server_exit_code"] != 0:
                raise RuntimeError(
                    f"the server of {here} exited with {figures['server_exit_code']}"
                )
            runs[mode].append(figures["throughput"])
            spans[mode].append(sink_stats(otlp)["spans"] - before)
        print(f"queue: round {n + 1} of {args.rounds} done", file=sys.stderr)
    return {"runs": runs, "spans": spans, "windows": windows}


# -- output ---------------------------------------------------------------------------------


#: Processes of the queue scenario that are not relayflow's: left out of its CPU per execution.
NOT_RELAYFLOW = ("otlp sink", "prometheus")


def cpu_ms(part: str, run: dict[str, Any]) -> float:
    """CPU milliseconds one execution cost: the engine's process, or relayflow's processes."""
    if part == "engine":  # the whole round: loading the plugins, the run, closing (a flush)
        return float(run["round_cpu_seconds"]) / int(run["executions"]) * 1000
    spent = sum(float(v) for name, v in run["cpu_seconds"].items() if name not in NOT_RELAYFLOW)
    return spent / int(run["executions"]) * 1000


def summarize(part: str, figures: dict[str, Any], modes: list[str]) -> dict[str, Any]:
    """Rates and CPU by mode and round, and each mode's ratios to "off" round by round."""
    runs = figures["runs"]
    rates = {m: [r["executions_per_s"] for r in runs[m]] for m in modes}
    cpu = {m: [cpu_ms(part, r) for r in runs[m]] for m in modes}
    summary: dict[str, Any] = {"rates": rates, "cpu_ms": cpu, "median": {}, "median_cpu": {}}
    summary.update(ratios={}, median_ratio={}, cpu_ratio={})
    for mode in modes:
        summary["median"][mode] = statistics.median(rates[mode])
        summary["median_cpu"][mode] = statistics.median(cpu[mode])
        if mode != "off":
            each = [a / b for a, b in zip(rates[mode], rates["off"], strict=True)]
            summary["ratios"][mode] = each
            summary["median_ratio"][mode] = statistics.median(each)
            summary["cpu_ratio"][mode] = statistics.median(
                [a / b for a, b in zip(cpu[mode], cpu["off"], strict=True)]
            )
    return summary


def print_report(figures: dict[str, Any]) -> None:
    """The table: executions/s and CPU by configuration, the ratios and the target."""
    modes = figures["modes"]
    print(
        f"observability overhead, {os.cpu_count()} cores, {figures['rounds']} rounds taking "
        "turns; on = relayflow-otel at 100 % sampling -> OTLP/HTTP sink process, and "
        "relayflow-prometheus scraped every 1 s by Prometheus"
    )
    parts = {
        "engine": f"engine: {figures['executions']:,} executions x 10 tasks, SQLite",
        "queue": f"seed scenario: server, {figures['workers']} workers, Redis",
    }
    head = (
        f"{'':<44} {'configuration':<24} {'exec/s':>7} {'each round':>20} {'x off':>6} "
        f"{'CPU/exec':>9} {'x off':>6}"
    )
    print(head)
    print("-" * len(head))
    for key, title in parts.items():
        if key not in figures:
            continue
        summary = figures[key]["summary"]
        for i, mode in enumerate(modes):
            each = "/".join(f"{v:.0f}" for v in summary["rates"][mode])
            ratio = cpu_ratio = ""
            if mode != "off":
                ratio = f"{summary['median_ratio'][mode]:.2f}"
                cpu_ratio = f"{summary['cpu_ratio'][mode]:.2f}"
            print(
                f"{title if i == 0 else '':<44} {TITLES[mode]:<24} "
                f"{summary['median'][mode]:>7,.0f} {each:>20} {ratio:>6} "
                f"{summary['median_cpu'][mode]:>6.2f} ms {cpu_ratio:>6}"
            )
    print(
        "(medians; x off: the ratio to plugins off, round by round then the median; CPU/exec: "
        "the engine's process and its children over the round, or the scenario's processes)"
    )
    print()
    for key in parts:
        if key not in figures:
            continue
        summary = figures[key]["summary"]
        for mode, each in summary["ratios"].items():
            median = summary["median_ratio"][mode]
            verdict = "met" if median >= TARGET else "NOT met"
            print(
                f"{key}, {TITLES[mode]} / off, exec/s round by round: "
                + ", ".join(f"{r:.2f}" for r in each)
                + f" (median {median:.2f}; target >= {TARGET:.2f}: {verdict})"
            )
    print()
    for key in parts:
        if key not in figures:
            continue
        runs = figures[key]["runs"]
        for mode in modes:
            if not traced(mode):
                continue
            done = sum(r["executions"] for r in runs[mode])
            received = sum(figures[key]["spans"][mode])
            print(
                f"{key}, {TITLES[mode]}: the sink received {received:,} spans for {done:,} "
                f"executions ({received / done:.1f} an execution)"
            )
        if key in figures.get("scrapes", {}):
            line = ", ".join(
                f"{part} {ok}/{total} (slowest {slowest * 1000:.0f} ms)"
                for part, (ok, total, slowest) in figures["scrapes"][key].items()
            )
            print(f"{key}: Prometheus scrapes (1 s apart, 900 ms timeout), successful/all: {line}")


# -- the run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_folder() -> Iterator[Path]:
    """A temporary folder for the run's processes, logs and files."""
    with tempfile.TemporaryDirectory(prefix="relayflow-bench-observability-") as name:
        yield Path(name)


def save_material(figures: dict[str, Any], folder: Path, save: Path, prom: Prometheus) -> None:
    """The figures, Prometheus range queries over the queue rounds, and the kept spans."""
    save.mkdir(parents=True, exist_ok=True)
    (save / "figures.json").write_text(json.dumps(figures, indent=2), encoding="utf-8")
    windows = figures.get("queue", figures.get("engine", {})).get("windows", [])
    if windows:
        start, end = windows[0]["start"] - 2, windows[-1]["end"] + 2
        series = {
            key: {"query": expr, "result": prom.query_range(expr, start, end, 1.0)}
            for key, expr in PLOT_QUERIES.items()
        }
        material = {"start": start, "end": end, "windows": windows, "series": series}
        (save / "prometheus.json").write_text(json.dumps(material, indent=1), encoding="utf-8")
    kept = folder / "queue-sink-spans.jsonl"
    if kept.exists():
        shutil.copy(kept, save / "spans.jsonl")


#: What `--save` keeps from Prometheus for the plots (relayflow-prometheus's metric names).
PLOT_QUERIES = {
    "ended": 'sum by (status) (rate(relayflow_executions_ended_total{part="server"}[5s]))',
    "started": 'sum(rate(relayflow_executions_started_total{part="server"}[5s]))',
    "messages": 'sum by (outcome) (rate(relayflow_worker_messages_total{part="worker"}[5s]))',
    "commit_p99": "histogram_quantile(0.99, sum by (le) "
    '(rate(relayflow_store_commit_duration_seconds_bucket{part="server"}[5s])))',
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("which", nargs="?", default="all", choices=["engine", "queue", "all"])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every configuration")
    parser.add_argument("--executions", type=int, default=2000, help="engine: executions a run")
    parser.add_argument("--count", type=int, default=500, help="queue: executions a run")
    parser.add_argument("--workers", type=int, default=2, help="queue: worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="queue: threads a worker")
    parser.add_argument("--in-flight", type=int, default=32, help="queue: client calls at once")
    parser.add_argument(
        "--modes",
        default="off,on",
        help="configurations, comma separated, among " + ", ".join(TITLES) + " (default off,on)",
    )
    parser.add_argument("--save", help="keep the figures, Prometheus series and spans here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    for name in ("rounds", "executions", "count", "workers", "concurrency", "in_flight"):
        if not 1 <= getattr(args, name) <= 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    if not os.access(PROMETHEUS, os.X_OK):
        raise SystemExit(f"{PROMETHEUS} is missing (Debian: apt-get install prometheus)")
    # The otel plugin honours OTEL_* variables: a shell's would turn tracing on in "off".
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        del os.environ[name]
    args.modes = ["off"] + [m for m in dict.fromkeys(args.modes.split(",")) if m != "off"]
    wrong = [m for m in args.modes if m not in TITLES]
    if wrong or len(args.modes) < 2:
        parser.error(f"--modes takes off and at least one of {', '.join(list(TITLES)[1:])}")
    # bench_queue's run_cluster reads these; only the throughput run is made here.
    args.latency = args.sequential = 0

    figures: dict[str, Any] = {
        "rounds": args.rounds,
        "modes": args.modes,
        "executions": args.executions,
        "count": args.count,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "target": TARGET,
        "scrapes": {},
    }
    procs = Processes()
    with terminate_as_exit(), run_folder() as folder:
        try:
            engine_otlp, _ = start_sink(procs, folder, "engine-sink", keep=False)
            queue_otlp, queue_sink = start_sink(procs, folder, "queue-sink", keep=True)
            prometheus = Prometheus(procs, folder)
            others = {"otlp sink": queue_sink, "prometheus": prometheus.process.pid}
            if args.which in ("engine", "all"):
                exclude = {process.pid for process in procs.started}
                figures["engine"] = bench_engine_part(
                    args, folder, engine_otlp, prometheus, exclude
                )
                figures["scrapes"]["engine"] = {"engine": prometheus.scrapes("engine")}
            if args.which in ("queue", "all"):
                figures["queue"] = bench_queue_part(
                    args, folder, procs, queue_otlp, prometheus, others
                )
                figures["scrapes"]["queue"] = {
                    part: prometheus.scrapes(part) for part in ("server", "worker")
                }
            for key in ("engine", "queue"):
                if key in figures:
                    figures[key]["summary"] = summarize(key, figures[key], args.modes)
            if args.save:
                save_material(figures, folder, Path(args.save), prometheus)
        finally:
            procs.stop_all()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
