"""The HTTP API through the OFFICIAL Alibaba Cloud SDK (aliyun-python-sdk-fnf), against a real server.

Every one of the twelve flow and execution actions is called the way Serverless Workflow's users call it, with
`AcsClient.do_action_with_exception`, and refusals arrive as the SDK's `ServerException` with
the server's code, HTTP status and RequestId. The seed scenario runs end to end: three serial
waitForCallback tasks on a queue, a worker that reads each message and reports with its own
(worker) key, duplicate and late reports that change nothing.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from types import ModuleType
from typing import Any

from aliyunsdkcore.request import RpcRequest
from aliyunsdkfnf.request.v20190315 import (
    CreateFlowRequest,
    DeleteFlowRequest,
    DescribeExecutionRequest,
    DescribeFlowRequest,
    GetExecutionHistoryRequest,
    ListExecutionsRequest,
    ListFlowsRequest,
    ReportTaskFailedRequest,
    ReportTaskSucceededRequest,
    StartExecutionRequest,
    StopExecutionRequest,
    UpdateFlowRequest,
)

from tests.api_server import QUEUE_ARN, TOKEN_FLOW, ApiServer, utc_stamp
from tests.helpers import EXAMPLES

CALLBACK_FLOW = f"""version: v1
type: flow
steps:
  - type: task
    name: job
    resourceArn: {QUEUE_ARN}
    pattern: waitForCallback
    inputMappings:
      - target: n
        source: $input.n
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
"""

CATCH_FLOW = (
    TOKEN_FLOW
    + """    errorMappings:
      - target: failure.code
        source: $local.error
      - target: failure.cause
        source: $local.cause
    catch:
      - errors: [JobRejected]
        goto: rejected
  - type: pass
    name: accepted
    end: true
  - type: pass
    name: rejected
"""
)

PASS_FLOW = "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: only\n"


def seed_flow() -> str:
    """contrib/examples/seed-three-tasks.yaml, sending to the test queue `jobs`."""
    text = (EXAMPLES / "seed-three-tasks.yaml").read_text(encoding="utf-8")
    assert "acs:mns:::/queues/fnf-demo/messages" in text
    return text.replace("acs:mns:::/queues/fnf-demo/messages", QUEUE_ARN)


def sdk(module: ModuleType, **params: Any) -> RpcRequest:
    """A request of the SDK module (e.g. `CreateFlowRequest`) with its setters called."""
    request: RpcRequest = getattr(module, module.__name__.rsplit(".", 1)[1])()
    for name, value in params.items():
        getattr(request, f"set_{name}")(value)
    return request


def bare(doc: dict[str, Any]) -> dict[str, Any]:
    """An answer without its RequestId."""
    return {k: v for k, v in doc.items() if k != "RequestId"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_flow(server: ApiServer, name: str, definition: str = CALLBACK_FLOW) -> dict[str, Any]:
    return server.call(
        sdk(CreateFlowRequest, Name=name, Definition=definition, Description="test", Type="FDL")
    )


def start(server: ApiServer, flow: str, name: str | None = None, **input: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"FlowName": flow, "Input": json.dumps(input)}
    if name is not None:
        params["ExecutionName"] = name
    return server.call(sdk(StartExecutionRequest, **params))


def describe(server: ApiServer, flow: str, name: str, wait: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"FlowName": flow, "ExecutionName": name}
    if wait is not None:
        params["WaitTimeSeconds"] = wait
    return server.call(sdk(DescribeExecutionRequest, **params), role="reader")


def history(server: ApiServer, flow: str, name: str) -> list[dict[str, Any]]:
    answer = server.call(
        sdk(GetExecutionHistoryRequest, FlowName=flow, ExecutionName=name, Limit=999),
        role="reader",
    )
    assert answer["NextToken"] == ""
    events: list[dict[str, Any]] = answer["Events"]
    return events


def settled_history(server: ApiServer, flow: str, name: str, last: str) -> list[dict[str, Any]]:
    """The history once its last event is of type ``last`` (the dispatch is asynchronous)."""
    deadline = time.monotonic() + 3
    while True:
        events = history(server, flow, name)
        if events and events[-1]["Type"] == last:
            return events
        assert time.monotonic() < deadline, [e["Type"] for e in events]
        time.sleep(0.01)


def report_succeeded(
    server: ApiServer, token: str, output: dict[str, Any], role: str = "worker"
) -> dict[str, Any]:
    return server.call(
        sdk(ReportTaskSucceededRequest, TaskToken=token, Output=json.dumps(output)), role
    )


def check_refusal(exc: Any, code: str, status: int) -> None:
    assert (exc.get_error_code(), exc.get_http_status()) == (code, status), exc
    assert exc.get_error_msg()
    assert len(exc.get_request_id()) == 36  # the server's RequestId reaches the SDK


# -- flows ------------------------------------------------------------------------------------


def test_create_describe_update_delete_flow(api_server):
    name = unique("sdk-flow")
    created = create_flow(api_server, name, PASS_FLOW)
    assert created["Name"] == name
    assert created["Definition"] == PASS_FLOW
    assert created["Description"] == "test"
    assert created["Type"] == "FDL"
    assert created["ExecutionMode"] == "Standard"
    assert created["CreatedTime"] == created["LastModifiedTime"]
    assert created["CreatedTime"].endswith("Z")
    uuid.UUID(created["Id"])
    assert len(created["RequestId"]) == 36

    described = api_server.call(sdk(DescribeFlowRequest, Name=name), role="reader")
    assert bare(described) == bare(created)

    again = api_server.refused(
        sdk(CreateFlowRequest, Name=name, Definition=PASS_FLOW, Description="", Type="FDL")
    )
    check_refusal(again, "FlowAlreadyExists", 409)

    time.sleep(0.002)
    updated = api_server.call(sdk(UpdateFlowRequest, Name=name, Description="second"))
    assert (updated["Description"], updated["Definition"], updated["Id"]) == (
        "second",
        PASS_FLOW,
        created["Id"],
    )
    assert updated["LastModifiedTime"] > created["LastModifiedTime"]
    assert updated["CreatedTime"] == created["CreatedTime"]

    api_server.call(sdk(DeleteFlowRequest, Name=name))
    gone = api_server.refused(sdk(DescribeFlowRequest, Name=name))
    check_refusal(gone, "FlowNotExists", 404)
    # A tool creates the flow when it reads exactly this sentence, as the service writes it.
    assert gone.get_error_msg() == f"Flow '{name}' does not exist"
    check_refusal(api_server.refused(sdk(DeleteFlowRequest, Name=name)), "FlowNotExists", 404)
    check_refusal(
        api_server.refused(sdk(UpdateFlowRequest, Name=name, Description="x")),
        "FlowNotExists",
        404,
    )


def test_create_flow_refusals(api_server):
    name = unique("sdk-bad")
    bad = api_server.refused(
        sdk(
            CreateFlowRequest,
            Name=name,
            Definition="version: v1\ntype: flow\nsteps:\n  - type: nope\n    name: a\n",
            Description="",
            Type="FDL",
        )
    )
    check_refusal(bad, "InvalidDefinition", 400)
    assert "nope" in bad.get_error_msg()
    check_refusal(
        api_server.refused(
            sdk(CreateFlowRequest, Name="1-starts-with-digit", Definition=PASS_FLOW, Type="FDL")
        ),
        "InvalidArgument",
        400,
    )
    check_refusal(
        api_server.refused(sdk(CreateFlowRequest, Name=name, Definition=PASS_FLOW, Type="DEFAULT")),
        "InvalidArgument",
        400,
    )
    check_refusal(api_server.refused(sdk(DescribeFlowRequest, Name=name)), "FlowNotExists", 404)


def test_update_flow_keeps_running_executions_on_their_definition(api_server):
    flow = unique("sdk-upd")
    create_flow(api_server, flow)
    first = start(api_server, flow, "on-v1", n=1)
    assert first["FlowDefinition"] == CALLBACK_FLOW
    second_definition = CALLBACK_FLOW.replace("name: job", "name: job2")
    updated = api_server.call(sdk(UpdateFlowRequest, Name=flow, Definition=second_definition))
    assert updated["Definition"] == second_definition
    assert describe(api_server, flow, "on-v1")["FlowDefinition"] == CALLBACK_FLOW
    second = start(api_server, flow, "on-v2", n=2)
    assert second["FlowDefinition"] == second_definition
    (message,) = api_server.wait_messages(flow, "on-v2")
    assert message["step"] == "job2"
    invalid = api_server.refused(sdk(UpdateFlowRequest, Name=flow, Definition="steps: 3"))
    check_refusal(invalid, "InvalidDefinition", 400)
    assert api_server.call(sdk(DescribeFlowRequest, Name=flow))["Definition"] == second_definition


def test_list_flows_pages(api_server):
    prefix = unique("sdk-list")
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        create_flow(api_server, name, PASS_FLOW)
    seen: list[str] = []
    token = ""
    for _ in range(1000):
        request = sdk(ListFlowsRequest, Limit=2)
        if token:
            request.set_NextToken(token)
        page = api_server.call(request, role="reader")
        assert 1 <= len(page["Flows"]) <= 2
        seen += [flow["Name"] for flow in page["Flows"]]
        token = page["NextToken"]
        if not token:
            break
        assert token == seen[-1]
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))
    assert [n for n in seen if n.startswith(prefix)] == names
    whole = api_server.call(sdk(ListFlowsRequest, Limit=999))
    assert [f["Name"] for f in whole["Flows"]] == seen
    assert whole["NextToken"] == ""
    # Tools list flows with Limit=1000, one more than the SDK's comment allows: it works.
    assert api_server.call(sdk(ListFlowsRequest, Limit=1000))["Flows"] == whole["Flows"]
    check_refusal(api_server.refused(sdk(ListFlowsRequest, Limit=0)), "InvalidArgument", 400)
    too_many = api_server.refused(sdk(ListFlowsRequest, Limit=1001))
    check_refusal(too_many, "InvalidArgument", 400)
    assert too_many.get_error_msg() == "Limit must be from 1 to 1000, got 1001"


def test_delete_flow_removes_its_executions(api_server):
    flow = unique("sdk-del")
    create_flow(api_server, flow)
    start(api_server, flow, "doomed", n=1)
    (message,) = api_server.wait_messages(flow, "doomed")
    # The SDK's DeleteFlow is refused while the flow has a running execution; stopped, it goes.
    busy = api_server.refused(sdk(DeleteFlowRequest, Name=flow))
    check_refusal(busy, "FlowHasRunningExecutions", 409)
    api_server.call(sdk(StopExecutionRequest, FlowName=flow, ExecutionName="doomed"))
    api_server.call(sdk(DeleteFlowRequest, Name=flow))
    check_refusal(
        api_server.refused(sdk(DescribeExecutionRequest, FlowName=flow, ExecutionName="doomed")),
        "ExecutionNotExists",
        404,
    )
    late = api_server.refused(
        sdk(ReportTaskSucceededRequest, TaskToken=message["token"], Output="{}"), "worker"
    )
    check_refusal(late, "ExecutionNotExists", 404)
    check_refusal(
        api_server.refused(sdk(ListExecutionsRequest, FlowName=flow)), "FlowNotExists", 404
    )


# -- executions -------------------------------------------------------------------------------


def test_start_execution_is_idempotent_by_name(api_server):
    flow = unique("sdk-idem")
    create_flow(api_server, flow)
    first = start(api_server, flow, "run-1", n=1)
    assert (first["Name"], first["FlowName"], first["Status"]) == ("run-1", flow, "Running")
    assert json.loads(first["Input"]) == {"n": 1}
    assert first["StartedTime"].endswith("Z")
    assert "Output" not in first
    again = start(api_server, flow, "run-1", n=1)
    assert bare(again) == bare(first)
    (message,) = api_server.wait_messages(flow, "run-1")
    assert message["input"] == {"n": 1, "taskToken": message["token"]}
    report_succeeded(api_server, message["token"], {"ok": True})
    done = describe(api_server, flow, "run-1", wait=5)
    assert (done["Status"], json.loads(done["Output"])) == ("Succeeded", {"ok": True})

    taken = api_server.refused(
        sdk(StartExecutionRequest, FlowName=flow, ExecutionName="run-1", Input="{}")
    )
    check_refusal(taken, "ExecutionAlreadyExists", 409)
    assert bare(describe(api_server, flow, "run-1")) == bare(done)
    assert len(api_server.messages(flow, "run-1")) == 1

    generated = start(api_server, flow, None, n=2)
    uuid.UUID(generated["Name"])
    assert generated["Status"] == "Running"

    check_refusal(
        api_server.refused(sdk(StartExecutionRequest, FlowName=unique("sdk-none"), Input="{}")),
        "FlowNotExists",
        404,
    )
    not_object = api_server.refused(
        sdk(StartExecutionRequest, FlowName=flow, ExecutionName="run-2", Input="[1]")
    )
    check_refusal(not_object, "InvalidArgument", 400)
    check_refusal(
        api_server.refused(sdk(DescribeExecutionRequest, FlowName=flow, ExecutionName="run-2")),
        "ExecutionNotExists",
        404,
    )


def test_describe_execution_long_poll_returns_when_the_execution_ends(api_server):
    flow = unique("sdk-poll")
    create_flow(api_server, flow)
    start(api_server, flow, "slow", n=1)
    (message,) = api_server.wait_messages(flow, "slow")

    began = time.monotonic()
    still = describe(api_server, flow, "slow", wait=1)
    waited = time.monotonic() - began
    assert still["Status"] == "Running"
    assert 0.8 <= waited < 3, waited

    reporter = threading.Timer(
        0.5, report_succeeded, (api_server, message["token"], {"late": "but fine"})
    )
    began = time.monotonic()
    reporter.start()
    try:
        done = describe(api_server, flow, "slow", wait=4)
    finally:
        reporter.join()
    waited = time.monotonic() - began
    assert done["Status"] == "Succeeded"
    assert json.loads(done["Output"]) == {"late": "but fine"}
    assert 0.4 <= waited < 2.5, waited
    assert done["StoppedTime"] >= done["StartedTime"]

    check_refusal(
        api_server.refused(
            sdk(DescribeExecutionRequest, FlowName=flow, ExecutionName="slow", WaitTimeSeconds=61)
        ),
        "InvalidArgument",
        400,
    )


def test_stop_execution_and_late_report(api_server):
    flow = unique("sdk-stop")
    create_flow(api_server, flow)
    start(api_server, flow, "to-stop", n=1)
    (message,) = api_server.wait_messages(flow, "to-stop")
    settled_history(api_server, flow, "to-stop", "TaskSubmitted")
    stopped = api_server.call(
        sdk(
            StopExecutionRequest,
            FlowName=flow,
            ExecutionName="to-stop",
            Error="Operator",
            Cause="stopped by the test",
        )
    )
    assert stopped["Status"] == "Stopped"
    assert stopped["StoppedTime"].endswith("Z")
    assert describe(api_server, flow, "to-stop")["Status"] == "Stopped"
    before = history(api_server, flow, "to-stop")
    assert before[-1]["Type"] == "ExecutionStopped"
    assert json.loads(before[-1]["EventDetail"]) == {
        "error": "Operator",
        "cause": "stopped by the test",
    }

    late = api_server.refused(
        sdk(ReportTaskSucceededRequest, TaskToken=message["token"], Output='{"x": 1}'), "worker"
    )
    check_refusal(late, "ExecutionNotRunning", 409)
    late_failure = api_server.refused(
        sdk(ReportTaskFailedRequest, TaskToken=message["token"], Error="Late", Cause=""),
        "worker",
    )
    check_refusal(late_failure, "ExecutionNotRunning", 409)
    again = api_server.refused(
        sdk(StopExecutionRequest, FlowName=flow, ExecutionName="to-stop", Error="E", Cause="C")
    )
    check_refusal(again, "ExecutionNotRunning", 409)
    assert history(api_server, flow, "to-stop") == before
    assert describe(api_server, flow, "to-stop")["Status"] == "Stopped"
    check_refusal(
        api_server.refused(
            sdk(StopExecutionRequest, FlowName=flow, ExecutionName="nobody", Error="E", Cause="C")
        ),
        "ExecutionNotExists",
        404,
    )


def test_stop_execution_answers_like_describe(api_server):
    """StopExecution's answer is the execution as DescribeExecution shows it (fdl.md section 7)."""
    flow = unique("sdk-stop2")
    create_flow(api_server, flow)
    start(api_server, flow, "s", n=1)
    stopped = api_server.call(
        sdk(StopExecutionRequest, FlowName=flow, ExecutionName="s", Error="E", Cause="C")
    )
    assert bare(stopped) == bare(describe(api_server, flow, "s"))
    assert stopped["FlowDefinition"] == CALLBACK_FLOW


def test_list_executions_filters_and_pages(api_server):
    flow = unique("sdk-lex")
    create_flow(api_server, flow)
    began = time.time()
    names = ["a-1", "a-2", "a-3", "b-1", "b-2"]
    for i, name in enumerate(names):
        start(api_server, flow, name, n=i)
    for name in ("a-2", "b-1"):
        api_server.call(
            sdk(StopExecutionRequest, FlowName=flow, ExecutionName=name, Error="E", Cause="C")
        )

    def listed(role: str = "reader", **params: Any) -> tuple[list[str], str]:
        answer = api_server.call(sdk(ListExecutionsRequest, FlowName=flow, **params), role)
        return [e["Name"] for e in answer["Executions"]], answer["NextToken"]

    assert listed() == (names, "")
    assert listed(Status="Stopped") == (["a-2", "b-1"], "")
    assert listed(Status="Running", ExecutionNamePrefix="a-") == (["a-1", "a-3"], "")
    assert listed(ExecutionNamePrefix="b-") == (["b-1", "b-2"], "")
    assert listed(Status="Succeeded") == ([], "")
    assert listed(
        StartedTimeBegin=utc_stamp(began - 2), StartedTimeEnd=utc_stamp(time.time() + 2)
    ) == (
        names,
        "",
    )
    assert listed(StartedTimeBegin=utc_stamp(time.time() + 60)) == ([], "")
    assert listed(StartedTimeEnd=utc_stamp(began - 60)) == ([], "")

    pages = []
    token = ""
    while True:
        params: dict[str, Any] = {"Limit": 2}
        if token:
            params["NextToken"] = token
        page, token = listed("admin", **params)
        pages.append(page)
        if not token:
            break
    assert pages == [["a-1", "a-2"], ["a-3", "b-1"], ["b-2"]]

    full = api_server.call(sdk(ListExecutionsRequest, FlowName=flow, ExecutionNamePrefix="a-1"))
    (one,) = full["Executions"]
    assert (one["Name"], one["FlowName"], one["Status"]) == ("a-1", flow, "Running")
    assert json.loads(one["Input"]) == {"n": 0}
    assert one["StartedTime"].endswith("Z")
    assert listed(Limit=100) == (names, "")
    check_refusal(
        api_server.refused(sdk(ListExecutionsRequest, FlowName=flow, Limit=101)),
        "InvalidArgument",
        400,
    )
    check_refusal(
        api_server.refused(sdk(ListExecutionsRequest, FlowName=flow, StartedTimeBegin="yesterday")),
        "InvalidArgument",
        400,
    )


def test_get_execution_history_pages(api_server):
    flow = unique("sdk-hist")
    create_flow(api_server, flow)
    start(api_server, flow, "h", n=3)
    (message,) = api_server.wait_messages(flow, "h")
    event_id = report_succeeded(api_server, message["token"], {"done": 1})["EventId"]
    assert describe(api_server, flow, "h", wait=5)["Status"] == "Succeeded"
    events = history(api_server, flow, "h")
    assert [e["EventId"] for e in events] == list(range(1, len(events) + 1))
    succeeded = [e for e in events if e["Type"] == "TaskSucceeded"]
    assert [e["EventId"] for e in succeeded] == [event_id]
    assert json.loads(succeeded[0]["EventDetail"]) == {"output": {"done": 1}}
    assert events[0]["Type"] == "ExecutionStarted"
    assert events[-1]["Type"] == "ExecutionSucceeded"
    for event in events:
        assert set(event) == {
            "EventId",
            "ScheduleEventId",
            "StepName",
            "Type",
            "Time",
            "EventDetail",
        }
        json.loads(event["EventDetail"])

    paged: list[dict[str, Any]] = []
    token = ""
    calls = 0
    while True:
        request = sdk(GetExecutionHistoryRequest, FlowName=flow, ExecutionName="h", Limit=3)
        if token:
            request.set_NextToken(token)
        page = api_server.call(request, role="reader")
        calls += 1
        assert len(page["Events"]) <= 3
        paged += page["Events"]
        token = page["NextToken"]
        if not token:
            break
        assert token == str(paged[-1]["EventId"])
    assert paged == events
    assert calls == -(-len(events) // 3)
    check_refusal(
        api_server.refused(
            sdk(GetExecutionHistoryRequest, FlowName=flow, ExecutionName="h", NextToken="x")
        ),
        "InvalidArgument",
        400,
    )
    check_refusal(
        api_server.refused(sdk(GetExecutionHistoryRequest, FlowName=flow, ExecutionName="none")),
        "ExecutionNotExists",
        404,
    )


# -- the seed scenario ------------------------------------------------------------------------


def work(body: dict[str, Any]) -> dict[str, Any]:
    """What the worker does for each job of the seed flow."""
    if body["job"] == "extract":
        return {"rows": [1, 2, 3], "source": body["source"]}
    if body["job"] == "transform":
        return {"rows": [row * 10 for row in body["rows"]]}
    assert body["job"] == "load"
    return {"count": len(body["rows"])}


def test_seed_scenario_three_tasks_through_a_worker(api_server):
    flow = unique("sdk-seed")
    definition = seed_flow()
    create_flow(api_server, flow, definition)
    started = start(api_server, flow, "seed-1", source="s3://in")
    assert started["Status"] == "Running"

    event_ids = []
    for n, job in enumerate(("extract", "transform", "load"), start=1):
        message = api_server.wait_messages(flow, "seed-1", n)[-1]
        assert message["step"] == job
        body = message["serviceParams"]["MessageBody"]  # what an MNS message would carry
        assert body["job"] == job
        assert body["taskToken"] == message["token"]
        answer = report_succeeded(api_server, body["taskToken"], work(body))
        assert set(answer) == {"EventId", "RequestId"}
        event_ids.append(answer["EventId"])
        if job == "extract":
            # A duplicate delivery while the execution runs on: the first report won.
            api_server.wait_messages(flow, "seed-1", 2)
            before = settled_history(api_server, flow, "seed-1", "TaskSubmitted")
            duplicate = api_server.refused(
                sdk(
                    ReportTaskSucceededRequest,
                    TaskToken=body["taskToken"],
                    Output=json.dumps({"rows": ["other"]}),
                ),
                "worker",
            )
            check_refusal(duplicate, "TaskAlreadyCompleted", 409)
            failed_too = api_server.refused(
                sdk(ReportTaskFailedRequest, TaskToken=body["taskToken"], Error="Oops"), "worker"
            )
            check_refusal(failed_too, "TaskAlreadyCompleted", 409)
            assert history(api_server, flow, "seed-1") == before
            assert len(api_server.messages(flow, "seed-1")) == 2

    done = describe(api_server, flow, "seed-1", wait=5)
    assert done["Status"] == "Succeeded", done
    assert json.loads(done["Output"]) == {"rows": [10, 20, 30], "source": "s3://in", "loaded": 3}
    assert json.loads(done["Input"]) == {"source": "s3://in"}
    assert done["FlowDefinition"] == definition

    events = history(api_server, flow, "seed-1")
    per_task = [
        "StepEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "StepSucceeded",
        "StepExited",
    ]
    # TaskSubmitted is recorded after the queue took the message; a quick worker may report
    # before that, and then the engine records no TaskSubmitted (docs/engine.md).
    assert [e["Type"] for e in events if e["Type"] != "TaskSubmitted"] == [
        "ExecutionStarted",
        *per_task * 3,
        "ExecutionSucceeded",
    ]
    succeeded = [e for e in events if e["Type"] == "TaskSucceeded"]
    assert [e["EventId"] for e in succeeded] == event_ids
    assert [e["StepName"] for e in succeeded] == ["extract", "transform", "load"]
    messages = {m["MessageId"] for m in api_server.messages(flow, "seed-1")}
    for event in events:
        if event["Type"] == "TaskSubmitted":
            assert json.loads(event["EventDetail"])["MessageId"] in messages

    last = api_server.messages(flow, "seed-1")[-1]["token"]
    after_end = api_server.refused(
        sdk(ReportTaskSucceededRequest, TaskToken=last, Output="{}"), "worker"
    )
    check_refusal(after_end, "TaskAlreadyCompleted", 409)
    assert history(api_server, flow, "seed-1") == events


def test_report_task_failed_reaches_catch(api_server):
    flow = unique("sdk-fail")
    create_flow(api_server, flow, CATCH_FLOW)
    start(api_server, flow, "caught")
    start(api_server, flow, "uncaught")
    (caught,) = api_server.wait_messages(flow, "caught")
    (uncaught,) = api_server.wait_messages(flow, "uncaught")

    answer = api_server.call(
        sdk(
            ReportTaskFailedRequest,
            TaskToken=caught["token"],
            Error="JobRejected",
            Cause="the input was bad",
        ),
        role="worker",
    )
    done = describe(api_server, flow, "caught", wait=5)
    assert done["Status"] == "Succeeded", done
    assert json.loads(done["Output"]) == {
        "failure": {"code": "JobRejected", "cause": "the input was bad"}
    }
    events = history(api_server, flow, "caught")
    failed = [e for e in events if e["Type"] == "TaskFailed"]
    assert [e["EventId"] for e in failed] == [answer["EventId"]]
    assert json.loads(failed[0]["EventDetail"]) == {
        "error": "JobRejected",
        "cause": "the input was bad",
    }
    entered = [e["StepName"] for e in events if e["Type"] == "StepEntered"]
    assert entered == ["job", "rejected"]

    api_server.call(
        sdk(ReportTaskFailedRequest, TaskToken=uncaught["token"], Error="Unexpected", Cause="c"),
        role="worker",
    )
    ended = describe(api_server, flow, "uncaught", wait=5)
    assert (ended["Status"], ended["Error"], ended["Cause"]) == ("Failed", "Unexpected", "c")
    assert "Output" not in ended

    check_refusal(
        api_server.refused(
            sdk(ReportTaskFailedRequest, TaskToken=caught["token"], Error="x" * 129), "worker"
        ),
        "InvalidArgument",
        400,
    )


def test_report_refusals_for_bad_tokens_and_outputs(api_server):
    flow = unique("sdk-tok")
    create_flow(api_server, flow)
    start(api_server, flow, "t", n=1)
    (message,) = api_server.wait_messages(flow, "t")
    before = settled_history(api_server, flow, "t", "TaskSubmitted")
    token = message["token"]
    prefix, _mac = base64.b64decode(token).decode().rsplit("#", 1)
    _v1, _flow, _execution, task_id = prefix.split("#")[:4]
    zero_mac = base64.b64encode(b"\0" * 20).decode()
    other_task = prefix.replace(f"#{task_id}", f"#{int(task_id) + 1}") + "#" + _mac
    cases = [
        (token, "[1, 2]", "InvalidArgument", 400),
        (token, "not json", "InvalidArgument", 400),
        ("not-a-token", "{}", "TaskTokenMalformed", 400),
        (base64.b64encode(b"v2#a#b#1#x").decode(), "{}", "TaskTokenMalformed", 400),
        (base64.b64encode(f"{prefix}#{zero_mac}".encode()).decode(), "{}", "TaskTokenInvalid", 403),
        (base64.b64encode(other_task.encode()).decode(), "{}", "TaskTokenInvalid", 403),
    ]
    for bad_token, output, code, status in cases:
        exc = api_server.refused(
            sdk(ReportTaskSucceededRequest, TaskToken=bad_token, Output=output), "worker"
        )
        check_refusal(exc, code, status)
    assert history(api_server, flow, "t") == before
    assert describe(api_server, flow, "t")["Status"] == "Running"


def test_start_execution_with_callback_token_reports_to_the_waiting_task(api_server):
    waiting, quick = unique("sdk-waits"), unique("sdk-quick")
    create_flow(api_server, waiting)
    create_flow(
        api_server,
        quick,
        "version: v1\ntype: flow\nsteps:\n  - type: pass\n    name: answer\n"
        "    outputMappings:\n      - target: echoed\n        source: $input.value\n",
    )
    start(api_server, waiting, "w", n=1)
    (message,) = api_server.wait_messages(waiting, "w")
    child = api_server.call(
        sdk(
            StartExecutionRequest,
            FlowName=quick,
            ExecutionName="k",
            Input=json.dumps({"value": "v"}),
            CallbackFnFTaskToken=message["token"],
        )
    )
    assert child["Name"] == "k"
    done = describe(api_server, waiting, "w", wait=5)
    assert (done["Status"], json.loads(done["Output"])) == ("Succeeded", {"echoed": "v"})
    bad = api_server.refused(
        sdk(StartExecutionRequest, FlowName=quick, Input="{}", CallbackFnFTaskToken="nope")
    )
    check_refusal(bad, "InvalidArgument", 400)


def test_a_parent_flow_runs_a_child_flow_through_the_server(api_server):
    child, parent = unique("sdk-child"), unique("sdk-parent")
    create_flow(api_server, child)
    create_flow(
        api_server,
        parent,
        f"version: v1\ntype: flow\nsteps:\n  - type: task\n    name: run-child\n"
        f"    resourceArn: acs:fnf:::flow/{child}\n    pattern: sync\n"
        "    serviceParams:\n      ExecutionName: the-child\n      Input: $\n",
    )
    start(api_server, parent, "p", n=7)
    (message,) = api_server.wait_messages(child, "the-child")
    assert message["input"]["n"] == 7
    assert describe(api_server, parent, "p")["Status"] == "Running"
    report_succeeded(api_server, message["token"], {"ok": 7})
    done = describe(api_server, parent, "p", wait=5)
    assert (done["Status"], json.loads(done["Output"])) == ("Succeeded", {"ok": 7})
