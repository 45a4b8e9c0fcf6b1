"""`relayflow.heap.settle_heap`: what `relayflow server` does to the garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from relayflow.heap import OLDER_THRESHOLDS, YOUNG_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_settle_heap_freezes_and_raises_the_young_threshold(restored_gc: None) -> None:
    gc.unfreeze()
    kept = [{"alive": i} for i in range(10)]  # tracked objects that exist before the call
    settle_heap()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    assert gc.get_freeze_count() >= len(kept)
    young = gc.get_objects(0)
    assert all(o is not kept[0] for o in young)  # moved to the permanent generation


def test_young_collections_are_rarer_after_settling(restored_gc: None) -> None:
    """Many short-lived containers trigger far fewer young collections once settled."""

    def young_collections(allocations: int) -> int:
        counted = 0

        def count(phase: str, info: dict[str, int]) -> None:
            nonlocal counted
            if phase == "start" and info["generation"] == 0:
                counted += 1

        gc.callbacks.append(count)
        try:
            keep = []
            for i in range(allocations):
                keep.append([i])  # container objects that stay alive: they count
        finally:
            gc.callbacks.remove(count)
        return counted

    gc.set_threshold(700, 10, 10)
    default = young_collections(20_000)
    settle_heap()
    settled = young_collections(20_000)
    assert default >= 20
    assert settled <= 1
