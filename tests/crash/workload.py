"""A workload for the crash test: run it, SIGKILL it anywhere, run it again until it exits 0.

    python tests/crash/workload.py STORE_DIR COUNT

It makes sure the flow and executions run0 .. run{COUNT-1} exist (starting is idempotent by
name; the crash test raises COUNT at every restart so that new work is always in flight), serves
their tasks: two requestResponse functions (one fails its first attempt for some inputs, so a
retry with back-off is in flight), and a queue whose messages land in a mailbox database that a
worker coroutine drains: it reports with the token, then deletes the message, like an MNS
worker. A crash between report and delete makes it report twice; the second report is refused
and the message deleted. It exits 0 once every execution has ended.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from pathlib import Path

from relayflow.engine import Engine, FunctionIntegration, Submitted, Succeeded, TaskRequest
from relayflow.engine.integration import Failed, TaskOutcome
from relayflow.errors import EngineError
from relayflow.store import open_store

FLOW = """
version: v1
type: flow
steps:
  - type: task
    name: double
    resourceArn: acs:fc:::services/crash/functions/double
    retry:
      - errors: [Flaky]
        intervalSeconds: 1
        maxAttempts: 2
        multiplier: 1
  - type: wait
    name: pause
    duration: $.pause
  - type: parallel
    name: fan
    branches:
      - steps:
          - type: task
            name: ask
            resourceArn: acs:mns:::/queues/crash/messages
            pattern: waitForCallback
            timeoutSeconds: 600
            inputMappings:
              - target: n
                source: $input.doubled
              - target: taskToken
                source: $context.task.token
            serviceParams:
              MessageBody: $
      - steps:
          - type: foreach
            name: each
            iterationMapping:
              collection: $.items
              item: item
            steps:
              - type: task
                name: square
                resourceArn: acs:fc:::services/crash/functions/square
            outputMappings:
              - target: squares
                source: $local[*].sq
    outputMappings:
      - target: answer
        source: $local[0].answer
      - target: squares
        source: $local[1].squares
"""


def execution_input(i: int) -> dict[str, object]:
    """The input of execution `run{i}`."""
    return {"n": i, "items": [i, i + 1, i + 2], "pause": 0.4 + (i % 3) * 0.3}


def expected_output(i: int) -> dict[str, object]:
    """What execution `run{i}` must end with."""
    return {"doubled": 2 * i, "answer": 2 * i + 1, "squares": [i * i, (i + 1) ** 2, (i + 2) ** 2]}


def mailbox(folder: Path) -> sqlite3.Connection:
    db = sqlite3.connect(folder / "mailbox.db", isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS messages (token TEXT PRIMARY KEY, n INTEGER)")
    return db


async def main(folder: Path, count: int) -> int:
    box = mailbox(folder)

    async def double(req: TaskRequest) -> TaskOutcome:
        await asyncio.sleep(random.uniform(0, 0.05))
        n = req.input["n"]
        if n % 3 == 0 and req.attempt == 0:
            return Failed("Flaky", "the first attempt fails for multiples of 3")
        return Succeeded({"doubled": 2 * n})

    async def square(req: TaskRequest) -> TaskOutcome:
        await asyncio.sleep(random.uniform(0, 0.05))
        return Succeeded({"sq": req.input["item"] ** 2})

    async def send(req: TaskRequest) -> TaskOutcome:
        body = req.service_params["MessageBody"] if req.service_params else req.input
        box.execute(
            "INSERT OR IGNORE INTO messages (token, n) VALUES (?, ?)",
            (body["taskToken"], body["n"]),
        )
        return Submitted({"MessageId": str(req.task_id)})

    integration = FunctionIntegration(
        {
            "acs:fc:::services/crash/functions/double": double,
            "acs:fc:::services/crash/functions/square": square,
            "acs:mns:::/queues/crash/messages": send,
        }
    )
    engine = Engine(
        open_store(f"sqlite:///{folder / 'store.db'}"),
        integrations=[integration],
        poll_seconds=0.2,
        lease_seconds=5,
    )
    await engine.start()
    try:
        try:
            await engine.create_flow("crash", FLOW)
        except EngineError as exc:
            if exc.code != "FlowAlreadyExists":
                raise
        for i in range(count):
            try:
                await engine.start_execution("crash", execution_input(i), name=f"run{i}")
            except EngineError as exc:
                if exc.code != "ExecutionAlreadyExists":
                    raise
        while True:
            for token, n in box.execute("SELECT token, n FROM messages").fetchall():
                await asyncio.sleep(random.uniform(0, 0.02))
                try:
                    await engine.report_task_succeeded(token, {"answer": n + 1})
                except EngineError as exc:
                    if exc.code not in (
                        "TaskAlreadyCompleted",
                        "TaskExpired",
                        "ExecutionNotRunning",
                    ):
                        raise
                box.execute("DELETE FROM messages WHERE token = ?", (token,))
            running = await engine.read(lambda tx: tx.count_executions("Running"))
            if running == 0:
                return 0
            await asyncio.sleep(0.05)
    finally:
        await engine.close(grace_seconds=0)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]))))
