"""FcIntegration driven by the real engine, in-process: sagas, retries, catch, timeouts, callbacks.

Every test builds `Engine(open_store("memory://"), integrations=[FcIntegration(...)])` on its
own event loop, with handler modules written to a temporary directory on the Python path, and
is bounded: retries use one-second intervals, and nothing waits for more than a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import relayflow_fc
from relayflow.config import load_config
from relayflow.engine import Engine
from relayflow.plugins import PluginManager
from relayflow.store import open_store
from relayflow.testing import bounded, fdl
from relayflow.testing import event_details as events
from relayflow.testing import run_to_end as run
from relayflow_fc import FcIntegration, FcSettings

TEST_TIMEOUT = 5.0

Write = Callable[[str], str]


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """Write a handler module (unique name) into a directory on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def write(source: str) -> str:
        name = f"fc_e2e_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    yield write
    for name in made:
        sys.modules.pop(name, None)


def engine(functions: dict[str, str], **settings: Any) -> Engine:
    integration = FcIntegration(FcSettings(functions=functions, **settings))
    return Engine(open_store("memory://"), integrations=[integration], poll_seconds=0.1)


# ---------------------------------------------------------------------------------------------
# A saga: book, book, and compensate when the second booking fails


TRIP = """
import json

BOOKED = []
CANCELLED = []

class BookTrainTicketError(Exception):
    pass

def book_flight(event, context):
    trip = json.loads(event)["trip"]
    BOOKED.append(f"flight-{trip}")
    return {"flightId": f"flight-{trip}"}

def book_train(event, context):
    data = json.loads(event)
    if data.get("soldOut"):
        raise BookTrainTicketError(f"no seats for {data['trip']}")
    return json.dumps({"trainId": f"train-{data['trip']}"})

def cancel_flight(event, context):
    flight = json.loads(event)["flightId"]
    CANCELLED.append(flight)
    return {"cancelled": flight}
"""

SAGA = fdl("""
- type: task
  name: bookFlight
  resourceArn: !Ref trip/bookFlight
- type: task
  name: bookTrain
  resourceArn: acs:fc:cn-hangzhou:1234567890:services/trip.LATEST/functions/bookTrain
  catch:
    - errors: [BookTrainTicketError]
      goto: cancelFlight
- type: succeed
  name: booked
- type: task
  name: cancelFlight
  resourceArn: acs:fc:::services/trip/functions/cancelFlight
- type: fail
  name: tripFailed
  error: BookTripFailed
  cause: the train is sold out; the flight was cancelled
""")


@bounded(seconds=TEST_TIMEOUT)
async def test_a_saga_books_both_or_compensates_and_fails_with_a_named_error(
    module: Write,
) -> None:
    name = module(TRIP)
    functions = {
        "trip/bookFlight": f"{name}:book_flight",
        "trip/bookTrain": f"{name}:book_train",
        "trip/cancelFlight": f"{name}:cancel_flight",
    }
    async with engine(functions) as eng:
        await eng.create_flow("trip", SAGA)
        ok = await run(eng, "trip", {"trip": "T1"}, "ok")
        assert ok.status == "Succeeded"
        assert ok.output == {"flightId": "flight-T1", "trainId": "train-T1"}

        bad = await run(eng, "trip", {"trip": "T2", "soldOut": True}, "sold-out")
        assert (bad.status, bad.error) == ("Failed", "BookTripFailed")
        assert bad.cause == "the train is sold out; the flight was cancelled"
        history = await events(eng, "trip", "sold-out")
    handlers = sys.modules[name]
    assert handlers.BOOKED == ["flight-T1", "flight-T2"]
    assert handlers.CANCELLED == ["flight-T2"]
    failed = [detail for kind, detail in history if kind == "TaskFailed"]
    assert failed == [{"error": "BookTrainTicketError", "cause": "no seats for T2"}]
    succeeded = [detail["output"] for kind, detail in history if kind == "TaskSucceeded"]
    assert succeeded == [{"flightId": "flight-T2"}, {"cancelled": "flight-T2"}]


# ---------------------------------------------------------------------------------------------
# Retry, catch and errorMappings


@bounded(seconds=TEST_TIMEOUT)
async def test_retries_succeed_on_a_later_attempt(module: Write) -> None:
    name = module(
        """
        CALLS = []

        class TemporaryError(Exception):
            pass

        def flaky(event, context):
            CALLS.append((context.attempt, context.request_id))
            if len(CALLS) < 3:
                raise TemporaryError(f"try {len(CALLS)}")
            return {"calls": len(CALLS)}
        """
    )
    flow = fdl("""
    - type: task
      name: flaky
      resourceArn: !Ref svc/flaky
      retry:
        - errors: [SomethingElse]
          maxAttempts: 0
        - errors: [TemporaryError]
          intervalSeconds: 1
          maxAttempts: 3
          multiplier: 1
    """)
    async with engine({"svc/flaky": f"{name}:flaky"}) as eng:
        await eng.create_flow("f", flow)
        info = await run(eng, "f", {}, "run1")
        history = await events(eng, "f", "run1")
    assert (info.status, info.output) == ("Succeeded", {"calls": 3})
    calls = sys.modules[name].CALLS
    assert [attempt for attempt, _ in calls] == [0, 1, 2]
    assert len({request_id for _, request_id in calls}) == 3
    failed = [detail for kind, detail in history if kind == "TaskFailed"]
    assert failed == [
        {"error": "TemporaryError", "cause": "try 1"},
        {"error": "TemporaryError", "cause": "try 2"},
    ]


ROUTES = """
import json

class SoldOut(Exception):
    pass

class PaymentDeclined(Exception):
    pass

def book(event, context):
    how = json.loads(event)["how"]
    if how == "sold":
        raise SoldOut("no seats")
    if how == "declined":
        raise PaymentDeclined("card refused")
    if how == "other":
        return {}["nothing"]
    if how == "list":
        return [1, 2, 3]
    return {"booked": True}
"""


def routed(policies: str) -> str:
    steps = f"""
    - type: task
      name: book
      resourceArn: !Ref trip/book
      catch:
{textwrap.indent(textwrap.dedent(policies).strip(chr(10)), " " * 8)}
    - type: pass
      name: booked
      end: true
    """
    for route in ("soldOut", "declined", "other"):
        steps += f"""
    - type: pass
      name: {route}
      end: true
      outputMappings:
        - target: route
          source: {route}
    """
    return fdl(steps)


@bounded(seconds=TEST_TIMEOUT)
async def test_catch_policies_are_matched_in_order(module: Write) -> None:
    name = module(ROUTES)
    specific_first = routed("""
    - errors: [SoldOut]
      goto: soldOut
    - errors: [PaymentDeclined, SoldOut]
      goto: declined
    - errors: [FnF.ALL]
      goto: other
    """)
    catch_all_first = routed("""
    - errors: [FnF.ALL]
      goto: other
    - errors: [SoldOut]
      goto: soldOut
    """)
    async with engine({"trip/book": f"{name}:book"}) as eng:
        await eng.create_flow("specific", specific_first)
        await eng.create_flow("catchall", catch_all_first)
        routes = {}
        for how in ("sold", "declined", "other", "list", "fine"):
            info = await run(eng, "specific", {"how": how}, f"s-{how}")
            assert info.status == "Succeeded", (how, info.error, info.cause)
            routes[how] = (info.output or {}).get("route")
        info = await run(eng, "catchall", {"how": "sold"}, "c-sold")
        assert info.status == "Succeeded" and info.output == {"route": "other"}
    assert routes == {
        "sold": "soldOut",
        "declined": "declined",
        "other": "other",  # KeyError
        "list": "other",  # FnF.InvalidLocal
        "fine": None,
    }


@bounded(seconds=TEST_TIMEOUT)
async def test_error_mappings_carry_the_error_and_cause_to_the_catch_target(
    module: Write,
) -> None:
    name = module(
        """
        import json

        class BookTrainTicketError(Exception):
            pass

        def book_train(event, context):
            raise BookTrainTicketError("sold out")

        def notify(event, context):
            data = json.loads(event)
            return {"notified": f"{data['errCode']}: {data['errMsg']}"}
        """
    )
    flow = fdl("""
    - type: task
      name: bookTrain
      resourceArn: !Ref trip/bookTrain
      errorMappings:
        - target: errCode
          source: $local.error
        - target: errMsg
          source: $local.cause
      catch:
        - errors: [BookTrainTicketError]
          goto: notify
    - type: succeed
      name: done
    - type: task
      name: notify
      resourceArn: !Ref trip/notify
    """)
    functions = {"trip/bookTrain": f"{name}:book_train", "trip/notify": f"{name}:notify"}
    async with engine(functions) as eng:
        await eng.create_flow("f", flow)
        info = await run(eng, "f", {"trip": 1}, "run1")
    assert info.status == "Succeeded"
    assert info.output == {
        "errCode": "BookTrainTicketError",
        "errMsg": "sold out",
        "notified": "BookTrainTicketError: sold out",
    }


@bounded(seconds=TEST_TIMEOUT)
async def test_an_invalid_local_and_a_missing_handler_are_engine_errors(module: Write) -> None:
    name = module("def listing(event, context):\n    return [1]\n")
    flow = fdl("""
    - type: task
      name: bad
      resourceArn: !Ref svc/listing
      errorMappings:
        - target: code
          source: $local.error
      catch:
        - errors: [FnF.InvalidLocal]
          goto: missing
    - type: task
      name: missing
      resourceArn: !Ref svc/missing
    """)
    functions = {"svc/listing": f"{name}:listing", "svc/missing": f"{name}:nope"}
    async with engine(functions) as eng:
        await eng.create_flow("f", flow)
        info = await run(eng, "f", {}, "run1")
    assert (info.status, info.error) == ("Failed", "FnF.RuntimeError")
    assert "'svc/missing'" in (info.cause or "") and "has no attribute 'nope'" in (info.cause or "")


# ---------------------------------------------------------------------------------------------
# Timeouts


SLOW = """
import time
def slow(event, context):
    time.sleep(3)
    return {"late": "never seen"}
"""


@bounded(seconds=TEST_TIMEOUT)
async def test_a_task_timeout_is_caught_while_the_handler_still_runs(module: Write) -> None:
    name = module(SLOW)
    flow = fdl("""
    - type: task
      name: slow
      resourceArn: !Ref svc/slow
      timeoutSeconds: 1
      catch:
        - errors: [FnF.TaskTimeout]
          goto: late
    - type: succeed
      name: done
    - type: pass
      name: late
      outputMappings:
        - target: timedOut
          source: true
    """)
    started = time.monotonic()
    eng = engine({"svc/slow": f"{name}:slow"})
    await eng.start()
    try:
        await eng.create_flow("f", flow)
        info = await run(eng, "f", {}, "run1", seconds=2.5)
        history = await events(eng, "f", "run1")
    finally:
        await eng.close(grace_seconds=0)
    assert (info.status, info.output) == ("Succeeded", {"timedOut": True})
    assert [kind for kind, _ in history].count("TaskTimedOut") == 1
    assert time.monotonic() - started < 2.5


@bounded(seconds=TEST_TIMEOUT)
async def test_an_uncaught_task_timeout_fails_the_execution(module: Write) -> None:
    name = module(SLOW)
    flow = fdl("""
    - type: task
      name: slow
      resourceArn: !Ref svc/slow
      timeoutSeconds: 1
    """)
    started = time.monotonic()
    async with engine({"svc/slow": f"{name}:slow"}) as eng:  # a normal close, with its grace
        await eng.create_flow("f", flow)
        info = await run(eng, "f", {}, "run1", seconds=2.5)
    assert (info.status, info.error) == ("Failed", "FnF.TaskTimeout")
    assert time.monotonic() - started < 3.0


# ---------------------------------------------------------------------------------------------
# waitForCallback, reported from inside the process


CALLBACKS = """
import json, threading

GO = threading.Event()

class SendFailed(Exception):
    pass

def approve_now(event, context):
    data = json.loads(event)
    assert data["taskToken"] == context.token
    context.report_succeeded({"approved": data["order"]})
    return "ignored"

def approve_later(event, context):
    data = json.loads(event)
    def worker():
        GO.wait(3)
        context.report_failed("Rejected", f"order {data['order']} was rejected")
    threading.Thread(target=worker, daemon=True).start()

def cannot_send(event, context):
    raise SendFailed("the queue is down")
"""


def callback_flow(function: str) -> str:
    return fdl(f"""
    - type: task
      name: approve
      resourceArn: !Ref orders/{function}
      pattern: waitForCallback
      timeoutSeconds: 4
      inputMappings:
        - target: order
          source: $input.order
        - target: taskToken
          source: $context.task.token
    """)


@bounded(seconds=TEST_TIMEOUT)
async def test_wait_for_callback_finishes_through_the_context(module: Write) -> None:
    name = module(CALLBACKS)
    functions = {
        f"orders/{f}": f"{name}:{f}" for f in ("approve_now", "approve_later", "cannot_send")
    }
    async with engine(functions) as eng:
        for f in functions:
            await eng.create_flow(f.split("/")[1], callback_flow(f.split("/")[1]))
        for i in range(10):  # the handler reports at once: TaskSubmitted still comes first
            now = await run(eng, "approve_now", {"order": i}, f"now-{i}")
            assert (now.status, now.output) == ("Succeeded", {"approved": i})
            history = await events(eng, "approve_now", f"now-{i}")
            tasks = [kind for kind, _ in history if kind.startswith("Task")]
            assert tasks == ["TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded"]

        await eng.start_execution("approve_later", {"order": 8}, name="later")
        await asyncio.sleep(0.2)
        waiting = await eng.describe_execution("approve_later", "later")
        assert waiting.status == "Running"
        sys.modules[name].GO.set()
        later = await run(eng, "approve_later", {"order": 8}, "later")
        assert (later.status, later.error, later.cause) == (
            "Failed",
            "Rejected",
            "order 8 was rejected",
        )

        broken = await run(eng, "cannot_send", {"order": 9}, "broken")
        assert (broken.status, broken.error, broken.cause) == (
            "Failed",
            "SendFailed",
            "the queue is down",
        )
        history = await events(eng, "cannot_send", "broken")
        tasks = [kind for kind, _ in history if kind.startswith("Task")]
        assert tasks == ["TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskFailed"]


# ---------------------------------------------------------------------------------------------
# From relayflow.toml to a finished execution


@bounded(seconds=TEST_TIMEOUT)
async def test_configured_through_relayflow_toml_and_the_plugin_manager(
    module: Write, tmp_path: Path
) -> None:
    name = module(TRIP)
    path = tmp_path / "relayflow.toml"
    path.write_text(
        "[integrations.fc.functions]\n"
        f'"trip/bookFlight" = "{name}:book_flight"\n'
        f'"trip/bookTrain" = "{name}:book_train"\n'
        f'"trip/cancelFlight" = "{name}:cancel_flight"\n'
    )
    config = load_config(str(path))
    manager = PluginManager()
    manager.register(relayflow_fc, "fc-test")
    integrations = manager.integrations(config)
    async with Engine(open_store("memory://"), integrations=integrations, poll_seconds=0.1) as eng:
        await eng.create_flow("trip", SAGA)
        info = await run(eng, "trip", {"trip": "T3"}, "run1")
    assert info.status == "Succeeded" and info.output is not None
    assert info.output["trainId"] == "train-T3"


def test_relayflow_run_finds_handlers_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "trip_functions.py").write_text(textwrap.dedent(TRIP))
    (tmp_path / "trip.yaml").write_text(SAGA)
    (tmp_path / "relayflow.toml").write_text(
        '[engine]\nstore = "memory://"\n\n'
        "[integrations.fc.functions]\n"
        '"trip/bookFlight" = "trip_functions:book_flight"\n'
        '"trip/bookTrain" = "trip_functions:book_train"\n'
        '"trip/cancelFlight" = "trip_functions:cancel_flight"\n'
    )
    relayflow = Path(sys.executable).parent / "relayflow"
    command = [str(relayflow), "run", "trip.yaml", "--config", "relayflow.toml", "--input"]
    ok = subprocess.run(
        [*command, '{"trip": "T4"}'], cwd=tmp_path, capture_output=True, text=True, timeout=10
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["trainId"] == "train-T4"
    bad = subprocess.run(
        [*command, '{"trip": "T5", "soldOut": true}'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert bad.returncode == 1, bad.stderr
    assert json.loads(bad.stdout)["error"] == "BookTripFailed"
