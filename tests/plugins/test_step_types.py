"""A plugin's step type runs on the engine with the handler registered with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest

from relayflow.engine import Engine
from relayflow.fdl import (
    CatchPolicy,
    RetryPolicy,
    StepBase,
    StepFailed,
    register_step_type,
    unregister_step_type,
)
from relayflow.store import open_store
from relayflow.testing import bounded, event_details, fdl, run_to_end


class StampStep(StepBase):
    """Stamps its `label`, with the execution's name, into `$local`."""

    type: Literal["stamp"]
    label: str
    end: bool = False
    retry: list[RetryPolicy] | None = None
    catch: list[CatchPolicy] | None = None


CALLS: list[dict[str, Any]] = []


def stamp(step: StampStep, input: dict[str, Any], context: dict[str, Any]) -> Any:
    CALLS.append(input)
    input["changed"] = True  # a copy: the stored input stays as it was
    if step.label == "refuse":
        raise StepFailed("Stamp.Refused", f"cannot stamp {input.get('what')}")
    if step.label == "crash":
        raise KeyError("oops")
    if step.label == "list":
        return [1, 2]
    return {"label": step.label, "by": context["execution"]["name"]}


@pytest.fixture(autouse=True)
def stamp_type() -> Iterator[None]:
    register_step_type(StampStep, handler=stamp)
    CALLS.clear()
    yield
    unregister_step_type("stamp")


async def run(flow: str, name: str = "one", data: dict[str, Any] | None = None) -> Any:
    async with Engine(open_store("memory://")) as engine:
        await engine.create_flow("stamps", flow)
        info = await run_to_end(engine, "stamps", data or {}, name)
        return info, await event_details(engine, "stamps", name)


@bounded
async def test_a_plugin_step_runs_end_to_end():
    info, events = await run(
        fdl("""
        - type: stamp
          name: first
          label: hello
          outputMappings:
            - target: stamped
              source: $local.label
            - target: by
              source: $local.by
        - type: parallel
          name: both
          branches:
            - steps:
                - type: stamp
                  name: deep
                  label: nested
          outputMappings:
            - target: deep
              source: $local[0].label
        """),
        data={"what": "letter"},
    )
    assert info.status == "Succeeded"
    assert info.output == {"stamped": "hello", "by": "one", "deep": "nested"}
    entered = [d for t, d in events if t == "StepEntered"]
    assert entered[0] == {"input": {"what": "letter"}}  # the handler's change is not stored
    assert CALLS[0] == {"what": "letter", "changed": True}


@bounded
async def test_a_handler_fails_its_step_and_retry_and_catch_apply():
    info, events = await run(
        fdl("""
        - type: stamp
          name: refused
          label: refuse
          retry:
            - errors: [Stamp.Refused]
              intervalSeconds: 1
              maxAttempts: 1
          catch:
            - errors: [Stamp.Refused]
              goto: after
        - type: fail
          name: skipped
        - type: pass
          name: after
        """),
        data={"what": "letter"},
    )
    assert info.status == "Succeeded"
    assert len(CALLS) == 2  # the first attempt and one retry
    failed = [d for t, d in events if t == "StepFailed"]
    assert failed == [{"error": "Stamp.Refused", "cause": "cannot stamp letter"}]


@pytest.mark.parametrize(
    ("label", "error", "cause"),
    [
        ("crash", "FnF.RuntimeError", "the stamp step 's' failed: KeyError: 'oops'"),
        ("list", "FnF.InvalidLocal", "the stamp step 's' must give a JSON object, not a list"),
    ],
)
@bounded
async def test_a_handler_bug_fails_the_step_not_the_engine(label: str, error: str, cause: str):
    info, _ = await run(fdl(f"- {{type: stamp, name: s, label: {label}}}"))
    assert (info.status, info.error, info.cause) == ("Failed", error, cause)
