"""Task reports on the engine: who wins, arguments, expiry and task tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac

import pytest

from relayflow.engine.tokens import mint_token
from relayflow.errors import EngineError
from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import (
    CALLBACK,
    QUEUE,
    Worker,
    finished,
    history,
    refused,
    retoken,
    token_text,
    types_of,
)


@bounded
async def test_first_report_wins():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        event_id = await eng.report_task_succeeded(request.token, {"first": True})
        events = {e.event_id: e for e in await history(eng, "f", "run1")}
        assert events[event_id].type == "TaskSucceeded"
        assert events[event_id].schedule_event_id == request.task_id
        assert events[event_id].detail == {"output": {"first": True}}
        err = await refused(
            "TaskAlreadyCompleted", eng.report_task_succeeded(request.token, {"second": True})
        )
        assert err.status == 409
        await refused("TaskAlreadyCompleted", eng.report_task_failed(request.token, "Oops"))
        info = await finished(eng, "f", "run1")
        assert info.output == {"first": True}
        assert (await types_of(eng, "f", "run1")).count("TaskSucceeded") == 1


@bounded
async def test_concurrent_reports_only_one_wins():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        results = await asyncio.gather(
            *(eng.report_task_succeeded(request.token, {"n": n}) for n in range(5)),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, int)]
        losses = [r for r in results if isinstance(r, EngineError)]
        assert len(wins) == 1 and len(losses) == 4
        assert {e.code for e in losses} == {"TaskAlreadyCompleted"}
        info = await finished(eng, "f", "run1")
        assert info.output == {"n": results.index(wins[0])}


@bounded
async def test_report_failed_returns_the_task_failed_event():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        event_id = await eng.report_task_failed(request.token, "Disk.Full", "no space")
        events = {e.event_id: e for e in await history(eng, "f", "run1")}
        assert events[event_id].type == "TaskFailed"
        assert events[event_id].detail == {"error": "Disk.Full", "cause": "no space"}
        info = await finished(eng, "f", "run1")
        assert (info.status, info.error, info.cause) == ("Failed", "Disk.Full", "no space")
        await refused("TaskAlreadyCompleted", eng.report_task_succeeded(request.token, {}))


@bounded
async def test_report_arguments_are_checked():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        await refused("InvalidArgument", eng.report_task_failed(request.token, ""))
        await refused("InvalidArgument", eng.report_task_failed(request.token, "E" * 129))
        await refused("InvalidArgument", eng.report_task_succeeded(request.token, "[1]"))
        await refused("InvalidArgument", eng.report_task_succeeded(request.token, "{"))
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        await eng.report_task_succeeded(request.token, '{"ok": 1}')
        assert (await finished(eng, "f", "run1")).output == {"ok": 1}


@bounded
async def test_report_after_the_attempt_timed_out_is_expired():
    flow = fdl(f"""
    - type: task
      name: slow
      resourceArn: {QUEUE}
      pattern: waitForCallback
      timeoutSeconds: 1
      retry:
        - errors: [FnF.TaskTimeout]
          intervalSeconds: 1
          maxAttempts: 1
    """)
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", flow)
        await eng.start_execution("f", {}, name="run1")
        first = await worker.take(1)
        await asyncio.sleep(1.5)
        assert "TaskTimedOut" in await types_of(eng, "f", "run1")
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        err = await refused("TaskExpired", eng.report_task_succeeded(first.token, {}))
        assert err.status == 409
        second = await worker.take(2, timeout=2.0)
        assert second.token != first.token and second.attempt == first.attempt + 1
        await eng.report_task_succeeded(second.token, {"late": False})
        info = await finished(eng, "f", "run1")
        assert info.status == "Succeeded" and info.output == {"late": False}
        timed_out = [e for e in await history(eng, "f", "run1") if e.type == "TaskTimedOut"]
        assert len(timed_out) == 1 and timed_out[0].detail["error"] == "FnF.TaskTimeout"


@bounded
async def test_a_task_timeout_without_retry_fails_the_execution():
    flow = fdl(f"""
    - type: task
      name: slow
      resourceArn: {QUEUE}
      pattern: waitForCallback
      timeoutSeconds: 1
    """)
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", flow)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        info = await finished(eng, "f", "run1", seconds=2.5)
        assert (info.status, info.error) == ("Failed", "FnF.TaskTimeout")
        await refused("ExecutionNotRunning", eng.report_task_succeeded(request.token, {}))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token!",
        "djEjYSNi",  # base64 of "v1#a#b"
        retoken("v2#f#run1#3#" + base64.b64encode(b"x" * 20).decode()),
        retoken("v1#f#run1#three#" + base64.b64encode(b"x" * 20).decode()),
        retoken("v1##run1#3#" + base64.b64encode(b"x" * 20).decode()),
        retoken("v1#f#run1#3#not base64!"),
        retoken("v1#f#run1#3#a#b"),
        base64.b64encode(b"\xff\xfe#\x00").decode(),
    ],
)
@bounded
async def test_garbled_tokens_are_malformed(token):
    async with make_engine() as eng:
        await eng.create_flow("f", CALLBACK)
        err = await refused("TaskTokenMalformed", eng.report_task_succeeded(token, {}))
        assert err.status == 400
        await refused("TaskTokenMalformed", eng.report_task_failed(token, "E"))


@bounded
async def test_altered_and_forged_tokens_are_invalid():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        text = token_text(request.token)
        prefix, mac_b64 = text.rsplit("#", 1)
        mac = base64.b64decode(mac_b64)
        assert len(mac) == 40  # an HMAC of the prefix, then one bound to the execution's uid
        for byte in (0, 20):
            flipped = mac[:byte] + bytes([mac[byte] ^ 1]) + mac[byte + 1 :]
            bad_mac = retoken(f"{prefix}#{base64.b64encode(flipped).decode()}")
            err = await refused("TaskTokenInvalid", eng.report_task_succeeded(bad_mac, {}))
            assert err.status == 403
        v, flow, execution, task_id = prefix.split("#")
        other_task = retoken(f"{v}#{flow}#{execution}#{int(task_id) + 1}#{mac_b64}")
        await refused("TaskTokenInvalid", eng.report_task_succeeded(other_task, {}))
        uid = await eng.read(lambda tx: tx.get_execution("f", "run1").uid)
        foreign = mint_token(b"another store's secret", "f", "run1", uid, request.task_id)
        await refused("TaskTokenInvalid", eng.report_task_failed(foreign, "E"))
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        await eng.report_task_succeeded(request.token, {})
        assert (await finished(eng, "f", "run1")).status == "Succeeded"


@bounded
async def test_token_layout_matches_serverless_workflow():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}, token_secret=b"k" * 32) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        text = token_text(request.token)
        assert text.startswith(f"v1#f#run1#{request.task_id}#")
        uid = await eng.read(lambda tx: tx.get_execution("f", "run1").uid)
        assert request.token == mint_token(b"k" * 32, "f", "run1", uid, request.task_id)


@bounded
async def test_well_formed_token_for_a_missing_execution():
    async with make_engine(token_secret=b"s" * 32) as eng:
        await eng.create_flow("f", CALLBACK)
        ghost = mint_token(b"s" * 32, "f", "ghost", "uid", 3)
        err = await refused("ExecutionNotExists", eng.report_task_succeeded(ghost, {}))
        assert err.status == 404
        no_flow = mint_token(b"s" * 32, "nope", "run1", "uid", 3)
        await refused("ExecutionNotExists", eng.report_task_failed(no_flow, "E"))


@bounded
async def test_forged_tokens_cannot_tell_existing_executions_from_missing_ones():
    """The MAC is checked before any lookup; legacy tokens get one answer for both."""
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}, token_secret=b"s" * 32) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        request = await worker.take(1)
        uid = await eng.read(lambda tx: tx.get_execution("f", "run1").uid)
        for name in ("run1", "ghost"):
            forged = mint_token(b"wrong" * 8, "f", name, uid, request.task_id)
            err = await refused("TaskTokenInvalid", eng.report_task_succeeded(forged, {}))
            assert err.status == 403
        # A token of the old layout (the uid-bound MAC alone) still completes its task ...
        prefix = f"v1#f#run1#{request.task_id}#"
        legacy_mac = hmac.new(b"s" * 32, (prefix + uid).encode(), hashlib.sha1).digest()
        legacy = retoken(prefix + base64.b64encode(legacy_mac).decode())
        # ... and for a missing execution answers as a wrong MAC does.
        ghost_mac = hmac.new(b"s" * 32, b"v1#f#ghost#3#uid", hashlib.sha1).digest()
        ghost = retoken("v1#f#ghost#3#" + base64.b64encode(ghost_mac).decode())
        await refused("TaskTokenInvalid", eng.report_task_succeeded(ghost, {}))
        await eng.report_task_succeeded(legacy, {"ok": 1})
        assert (await finished(eng, "f", "run1")).status == "Succeeded"


@bounded
async def test_reported_error_names_reach_retry_and_catch():
    flow = fdl(f"""
    - type: task
      name: work
      resourceArn: {QUEUE}
      pattern: waitForCallback
      retry:
        - errors: [Busy]
          intervalSeconds: 1
          maxAttempts: 1
      errorMappings:
        - target: why
          source: $local.cause
        - target: what
          source: $local.error
      catch:
        - errors: [Broken]
          goto: recover
    - type: pass
      name: normal
      end: true
    - type: pass
      name: recover
      outputMappings:
        - target: recovered
          source: true
    """)
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", flow)
        await eng.start_execution("f", {}, name="run1")
        first = await worker.take(1)
        await eng.report_task_failed(first.token, "Busy", "try later")
        second = await worker.take(2, timeout=2.5)
        assert second.attempt == 1 and second.token != first.token
        assert worker.times[1] - worker.times[0] >= 0.9
        await eng.report_task_failed(second.token, "Broken", "disk on fire")
        info = await finished(eng, "f", "run1")
        assert info.status == "Succeeded"
        assert info.output == {"why": "disk on fire", "what": "Broken", "recovered": True}
        steps = [e.step_name for e in await history(eng, "f", "run1") if e.type == "StepEntered"]
        assert steps == ["work", "recover"]
