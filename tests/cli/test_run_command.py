"""`relayflow run`: a user's mistakes are one line, and a waiting run says what it waits for."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES
from tests.services import free_port

EXE = str(Path(sys.executable).with_name("relayflow"))
SEED = EXAMPLES / "seed-three-tasks.yaml"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A working folder with the seed flow and a handler module, jobs.py."""
    shutil.copy(SEED, tmp_path / "seed.yaml")
    (tmp_path / "jobs.py").write_text("def handle(body):\n    return {'done': True}\n")
    return tmp_path


def run(folder: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "run", "seed.yaml", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line(done: subprocess.CompletedProcess[str], start: str) -> str:
    assert done.returncode == 2, done.stderr
    said = [line for line in done.stderr.splitlines() if " INFO " not in line]
    assert len(said) == 1 and said[0].startswith(start), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return said[0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fnf-demo=jobs:missing", "module 'jobs' has no attribute 'missing'"),
        ("fnf-demo=nomodule:handle", "cannot import module 'nomodule'"),
    ],
)
def test_a_handler_that_does_not_load_is_one_line_exit_2(folder, spec, message):
    line = one_line(run(folder, "--worker", spec), "relayflow: InvalidHandler: --worker ")
    assert message in line


@pytest.mark.parametrize(
    ("transport", "code"),
    [
        ("reddis://127.0.0.1:6379/0", "UnknownTransport"),
        # the free port is picked when the test runs: a value picked at collection would
        # differ between pytest-xdist's workers, which must collect the same tests
        ("redis://127.0.0.1:{free_port}/0", "BrokerUnreachable"),
    ],
)
def test_a_broker_that_cannot_be_used_is_one_line_exit_2(folder, transport, code):
    """The same codes `relayflow worker` answers these mistakes with."""
    transport = transport.replace("{free_port}", str(free_port()))
    config = folder / "relayflow.toml"
    config.write_text(
        f'[engine]\nstore = "memory://"\n[integrations.mns]\ntransport = "{transport}"\n'
    )
    done = run(folder, "--worker", "fnf-demo=jobs:handle", "--config", str(config))
    one_line(done, f"relayflow: {code}: ")


def test_waiting_names_the_queue_and_ctrl_c_says_what_it_left(folder):
    process = subprocess.Popen(
        [EXE, "run", "seed.yaml", "--input", '{"source": "s"}', "--worker", "other=jobs:handle"],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in process.stderr or ()])
    reader.start()
    said: list[str] = []
    try:
        while not any(line.startswith("relayflow: waiting: ") for line in said):
            said.append(lines.get(timeout=60))  # bounded: the notice comes after a few seconds
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=60)
    finally:
        process.kill()
    out = process.stdout.read() if process.stdout else ""
    while not lines.empty():
        said.append(lines.get())
    said = [line.rstrip("\n") for line in said if " INFO " not in line]
    assert said[0] == (
        "relayflow: warning: --worker other=...: no task step of seed.yaml sends to the queue "
        "other; this worker will get nothing"
    )
    waiting = next(line for line in said if line.startswith("relayflow: waiting: "))
    assert waiting.endswith(
        ": task extract waits for a worker on queue fnf-demo "
        "(serve it here with --worker fnf-demo=MODULE:FUNCTION)"
    )
    assert said.count(waiting) == 1  # once
    left = [line for line in said if line.startswith("relayflow: interrupted: ")]
    assert len(left) == 1 and "of flow seed was Running" in left[0], said
    assert "kept in memory only" in left[0]
    assert process.returncode == 130 and out == ""
    assert not any("Traceback" in line for line in said)


def test_ctrl_c_ends_the_wait_even_when_the_waited_call_ignores_cancellation():
    import asyncio

    from relayflow.cli.run import Interrupted, _unless

    async def stubborn() -> str:
        # A call that absorbs a cancellation (as a library's retry loop may): Ctrl-C must not
        # depend on it giving up.
        for _ in range(20):
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                continue
        return "never mind"

    async def main() -> None:
        interrupted = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, interrupted.set)
        with pytest.raises(Interrupted):
            await _unless(interrupted, stubborn())
        done = asyncio.Event()
        assert await _unless(done, asyncio.sleep(0, "answer")) == "answer"

    asyncio.run(asyncio.wait_for(main(), 30))
