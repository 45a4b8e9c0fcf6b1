"""The floors under bench_queue.py's latency target do what the benchmark says they do.

`contrib/bench/floor.py` runs `floor_server.py` in relayflow's place: one server that only
publishes the next message for each report, and one that first commits the report to
PostgreSQL. A floor that skipped its commit, or published nothing, would make the benchmark's
comparison a lie; this test runs both on the session's real Redis and PostgreSQL.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.replicas.harness import fresh_redis
from tests.services import fresh_database

pytest.importorskip("psycopg")

import psycopg
from floor import measure_floors  # contrib/bench, which the harness puts on the path


def test_each_floor_answers_every_report_with_a_message_and_only_one_commits(
    tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    transport = fresh_redis(redis_url, 8)
    with fresh_database(postgres_url, "floor_" + uuid.uuid4().hex[:12]) as store:
        figures = measure_floors(
            tmp_path, transport, 4, None, stores={"bare": None, "durable": store}
        )
        with psycopg.connect(store, autocommit=True) as conn:
            reports = conn.execute("SELECT reports FROM floor_state WHERE id = 1").fetchone()
            events = conn.execute("SELECT count(*), min(body) FROM floor_events").fetchone()

    # Four samples each, every sample three reports, each report one message taken.
    assert set(figures) == {"bare", "durable"}
    for name in ("bare", "durable"):
        latency = figures[name]["report_to_next_message"]
        assert latency["n"] == 4
        assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    # Only the durable floor wrote, once for each of its twelve reports, the Output it got.
    assert reports == (12,)
    assert events == (12, '{"rows":[{"id":1}]}')
