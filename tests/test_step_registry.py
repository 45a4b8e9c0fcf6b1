"""A plugin can add a step type; step lists at every depth and the schema then accept it."""

from typing import Literal

import pytest

from relayflow.fdl import (
    StepBase,
    check_flow,
    flow_json_schema,
    load_flow,
    register_step_type,
    step_types,
    unregister_step_type,
)


class NotifyStep(StepBase):
    type: Literal["notify"]
    channel: str
    end: bool = False


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
    register_step_type(NotifyStep)
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
    register_step_type(NotifyStep)  # for the fixture's teardown


def test_type_must_be_a_single_literal():
    class Loose(StepBase):
        type: str

    with pytest.raises(TypeError, match="Literal of exactly one name"):
        register_step_type(Loose)


def test_name_clash_is_refused():
    class OtherTask(StepBase):
        type: Literal["task"]

    with pytest.raises(ValueError, match="already registered"):
        register_step_type(OtherTask)
    assert step_types()["task"].__name__ == "TaskStep"
