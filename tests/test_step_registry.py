"""A plugin can add a step type with its handler; step lists at every depth and the schema then
accept it. (tests/plugins/test_step_types.py runs such a type on the engine.)"""

from typing import Literal

import pytest

from relayflow.fdl import (
    StepBase,
    check_flow,
    flow_json_schema,
    load_flow,
    register_step_type,
    step_handler,
    step_types,
    unregister_step_type,
)


class NotifyStep(StepBase):
    type: Literal["notify"]
    channel: str
    end: bool = False


def notify_handler(step: NotifyStep, input: dict, context: dict) -> dict:
    return {"notified": step.channel}


NESTED = """
version: v1
type: flow
steps:
  - type: notify
    name: top
    channel: ops
  - type: parallel
    name: p
    branches:
      - steps:
          - type: choice
            name: c
            choices:
              - condition: $.a
                steps:
                  - type: notify
                    name: deep
                    channel: pager
"""


@pytest.fixture
def notify():
    load_flow("version: v1\ntype: flow\nsteps: [{type: pass, name: warm}]\n")  # build schemas first
    register_step_type(NotifyStep, handler=notify_handler)
    yield NotifyStep
    unregister_step_type("notify")


def test_registered_type_is_accepted_everywhere(notify):
    flow = load_flow(NESTED)
    assert isinstance(flow.steps[0], NotifyStep)
    deep = flow.steps[1].branches[0].steps[0].choices[0].steps[0]
    assert isinstance(deep, NotifyStep) and deep.channel == "pager"


def test_registered_type_is_in_the_schema_and_messages(notify):
    assert "NotifyStep" in flow_json_schema()["$defs"]
    _, problems = check_flow("version: v1\ntype: flow\nsteps: [{type: notify, name: n}]\n")
    assert [p.message for p in problems] == ["a notify step needs 'channel', which is missing"]


def test_unregistered_type_is_rejected_again(notify):
    unregister_step_type("notify")
    _, problems = check_flow(NESTED)
    assert any("unknown step type 'notify'" in p.message for p in problems)
    register_step_type(NotifyStep, handler=notify_handler)  # for the fixture's teardown


def test_type_must_be_a_single_literal():
    class Loose(StepBase):
        type: str

    with pytest.raises(TypeError, match="Literal of exactly one name"):
        register_step_type(Loose, handler=notify_handler)


def test_name_clash_is_refused():
    class OtherTask(StepBase):
        type: Literal["task"]

    with pytest.raises(ValueError, match="already registered"):
        register_step_type(OtherTask, handler=notify_handler)
    assert step_types()["task"].__name__ == "TaskStep"


def test_a_type_without_a_handler_is_refused():
    class Inert(StepBase):
        type: Literal["inert"]

    with pytest.raises(TypeError) as info:
        register_step_type(Inert)  # type: ignore[call-arg]
    assert str(info.value) == (
        "register_step_type(Inert) needs handler=, the function that runs a 'inert' step: "
        "the engine cannot run a step type without one"
    )
    assert "inert" not in step_types()
    with pytest.raises(TypeError, match="needs handler="):
        register_step_type(Inert, handler="not callable")  # type: ignore[arg-type]
    assert "inert" not in step_types()


def test_unregistering_drops_the_handler(notify):
    assert step_handler("notify") is notify_handler
    unregister_step_type("notify")
    assert step_handler("notify") is None
    register_step_type(NotifyStep, handler=notify_handler)  # for the fixture's teardown
    assert step_handler("task") is None  # the engine runs the built-in types itself
