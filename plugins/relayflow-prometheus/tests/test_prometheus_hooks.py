"""The plugin on a PluginManager with a real engine, on SQLite and PostgreSQL.

The metrics are read the way Prometheus reads them: through the route the plugin registers (its
ASGI app, called as the server calls it) and parsed from the text exposition format.
"""

from __future__ import annotations

import asyncio

import pytest
from prometheus_testkit import manager_with, metrics_of, samples, scrape, value

from relayflow.config import ConfigError
from relayflow.engine import Submitted, Succeeded, TaskRequest
from relayflow.plugins.events import ApiRequestEvent, CommitEvent
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import sqlite_or_postgres

QUEUE = "acs:mns:::/queues/jobs/messages"
OK = fdl("""
- type: task
  name: work
  action: test:Work
- type: pass
  name: rest
""")
BAD = fdl("""
- type: fail
  name: boom
  error: Boom
  cause: on purpose
""")
HELD = fdl(f"""
- type: task
  name: hold
  resourceArn: {QUEUE}
  pattern: waitForCallback
""")


def test_inert_without_the_table_or_when_disabled():
    for table in (None, {"enabled": False, "path": "/m"}):
        manager = manager_with(table)
        assert manager.http_routes() == {}
        assert not manager.observes_work
        assert not manager.observes_lifecycle
        assert "prometheus.metrics" not in manager.infos


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"enabled": True, "buckets": [1, 0.5]}, ["buckets", "increase"]),
        ({"enabled": True, "path": "metrics"}, ["path", "absolute"]),
        ({"enabled": True, "allow_from": ["nowhere"]}, ["allow_from", "IP network"]),
        ({"enabled": True, "max_flows": 0}, ["max_flows"]),
        ({"enabled": True, "waiting_refresh_seconds": 0.01}, ["waiting_refresh_seconds"]),
        ({"enabled": True, "colour": "red"}, ["colour"]),
    ],
)
def test_a_bad_table_is_one_sentence_naming_the_key(table, words):
    with pytest.raises(ConfigError) as caught:
        manager_with(table)
    message = str(caught.value)
    assert "prometheus" in message
    assert all(word in message for word in words), message
    assert "\n" not in message


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    yield from sqlite_or_postgres(request, "prom_", f"sqlite:///{tmp_path / 'r.db'}")


@bounded(seconds=20)
async def test_executions_steps_tasks_and_waiting_work(store_url):
    manager = manager_with({"enabled": True})
    metrics = metrics_of(manager)

    async def work(request: TaskRequest) -> Succeeded:
        return Succeeded({"done": True})

    async def park(request: TaskRequest) -> Submitted:
        return Submitted({"MessageId": "m"})

    handlers = {"test:Work": work, QUEUE: park}
    async with make_engine(handlers, store=store_url, plugins=manager) as engine:
        for flow, text in (("ok", OK), ("bad", BAD), ("held", HELD)):
            await engine.create_flow(flow, text)
        for i in range(3):
            await engine.start_execution("ok", {}, name=f"ok{i}")
        for i in range(2):
            await engine.start_execution("bad", {}, name=f"bad{i}")
            await engine.start_execution("held", {}, name=f"held{i}")
        for flow, names in (("ok", 3), ("bad", 2)):
            for i in range(names):
                await engine.describe_execution(flow, f"{flow}{i}", wait_seconds=5)

        async def both_held_submitted() -> bool:
            found = await engine.list_waiting("held")
            return len(found.items) == 2

        await eventually(both_held_submitted, 5, "both held tasks waiting")
        snapshot = await metrics.waiting.refresh(engine)
        assert snapshot.tasks == {("held", QUEUE): 2}
        status, text = await scrape(manager)

    assert status == 200
    assert value(text, "relayflow_executions_started_total", flow="ok") == 3
    assert value(text, "relayflow_executions_started_total", flow="held") == 2
    assert value(text, "relayflow_executions_ended_total", flow="ok", status="Succeeded") == 3
    assert value(text, "relayflow_executions_ended_total", flow="bad", status="Failed") == 2
    assert value(text, "relayflow_executions_ended_total", flow="held", status="Succeeded") == 0
    # ok: two steps each; bad: its fail step; held: its task step has not ended.
    assert value(text, "relayflow_step_duration_seconds_count", flow="ok") == 6
    assert value(text, "relayflow_step_duration_seconds_count", flow="bad") == 2
    assert value(text, "relayflow_step_duration_seconds_count", flow="held") == 0
    task = {"flow": "ok", "resource": "test:Work", "pattern": "requestResponse"}
    assert (
        value(text, "relayflow_task_attempt_duration_seconds_count", **task, outcome="succeeded")
        == 3
    )
    assert value(text, "relayflow_tasks_waiting", flow="held", resource=QUEUE) == 2
    assert value(text, "relayflow_task_oldest_waiting_seconds", flow="held") >= 0
    assert ("relayflow_task_oldest_waiting_seconds", (("flow", "held"),)) in samples(text)
    assert value(text, "relayflow_waiting_scan_truncated") == 0
    assert value(text, "relayflow_waiting_refreshed_timestamp_seconds") > 0


@bounded(seconds=20)
async def test_replicas_report_the_same_store_wide_waiting_gauge(postgres_url):
    from tests.services import fresh_database

    async def park(request: TaskRequest) -> Submitted:
        return Submitted({"MessageId": "m"})

    with fresh_database(postgres_url, "prom_replicas") as url:
        managers = [manager_with({"enabled": True}) for _ in range(2)]
        engines = [make_engine({QUEUE: park}, store=url, plugins=m) for m in managers]
        async with engines[0], engines[1]:
            await engines[0].create_flow("held", HELD)
            for i in range(3):  # two on one replica, one on the other
                await engines[i % 2].start_execution("held", {}, name=f"h{i}")

            async def all_waiting() -> bool:
                return len((await engines[0].list_waiting("held")).items) == 3

            await eventually(all_waiting, 5, "three tasks waiting")
            for manager, engine in zip(managers, engines, strict=True):
                await metrics_of(manager).waiting.refresh(engine)
                _, text = await scrape(manager)
                assert value(text, "relayflow_tasks_waiting", flow="held", resource=QUEUE) == 3
                # Each replica counts only the executions it started itself.
            started = [
                value((await scrape(m))[1], "relayflow_executions_started_total", flow="held")
                for m in managers
            ]
            assert sorted(started) == [1, 2]


@bounded(seconds=10)
async def test_work_and_api_hooks_feed_their_histograms():
    manager = manager_with({"enabled": True, "max_resources": 2, "latency_buckets": [0.01, 1]})
    assert manager.observes_work and manager.observes_lifecycle
    manager.batch_committed(CommitEvent(jobs=7, seconds=0.004, store="sqlite"))
    manager.batch_committed(CommitEvent(jobs=1, seconds=2.0, store="sqlite"))
    for resource in ("r1", "r2", "r3", "r4"):
        manager.outbox_dispatched(resource, 0.002)
    manager.outbox_dispatched("r1", None)
    manager.timers_fired(3, 0.5)
    manager.api_request_finished(ApiRequestEvent("StartExecution", 200, "", 0.003))
    manager.api_request_finished(ApiRequestEvent("StartExecution", 400, "FlowNotExists", 0.001))
    _, text = await scrape(manager)
    commit = "relayflow_store_commit_duration_seconds"
    assert value(text, f"{commit}_bucket", store="sqlite", le="0.01") == 1
    assert value(text, f"{commit}_bucket", store="sqlite", le="+Inf") == 2
    assert value(text, "relayflow_store_commit_jobs_sum", store="sqlite") == 8
    dispatched = "relayflow_outbox_dispatched_total"
    assert value(text, dispatched, resource="r2", taken_over="0") == 1
    assert value(text, dispatched, resource="(other)", taken_over="0") == 2  # past max_resources
    assert value(text, dispatched, resource="r1", taken_over="1") == 1
    assert value(text, "relayflow_outbox_lag_seconds_count") == 4
    assert value(text, "relayflow_timers_fired_total") == 3
    assert value(text, "relayflow_timer_lag_seconds_bucket", le="1.0") == 1
    api = "relayflow_api_requests_total"
    assert value(text, api, action="StartExecution", code="200", error="") == 1
    assert value(text, api, action="StartExecution", code="400", error="FlowNotExists") == 1
    assert value(text, "relayflow_api_request_duration_seconds_count", action="StartExecution") == 2


@bounded(seconds=10)
async def test_flow_label_is_bounded():
    manager = manager_with({"enabled": True, "max_flows": 2, "max_open_steps": 100})

    async def work(request: TaskRequest) -> Succeeded:
        return Succeeded({})

    async with make_engine({"test:Work": work}, plugins=manager) as engine:
        for flow in ("f1", "f2", "f3", "f4"):
            await engine.create_flow(flow, OK)
            await engine.start_execution(flow, {}, name="x")
            await engine.describe_execution(flow, "x", wait_seconds=5)
    _, text = await scrape(manager)
    started = {
        dict(labels)["flow"]: v
        for (name, labels), v in samples(text).items()
        if name == "relayflow_executions_started_total"
    }
    assert started == {"f1": 1, "f2": 1, "(other)": 2}


@bounded(seconds=10)
async def test_allow_from_refuses_other_clients_and_path_is_configurable():
    manager = manager_with(
        {"enabled": True, "path": "/internal/metrics", "allow_from": ["10.0.0.0/8"]}
    )
    status, text = await scrape(manager, "/internal/metrics", client="10.1.2.3")
    assert status == 200 and "relayflow_executions_started_total" in text
    status, text = await scrape(manager, "/internal/metrics", client="192.168.1.1")
    assert status == 403 and "relayflow_" not in text
    await asyncio.sleep(0)


@bounded(seconds=10)
async def test_a_failing_waiting_read_is_logged_and_the_last_values_kept(caplog):
    manager = manager_with({"enabled": True, "waiting_refresh_seconds": 1})
    metrics = metrics_of(manager)

    async def park(request: TaskRequest) -> Submitted:
        return Submitted({"MessageId": "m"})

    engine = make_engine({QUEUE: park}, plugins=manager)
    async with engine:
        await engine.create_flow("held", HELD)
        await engine.start_execution("held", {}, name="h")

        async def waiting() -> bool:
            return len((await engine.list_waiting("held")).items) == 1

        await eventually(waiting, 5, "the held task")
        await metrics.waiting.refresh(engine)
    # The engine is closed: every read fails, the loop goes on and the gauge keeps its value.
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(metrics.waiting.run(engine), 0.5)
    assert "could not list waiting work" in caplog.text
    _, text = await scrape(manager)
    assert value(text, "relayflow_tasks_waiting", flow="held", resource=QUEUE) == 1
