"""A server that answers a task report by publishing the next task's message, and nothing else.

`floor.py` puts it where `relayflow server` stands in bench_queue.py's latency measurement:
behind the same balancer, called by the same client, publishing with the same publisher
(`relayflow_mns.redis_publish`, as a replica on Redis does) to the queue a waiting kombu
consumer reads. For each POST it reads the form, parses its `Output` as the API does, starts
the publish of a message the size of the seed scenario's next task, and answers as
ReportTaskSucceeded does while the message goes out (a replica's order too). No token check,
no engine, no store: what it takes is what the machine, the balancer, uvicorn, Redis and kombu
cost before relayflow does any work of its own.

    python contrib/bench/floor_server.py --host 127.0.0.2 --port 8765 --redis redis://...:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

import uvicorn

from relayflow_mns.redis_publish import AsyncRedisPublisher

QUEUE = "fnf-demo"
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

Scope = dict[str, Any]


class FloorApp:
    """The ASGI app: GET answers ready, POST publishes one message and answers."""

    def __init__(self, redis_url: str) -> None:
        self.publisher = AsyncRedisPublisher(redis_url)
        self._publishing: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
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
        json.loads(dict(parse_qsl(body.decode())).get("Output", "null"))
        publish = self.publisher.publish([QUEUE], BODY, "application/json", HEADERS, 0)
        task = asyncio.create_task(publish)
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        await _answer(send, ANSWER)


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The line replicas.Cluster waits for, as `relayflow server` logs it.
    logging.getLogger("floor").info(
        "relayflow serving the API on http://%s:%d (the floor server)", args.host, args.port
    )
    # uvloop and httptools, as `relayflow server` runs.
    uvicorn.run(
        FloorApp(args.redis),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
