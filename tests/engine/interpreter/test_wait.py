"""The interpreter on wait steps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relayflow.engine.model import Limits, StartTimer
from relayflow.testing import fdl
from tests.engine.interpreter.driver import T0, Driver, types

WAIT_THEN_PASS = """
    - type: wait
      name: pause
      {spec}
    - type: pass
      name: after
      outputMappings:
        - target: after
          source: true
"""


@pytest.mark.parametrize(
    ("spec", "data", "seconds"),
    [
        ("duration: 10", {}, 10),
        ("duration: 2.5", {}, 2.5),
        ('duration: "30"', {}, 30),
        ("duration: $.delay", {"delay": 45}, 45),
        ("duration: $input.delay", {"delay": "12"}, 12),
        ("duration: 172800", {}, 172800),
    ],
)
def test_wait_duration_sets_a_timer_and_continues_when_it_fires(spec, data, seconds):
    d = Driver(fdl(WAIT_THEN_PASS.format(spec=spec)))
    t = d.start(data)
    timer = d.timer("wait")
    assert t.effects == [StartTimer(timer.timer_id, T0 + seconds, "wait")]
    assert d.find("StepSucceeded", "pause") == []
    t = d.fire("wait")
    assert types(t)[:2] == ["StepSucceeded", "StepExited"]
    assert d.output_of("pause") == {}
    d.assert_succeeded({"after": True})
    assert d.events[-1].time == T0 + seconds


def test_wait_until_a_timestamp_in_the_future():
    resume = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    d = Driver(fdl(WAIT_THEN_PASS.format(spec="timestamp: 2030-01-01T08:00:00+08:00")))
    d.now = resume - 3600
    d.start()
    assert d.timer("wait").fire_at == resume
    d.fire("wait")
    d.assert_succeeded({"after": True})


def test_wait_until_a_timestamp_from_the_input():
    resume = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC).timestamp()
    d = Driver(fdl(WAIT_THEN_PASS.format(spec="timestamp: $.resumeAt")), now=resume - 90)
    d.start({"resumeAt": "2030-01-01T00:00:30Z"})
    assert d.timer("wait").fire_at == resume


def test_wait_until_a_timestamp_in_the_past_ends_at_once():
    d = Driver(fdl(WAIT_THEN_PASS.format(spec="timestamp: 2019-05-02T15:04:05Z")))
    t = d.start()
    assert not any(isinstance(e, StartTimer) for e in t.effects)
    d.assert_succeeded({"after": True})


@pytest.mark.parametrize(
    ("spec", "data", "limits"),
    [
        ("duration: 172801", {}, None),
        ("duration: $.d", {"d": 61}, Limits(max_wait_seconds=60)),
        ("timestamp: $.t", {"t": "2030-01-03T00:00:01Z"}, None),
    ],
)
def test_wait_longer_than_the_maximum_is_a_runtime_error(spec, data, limits):
    now = datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    d = Driver(fdl(WAIT_THEN_PASS.format(spec=spec)), limits=limits, now=now)
    d.start(data)
    assert d.started == {}
    assert d.one("StepFailed", "pause").detail["error"] == "FnF.RuntimeError"
    d.assert_failed("FnF.RuntimeError")


@pytest.mark.parametrize(
    ("spec", "data"),
    [
        ("duration: $.d", {}),
        ("duration: $.d", {"d": -1}),
        ("duration: $.d", {"d": "soon"}),
        ("duration: $.d", {"d": True}),
        ("timestamp: $.t", {"t": "tomorrow"}),
        ("timestamp: $.t", {"t": "2030-01-01T00:00:00"}),
        ("timestamp: $.t", {}),
    ],
)
def test_wait_with_an_unusable_value_is_a_runtime_error(spec, data):
    d = Driver(fdl(WAIT_THEN_PASS.format(spec=spec)))
    d.start(data)
    d.assert_failed("FnF.RuntimeError")
