"""Every step type and attribute of FDL loads into the models with the right values."""

import json

import pytest

from relayflow.dataflow import PathSource
from relayflow.fdl import (
    ChoiceStep,
    FailStep,
    ForeachStep,
    ParallelStep,
    PassStep,
    SucceedStep,
    TaskStep,
    WaitStep,
    load_flow,
)

EVERYTHING = """
version: v1beta1
type: flow
timeoutSeconds: 3600
inputMappings:
  - target: order
    source: $input.order
outputMappings:
  - target: result
    source: $local.result
steps:
  - type: task
    name: task1
    resourceArn: acs:fc:cn-hangzhou:123456:services/svc.LATEST/functions/fn
    pattern: sync
    timeoutSeconds: 60
    end: false
    inputMappings:
      - target: a
        source: $input.a
    outputMappings:
      - target: b
        source: $local.b
    errorMappings:
      - target: errCode
        source: $local.error
    serviceParams:
      InvocationType: Async
    retry:
      - errors: [FC.ResourceThrottled, FnF.TaskTimeout]
        intervalSeconds: 3
        maxIntervalSeconds: 30
        maxAttempts: 10
        multiplier: 1.5
      - errors: [FnF.ALL]
    catch:
      - errors: [FnF.ALL]
        goto: failed
  - type: task
    name: task2
    action: fnf:StartExecution
    serviceParams:
      FlowName: $.flow
      ExecutionName: $.name
      Input: $
  - type: pass
    name: pass1
    end: false
    outputMappings:
      - target: marker
        source: ""
  - type: wait
    name: wait1
    duration: 10
  - type: wait
    name: wait2
    duration: $.sleep
  - type: wait
    name: wait3
    timestamp: 2019-05-02T15:04:05Z
  - type: wait
    name: wait4
    timestamp: "$.when"
  - type: choice
    name: choice1
    choices:
      - condition: $.status == "ready"
        steps:
          - type: pass
            name: inner
        goto: parallel1
      - condition: $.status == "failed"
        goto: failed
    default:
      steps:
        - type: pass
          name: fallback
      goto: parallel1
  - type: parallel
    name: parallel1
    branches:
      - steps:
          - type: pass
            name: b1
      - steps:
          - type: pass
            name: b2
    outputMappings:
      - target: result
        source: $local[*].result
    retry:
      - errors: [FnF.ALL]
    catch:
      - errors: [FnF.ALL]
        goto: failed
  - type: foreach
    name: foreach1
    iterationMapping:
      collection: $.names
      item: name
      index: i
    steps:
      - type: task
        name: each
        resourceArn: acs:mns:::/queues/q1/messages
        pattern: waitForCallback
        serviceParams:
          MessageBody: $
          Priority: 1
          DelaySeconds: 5
    end: true
  - type: succeed
    name: ok
  - type: fail
    name: failed
    error: StatusIsNotReady
    cause: status is not ready
"""


@pytest.fixture(scope="module")
def flow():
    return load_flow(EVERYTHING)


def test_flow_attributes(flow):
    assert flow.version == "v1beta1"
    assert flow.type == "flow"
    assert flow.timeout_seconds == 3600
    assert [m.target for m in flow.input_mappings] == [("order",)]
    assert [m.source.raw for m in flow.output_mappings] == ["$local.result"]
    assert [s.type for s in flow.steps] == [
        "task",
        "task",
        "pass",
        "wait",
        "wait",
        "wait",
        "wait",
        "choice",
        "parallel",
        "foreach",
        "succeed",
        "fail",
    ]
    assert flow.step_count() == 17


def test_task_attributes(flow):
    task = flow.steps[0]
    assert isinstance(task, TaskStep)
    arn = task.resource_arn
    assert (arn.service, arn.kind, arn.region, arn.account) == (
        "fc",
        "function",
        "cn-hangzhou",
        "123456",
    )
    assert (arn.fc_service, arn.qualifier, arn.name) == ("svc", "LATEST", "fn")
    assert task.pattern == "sync"
    assert task.timeout_seconds == 60
    assert task.end is False
    assert task.error_mappings[0].source.raw == "$local.error"
    assert task.service_params.resolve({}) == {"InvocationType": "Async"}
    first, second = task.retry
    assert first.errors == ["FC.ResourceThrottled", "FnF.TaskTimeout"]
    assert (first.interval_seconds, first.max_interval_seconds, first.max_attempts) == (3, 30, 10)
    assert first.multiplier == 1.5
    assert (second.interval_seconds, second.max_interval_seconds) == (1, 86400)
    assert (second.max_attempts, second.multiplier) == (3, 2.0)
    assert task.catch[0].goto == "failed"


def test_action_task_and_default_pattern(flow):
    task = flow.steps[1]
    assert task.action == "fnf:StartExecution" and task.resource_arn is None
    assert task.pattern == "requestResponse"
    params = task.service_params.resolve({"flow": "child", "name": "run1", "x": 1})
    assert params == {
        "FlowName": "child",
        "ExecutionName": "run1",
        "Input": {"flow": "child", "name": "run1", "x": 1},
    }


def test_pass_wait_succeed_fail(flow):
    assert isinstance(flow.steps[2], PassStep)
    assert flow.steps[2].output_mappings[0].source.raw == ""
    w1, w2, w3, w4 = flow.steps[3:7]
    assert isinstance(w1, WaitStep) and w1.duration == 10 and w1.timestamp is None
    assert w2.duration == "$.sleep"
    assert w3.timestamp == "2019-05-02T15:04:05Z"  # unquoted YAML timestamps stay text
    assert w4.timestamp == "$.when"
    assert isinstance(flow.steps[10], SucceedStep)
    fail = flow.steps[11]
    assert isinstance(fail, FailStep)
    assert (fail.error, fail.cause) == ("StatusIsNotReady", "status is not ready")


def test_choice(flow):
    choice = flow.steps[7]
    assert isinstance(choice, ChoiceStep)
    assert choice.choices[0].condition.evaluate({"status": "ready"}) is True
    assert choice.choices[0].steps[0].name == "inner"
    assert choice.choices[0].goto == "parallel1"
    assert choice.choices[1].steps is None
    assert choice.default.steps[0].name == "fallback"
    assert choice.default.goto == "parallel1"


def test_parallel_and_foreach(flow):
    par = flow.steps[8]
    assert isinstance(par, ParallelStep) and par.empty_default_output
    assert [b.steps[0].name for b in par.branches] == ["b1", "b2"]
    assert par.retry[0].errors == ["FnF.ALL"] and par.catch[0].goto == "failed"
    each = flow.steps[9]
    assert isinstance(each, ForeachStep) and each.empty_default_output and each.end
    assert isinstance(each.iteration_mapping.collection, PathSource)
    assert each.iteration_mapping.collection.evaluate({"input": {"names": [1, 2]}}) == [1, 2]
    assert (each.iteration_mapping.item, each.iteration_mapping.index) == ("name", "i")
    queue = each.steps[0].resource_arn
    assert (queue.service, queue.kind, queue.name) == ("mns", "queue", "q1")


def test_walk_paths(flow):
    paths = {step.name: path for path, step in flow.walk()}
    assert paths["inner"] == ("steps", 7, "choices", 0, "steps", 0)
    assert paths["fallback"] == ("steps", 7, "default", "steps", 0)
    assert paths["b2"] == ("steps", 8, "branches", 1, "steps", 0)
    assert paths["each"] == ("steps", 9, "steps", 0)


def test_round_trip_through_json(flow):
    dumped = flow.model_dump(exclude_none=True)
    assert (
        dumped["steps"][0]["resourceArn"]
        == "acs:fc:cn-hangzhou:123456:services/svc.LATEST/functions/fn"
    )
    assert dumped["steps"][7]["choices"][0]["condition"] == '$.status == "ready"'
    again = load_flow(json.dumps(dumped))
    assert again.model_dump(exclude_none=True) == dumped


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1.0", "'v1'"])
def test_versions(version, flow_text):
    assert load_flow(flow_text("- type: pass\n  name: a", head=f"version: {version}\ntype: flow\n"))


@pytest.mark.parametrize(
    ("arn", "service", "kind", "name"),
    [
        ("acs:fc:::services/s/functions/f", "fc", "function", "f"),
        ("acs:mns:::/queues/fnf-demo/messages", "mns", "queue", "fnf-demo"),
        ("acs:mns:cn-hangzhou:123:/queues/q/messages", "mns", "queue", "q"),
        ("acs:mns:::/topics/t1/messages", "mns", "topic", "t1"),
        ("acs:fnf:::flow/post-actions-subflow", "fnf", "flow", "post-actions-subflow"),
    ],
)
def test_resource_arn_forms(arn, service, kind, name, flow_text):
    flow = load_flow(flow_text(f"- type: task\n  name: t\n  resourceArn: {arn}"))
    parsed = flow.steps[0].resource_arn
    assert (parsed.service, parsed.kind, parsed.name, str(parsed)) == (service, kind, name, arn)


def test_funcraft_ref(flow_text):
    flow = load_flow(flow_text("- type: task\n  name: t\n  resourceArn: !Ref OssCopy/listObjects"))
    assert str(flow.steps[0].resource_arn) == "acs:fc:::services/OssCopy/functions/listObjects"


def test_json_documents_load():
    text = json.dumps(
        {"version": "v1", "type": "flow", "steps": [{"type": "wait", "name": "w", "duration": 1}]}
    )
    assert load_flow(text).steps[0].duration == 1


def test_json_flow_may_name_its_schema():
    text = json.dumps(
        {
            "$schema": "./fdl.schema.json",
            "version": "v1",
            "type": "flow",
            "steps": [{"type": "pass", "name": "p"}],
        }
    )
    assert load_flow(text).schema_uri == "./fdl.schema.json"


def test_retry_delays():
    flow = load_flow(
        "version: v1\ntype: flow\nsteps:\n  - type: task\n    name: t\n"
        "    action: x:Y\n    retry:\n      - errors: [E]\n        intervalSeconds: 10\n"
        "        maxIntervalSeconds: 30\n"
    )
    policy = flow.steps[0].retry[0]
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 30.0, 30.0]


def test_wait_duration_string_number(flow_text):
    flow = load_flow(flow_text("- type: wait\n  name: w\n  duration: '10'"))
    assert flow.steps[0].duration == 10
