"""One vocabulary: the embedded engine and the client return the same result types.

`relayflow.results` holds them; these tests pin that both sides use those very classes, that
what the server sends reads back as the value the engine returned, and that the names the two
sides used before (`Flow`, `Execution`, `started`, `definition`, `events`, ...) keep working.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import relayflow.client as client
import relayflow.engine as engine
from relayflow import results
from relayflow.engine import Engine, SyncEngine
from relayflow.store import ExecutionRow, FlowRow, open_store
from relayflow.store.records import HistoryEvent as Record
from relayflow.testing import fdl
from tests.api_server import KEYS

T0 = 1_700_000_000.125  # whole milliseconds: the API's times carry no more
T1 = T0 + 2.5
LINE = 'engine = SyncEngine(open_store("memory://"))'


def execution_row(**changes: object) -> ExecutionRow:
    row = ExecutionRow(
        7, "run", "orders", "order-7", "flow-id", 1, "Succeeded", '{"id": 7}', '{"ok": true}',
        "", "", T0, T1, "", "",
    )  # fmt: skip
    return dataclasses.replace(row, **changes)


def test_the_engine_and_the_client_return_the_same_classes():
    assert engine.FlowInfo is client.FlowInfo is client.Flow is results.FlowInfo
    assert engine.ExecutionInfo is client.ExecutionInfo is client.Execution
    assert engine.HistoryPage is client.HistoryPage is results.HistoryPage
    assert client.HistoryEvent is results.HistoryEvent and client.Page is results.Page
    assert engine.Page is results.Page


def test_what_the_server_sends_reads_back_as_what_the_engine_returned():
    flow = results.FlowInfo.of(FlowRow("orders", "id-1", "def", "d", "FDL", "arn", 2, T0, T1))
    assert results.FlowInfo.from_api(flow.to_api()) == dataclasses.replace(flow, version=0)
    run = results.ExecutionInfo.of(execution_row(), "the definition")
    assert results.ExecutionInfo.from_api(run.to_api()) == run
    page = results.HistoryPage([Record(1, 0, "ExecutionStarted", "", T0, {"input": {}})], "1")
    again = client.HistoryPage.from_api(page.to_api(), "Events", results.HistoryEvent.from_api)
    assert again == page and isinstance(again, results.HistoryPage)


def test_fields_are_the_api_keys_in_snake_case():
    run = results.ExecutionInfo.of(execution_row(), "def")
    assert run.started_time == datetime.fromtimestamp(T0, UTC)
    assert run.stopped_time == datetime.fromtimestamp(T1, UTC)
    assert (run.flow_definition, run.input, run.output) == ("def", {"id": 7}, {"ok": True})
    assert run.done and run.succeeded and run.raw == {}
    flow = results.FlowInfo.of(FlowRow("f", "id", "d", "", "FDL", "", 3, T0, T1))
    assert (flow.created_time, flow.last_modified_time) == (run.started_time, run.stopped_time)
    assert (flow.execution_mode, flow.version) == ("Standard", 3)


def test_a_flow_holds_only_what_describe_flow_sends():
    # Each of its fields is a DescribeFlow key in snake case, save the engine's version and
    # the answer itself; an execution's links (parent, children, waiting work) are not a flow's.
    flow = results.FlowInfo.of(FlowRow("f", "id", "d", "", "FDL", "", 1, T0, T1))
    sent = {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower() for key in flow.to_api()}
    fields = {f.name for f in dataclasses.fields(results.FlowInfo)}
    assert fields - sent == {"version", "raw"}, fields - sent


def test_the_former_field_names_still_answer():
    run = results.ExecutionInfo.of(execution_row(stopped=None), "def")
    assert run.started == pytest.approx(T0, abs=1e-6) and run.stopped is None
    assert run.definition == "def"
    flow = results.FlowInfo.of(FlowRow("f", "id", "d", "", "FDL", "", 1, T0, T1))
    assert flow.created == pytest.approx(T0, abs=1e-6)
    assert flow.modified == pytest.approx(T1, abs=1e-6)


def test_a_page_holds_a_list_whatever_it_was_given():
    page = results.Page((n for n in range(3)), "next")
    assert page.items == [0, 1, 2] and list(page) == [0, 1, 2] and len(page) == 3
    assert not page.last and results.Page([], "").last
    assert results.Page(()).items == []


def test_a_history_page_of_records_keeps_them_as_events():
    records = [
        Record(1, 0, "ExecutionStarted", "", T0, {}),
        Record(2, 1, "StepEntered", "s", T1, {}),
    ]
    page = results.HistoryPage(records, "")
    assert [e.time for e in page.items] == [datetime.fromtimestamp(t, UTC) for t in (T0, T1)]
    assert page.events == records
    remote = results.HistoryPage.from_api(page.to_api(), "Events", results.HistoryEvent.from_api)
    assert remote.events == records  # rebuilt from the answer, in the engine's shape


def test_sync_engine_speaks_the_clients_methods():
    flow = fdl("""
  - type: pass
    name: only
""")
    with SyncEngine(open_store("memory://")) as eng:
        eng.create_flow("f", flow, "a flow", None)
        for i in range(5):
            eng.start_execution("f", {"i": i}, f"e{i}", None)
        done = eng.wait_for_execution("f", "e4", timeout=30)
        assert done.succeeded and done.input == {"i": 4}
        assert [e.name for e in eng.iter_executions("f", "Succeeded", page_size=2)] == [
            f"e{i}" for i in range(5)
        ]
        assert [f.name for f in eng.iter_flows(page_size=1)] == ["f"]
        events = list(eng.iter_history("f", "e4", page_size=2))
        assert events[0].type == "ExecutionStarted" and events[-1].type == "ExecutionSucceeded"
        assert [e.event_id for e in events] == list(range(1, len(events) + 1))
        later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
        assert eng.list_executions("f", started_after=later).items == []
        assert len(eng.list_executions("f", started_before=later, limit=3)) == 3
        assert eng.list_executions("f", next_token=None).next_token == ""
        with pytest.raises(ValueError, match="timezone-aware"):
            eng.list_executions("f", started_after=datetime(2020, 1, 1))


def test_the_docs_move_from_embedded_to_remote_by_one_line(api_server, capsys):
    """docs/engine.md's example prints the same against a server once its engine line changes."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "engine.md"
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S) if LINE in b]
    key_id, secret = KEYS["admin"]
    runs = {
        "embedded": block,
        "remote": block.replace(
            LINE, f"engine = Client({api_server.url!r}, {key_id!r}, {secret!r})"
        ),
    }
    printed = {}
    for where, code in runs.items():
        assert code.count("engine = ") == 2  # the one line, and the comment showing the other
        exec(compile(code, f"{doc} ({where})", "exec"), {"__name__": "__main__"})
        printed[where] = capsys.readouterr().out
    assert printed["remote"] == printed["embedded"]
    assert printed["embedded"].startswith("Succeeded {'greeting': 'Ada'}\n")


def test_the_async_engine_waits_for_the_end_as_the_async_client_does():
    async def main() -> None:
        waiting = fdl("""
  - type: wait
    name: pause
    duration: 3600
""")
        async with Engine(open_store("memory://")) as eng:
            await eng.create_flow("quick", fdl("  - type: pass\n    name: only\n"))
            await eng.create_flow("slow", waiting)
            await eng.start_execution("quick", {}, "q")
            await eng.start_execution("slow", {}, "s")
            assert (await eng.wait_for_execution("quick", "q", timeout=30)).succeeded
            still = await eng.wait_for_execution("slow", "s", timeout=0.05)
            assert (still.status, still.done) == ("Running", False)

    asyncio.run(main())


def test_a_refusal_is_one_catchable_class_on_both_sides(api_server):
    from relayflow.errors import CallError, EngineError

    key_id, secret = KEYS["admin"]
    caught = {}
    with SyncEngine(open_store("memory://")) as embedded:
        with pytest.raises(CallError) as refused:
            embedded.describe_execution("nowhere", "nothing")
        caught["embedded"] = refused.value
    with client.Client(api_server.url, key_id, secret) as remote:
        with pytest.raises(CallError) as refused:
            remote.describe_execution("nowhere", "nothing")
        caught["remote"] = refused.value
    assert isinstance(caught["embedded"], EngineError)
    assert isinstance(caught["remote"], client.ClientError)
    assert {(e.code, e.status) for e in caught.values()} == {(caught["embedded"].code, 404)}
    assert caught["embedded"].code.endswith("NotExists")
