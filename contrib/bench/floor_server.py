"""A server that answers a task report by publishing the next task's message, and nothing else.

`floor.py` puts it where `relayflow server` stands in bench_queue.py's latency measurement:
behind the same balancer, called by the same client, publishing with the same publisher
(`relayflow_mns.redis_publish`, as a replica on Redis does) to the queue a waiting kombu
consumer reads. For each POST it reads the form, parses its `Output` as the API does, starts
the publish of a message the size of the seed scenario's next task, and answers as
ReportTaskSucceeded does while the message goes out (a replica's order too). No token check,
no engine, no store: what it takes is what the machine, the balancer, uvicorn, Redis and kombu
cost before relayflow does any work of its own.

With `--store postgresql://...` it first records the report in PostgreSQL, as any engine that
keeps its state there must before the next message may go out: one prepared statement that
updates one row and inserts one event row, in its own transaction, committed (one round trip
and one WAL flush, from the event loop, with no thread between). Only then does it publish and
answer. That is the least a durable engine on PostgreSQL can do for a report, so the figure is
a floor for a replica on PostgreSQL.

    python contrib/bench/floor_server.py --host 127.0.0.2 --port 8765 --redis redis://...:6379/0
        [--store postgresql://user@host:port/db]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

import psycopg
import uvicorn
from replicas import QUEUE  # the queue the benchmark's consumers read (a sibling script)

from relayflow_mns.redis_publish import AsyncRedisPublisher

# A task token as long as the seed scenario's, and that scenario's second task's message.
TOKEN = "djEj" + "x" * 116
BODY = json.dumps({"job": "transform", "rows": [{"id": 1}], "taskToken": TOKEN})
HEADERS = {
    "x-relayflow-flow": "seed",
    "x-relayflow-execution": "lat-floor",
    "x-relayflow-step": "transform",
    "x-relayflow-message-id": "FF05DCD9BBF5572CA7F73B5D99ABC23D",
    "x-relayflow-task-token": TOKEN,
}
ANSWER = json.dumps({"EventId": 10, "RequestId": "00000000-0000-0000-0000-000000000000"}).encode()
OK = json.dumps({"Status": "ok"}).encode()

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS floor_state (id integer PRIMARY KEY, reports bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS floor_events "
    "(id bigserial PRIMARY KEY, report bigint NOT NULL, body text NOT NULL)",
    "INSERT INTO floor_state VALUES (1, 0) ON CONFLICT DO NOTHING",
)
# The report's one durable write: the state's row and a history event, in one statement.
RECORD = (
    "WITH state AS (UPDATE floor_state SET reports = reports + 1 WHERE id = 1 RETURNING reports) "
    "INSERT INTO floor_events (report, body) SELECT reports, %s FROM state"
)

Scope = dict[str, Any]


class FloorApp:
    """The ASGI app: GET answers ready, POST publishes one message and answers."""

    def __init__(self, redis_url: str, store_url: str | None = None) -> None:
        self.publisher = AsyncRedisPublisher(redis_url)
        self.store_url = store_url
        self._store: psycopg.AsyncConnection[Any] | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _answer(send, OK)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        output = dict(parse_qsl(body.decode())).get("Output", "null")
        json.loads(output)
        if self._store is not None:
            await self._store.execute(RECORD, (output,), prepare=True)
        publish = self.publisher.publish([QUEUE], BODY, "application/json", HEADERS, 0)
        task = asyncio.create_task(publish)
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        await _answer(send, ANSWER)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        """Open the store's connection before the first request; close it at the end."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.store_url is not None:
                    self._store = await psycopg.AsyncConnection.connect(
                        self.store_url, autocommit=True
                    )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._store is not None:
                    await self._store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    parser.add_argument(
        "--store", help="postgresql://...: record each report there (committed) before publishing"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.store:
        with psycopg.connect(args.store, autocommit=True) as conn:
            for statement in SCHEMA:
                conn.execute(statement)
    # The line replicas.Cluster waits for, as `relayflow server` logs it.
    logging.getLogger("floor").info(
        "relayflow serving the API on http://%s:%d (the floor server)", args.host, args.port
    )
    # uvloop and httptools, as `relayflow server` runs.
    uvicorn.run(
        FloorApp(args.redis, args.store),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
