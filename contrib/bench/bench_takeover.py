"""Benchmark takeover: how long a SIGKILLed replica's claimed work waits for another replica.

``--replicas`` `relayflow server` processes share a fresh PostgreSQL database (a private server
started for the run with ``--store pg``, the default, or a database made on the server of
``--store postgresql://...``), with ``[engine] lease_seconds = --lease`` and ``poll_seconds =
--poll``. A one-step flow calls a local Function Compute handler (plugin relayflow-fc) that,
on its first call for an execution, holds on for a minute, and on any later call answers at
once. ``--executions`` executions are started through the first replica, the victim, which
therefore dispatches every first call and holds each one's outbox lease (renewed while the
call runs). Once every call has begun, the victim is killed with SIGKILL; another replica
must find the leases expired, claim the rows and call the handler again, which answers at
once, and the execution goes on.

The figure, per execution: the time from the kill to the execution's first event after it
(the event times are the replicas' clocks, on this machine); the takeover time is the largest
of them. The reference printed beside it is the bound the design promises: lease + poll + 2 s
(a lease renewed just before the kill runs out after `lease`; a poll finds it within `poll`;
2 s for the claim, the call and the commit on a loaded machine). Each round uses fresh
processes and a fresh database.

    .venv/bin/python contrib/bench/bench_takeover.py [--lease 5] [--poll 1] [--replicas 3]
        [--executions 20] [--rounds 3] [--store pg|postgresql://...] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replicas import Cluster, create_database, drop_database, postgres_server

from relayflow.client import Client

FLOW = "takeover"
FUNCTION = "takeover/hold"
DEFINITION = """version: v1
type: flow
steps:
  - type: task
    name: hold
    resourceArn: acs:fc:::services/takeover/functions/hold
    timeoutSeconds: 600
"""
HANDLER = '''\
"""The takeover benchmark's handler: the first call for an execution holds on, later ones don't."""

import json
import os
import time
from pathlib import Path

MARKS = Path(__file__).resolve().parent / "marks"


def hold(event, context):
    name = json.loads(event)["name"]
    MARKS.mkdir(exist_ok=True)
    try:
        os.close(os.open(MARKS / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return {"name": name, "again": True}
    time.sleep(60)
    return {"name": name, "again": False}
'''


def one_round(folder: Path, store: str, args: argparse.Namespace, index: int) -> dict[str, Any]:
    """Start the executions on the victim, kill it once all hold a call, time the takeover."""
    folder.mkdir(parents=True)
    (folder / "takeover_functions.py").write_text(HANDLER, encoding="utf-8")
    fc = f'\n[integrations.fc.functions]\n"{FUNCTION}" = "takeover_functions:hold"\n'
    cluster = Cluster(
        folder,
        store,
        f"relayflow-sqlite:///{folder}/queues.db",
        args.replicas,
        lease_seconds=args.lease,
        poll_seconds=args.poll,
        balancer=None,
        extra_toml=fc,
    )
    names = [f"r{index}-{n:03d}" for n in range(args.executions)]
    marks = folder / "marks"
    with cluster:
        victim = Client(cluster.endpoints[0], timeout=30)
        survivor = Client(cluster.endpoints[1], timeout=90)
        try:
            victim.create_flow(FLOW, DEFINITION)
            for name in names:
                victim.start_execution(FLOW, {"name": name}, name=name)
            deadline = time.monotonic() + 30
            while (len(list(marks.iterdir())) if marks.exists() else 0) < len(names):
                if time.monotonic() > deadline:
                    raise SystemExit("the victim did not start every call within 30 s")
                time.sleep(0.02)
            time.sleep(0.2)  # the victim is now only renewing leases
            killed_at = time.time()
            cluster.servers[0].send_signal(signal.SIGKILL)
            cluster.servers[0].wait(timeout=10)
            gaps = []
            for name in names:
                info = survivor.wait_for_execution(FLOW, name, timeout=90)
                if info.status != "Succeeded" or not info.output.get("again"):
                    raise SystemExit(f"{name} ended {info.status} with {info.output}")
                after = [
                    e.time.timestamp()
                    for e in survivor.iter_history(FLOW, name, page_size=999)
                    if e.time is not None and e.time.timestamp() >= killed_at
                ]
                gaps.append(min(after) - killed_at)
        finally:
            victim.close()
            survivor.close()
    return {
        "executions": len(names),
        "max_s": max(gaps),
        "median_s": statistics.median(gaps),
        "min_s": min(gaps),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease", type=float, default=5.0, help="[engine] lease_seconds")
    parser.add_argument("--poll", type=float, default=1.0, help="[engine] poll_seconds")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--executions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", default="pg", help="pg (private server) or a postgresql:// URL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.replicas < 2:
        parser.error("--replicas must be at least 2: one to kill, one to take over")
    if args.store != "pg" and not args.store.startswith(("postgres://", "postgresql://")):
        parser.error("--store must be pg or a postgresql:// URL")

    rounds = []
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as name:
        server = args.store
        if server == "pg":
            server = stack.enter_context(postgres_server())
        for index in range(args.rounds):
            database = f"bench_takeover_{os.getpid()}_{index}"
            store = create_database(server, database)
            try:
                rounds.append(one_round(Path(name) / f"round{index}", store, args, index))
            finally:
                drop_database(server, database)
            print(f"round {index + 1} of {args.rounds} done", file=sys.stderr)
    target = args.lease + args.poll + 2
    figures = {
        "lease_seconds": args.lease,
        "poll_seconds": args.poll,
        "replicas": args.replicas,
        "target_s": target,
        "rounds": rounds,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"takeover after SIGKILL: {args.replicas} replicas on PostgreSQL, lease {args.lease:g} s, "
        f"poll {args.poll:g} s, {args.executions} executions holding a call on the victim"
    )
    for n, r in enumerate(rounds, 1):
        print(
            f"  round {n}: kill -> next event, max {r['max_s']:.2f} s, median "
            f"{r['median_s']:.2f} s, min {r['min_s']:.2f} s"
        )
    worst = max(r["max_s"] for r in rounds)
    verdict = "within" if worst <= target else "OVER"
    print(
        f"takeover time (max over rounds): {worst:.2f} s; reference: lease + poll + 2 s = "
        f"{target:g} s ({verdict})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
