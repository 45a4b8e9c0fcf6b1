"""The interpreter on foreach steps and their iterations."""

from __future__ import annotations

import pytest

from relayflow.engine.model import CloseTask, Limits, TaskFailed, TaskSucceeded, Transition
from relayflow.testing import fdl
from tests.engine.interpreter.driver import FN, Driver

FOREACH_FLOW = fdl(f"""
    - type: foreach
      name: each
      iterationMapping:
        collection: $.files
        item: file
        index: i
      steps:
        - type: task
          name: size
          resourceArn: {FN}
          outputMappings:
            - target: size
              source: $local.size
            - target: file
              source: $input.file
      outputMappings:
        - target: sizes
          source: $local[*].size
        - target: files
          source: $local[*].file
    - type: foreach
      name: quiet
      iterationMapping:
        collection: $.files
        item: f
      steps:
        - type: pass
          name: nothing
""")


def test_foreach_iterations_get_item_and_index_and_results_keep_collection_order():
    d = Driver(FOREACH_FLOW)
    d.start({"bucket": "b", "files": ["a.txt", "b.txt", "c.txt"]})
    tasks = d.open_tasks()
    assert [t.input for t in tasks] == [
        {"bucket": "b", "files": ["a.txt", "b.txt", "c.txt"], "file": name, "i": i}
        for i, name in enumerate(["a.txt", "b.txt", "c.txt"])
    ]
    each = d.one("StepEntered", "each")
    assert [(e.detail, e.schedule_event_id) for e in d.find("IterationEntered", "each")] == [
        ({"index": i}, each.event_id) for i in range(3)
    ]
    for task, size in zip(reversed(tasks), (30, 20, 10), strict=True):
        d.apply(TaskSucceeded(task.task_id, {"size": size}))
    assert [e.detail for e in d.find("IterationExited", "each")] == [
        {"index": 2},
        {"index": 1},
        {"index": 0},
    ]
    assert d.output_of("each") == {"sizes": [10, 20, 30], "files": ["a.txt", "b.txt", "c.txt"]}
    assert d.output_of("quiet") == {}
    assert [e.detail for e in d.find("IterationEntered", "quiet")] == [
        {"index": i} for i in (0, 1, 2)
    ]
    d.assert_succeeded({"sizes": [10, 20, 30], "files": ["a.txt", "b.txt", "c.txt"]})


def test_foreach_concurrency_limit_launches_iterations_as_others_finish():
    d = Driver(FOREACH_FLOW, limits=Limits(foreach_concurrency=2))
    files = ["f0", "f1", "f2", "f3", "f4"]
    d.start({"files": files})
    assert [t.input["i"] for t in d.open_tasks()] == [0, 1]

    def open_indexes() -> list[int]:
        return sorted(t.input["i"] for t in d.open_tasks())

    def finish(index: int) -> Transition:
        (task,) = [t for t in d.open_tasks() if t.input["i"] == index]
        return d.apply(TaskSucceeded(task.task_id, {"size": index * 10}))

    t = finish(1)
    assert [e.detail for e in t.events if e.type == "IterationEntered"] == [{"index": 2}]
    assert open_indexes() == [0, 2]
    finish(0)
    assert open_indexes() == [2, 3]
    finish(3)
    assert open_indexes() == [2, 4]
    finish(4)
    assert open_indexes() == [2]
    finish(2)
    d.assert_succeeded({"sizes": [0, 10, 20, 30, 40], "files": files})


def test_foreach_over_an_empty_collection_finishes_at_once():
    d = Driver(FOREACH_FLOW)
    d.start({"files": []})
    assert d.find("IterationEntered") == []
    assert d.output_of("each") == {"sizes": [], "files": []}
    assert d.output_of("quiet") == {}
    d.assert_succeeded({"sizes": [], "files": []})


@pytest.mark.parametrize("files", ["abc", {"a": 1}, 5, None, "missing"])
def test_foreach_collection_that_is_not_a_list_is_a_runtime_error(files):
    d = Driver(FOREACH_FLOW)
    d.start({} if files == "missing" else {"files": files})
    assert d.find("IterationEntered") == []
    assert d.one("StepFailed", "each").detail["error"] == "FnF.RuntimeError"
    d.assert_failed("FnF.RuntimeError")


def test_foreach_iteration_failure_fails_the_step_and_cancels_the_rest():
    d = Driver(FOREACH_FLOW)
    d.start({"files": ["a", "b", "c"]})
    first, second, third = d.open_tasks()
    t = d.apply(TaskFailed(second.task_id, "Corrupt", "bad file"))
    assert set(t.effects[:-1]) == {
        CloseTask(second.task_id, "completed", "failed"),
        CloseTask(first.task_id, "expired", "cancelled"),
        CloseTask(third.task_id, "expired", "cancelled"),
    }
    assert d.one("StepFailed", "each").detail == {"error": "Corrupt", "cause": "bad file"}
    d.assert_failed("Corrupt", "bad file")
