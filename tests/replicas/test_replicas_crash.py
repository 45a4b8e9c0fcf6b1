"""Three replicas on one PostgreSQL: one SIGKILLed, one frozen and resumed, nothing lost or doubled.

Three `relayflow server` processes share a fresh PostgreSQL database and a Redis broker; three
`relayflow worker` processes serve the seed flow's queue (contrib/examples/seed-three-tasks.yaml:
three waitForCallback tasks in a row) and report through a round-robin balancer that checks each
replica's /ready. A few dozen executions are started, spread over the replicas; while they run,
one replica is killed with SIGKILL and another stopped with SIGSTOP, then resumed with SIGCONT.

Then every execution must have Succeeded once with the expected output, with a gap-free history
in which each step was entered, scheduled and completed exactly once; nothing is left Running,
no outbox row or timer is left behind, and the history reads the same through every replica
still standing. Short leases (3 s) and polls (0.5 s) keep the takeover, and the test, quick.
RELAYFLOW_REPLICAS_EXECUTIONS sets the number of executions (36 by default).
"""

from __future__ import annotations

import os
import time

from relayflow.client import Client
from relayflow.store import open_store
from tests.replicas.harness import (
    SEED,
    SLOW_WORKER,
    Cluster,
    check_execution,
    create_database,
    expected_output,
    fresh_redis,
    history,
    wait_for,
)

# `make soak-replicas` runs it with 1,000.
COUNT = int(os.environ.get("RELAYFLOW_REPLICAS_EXECUTIONS", "36"))
LEASE, POLL = 3, 0.5
KILLED, FROZEN, STEADY = 0, 1, 2


def _count(client: Client, status: str) -> int:
    return sum(1 for _ in client.iter_executions("seed", status=status, page_size=99))


def _leftovers(store_url: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """Executions that still have outbox rows or timers: {name: (outbox rows, timers)}."""
    store = open_store(store_url)
    try:
        with store.reader() as tx:
            found = {}
            for name in names:
                row = tx.get_execution("seed", name)
                assert row is not None, name
                left = (len(tx.list_outbox(row.id)), len(tx.list_timers(row.id)))
                if any(left):
                    found[name] = left
            return found
    finally:
        store.close()


def test_a_killed_and_a_frozen_replica_lose_and_double_nothing(tmp_path, postgres_url, redis_url):
    store = create_database(postgres_url, "replicas_crash")
    broker = fresh_redis(redis_url, 7)
    names = [f"run{i:02d}" for i in range(COUNT)]
    cluster = Cluster(
        tmp_path,
        store,
        broker,
        replicas=3,
        lease_seconds=LEASE,
        poll_seconds=POLL,
        visibility_timeout=2,
        client_timeout=5,
        handlers={"slow_worker.py": SLOW_WORKER},
    )
    with cluster:
        clients = [Client(url, timeout=10) for url in cluster.endpoints]
        try:
            clients[KILLED].create_flow("seed", SEED)
            cluster.start_workers(3, concurrency=2, handler="slow_worker:handle")
            for i, name in enumerate(names):  # every replica starts some
                clients[i % 3].start_execution("seed", {"source": name}, name=name)
            steady = clients[STEADY]
            wait_for("three executions' end", lambda: _count(steady, "Succeeded") >= 3, 30, 0.02)
            # The faults must land while work is in flight, or the test proves little.
            assert _count(steady, "Running") > 0, "every execution ended before the faults"

            cluster.kill(KILLED)
            cluster.freeze(FROZEN)
            frozen_at = time.monotonic()
            balancer = cluster.balancer
            assert balancer is not None
            frozen_host = f"{cluster.hosts[FROZEN]}:{cluster.port}"
            wait_for(
                "the balancer's check to take the frozen replica out",
                lambda: frozen_host not in balancer.healthy(),
                20,
            )
            # Frozen past its lease, so that the others take over what it had claimed, and
            # past the database's idle-in-transaction timeout, should it hold a transaction.
            time.sleep(max(0.0, frozen_at + LEASE + 2 * POLL + 2 - time.monotonic()))
            cluster.thaw(FROZEN)
            wait_for(
                "the resumed replica back in the balancer",
                lambda: frozen_host in balancer.healthy(),
                30,
            )

            deadline = time.monotonic() + 45 + COUNT * 0.3
            for name in names:
                info = steady.describe_execution("seed", name)
                while info.status == "Running" and time.monotonic() < deadline:
                    left = max(1, int(deadline - time.monotonic()))
                    info = steady.describe_execution("seed", name, wait_seconds=min(20, left))
                assert info.status == "Succeeded", (name, info.status, info.raw)
                assert info.output == expected_output(), name

            for survivor in (FROZEN, STEADY):
                assert _count(clients[survivor], "Running") == 0, survivor
                assert _count(clients[survivor], "Succeeded") == COUNT, survivor
            for name in names:
                events = history(steady, "seed", name)
                check_execution(events, name)
                assert history(clients[FROZEN], "seed", name) == events, name
            # What a dead replica had claimed may wait out its lease before it is tidied.
            wait_for("no outbox rows or timers left", lambda: not _leftovers(store, names), 20)
        finally:
            for client in clients:
                client.close()
        codes = cluster.stop()["replicas"]
    assert codes[FROZEN] == 0 and codes[STEADY] == 0, (codes, cluster.logs())
