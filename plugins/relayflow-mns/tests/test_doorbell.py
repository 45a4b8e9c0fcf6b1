"""The embedded transport's doorbell: producers in other processes wake waiting consumers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import kombu
import pytest

from relayflow_mns import doorbell
from relayflow_mns import sqlite_transport as _  # noqa: F401  (registers relayflow-sqlite)

pytestmark = pytest.mark.skipif(not doorbell.SUPPORTED, reason="doorbells need Linux")

PUBLISH = textwrap.dedent(
    """
    import sys
    import kombu
    from relayflow_mns import sqlite_transport
    with kombu.Connection(sys.argv[1]) as connection:
        connection.SimpleQueue("jobs").put({"n": 1})
    """
)


def test_a_producer_in_another_process_wakes_a_waiting_consumer(tmp_path: Path) -> None:
    url = f"relayflow-sqlite:///{tmp_path}/q.db"
    # A polling interval far longer than the wait: only the doorbell can deliver in time.
    with kombu.Connection(url, transport_options={"polling_interval": 120}) as connection:
        queue = connection.SimpleQueue("jobs")
        bell = connection.transport._bell
        producer = subprocess.Popen([sys.executable, "-c", PUBLISH, url])
        message = queue.get(timeout=30)
        assert producer.wait(30) == 0
        assert message.payload == {"n": 1}
        message.ack()
        assert bell.rings_heard >= 1
        marker = Path(bell.folder) / bell.token
        assert marker.exists()
    assert not marker.exists()  # closing the connection removes the marker


def test_a_marker_left_by_a_dead_process_is_removed_by_the_next_ring(tmp_path: Path) -> None:
    database = str(tmp_path / "q.db")
    folder = Path(database + ".bell")
    folder.mkdir()
    stale = folder / f"{os.getpid()}-deadbeefdeadbeef"  # nobody listens at this address
    stale.touch()
    alive = doorbell.Doorbell(database)
    assert alive.open()
    doorbell.ring(database)
    assert not stale.exists()
    assert alive.wait(5) and alive.rings_heard == 1
    alive.close()
    assert list(folder.iterdir()) == []


def test_ringing_a_file_nobody_waits_on_does_nothing(tmp_path: Path) -> None:
    doorbell.ring(str(tmp_path / "never.db"))
    assert not (tmp_path / "never.db.bell").exists()


def test_doorbell_can_be_turned_off(tmp_path: Path) -> None:
    url = f"relayflow-sqlite:///{tmp_path}/q.db?doorbell=0&polling_interval=0.005"
    with kombu.Connection(url) as connection:
        queue = connection.SimpleQueue("jobs")
        queue.put({"n": 2})
        assert queue.get(timeout=5).payload == {"n": 2}
        assert connection.transport._bell is None
    assert not (tmp_path / "q.db.bell").exists()


def test_a_folder_that_cannot_be_written_falls_back_to_polling(tmp_path: Path) -> None:
    (tmp_path / "q.db.bell").write_text("not a folder")
    url = f"relayflow-sqlite:///{tmp_path}/q.db?polling_interval=0.005"
    with kombu.Connection(url) as connection:
        queue = connection.SimpleQueue("jobs")
        queue.put({"n": 3})
        assert queue.get(timeout=5).payload == {"n": 3}
        assert connection.transport._bell.rings_heard == 0
