"""FcIntegration on its own: registration, settings, claims, handler calls, context, callbacks.

Handlers live in small modules written to a temporary directory on the Python path; every test
runs its own event loop with an overall time limit, and no wait is longer than a few seconds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import relayflow_fc
from relayflow.config import ConfigError, load_config
from relayflow.engine import Failed, Submitted, Succeeded, TaskRequest
from relayflow.errors import ERROR_INVALID_LOCAL, ERROR_RUNTIME, ERROR_TASK_TIMEOUT
from relayflow.fdl import load_flow
from relayflow.plugins import PluginManager
from relayflow.testing import bounded
from relayflow.testing import eventually as until
from relayflow_fc import FcContext, FcIntegration, FcSettings, FunctionMeta, ServiceMeta

TEST_TIMEOUT = 5.0
ARN = "acs:fc:cn-hangzhou:1234567890:services/trip.LATEST/functions/bookTrain"
SHORT = "acs:fc:::services/trip/functions/bookTrain"


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a handler module (unique name) into a directory on sys.path; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def write(source: str) -> str:
        name = f"fc_unit_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    yield write
    for name in made:
        sys.modules.pop(name, None)


def request(
    resource: str = SHORT,
    input: dict[str, Any] | None = None,
    *,
    pattern: str = "requestResponse",
    token: str = "token-1",
    service_params: dict[str, Any] | None = None,
    timeout_seconds: int | None = None,
) -> TaskRequest:
    return TaskRequest(
        flow_name="trip",
        execution_name="run-1",
        step_name="book",
        task_id=3,
        token=token,
        resource=resource,
        pattern=pattern,
        input=input if input is not None else {"trip": 7},
        service_params=service_params,
        timeout_seconds=timeout_seconds,
        attempt=0,
    )


def fc(target: str, key: str = "trip/bookTrain", **settings: Any) -> FcIntegration:
    return FcIntegration(FcSettings(functions={key: target}, **settings))


class FakeReporter:
    """Records reports the way the engine would take them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.threads: list[str] = []

    async def report_task_succeeded(self, token: str, output: Any) -> int:
        self.calls.append(("succeeded", token, output))
        self.threads.append(threading.current_thread().name)
        return 41

    async def report_task_failed(self, token: str, error: str, cause: str = "") -> int:
        self.calls.append(("failed", token, error, cause))
        return 42


# ---------------------------------------------------------------------------------------------
# Registration and settings


def test_entry_point_is_registered_in_the_relayflow_group() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="relayflow")}
    assert names.get("fc") == "relayflow_fc"
    assert entry_points(group="relayflow")["fc"].load() is relayflow_fc


def test_the_hook_registers_fc_with_its_settings_model() -> None:
    manager = PluginManager()
    manager.register(relayflow_fc, "fc-test")
    spec = manager.integration_specs()["fc"]
    assert spec.config_model is FcSettings
    built = spec.factory(FcSettings(functions={"trip/bookTrain": "m:f"}))
    assert isinstance(built, FcIntegration)
    assert built.name == "fc" and built.config_model is FcSettings
    assert built.patterns == {"requestResponse", "sync", "waitForCallback"}


def test_settings_come_from_relayflow_toml(tmp_path: Path) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text(
        "[integrations.fc]\ndefault_timeout_seconds = 2.5\n\n[integrations.fc.functions]\n"
        '"trip/bookTrain" = "trip_functions:book_train"\n'
    )
    config = load_config(str(path))
    manager = PluginManager()
    manager.register(relayflow_fc, "fc-test")
    (integration,) = [i for i in manager.integrations(config) if isinstance(i, FcIntegration)]
    assert integration.settings.functions == {"trip/bookTrain": "trip_functions:book_train"}
    assert integration.settings.default_timeout_seconds == 2.5
    assert integration.claims(ARN)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[integrations.fc]\ndefault_timout_seconds = 3\n",
            "unknown key 'integrations.fc.default_timout_seconds'",
        ),
        (
            '[integrations.fc.functions]\n"bookTrain" = "m:f"\n',
            'a function is named service/function, like "trip/bookTrain"',
        ),
        (
            '[integrations.fc.functions]\n"trip/bookTrain" = "trip_functions.book_train"\n',
            "integrations.fc.functions.trip/bookTrain: a handler is named module:function",
        ),
        (
            "[integrations.fc]\ndefault_timeout_seconds = 0\n",
            "integrations.fc.default_timeout_seconds: input should be greater than 0",
        ),
    ],
)
def test_a_bad_table_is_one_sentence_naming_the_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text(toml)
    config = load_config(str(path))
    manager = PluginManager()
    manager.register(relayflow_fc, "fc-test")
    with pytest.raises(ConfigError) as info:
        manager.integrations(config)
    text = str(info.value)
    assert message in text and text.startswith(str(path)) and "\n" not in text


def test_settings_accept_dotted_attributes_and_reject_extras() -> None:
    settings = FcSettings(functions={"svc-1/fn.v2": "pkg.mod:Class.method"})
    assert settings.functions == {"svc-1/fn.v2": "pkg.mod:Class.method"}
    with pytest.raises(ValidationError):
        FcSettings.model_validate({"function": {}})


# ---------------------------------------------------------------------------------------------
# Claims


def test_claims_mapped_fc_functions_in_every_arn_form() -> None:
    integration = fc("m:f")
    flow = load_flow(
        "version: v1\ntype: flow\nsteps:\n  - type: task\n    name: t\n"
        "    resourceArn: !Ref trip/bookTrain\n"
    )
    assert integration.claims(str(flow.steps[0].resource_arn))
    assert integration.claims(SHORT)
    assert integration.claims(ARN)  # region, account and qualifier play no part
    assert integration.claims("acs:fc:cn-shanghai::services/trip.prod/functions/bookTrain")


@pytest.mark.parametrize(
    "resource",
    [
        "acs:fc:::services/trip/functions/bookFlight",  # not mapped
        "acs:fc:::services/other/functions/bookTrain",  # another service
        "acs:mns:::/queues/bookTrain/messages",
        "acs:fnf:::flow/bookTrain",
        "fnf:StartExecution",
        "trip/bookTrain",
        "",
    ],
)
def test_claims_nothing_else(resource: str) -> None:
    assert not fc("m:f").claims(resource)


def test_an_empty_table_claims_nothing() -> None:
    assert not FcIntegration().claims(SHORT)


# ---------------------------------------------------------------------------------------------
# Handler results and errors


@pytest.mark.parametrize(
    "returned",
    [
        "{'ok': True, 'n': 2}",
        "json.dumps({'ok': True, 'n': 2})",
        "json.dumps({'ok': True, 'n': 2}).encode()",
        "bytearray(json.dumps({'ok': True, 'n': 2}).encode())",
    ],
)
@bounded(seconds=TEST_TIMEOUT)
async def test_a_dict_json_text_or_bytes_becomes_the_local(
    module: Callable[[str], str], returned: str
) -> None:
    name = module(f"import json\ndef handler(event, context):\n    return {returned}\n")
    outcome = await fc(f"{name}:handler").invoke(request())
    assert outcome == Succeeded({"ok": True, "n": 2})


@pytest.mark.parametrize(
    ("returned", "cause"),
    [
        ("None", "returned None"),
        ("[1, 2]", "returned a list"),
        ("'[1, 2]'", "returned a list"),
        ("'not json'", "returned text that is not JSON"),
        ("b'\\xff'", "not UTF-8"),
        ("42", "returned an int"),
        ("{'when': object()}", "returned a dict that is not JSON"),
        ("{'x': float('nan')}", "returned a dict that is not JSON"),
    ],
)
@bounded(seconds=TEST_TIMEOUT)
async def test_anything_else_fails_with_invalid_local(
    module: Callable[[str], str], returned: str, cause: str
) -> None:
    name = module(f"def handler(event, context):\n    return {returned}\n")
    outcome = await fc(f"{name}:handler").invoke(request())
    assert isinstance(outcome, Failed)
    assert outcome.error == ERROR_INVALID_LOCAL == "FnF.InvalidLocal"
    assert cause in outcome.cause and "trip/bookTrain" in outcome.cause


@bounded(seconds=TEST_TIMEOUT)
async def test_an_exception_fails_the_task_with_its_class_name(
    module: Callable[[str], str],
) -> None:
    name = module(
        """
        class BookTrainTicketError(Exception):
            pass

        def handler(event, context):
            raise BookTrainTicketError("sold out")

        def builtin(event, context):
            return {}["missing"]

        def leaves(event, context):
            raise SystemExit(3)
        """
    )
    outcome = await fc(f"{name}:handler").invoke(request())
    assert outcome == Failed("BookTrainTicketError", "sold out")
    outcome = await fc(f"{name}:builtin").invoke(request())
    assert outcome == Failed("KeyError", "'missing'")
    outcome = await fc(f"{name}:leaves").invoke(request())
    assert outcome == Failed("SystemExit", "3")


@bounded(seconds=TEST_TIMEOUT)
async def test_the_event_is_the_json_bytes_of_the_input(module: Callable[[str], str]) -> None:
    name = module(
        """
        import json
        def handler(event, context):
            assert isinstance(event, bytes)
            return {"event": json.loads(event), "raw": event.decode()}
        """
    )
    data = {"trip": 7, "who": "Zoë", "legs": [1, 2]}
    outcome = await fc(f"{name}:handler").invoke(request(input=data))
    assert isinstance(outcome, Succeeded)
    assert outcome.output["event"] == data
    assert "Zoë" in outcome.output["raw"]
    # serviceParams do not change the event
    params = {"InvocationType": "Sync", "StatefulAsyncInvocationID": "x-1"}
    again = await fc(f"{name}:handler").invoke(request(input=data, service_params=params))
    assert again == outcome


@pytest.mark.parametrize(
    ("params", "cause"),
    [
        ({"InvokationType": "Sync"}, "serviceParams key 'InvokationType' is not one"),
        ({"InvocationType": "Later"}, "InvocationType must be Sync or Async, got 'Later'"),
    ],
)
@bounded(seconds=TEST_TIMEOUT)
async def test_unknown_service_params_fail_the_task(
    module: Callable[[str], str], params: dict[str, Any], cause: str
) -> None:
    name = module("def handler(event, context):\n    return {}\n")
    outcome = await fc(f"{name}:handler").invoke(request(service_params=params))
    assert isinstance(outcome, Failed) and outcome.error == ERROR_RUNTIME
    assert cause in outcome.cause


@bounded(seconds=TEST_TIMEOUT)
async def test_async_invocation_type_does_not_wait_for_the_handler(
    module: Callable[[str], str],
) -> None:
    name = module(
        """
        import threading
        GO = threading.Event()
        DONE = []
        def handler(event, context):
            GO.wait(3)
            DONE.append(context.request_id)
            return {"ignored": True}
        """
    )
    fire_and_forget = request(service_params={"InvocationType": "Async"})
    outcome = await fc(f"{name}:handler").invoke(fire_and_forget)
    assert isinstance(outcome, Succeeded) and set(outcome.output) == {"RequestId"}
    handlers = sys.modules[name]
    assert handlers.DONE == []
    handlers.GO.set()
    await until(lambda: [outcome.output["RequestId"]] == handlers.DONE)


@pytest.mark.parametrize(
    ("source", "target", "cause"),
    [
        (None, "fc_unit_missing_module:handler", "cannot import module 'fc_unit_missing_module'"),
        ("def other(event, context):\n    pass\n", "{name}:handler", "has no attribute 'handler'"),
        ("import not_a_module_anywhere\n", "{name}:handler", "ModuleNotFoundError"),
        ("def broken(:\n", "{name}:handler", "SyntaxError"),
        ("raise RuntimeError('boom at import')\n", "{name}:handler", "boom at import"),
        ("handler = 42\n", "{name}:handler", "is an int, not a function"),
    ],
)
@bounded(seconds=TEST_TIMEOUT)
async def test_a_handler_that_cannot_be_loaded_is_a_runtime_error(
    module: Callable[[str], str], source: str | None, target: str, cause: str
) -> None:
    name = module(source) if source is not None else ""
    outcome = await fc(target.format(name=name)).invoke(request())
    assert isinstance(outcome, Failed) and outcome.error == ERROR_RUNTIME == "FnF.RuntimeError"
    assert "'trip/bookTrain'" in outcome.cause and cause in outcome.cause


@bounded(seconds=TEST_TIMEOUT)
async def test_handlers_are_found_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"fc_cwd_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text("def handler(event, context):\n    return {'cwd': 1}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        outcome = await fc(f"{name}:handler").invoke(request())
    finally:
        sys.modules.pop(name, None)
    assert outcome == Succeeded({"cwd": 1})
    assert sys.path[0] == str(tmp_path)


@bounded(seconds=TEST_TIMEOUT)
async def test_an_unmapped_resource_fails_if_invoked_anyway() -> None:
    outcome = await fc("m:f").invoke(request("acs:fc:::services/trip/functions/other"))
    assert isinstance(outcome, Failed) and outcome.error == ERROR_RUNTIME
    assert "[integrations.fc.functions]" in outcome.cause


# ---------------------------------------------------------------------------------------------
# The context


CONTEXT_HANDLER = """
import threading
def handler(event, context):
    return {
        "request_id": context.request_id,
        "function": [context.function.name, context.function.handler,
                     context.function.memory_size, context.function.memory,
                     context.function.timeout],
        "service": [context.service.name, context.service.qualifier],
        "region": context.region,
        "account_id": context.account_id,
        "credentials": [context.credentials.access_key_id,
                        context.credentials.access_key_secret,
                        context.credentials.security_token],
        "remaining": context.get_remaining_time_in_millis(),
        "token": context.token,
        "where": [context.flow_name, context.execution_name, context.step_name,
                  context.attempt],
        "thread": [threading.current_thread().daemon,
                   threading.current_thread() is threading.main_thread()],
    }
"""


@bounded(seconds=TEST_TIMEOUT)
async def test_the_context_mirrors_function_compute(module: Callable[[str], str]) -> None:
    name = module(CONTEXT_HANDLER)
    outcome = await fc(f"{name}:handler").invoke(request(ARN, timeout_seconds=3))
    assert isinstance(outcome, Succeeded)
    got = outcome.output
    assert str(uuid.UUID(got["request_id"])) == got["request_id"]
    assert got["function"] == ["bookTrain", f"{name}:handler", None, None, 3]
    assert got["service"] == ["trip", "LATEST"]
    assert (got["region"], got["account_id"]) == ("cn-hangzhou", "1234567890")
    assert got["credentials"] == [None, None, None]
    assert 2000 < got["remaining"] <= 3000
    assert got["token"] == "token-1"
    assert got["where"] == ["trip", "run-1", "book", 0]
    assert got["thread"] == [True, False]


@bounded(seconds=TEST_TIMEOUT)
async def test_request_ids_are_stable_per_attempt_and_unique_across(
    module: Callable[[str], str],
) -> None:
    integration = fc(f"{module(CONTEXT_HANDLER)}:handler")
    ids = []
    for token in ("token-1", "token-1", "token-2"):
        outcome = await integration.invoke(request(token=token))
        assert isinstance(outcome, Succeeded)
        ids.append(outcome.output["request_id"])
    assert ids[0] == ids[1] != ids[2]


@bounded(seconds=TEST_TIMEOUT)
async def test_remaining_time_without_a_timeout_and_with_the_default(
    module: Callable[[str], str],
) -> None:
    name = module(CONTEXT_HANDLER)
    outcome = await fc(f"{name}:handler").invoke(request())
    assert isinstance(outcome, Succeeded)
    assert outcome.output["remaining"] is None and outcome.output["function"][4] is None
    outcome = await fc(f"{name}:handler", default_timeout_seconds=2).invoke(request())
    assert isinstance(outcome, Succeeded)
    assert 1000 < outcome.output["remaining"] <= 2000 and outcome.output["function"][4] == 2


# ---------------------------------------------------------------------------------------------
# Threads and timeouts


@bounded(seconds=TEST_TIMEOUT)
async def test_a_blocked_handler_does_not_block_the_event_loop(
    module: Callable[[str], str],
) -> None:
    name = module(
        """
        import threading
        GO = threading.Event()
        def handler(event, context):
            assert GO.wait(3), "never released"
            return {"thread": threading.current_thread().name}
        """
    )
    task = asyncio.create_task(fc(f"{name}:handler").invoke(request()))
    await asyncio.sleep(0.05)  # the loop keeps running while the handler waits
    assert not task.done()
    sys.modules[name].GO.set()
    outcome = await task
    assert isinstance(outcome, Succeeded)
    assert outcome.output["thread"].startswith("relayflow-fc-trip/bookTrain-")


@bounded(seconds=TEST_TIMEOUT)
async def test_the_default_timeout_stops_waiting_for_a_slow_handler(
    module: Callable[[str], str],
) -> None:
    name = module("import time\ndef handler(event, context):\n    time.sleep(3)\n")
    started = time.monotonic()
    outcome = await fc(f"{name}:handler", default_timeout_seconds=0.2).invoke(request())
    assert time.monotonic() - started < 1.5
    assert isinstance(outcome, Failed) and outcome.error == ERROR_TASK_TIMEOUT
    assert "ran longer than 0.2 seconds" in outcome.cause


def test_a_running_handler_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    (tmp_path / "sleepy.py").write_text(
        "import time\ndef handler(event, context):\n    time.sleep(3600)\n"
    )
    script = textwrap.dedent(
        """
        import asyncio
        from relayflow.engine import TaskRequest
        from relayflow_fc import FcIntegration, FcSettings

        async def main():
            fc = FcIntegration(FcSettings(functions={"s/f": "sleepy:handler"},
                                          default_timeout_seconds=0.3))
            request = TaskRequest("f", "e", "s", 1, "t", "acs:fc:::services/s/functions/f",
                                  "requestResponse", {}, None, None, 0)
            print((await fc.invoke(request)).error, flush=True)

        asyncio.run(main())
        """
    )
    # The handler sleeps an hour: a process kept alive by its thread would hit the bound.
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ERROR_TASK_TIMEOUT


# ---------------------------------------------------------------------------------------------
# waitForCallback and in-process reports


CALLBACK_HANDLERS = """
import json, threading
SEEN = []
GO = threading.Event()
RESULTS = []

def send(event, context):
    SEEN.append(json.loads(event))
    return "whatever: the return value is ignored"

def report_now(event, context):
    RESULTS.append(context.report_succeeded({"booked": json.loads(event)["trip"]}))
    return None

def report_later(event, context):
    def later():
        GO.wait(3)
        RESULTS.append(context.report_failed("SoldOut", "no seats"))
    threading.Thread(target=later, daemon=True).start()

def raises(event, context):
    raise ValueError("cannot send")

def no_reporter(event, context):
    try:
        context.report_succeeded({})
    except RuntimeError as exc:
        RESULTS.append(str(exc))
"""


@bounded(seconds=TEST_TIMEOUT)
async def test_wait_for_callback_runs_the_handler_and_submits(
    module: Callable[[str], str],
) -> None:
    name = module(CALLBACK_HANDLERS)
    outcome = await fc(f"{name}:send").invoke(
        request(input={"token": "token-1", "trip": 7}, pattern="waitForCallback")
    )
    assert isinstance(outcome, Submitted) and set(outcome.detail) == {"RequestId"}
    handlers = sys.modules[name]
    await until(lambda: handlers.SEEN == [{"token": "token-1", "trip": 7}])


@bounded(seconds=TEST_TIMEOUT)
async def test_context_reports_go_to_the_reporter(module: Callable[[str], str]) -> None:
    name = module(CALLBACK_HANDLERS)
    reporter = FakeReporter()
    integration = fc(f"{name}:report_now")
    integration.bind(reporter)
    assert integration.reporter is reporter
    outcome = await integration.invoke(request(pattern="waitForCallback", token="tok-9"))
    assert isinstance(outcome, Submitted)
    handlers = sys.modules[name]
    await until(lambda: handlers.RESULTS == [41])
    assert reporter.calls == [("succeeded", "tok-9", {"booked": 7})]
    assert reporter.threads == [threading.current_thread().name]  # ran on the loop


@bounded(seconds=TEST_TIMEOUT)
async def test_reports_wait_until_invoke_has_answered_submitted(
    module: Callable[[str], str],
) -> None:
    name = module(CALLBACK_HANDLERS)
    answered: list[int] = []
    seen: list[int] = []

    class Ordered(FakeReporter):
        async def report_task_succeeded(self, token: str, output: Any) -> int:
            seen.append(len(answered))  # how many invokes had returned when this came
            return 1

    integration = fc(f"{name}:report_now")
    integration.bind(Ordered())

    async def dispatch(i: int) -> Any:  # like the engine's dispatcher
        outcome = await integration.invoke(request(pattern="waitForCallback"))
        answered.append(i)  # where the engine queues the outcome: no await in between
        return outcome

    loop = asyncio.get_running_loop()
    for i in range(5):
        task = loop.create_task(dispatch(i))
        # Hold the loop while the handler loads and reports, so that the report reaches the
        # loop before invoke can answer.
        loop.call_soon(time.sleep, 0.2)
        assert isinstance(await task, Submitted)
        await until(lambda: len(seen) == len(answered))
    assert seen == [1, 2, 3, 4, 5]


@bounded(seconds=TEST_TIMEOUT)
async def test_a_thread_the_handler_starts_may_report_later(module: Callable[[str], str]) -> None:
    name = module(CALLBACK_HANDLERS)
    reporter = FakeReporter()
    integration = FcIntegration(
        FcSettings(functions={"trip/bookTrain": f"{name}:report_later"}), reporter=reporter
    )
    outcome = await integration.invoke(request(pattern="waitForCallback", token="tok-2"))
    assert isinstance(outcome, Submitted) and reporter.calls == []
    sys.modules[name].GO.set()
    await until(lambda: sys.modules[name].RESULTS == [42])
    assert reporter.calls == [("failed", "tok-2", "SoldOut", "no seats")]


@bounded(seconds=TEST_TIMEOUT)
async def test_a_callback_handler_that_raises_fails_the_task(
    module: Callable[[str], str],
) -> None:
    name = module(CALLBACK_HANDLERS)
    reporter = FakeReporter()
    integration = FcIntegration(
        FcSettings(functions={"trip/bookTrain": f"{name}:raises"}), reporter=reporter
    )
    outcome = await integration.invoke(request(pattern="waitForCallback", token="tok-3"))
    assert isinstance(outcome, Submitted)
    await until(lambda: reporter.calls)
    assert reporter.calls == [("failed", "tok-3", "ValueError", "cannot send")]


@bounded(seconds=TEST_TIMEOUT)
async def test_a_callback_handler_that_cannot_load_fails_at_once() -> None:
    reporter = FakeReporter()
    integration = FcIntegration(
        FcSettings(functions={"trip/bookTrain": "fc_unit_nowhere:send"}), reporter=reporter
    )
    outcome = await integration.invoke(request(pattern="waitForCallback"))
    assert isinstance(outcome, Failed) and outcome.error == ERROR_RUNTIME
    await asyncio.sleep(0.05)
    assert reporter.calls == []


@bounded(seconds=TEST_TIMEOUT)
async def test_without_a_reporter_the_context_says_what_to_do(
    module: Callable[[str], str],
) -> None:
    name = module(CALLBACK_HANDLERS)
    outcome = await fc(f"{name}:no_reporter").invoke(request(pattern="waitForCallback"))
    assert isinstance(outcome, Submitted)
    await until(lambda: sys.modules[name].RESULTS)
    (message,) = sys.modules[name].RESULTS
    assert "has no reporter" in message and "integration.reporter = engine" in message


@bounded(seconds=TEST_TIMEOUT)
async def test_reports_cannot_be_made_from_the_event_loop() -> None:
    context = FcContext(
        request_id="r",
        token="t",
        function=FunctionMeta("f", "m:f"),
        service=ServiceMeta("s"),
        reporter=FakeReporter(),
        loop=asyncio.get_running_loop(),
    )
    with pytest.raises(RuntimeError, match="cannot be called on the engine's event loop"):
        context.report_succeeded({})


@bounded(seconds=TEST_TIMEOUT)
async def test_sync_pattern_returns_the_handlers_result(module: Callable[[str], str]) -> None:
    name = module("def handler(event, context):\n    return {'done': True}\n")
    outcome = await fc(f"{name}:handler").invoke(request(pattern="sync"))
    assert outcome == Succeeded({"done": True})
