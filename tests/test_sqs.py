"""The queue plugin on Amazon SQS's API, against a local SQS-compatible server (moto's).

moto's server comes from PyPI (the `dev` extra installs it with kombu's SQS transport). The
seed scenario runs end to end with the server and two worker processes on it, including a
worker killed mid-task, whose messages come back after their visibility timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import kombu
import pytest

from tests.services import free_port
from tests.test_seed_e2e import run_seed

MOTO = Path(sys.executable).with_name("moto_server")
# SQS needs a region; long polls of one second keep a stopping worker quick.
OPTIONS = ', region = "us-east-1", is_secure = false, wait_time_seconds = 1, polling_interval = 0'


@pytest.fixture(scope="module")
def sqs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's SQS-compatible server on a free loopback port: `sqs://KEY:SECRET@127.0.0.1:PORT`."""
    if not MOTO.exists():
        message = "moto_server is not installed (pip install 'moto[server]')"
        if os.environ.get("RELAYFLOW_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1).status_code < 500:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"moto_server did not start within 30 s:\n{log.read_text()}")
        time.sleep(0.1)
    yield f"sqs://relayflow:secret@127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_kombu_reaches_the_local_sqs_server(sqs_url: str) -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    options = {"region": "us-east-1", "is_secure": False, "wait_time_seconds": 1}
    with kombu.Connection(sqs_url, transport_options=options) as connection:
        queue = connection.SimpleQueue(name)
        queue.put({"n": 1})
        message = queue.get(timeout=10)
        assert message.payload == {"n": 1}
        message.ack()


def test_seed_scenario_on_sqs(tmp_path: Path, sqs_url: str) -> None:
    run_seed(tmp_path, sqs_url, 10, options=OPTIONS)


def test_a_worker_killed_mid_task_on_sqs_loses_nothing(tmp_path: Path, sqs_url: str) -> None:
    run_seed(tmp_path, sqs_url, 6, kill_one=True, options=OPTIONS)


def test_the_worker_extends_an_sqs_message_visibility(sqs_url: str) -> None:
    from relayflow_mns.worker import visibility_hook_for

    name = f"extend-{uuid.uuid4().hex[:8]}"
    options = {
        "region": "us-east-1",
        "is_secure": False,
        "wait_time_seconds": 1,
        "visibility_timeout": 1,
    }
    with (
        kombu.Connection(sqs_url, transport_options=options) as first,
        kombu.Connection(sqs_url, transport_options=options) as second,
    ):
        first.SimpleQueue(name).put({"n": 1})
        held = first.SimpleQueue(name).get(timeout=10)
        hook = visibility_hook_for(first)
        assert hook is not None
        hook(held.channel, held.delivery_tag, 60)
        time.sleep(1.5)  # past the queue's own one-second visibility timeout
        with pytest.raises(second.SimpleQueue(name).Empty):
            second.SimpleQueue(name).get(timeout=1.5)  # still hidden: extended
        hook(held.channel, held.delivery_tag, 0)  # visible again at once
        again = second.SimpleQueue(name).get(timeout=10)
        assert again.payload == {"n": 1}
        again.ack()
