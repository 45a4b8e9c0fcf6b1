"""Benchmark the FDL layer: load a generated 1,000-step flow and evaluate its mappings.

Prints, in the same run, the reference the figures are read against: the raw SQLite commit
rate on this machine (one-row insert per commit, WAL), since every step transition of the
engine costs at least one such commit. Mapping evaluation is "far from the bottleneck" when it
runs many times faster than that.

    .venv/bin/python contrib/bench/bench_fdl.py [--steps 1000] [--repeat 15] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from relayflow.dataflow import evaluate_mappings, step_input, step_output
from relayflow.fdl import ChoiceStep, DefinitionLimits, TaskStep, load_flow

TASK = """  - type: task
    name: task{i}
    resourceArn: acs:mns:::/queues/q{q}/messages
    pattern: waitForCallback
    timeoutSeconds: 300
    inputMappings:
      - target: orderId
        source: $input.order.id
      - target: lines
        source: $local.lines[*].sku
      - target: taskToken
        source: $context.task.token
      - target: step
        source: {i}
    serviceParams:
      MessageBody: $
      Priority: 8
    outputMappings:
      - target: result{r}
        source: $local.status
    retry:
      - errors: [FnF.TaskTimeout, FC.ResourceThrottled]
        intervalSeconds: 2
        maxAttempts: 3
    catch:
      - errors: [FnF.ALL]
        goto: failed
"""
CHOICE = """  - type: choice
    name: choice{i}
    choices:
      - condition: $.order.total > 100 && ($.order.vip || $.retries < 3)
        steps:
          - type: pass
            name: inner{i}
        goto: task{target}
    default:
      goto: task{target}
"""
PARALLEL = """  - type: parallel
    name: parallel{i}
    branches:
      - steps:
          - type: pass
            name: a{i}
      - steps:
          - type: wait
            name: w{i}
            duration: 1
    outputMappings:
      - target: merged{i}
        source: $local[*].x
"""
TAIL = """  - type: fail
    name: failed
    error: Failed
"""


def generate(steps: int) -> tuple[str, int]:
    """A flow of about ``steps`` steps (nested ones counted): mostly tasks, some control flow."""
    parts = ["version: v1\ntype: flow\nsteps:\n"]
    count = 0
    i = 0
    while count < steps - 1:
        if i % 10 == 9 and i + 1 < steps:
            parts.append(CHOICE.format(i=i, target=i + 1))
            count += 2
        elif i % 25 == 24:
            parts.append(PARALLEL.format(i=i))
            count += 3
        else:
            parts.append(TASK.format(i=i, q=i % 7, r=i % 5))
            count += 1
        i += 1
    # Gotos in choices target the next step; make sure it exists as a task.
    parts.append(TASK.format(i=i, q=0, r=0))
    parts.append(TAIL)
    return "".join(parts), count + 2


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        gc.collect()  # do not charge one run for the garbage of the previous ones
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def sqlite_commits_per_second(synchronous: str, seconds: float = 1.0) -> float:
    """One-row insert per commit in a WAL database, as the embedded store will do."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(os.path.join(tmp, "bench.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            db.execute("BEGIN")
            db.execute("INSERT INTO events (body) VALUES (?)", ('{"type": "StepEntered"}',))
            db.execute("COMMIT")
            n += 1
        elapsed = time.perf_counter() - start
        db.close()
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    text, _ = generate(args.steps)
    # The flow is larger than a definition may be by default (256 KiB), on purpose: the
    # loader's cost shows best on a large document, so the size limit is lifted here.
    limits = DefinitionLimits(max_bytes=1 << 30)
    flow = load_flow(text, limits=limits)
    steps = flow.step_count()
    load_samples = timed(lambda: load_flow(text, limits=limits), args.repeat)
    json_text = json.dumps(flow.model_dump(exclude_none=True))
    json_samples = timed(lambda: load_flow(json_text, limits=limits), args.repeat)

    tasks = [s for _, s in flow.walk() if isinstance(s, TaskStep)]
    choices = [s for _, s in flow.walk() if isinstance(s, ChoiceStep)]
    parent_input = {"order": {"id": "o-1", "total": 250, "vip": False}, "retries": 1}
    parent_local = {"lines": [{"sku": f"s{n}", "qty": n} for n in range(5)]}
    context = {"task": {"token": "djEj..."}, "execution": {"name": "run1"}, "flow": {"name": "f"}}
    task_local = {"status": "done", "extra": list(range(5))}

    def one_task(task: TaskStep) -> None:
        mapped = step_input(
            task.input_mappings,
            parent_input=parent_input,
            parent_local=parent_local,
            context=context,
        )
        assert task.service_params is not None
        task.service_params.resolve(mapped)
        step_output(task.output_mappings, input=mapped, local=task_local, context=context)

    rounds = max(1, 20000 // len(tasks))
    start = time.perf_counter()
    for _ in range(rounds):
        for task in tasks:
            one_task(task)
    task_rate = rounds * len(tasks) / (time.perf_counter() - start)

    conditions = [c.condition for s in choices for c in s.choices]
    rounds_c = max(1, 100000 // max(1, len(conditions)))
    start = time.perf_counter()
    for _ in range(rounds_c):
        for cond in conditions:
            cond.evaluate(parent_input)
    cond_rate = rounds_c * len(conditions) / (time.perf_counter() - start)

    mapping_rules = tasks[0].input_mappings or []
    start = time.perf_counter()
    n = 50000
    for _ in range(n):
        evaluate_mappings(mapping_rules, input=parent_input, local=parent_local, context=context)
    mapping_list_rate = n / (time.perf_counter() - start)

    sqlite_full = sqlite_commits_per_second("FULL")
    sqlite_normal = sqlite_commits_per_second("NORMAL")

    figures = {
        "steps": steps,
        "yaml_bytes": len(text.encode()),
        "load_ms_median": statistics.median(load_samples) * 1000,
        "load_ms_min": min(load_samples) * 1000,
        "json_load_ms_median": statistics.median(json_samples) * 1000,
        "task_dataflow_per_s": task_rate,
        "mapping_list_per_s": mapping_list_rate,
        "condition_per_s": cond_rate,
        "reference_sqlite_commits_per_s_full": sqlite_full,
        "reference_sqlite_commits_per_s_normal": sqlite_normal,
        "python": sys.version.split()[0],
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    kb = figures["yaml_bytes"] / 1024
    rows = [
        ("flow", f"{steps} steps, {kb:.0f} KiB of YAML"),
        (
            "load (parse + validate + compile)",
            f"median {figures['load_ms_median']:.1f} ms, best {figures['load_ms_min']:.1f} ms "
            f"over {args.repeat} runs (target < 100 ms)",
        ),
        ("load of the same flow as JSON", f"median {figures['json_load_ms_median']:.1f} ms"),
        ("task data flow (input + serviceParams + output)", f"{task_rate:,.0f} tasks/s"),
        ("one inputMappings list (4 rules)", f"{mapping_list_rate:,.0f} lists/s"),
        ("choice condition", f"{cond_rate:,.0f} evaluations/s"),
        ("reference: SQLite WAL commit, synchronous=FULL", f"{sqlite_full:,.0f} commits/s"),
        ("reference: SQLite WAL commit, synchronous=NORMAL", f"{sqlite_normal:,.0f} commits/s"),
        ("task data flow / SQLite FULL commit", f"{task_rate / sqlite_full:,.1f}x"),
        ("task data flow / SQLite NORMAL commit", f"{task_rate / sqlite_normal:,.1f}x"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
