"""The engine's flow operations: create, update, describe, list and delete."""

from __future__ import annotations

import pytest

from relayflow.engine.tokens import parse_token
from relayflow.testing import bounded, fdl, make_engine
from tests.engine.helpers import (
    BROKEN,
    CALLBACK,
    PASS,
    QUEUE,
    Worker,
    finished,
    history,
    refused,
)


@bounded
async def test_create_and_describe_flow():
    async with make_engine() as eng:
        info = await eng.create_flow("orders", CALLBACK, description="order flow")
        assert (info.name, info.version, info.type) == ("orders", 1, "FDL")
        assert info.definition == CALLBACK
        assert info.description == "order flow"
        assert info.created == info.modified > 0
        assert len(info.id) == 36
        assert await eng.describe_flow("orders") == info
        api = info.to_api()
        assert api["Name"] == "orders" and api["Definition"] == CALLBACK
        assert api["CreatedTime"].endswith("Z") and len(api["CreatedTime"]) == 24


@bounded
async def test_create_flow_twice_is_refused():
    async with make_engine() as eng:
        first = await eng.create_flow("orders", CALLBACK)
        err = await refused("FlowAlreadyExists", eng.create_flow("orders", PASS))
        assert err.status == 409
        assert (await eng.describe_flow("orders")) == first


@bounded
async def test_invalid_definition_carries_the_line_numbered_problem():
    async with make_engine() as eng:
        err = await refused("InvalidDefinition", eng.create_flow("broken", BROKEN))
        assert err.status == 400
        assert "broken:8: steps[0].choices[0].goto: no sibling step named 'nowhere'" in err.message
        await refused("FlowNotExists", eng.describe_flow("broken"))
        await refused("InvalidDefinition", eng.create_flow("yaml", "steps: [\n"))


@pytest.mark.parametrize("name", ["", "1abc", "-x", "a b", "a.b", "ä", "x" * 129, "a#b"])
@bounded
async def test_bad_flow_names_are_refused(name):
    async with make_engine() as eng:
        err = await refused("InvalidArgument", eng.create_flow(name, PASS))
        assert err.status == 400
        assert (await eng.list_flows()).items == []


@bounded
async def test_good_flow_names_are_accepted():
    async with make_engine() as eng:
        for name in ["a", "_x", "A-b_9", "x" * 128]:
            await eng.create_flow(name, PASS)
        assert len((await eng.list_flows()).items) == 4


@bounded
async def test_update_flow_bumps_the_version_only_when_the_definition_changes():
    async with make_engine() as eng:
        created = await eng.create_flow("f", PASS, description="one")
        same = await eng.update_flow("f", definition=PASS)
        assert same.version == 1
        described = await eng.update_flow("f", description="two")
        assert (described.version, described.description) == (1, "two")
        changed = await eng.update_flow("f", definition=CALLBACK)
        assert changed.version == 2
        assert changed.definition == CALLBACK
        assert changed.id == created.id and changed.created == created.created
        assert changed.modified >= created.modified
        assert (await eng.describe_flow("f")).version == 2


@bounded
async def test_update_flow_refusals():
    async with make_engine() as eng:
        await refused("FlowNotExists", eng.update_flow("ghost", definition=PASS))
        await eng.create_flow("f", PASS)
        err = await refused("InvalidDefinition", eng.update_flow("f", definition=BROKEN))
        assert "no sibling step named 'nowhere'" in err.message
        assert (await eng.describe_flow("f")).definition == PASS


@bounded
async def test_running_execution_keeps_the_definition_it_started_with():
    def version(n: int) -> str:
        return fdl(f"""
        - type: task
          name: work
          resourceArn: {QUEUE}
          pattern: waitForCallback
        - type: pass
          name: tail{n}
          outputMappings:
            - target: version
              source: {n}
        """)

    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", version(1))
        await eng.start_execution("f", {}, name="old")
        old_task = await worker.take(1)
        await eng.update_flow("f", definition=version(2))
        await eng.start_execution("f", {}, name="new")
        new_task = await worker.take(2)
        assert (await eng.describe_execution("f", "old")).definition == version(1)
        assert (await eng.describe_execution("f", "new")).definition == version(2)
        await eng.report_task_succeeded(old_task.token, {})
        await eng.report_task_succeeded(new_task.token, {})
        old = await finished(eng, "f", "old")
        new = await finished(eng, "f", "new")
        assert old.output == {"version": 1}
        assert new.output == {"version": 2}
        steps = {e.step_name for e in await history(eng, "f", "old")}
        assert "tail1" in steps and "tail2" not in steps


@bounded
async def test_list_flows_pages_by_name():
    async with make_engine() as eng:
        for name in ["e", "b", "d", "a", "c"]:
            await eng.create_flow(name, PASS)
        first = await eng.list_flows(limit=2)
        assert [f.name for f in first.items] == ["a", "b"] and first.next_token
        second = await eng.list_flows(limit=2, next_token=first.next_token)
        assert [f.name for f in second.items] == ["c", "d"] and second.next_token
        third = await eng.list_flows(limit=2, next_token=second.next_token)
        assert [f.name for f in third.items] == ["e"] and third.next_token == ""
        everything = await eng.list_flows()
        assert [f.name for f in everything.items] == list("abcde")
        assert everything.next_token == ""
        exact = await eng.list_flows(limit=5)
        assert len(exact.items) == 5 and exact.next_token == ""
        for bad in (0, 1001, -1):
            await refused("InvalidArgument", eng.list_flows(limit=bad))


@bounded
async def test_delete_flow_removes_its_executions():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.create_flow("other", PASS)
        await eng.start_execution("f", {}, name="run1")
        await eng.start_execution("other", {}, name="run1")
        request = await worker.take(1)
        # A flow with a running execution is deleted only by force, which stops it first.
        await refused("FlowHasRunningExecutions", eng.delete_flow("f"))
        await eng.delete_flow("f", force=True)
        await refused("FlowNotExists", eng.describe_flow("f"))
        err = await refused("ExecutionNotExists", eng.describe_execution("f", "run1"))
        assert err.status == 404
        await refused("ExecutionNotExists", eng.get_execution_history("f", "run1"))
        await refused("FlowNotExists", eng.list_executions("f"))
        await refused("FlowNotExists", eng.start_execution("f", {}))
        await refused("ExecutionNotExists", eng.report_task_succeeded(request.token, {}))
        await refused("ExecutionNotExists", eng.stop_execution("f", "run1"))
        await refused("FlowNotExists", eng.delete_flow("f"))
        assert [f.name for f in (await eng.list_flows()).items] == ["other"]
        assert (await eng.describe_execution("other", "run1")).status == "Succeeded"


@bounded
async def test_token_of_a_deleted_execution_does_not_fit_a_new_one_of_the_same_name():
    worker = Worker()
    async with make_engine({QUEUE: worker.queue}) as eng:
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        old = await worker.take(1)
        await eng.delete_flow("f", force=True)
        await eng.create_flow("f", CALLBACK)
        await eng.start_execution("f", {}, name="run1")
        new = await worker.take(2)
        assert parse_token(old.token).task_id == parse_token(new.token).task_id
        await refused("TaskTokenInvalid", eng.report_task_succeeded(old.token, {}))
        assert (await eng.describe_execution("f", "run1")).status == "Running"
        await eng.report_task_succeeded(new.token, {"ok": True})
        assert (await finished(eng, "f", "run1")).output == {"ok": True}


@bounded
async def test_recreated_flow_runs_its_new_definition():
    first = fdl("""
    - type: pass
      name: first
      outputMappings:
        - target: which
          source: first
    """)
    second = fdl("""
    - type: pass
      name: second
      outputMappings:
        - target: which
          source: second
    """)
    async with make_engine() as eng:
        await eng.create_flow("f", first)
        assert (await eng.start_execution("f", {}, name="a")).output == {"which": "first"}
        await eng.delete_flow("f")
        await eng.create_flow("f", second)
        run = await eng.start_execution("f", {}, name="a")
        assert run.definition == second
        assert run.output == {"which": "second"}
        assert "second" in {e.step_name for e in await history(eng, "f", "a")}
