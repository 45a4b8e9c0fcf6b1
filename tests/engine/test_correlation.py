"""Reports by correlation key (`relayflow.engine.correlation`), on SQLite and PostgreSQL.

A `waitForCallback` task declares `correlationKey`; reports name it by flow and key instead of
its token. Checked: both reports, first-report-wins across the two forms, unknown keys, one
waiting attempt per key, a retry's new attempt, bad key values, the end of an execution, a
stale key, and two PostgreSQL engines racing reports and registrations. The engines read a
clock the test moves, so retries and timeouts come due when the test says; waits are bounded.
Flow names are unique per test: on PostgreSQL the module's tests share one database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from relayflow.engine import Engine
from relayflow.engine.correlation import KIND, Waiting
from relayflow.errors import EngineError
from relayflow.fdl import DefinitionError, flow_json_schema, load_flow
from relayflow.store import FlowObjectRow, Transaction
from relayflow.testing import bounded, eventually, fdl, make_engine
from tests.engine.helpers import (
    QUEUE,
    Clock,
    Worker,
    finished,
    history,
    refused,
    running,
    sqlite_or_postgres,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh in-memory SQLite store per engine, or one PostgreSQL database for the module."""
    yield from sqlite_or_postgres(request, "correlation_")


@pytest.fixture
def flow() -> str:
    """A flow name no other test of the module uses."""
    return "c" + uuid.uuid4().hex[:10]


def engine_on(store: str, worker: Worker, clock: Clock | None = None, **options: Any) -> Engine:
    return make_engine(
        {QUEUE: worker.queue}, store=store, clock=clock or Clock(T0), poll_seconds=0.05, **options
    )


def order_flow(extra: str = "", after: str = "") -> str:
    """`pay` waits for a report, reachable by the order's id; ``extra`` adds to the step."""
    step = f"""
    - type: task
      name: pay
      resourceArn: {QUEUE}
      pattern: waitForCallback
      correlationKey: $.orderId
"""
    return fdl(step + extra.strip("\n") + "\n" + after.strip("\n"))


CAUGHT = order_flow(
    """
      catch:
        - errors: [FnF.CorrelationKeyInUse, FnF.CorrelationKeyInvalid]
          goto: refused
    """,
    """
    - type: succeed
      name: paid
    - type: pass
      name: refused
    """,
)


async def keys(engine: Engine, flow: str) -> dict[str, Waiting | None]:
    """The keys the store holds for ``flow``, and the attempts they name."""

    def read(tx: Transaction) -> dict[str, Waiting | None]:
        return {o.name: Waiting.loads(o.data) for o in tx.list_objects(flow, KIND, limit=1000)}

    return await engine.read(read)


# ---------------------------------------------------------------------------------------------


@bounded
async def test_a_report_by_key_succeeds_or_fails_the_waiting_task(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, order_flow())
        await eng.start_execution(flow, {"orderId": "A-1"}, name="a")
        await eng.start_execution(flow, {"orderId": 2}, name="b")  # an integer key
        first = await worker.take(1)
        await worker.take(2)
        assert set(await keys(eng, flow)) == {"A-1", "2"}

        event_id = await eng.report_task_succeeded(
            output={"paid": True}, flow_name=flow, correlation_key="A-1"
        )
        events = {e.event_id: e for e in await history(eng, flow, "a")}
        assert events[event_id].type == "TaskSucceeded"
        assert events[event_id].schedule_event_id == first.task_id
        assert (await finished(eng, flow, "a")).output == {"paid": True}

        failed_id = await eng.report_task_failed(
            error="Card.Declined", cause="no funds", flow_name=flow, correlation_key=2
        )
        events = {e.event_id: e for e in await history(eng, flow, "b")}
        assert events[failed_id].detail == {"error": "Card.Declined", "cause": "no funds"}
        info = await finished(eng, flow, "b")
        assert (info.status, info.error) == ("Failed", "Card.Declined")
        assert await keys(eng, flow) == {}  # each closed attempt forgot its key


@bounded
async def test_the_first_report_wins_whatever_its_form(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, order_flow(after="    - type: pass\n      name: next"))
        await eng.start_execution(flow, {"orderId": "k1"}, name="by-key")
        await eng.start_execution(flow, {"orderId": "k2"}, name="by-token")
        by_key = await worker.take(1)
        by_token = await worker.take(2)
        if by_key.execution_name != "by-key":
            by_key, by_token = by_token, by_key

        await eng.report_task_succeeded(output={}, flow_name=flow, correlation_key="k1")
        await refused(
            "CorrelationKeyNotExists",
            eng.report_task_succeeded(output={}, flow_name=flow, correlation_key="k1"),
        )
        await refused("TaskAlreadyCompleted", eng.report_task_failed(by_key.token, "Late"))

        await eng.report_task_succeeded(by_token.token, {"via": "token"})
        err = await refused(
            "CorrelationKeyNotExists",
            eng.report_task_failed(error="Late", flow_name=flow, correlation_key="k2"),
        )
        assert err.status == 404 and "k2" in err.message
        assert (await finished(eng, flow, "by-token")).output == {"via": "token"}
        for name in ("by-key", "by-token"):
            types = [e.type for e in await history(eng, flow, name)]
            assert types.count("TaskSucceeded") == 1 and "TaskFailed" not in types


@bounded
async def test_concurrent_reports_by_key_only_one_wins(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, order_flow())
        await eng.start_execution(flow, {"orderId": "once"}, name="run")
        await worker.take(1)
        results = await asyncio.gather(
            *(
                eng.report_task_succeeded(output={"n": n}, flow_name=flow, correlation_key="once")
                for n in range(5)
            ),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, int)]
        losses = [r for r in results if isinstance(r, EngineError)]
        assert len(wins) == 1 and {e.code for e in losses} == {"CorrelationKeyNotExists"}
        assert (await finished(eng, flow, "run")).output == {"n": results.index(wins[0])}


@bounded
async def test_unknown_keys_flows_and_bad_arguments_are_refused(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, order_flow())
        await refused(
            "CorrelationKeyNotExists",
            eng.report_task_succeeded(output={}, flow_name=flow, correlation_key="nobody"),
        )
        await refused(
            "FlowNotExists",
            eng.report_task_succeeded(output={}, flow_name=flow + "x", correlation_key="k"),
        )
        bad: list[dict[str, Any]] = [
            {"token": "t", "flow_name": flow, "correlation_key": "k"},  # both forms
            {"flow_name": flow},  # half of the key form
            {"correlation_key": "k"},
            {"flow_name": flow, "correlation_key": "x" * 129},
            {"flow_name": flow, "correlation_key": "a\nb"},
            {"flow_name": flow, "correlation_key": "a\ud800"},
            {"flow_name": flow, "correlation_key": True},
            {"flow_name": "no spaces allowed", "correlation_key": "k"},
        ]
        for arguments in bad:
            err = await refused(
                "InvalidArgument", eng.report_task_succeeded(output={}, **arguments)
            )
            assert err.status == 400
            await refused("InvalidArgument", eng.report_task_failed(error="E", **arguments))
        # Neither form: an empty token, refused as it always was.
        await refused("TaskTokenMalformed", eng.report_task_succeeded("", {}))


@bounded
async def test_a_key_waits_in_one_execution_at_a_time(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, CAUGHT)
        await eng.start_execution(flow, {"orderId": "same"}, name="first")
        task = await worker.take(1)
        await eng.start_execution(flow, {"orderId": "same"}, name="second")
        second = await finished(eng, flow, "second")
        assert second.status == "Succeeded"  # caught: it went on to `refused`
        events = await history(eng, flow, "second")
        failed = [e for e in events if e.type == "TaskFailed"]
        assert failed[0].detail["error"] == "FnF.CorrelationKeyInUse"
        assert "'first'" in failed[0].detail["cause"]
        assert [e.step_name for e in events if e.type == "StepEntered"] == ["pay", "refused"]
        assert len(worker.requests) == 1  # the refused attempt never reached its integration
        assert await outbox(eng, flow, "second") == []  # nor will it, from another engine
        holder = Waiting("first", await uid(eng, flow), task.task_id)
        assert (await keys(eng, flow))["same"] == holder

        await eng.report_task_succeeded(output={}, flow_name=flow, correlation_key="same")
        await eng.start_execution(flow, {"orderId": "same"}, name="third")  # free again
        await worker.take(2)
        await eng.report_task_succeeded(output={"third": 1}, flow_name=flow, correlation_key="same")
        assert (await finished(eng, flow, "third")).output == {"third": 1}


async def outbox(engine: Engine, flow: str, name: str) -> list[Any]:
    """The outbox rows (task attempts not yet handed over) of an execution."""

    def read(tx: Transaction) -> list[Any]:
        row = tx.get_execution(flow, name)
        assert row is not None
        return tx.list_outbox(row.id)

    return await engine.read(read)


async def uid(engine: Engine, flow: str, name: str = "first") -> str:
    def read(tx: Transaction) -> str:
        row = tx.get_execution(flow, name)
        assert row is not None
        return row.uid

    return await engine.read(read)


@bounded
async def test_a_retry_opens_a_new_attempt_on_the_same_key(store_url: str, flow: str):
    worker, clock = Worker(), Clock(T0)
    retried = order_flow(
        """
      retry:
        - errors: [Try.Again]
          intervalSeconds: 10
          maxAttempts: 1
    """
    )
    async with engine_on(store_url, worker, clock) as eng:
        await eng.create_flow(flow, retried)
        await eng.start_execution(flow, {"orderId": 77}, name="run")
        first = await worker.take(1)
        await eng.report_task_failed(error="Try.Again", flow_name=flow, correlation_key=77)
        assert await keys(eng, flow) == {}  # waiting for the retry: nothing listens
        clock.now += 11
        second = await worker.take(2)
        assert second.task_id != first.task_id and second.attempt == first.attempt + 1
        await refused("TaskAlreadyCompleted", eng.report_task_succeeded(first.token, {}))
        await eng.report_task_succeeded(output={"at": 2}, flow_name=flow, correlation_key="77")
        assert (await finished(eng, flow, "run")).output == {"at": 2}


BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({}, "selects nothing"),
    ({"orderId": {"id": 1}}, "not an object"),
    ({"orderId": True}, "not a boolean"),
    ({"orderId": 1.5}, "fraction"),
    ({"orderId": "x" * 129}, "the limit is 128"),
    ({"orderId": 10**200}, "more than 128 digits"),
    ({"orderId": ""}, "must not be empty"),
    ({"orderId": "tab\there"}, "control characters"),
]


@bounded
async def test_a_bad_key_value_fails_the_attempt_catchably(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, CAUGHT)
        for n, (task_input, why) in enumerate(BAD_VALUES):
            await eng.start_execution(flow, task_input, name=f"run{n}")
            assert (await finished(eng, flow, f"run{n}")).status == "Succeeded"
            failed = [e for e in await history(eng, flow, f"run{n}") if e.type == "TaskFailed"]
            assert failed[0].detail["error"] == "FnF.CorrelationKeyInvalid"
            assert "correlationKey $.orderId of step 'pay'" in failed[0].detail["cause"]
            assert why in failed[0].detail["cause"]
            assert await outbox(eng, flow, f"run{n}") == []
        assert worker.requests == [] and await keys(eng, flow) == {}


@bounded
async def test_an_uncaught_bad_key_fails_the_execution(store_url: str, flow: str):
    async with engine_on(store_url, Worker()) as eng:
        await eng.create_flow(flow, order_flow())
        await eng.start_execution(flow, {"orderId": None}, name="run")
        info = await finished(eng, flow, "run")
        assert (info.status, info.error) == ("Failed", "FnF.CorrelationKeyInvalid")


@bounded
async def test_the_end_of_an_execution_frees_its_keys(store_url: str, flow: str):
    worker, clock = Worker(), Clock(T0)
    async with engine_on(store_url, worker, clock) as eng:
        await eng.create_flow(flow, order_flow("      timeoutSeconds: 30"))
        await eng.start_execution(flow, {"orderId": "stop"}, name="stopped")
        await eng.start_execution(flow, {"orderId": "late"}, name="timed-out")
        await worker.take(2)
        await eng.stop_execution(flow, "stopped", "Ops", "by hand")
        clock.now += 31
        info = await finished(eng, flow, "timed-out")
        assert info.error == "FnF.TaskTimeout"
        assert await keys(eng, flow) == {}
        for key in ("stop", "late"):
            await refused(
                "CorrelationKeyNotExists",
                eng.report_task_succeeded(output={}, flow_name=flow, correlation_key=key),
            )


@bounded
async def test_a_stale_key_is_refused_to_reports_and_taken_over(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, order_flow())
        # What an execution failed as unreadable leaves: a key whose attempt is gone.
        gone = Waiting("gone", "uid-of-nobody", 2)

        def leave(key: str) -> Any:
            def write(tx: Transaction, ctx: Any) -> bool:
                return tx.create_object(FlowObjectRow(flow, KIND, key, gone.dumps(), T0, T0))

            return eng._runtime.committer.submit(write)

        await leave("s1")
        await leave("s2")
        await refused(
            "CorrelationKeyNotExists",
            eng.report_task_succeeded(output={}, flow_name=flow, correlation_key="s1"),
        )
        assert set(await keys(eng, flow)) == {"s2"}  # the report dropped the stale key
        await eng.start_execution(flow, {"orderId": "s2"}, name="heir")
        task = await worker.take(1)
        heir = Waiting("heir", await uid(eng, flow, "heir"), task.task_id)
        assert (await keys(eng, flow))["s2"] == heir
        await eng.report_task_succeeded(output={"ok": 1}, flow_name=flow, correlation_key="s2")
        assert (await finished(eng, flow, "heir")).output == {"ok": 1}


@bounded
async def test_keys_in_parallel_branches_and_foreach_iterations(store_url: str, flow: str):
    worker = Worker()
    each = fdl(f"""
    - type: foreach
      name: lines
      iterationMapping:
        collection: $.lines
        item: line
      steps:
        - type: task
          name: ship
          resourceArn: {QUEUE}
          pattern: waitForCallback
          correlationKey: $.line.sku
    """)
    twice = fdl(f"""
    - type: parallel
      name: both
      branches:
        - steps:
            - type: task
              name: left
              resourceArn: {QUEUE}
              pattern: waitForCallback
              correlationKey: $.orderId
        - steps:
            - type: task
              name: right
              resourceArn: {QUEUE}
              pattern: waitForCallback
              correlationKey: $.orderId
    """)
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, each)
        lines = [{"sku": "s-1"}, {"sku": "s-2"}]
        await eng.start_execution(flow, {"lines": lines}, name="order")
        await worker.take(2)
        for sku in ("s-2", "s-1"):
            await eng.report_task_succeeded(output={sku: 1}, flow_name=flow, correlation_key=sku)
        assert (await finished(eng, flow, "order")).status == "Succeeded"

        # Two branches of one execution on one key: the second is refused; its failure
        # fails the parallel, which cancels the first, and the first's key is forgotten.
        await eng.create_flow(flow + "p", twice)
        await eng.start_execution(flow + "p", {"orderId": "p-1"}, name="both")
        info = await finished(eng, flow + "p", "both")
        assert (info.status, info.error) == ("Failed", "FnF.CorrelationKeyInUse")
        assert "an earlier attempt of this execution" in info.cause
        assert await keys(eng, flow + "p") == {}


@bounded
async def test_an_execution_whose_definition_no_longer_loads_is_failed(flow: str):
    worker = Worker()
    async with engine_on("memory://", worker) as eng:
        await eng.create_flow(flow, order_flow())
        await eng.start_execution(flow, {"orderId": "lost"}, name="run")
        await worker.take(1)

        def corrupt(tx: Any, ctx: Any) -> None:
            tx.db.execute(
                "UPDATE flow_versions SET definition = 'steps: [' WHERE name = ?", (flow,)
            )

        await eng._runtime.committer.submit(corrupt)
        eng._runtime.applier._flows.clear()  # as after a restart: the definition is read again
        await refused(
            "ExecutionNotRunning",
            eng.report_task_succeeded(output={}, flow_name=flow, correlation_key="lost"),
        )
        info = await eng.describe_execution(flow, "run")
        assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
        # Its key is stale now: refused to the next report, and dropped.
        await refused(
            "CorrelationKeyNotExists",
            eng.report_task_succeeded(output={}, flow_name=flow, correlation_key="lost"),
        )
        assert await keys(eng, flow) == {}


@bounded
async def test_a_redriven_execution_waits_on_its_key_again(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, order_flow())
        await eng.start_execution(flow, {"orderId": "again"}, name="run")
        await worker.take(1)
        await eng.report_task_failed(error="Card.Declined", flow_name=flow, correlation_key="again")
        assert (await finished(eng, flow, "run")).status == "Failed"
        assert await keys(eng, flow) == {}
        await eng.redrive_execution(flow, "run")
        await worker.take(2)
        await eng.report_task_succeeded(output={"ok": 2}, flow_name=flow, correlation_key="again")
        assert (await finished(eng, flow, "run")).output == {"ok": 2}


@bounded
async def test_deleting_the_flow_deletes_its_keys(store_url: str, flow: str):
    worker = Worker()
    async with engine_on(store_url, worker) as eng:
        await eng.create_flow(flow, order_flow())
        await eng.start_execution(flow, {"orderId": "k"}, name="run")
        await worker.take(1)
        await eng.stop_execution(flow, "run")  # delete_flow may refuse a running one
        await eng.delete_flow(flow)
        assert await keys(eng, flow) == {}


# ---------------------------------------------------------------------------------------------
# Two engines on one PostgreSQL database.


@pytest.fixture
def pg_url(store_url: str) -> str:
    if not store_url.startswith("postgres"):
        pytest.skip("replicas share a PostgreSQL store")
    return store_url


@bounded(seconds=20)
async def test_two_replicas_racing_reports_by_one_key_one_wins(pg_url: str, flow: str):
    worker = Worker()
    a, b = engine_on(pg_url, worker), engine_on(pg_url, worker)
    async with running(a, b):
        await a.create_flow(flow, order_flow())
        for n in range(3):
            await a.start_execution(flow, {"orderId": f"r{n}"}, name=f"run{n}")
        await eventually(lambda: len(worker.requests) >= 3, 5, "three tasks handed out")
        for n in range(3):
            results = await asyncio.gather(
                *(
                    engine.report_task_succeeded(
                        output={"by": i}, flow_name=flow, correlation_key=f"r{n}"
                    )
                    for i, engine in enumerate([a, b, a, b])
                ),
                return_exceptions=True,
            )
            wins = [r for r in results if isinstance(r, int)]
            losses = [r for r in results if isinstance(r, EngineError)]
            assert len(wins) == 1, results
            assert {e.code for e in losses} == {"CorrelationKeyNotExists"}
            info = await finished(b, flow, f"run{n}")
            assert info.output == {"by": results.index(wins[0])}


@bounded(seconds=20)
async def test_two_replicas_opening_one_key_at_once_one_waits(pg_url: str, flow: str):
    worker = Worker()
    a, b = engine_on(pg_url, worker), engine_on(pg_url, worker)
    async with running(a, b):
        await a.create_flow(flow, CAUGHT)
        names = [f"run{n}" for n in range(4)]
        await asyncio.gather(
            *(
                engine.start_execution(flow, {"orderId": "shared"}, name=name)
                for engine, name in zip([a, b, a, b], names, strict=True)
            )
        )
        await eventually(lambda: len(worker.requests) >= 1, 5, "one task handed out")
        waiting = worker.requests[0].execution_name
        for name in names:
            if name != waiting:
                assert (await finished(a, flow, name)).status == "Succeeded"  # caught
        assert len(worker.requests) == 1
        assert (await keys(a, flow))["shared"].execution == waiting  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# The definition.

STEP = """version: v1
type: flow
steps:
  - type: task
    name: ask
    resourceArn: acs:mns:::/queues/jobs/messages
    pattern: {pattern}
    correlationKey: {key}
"""


@pytest.mark.parametrize(
    ("pattern", "key", "message"),
    [
        ("requestResponse", "$.orderId", "correlationKey needs pattern: waitForCallback"),
        ("sync", "$.orderId", "this task's pattern is sync"),
        ("waitForCallback", "orderId", "must be a path of the task's input"),
        ("waitForCallback", "42", "must be a path of the task's input"),
        ("waitForCallback", "$local.orderId", "must read the task's input"),
        ("waitForCallback", "$context.execution.name", "must read the task's input"),
        ("waitForCallback", "$.items[*]", "it has a wildcard"),
        ("waitForCallback", "$.items[", "bad selector"),
    ],
)
def test_the_definition_refuses_bad_correlation_keys(pattern: str, key: str, message: str):
    with pytest.raises(DefinitionError) as info:
        load_flow(STEP.format(pattern=pattern, key=key))
    (problem,) = info.value.problems
    assert problem.line == 8  # the correlationKey line
    assert message in problem.message


def test_the_definition_takes_a_key_of_the_input():
    for key in ("$.orderId", "$input.order.id", '$["order id"]', "$.lines[0].sku"):
        step = load_flow(STEP.format(pattern="waitForCallback", key=key)).steps[0]
        assert str(step.correlation_key.raw) == key  # type: ignore[attr-defined]
    task = flow_json_schema()["$defs"]["TaskStep"]["properties"]
    (path, _null) = task["correlationKey"]["anyOf"]
    assert path["type"] == "string" and "waitForCallback only" in path["description"]
