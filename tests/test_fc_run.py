"""The trip saga on local FC handlers, through `relayflow run --config` as a user runs it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relayflow.store import open_store

EXE = str(Path(sys.executable).with_name("relayflow"))
TRIP = Path(__file__).resolve().parents[1] / "contrib" / "examples" / "trip"


@pytest.fixture
def trip(tmp_path):
    folder = tmp_path / "trip"
    shutil.copytree(TRIP, folder)
    config = folder / "relayflow.toml"
    config.write_text(
        config.read_text().replace('store = "memory://"', f'store = "sqlite:///{tmp_path}/trip.db"')
    )
    return folder


def run(folder, data, name):
    done = subprocess.run(
        [
            EXE,
            "run",
            "trip-saga.yaml",
            "--config",
            "relayflow.toml",
            "--input",
            json.dumps(data),
            "--name",
            name,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def history(folder, name):
    store = open_store(f"sqlite:///{folder.parent}/trip.db")
    try:
        with store.reader() as tx:
            row = tx.get_execution("trip-saga", name)
            return [(e.type, e.step_name, e.detail) for e in tx.list_events(row.id, 0, 1000)]
    finally:
        store.close()


def test_retries_succeed_on_a_later_attempt(trip):
    code, output = run(trip, {"flightBusy": 2, "hotel": "ok"}, "ok")
    assert (code, output) == (0, {"flight": "FL-1", "flightAttempts": 3, "hotel": "HT-1"})
    failures = [d["error"] for t, s, d in history(trip, "ok") if t == "TaskFailed"]
    assert failures == ["FlightSystemBusy", "FlightSystemBusy"]


def test_the_saga_compensates_and_fails_with_a_named_error(trip):
    code, output = run(trip, {"hotel": "soldout"}, "soldout")
    assert code == 1
    assert output == {
        "status": "Failed",
        "error": "TripBookingFailed",
        "cause": "the hotel was sold out, so the flight was cancelled",
    }
    events = history(trip, "soldout")
    cancel = [d for t, s, d in events if t == "TaskSucceeded" and s == "cancelFlight"]
    assert cancel == [{"output": {"cancelled": "FL-1"}}]
    assert [s for t, s, d in events if t == "StepEntered"] == [
        "bookFlight",
        "bookHotel",
        "cancelFlight",
        "tripFailed",
    ]


def test_catch_policies_match_in_order_and_error_mappings_carry_the_error(trip):
    code, output = run(trip, {"hotel": "down"}, "down")
    assert code == 0
    assert output == {
        "flight": "FL-1",
        "flightAttempts": 1,
        "hotelError": "HotelSystemDown",
        "hotelProblem": "the hotel's system does not answer",
        "note": "booked the flight only",
    }


def test_a_task_timeout_is_caught(trip):
    code, output = run(trip, {"hotel": "slow"}, "slow")
    assert code == 0
    assert output["hotelError"] == "FnF.TaskTimeout"
    assert "TaskTimedOut" in [t for t, s, d in history(trip, "slow")]
