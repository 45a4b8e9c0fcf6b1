"""The MNS-style queue and topic integration: task steps send messages through kombu.

A task whose resourceArn is `acs:mns:{region}:{account}:/queues/{queue}/messages` sends one
message to the queue; `.../topics/{topic}/messages` publishes to every queue subscribed to the
topic in the configuration. The message body is the step's `MessageBody` service parameter
(`$` is the whole mapped input, as JSON), and its headers carry the task token, so that a
generic worker needs not know the body's shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kombu.connection import Connection as _KombuConnection
from kombu.entity import Queue as _KombuQueue
from pydantic import BaseModel, ConfigDict, Field

from relayflow.engine import Failed, Integration, Submitted, Succeeded, TaskOutcome, TaskRequest
from relayflow.errors import ERROR_RUNTIME
from relayflow.fdl import parse_resource_arn
from relayflow_mns import redis_transport
from relayflow_mns._transports import DEFAULT_TRANSPORT, transport_problem
from relayflow_mns.redis_publish import AsyncRedisPublisher, publishes_natively
from relayflow_mns.sqlite_transport import mns_priority_to_kombu

__all__ = [
    "DEFAULT_TRANSPORT",
    "HEADER_TOKEN",
    "MnsIntegration",
    "MnsSettings",
    "TopicSettings",
]

HEADER_TOKEN = "x-relayflow-task-token"
# kombu has no type hints: call it through Any rather than scatter ignores.
Connection: Any = _KombuConnection
Queue: Any = _KombuQueue
HEADER_DELAY = "x-delay-seconds"
MAX_DELAY_SECONDS = 604_800


class TopicSettings(BaseModel):
    """`[integrations.mns.topics.<topic>]`: the queues a topic fans out to."""

    model_config = ConfigDict(extra="forbid")

    queues: list[str] = Field(min_length=1)


class MnsSettings(BaseModel):
    """`[integrations.mns]`."""

    model_config = ConfigDict(extra="forbid")

    transport: str = DEFAULT_TRANSPORT
    transport_options: dict[str, Any] = Field(default_factory=dict)
    topics: dict[str, TopicSettings] = Field(default_factory=dict)


def _body_text(body: Any) -> tuple[str, str]:
    if isinstance(body, str):
        return body, "text/plain"
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")), "application/json"


def _int_param(params: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = params.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(
            f"serviceParams.{name} must be a whole number from {low} to {high}, got {value!r}"
        )
    return value


class MnsIntegration(Integration):
    """Sends task messages to MNS-style queues and topics through one kombu connection."""

    name = "mns"
    patterns = frozenset({"requestResponse", "waitForCallback"})
    config_model = MnsSettings

    def __init__(self, settings: MnsSettings | None = None) -> None:
        self.settings = settings or MnsSettings()
        self._connection: Any = None
        self._publisher: Any = None
        self._queues: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._io = ThreadPoolExecutor(1, thread_name_prefix="relayflow-mns")
        self._delays_natively = self.settings.transport.startswith("relayflow-sqlite")
        # A plain Redis broker is written to from the event loop (see `redis_publish`).
        self._loop_publisher: AsyncRedisPublisher | None = (
            AsyncRedisPublisher(self.settings.transport)
            if publishes_natively(self.settings.transport, self.settings.transport_options)
            else None
        )

    def claims(self, resource: str) -> bool:
        """Every `acs:mns` queue or topic ARN."""
        if not resource.startswith("acs:mns:"):
            return False
        try:
            return parse_resource_arn(resource).service == "mns"
        except ValueError:
            return False

    def problems(self) -> list[str]:
        """The transport's scheme must be one kombu knows or one this plugin registers."""
        problem = transport_problem(self.settings.transport)
        return [] if problem is None else [problem]

    def queues_for(self, kind: str, name: str) -> list[str]:
        """The queues a message for this queue or topic goes to.

        Raises:
            ValueError: a topic with no subscribed queue in the configuration.
        """
        if kind == "queue":
            return [name]
        topic = self.settings.topics.get(name)
        if topic is None:
            raise ValueError(
                f"topic {name!r} has no subscribed queues; add "
                f"[integrations.mns.topics.{name}] queues = [...]"
            )
        return list(topic.queues)

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Send the message; answer at once (requestResponse) or wait for the report."""
        arn = parse_resource_arn(request.resource)
        params = dict(request.service_params or {})
        try:
            if "MessageBody" not in params:
                raise ValueError(
                    "serviceParams.MessageBody is required for an MNS task; "
                    "MessageBody: $ sends the whole mapped input"
                )
            priority = _int_param(params, "Priority", 1, 16, 8)
            delay = _int_param(params, "DelaySeconds", 0, MAX_DELAY_SECONDS, 0)
            queues = self.queues_for(arn.kind, arn.name)
        except ValueError as exc:
            return Failed(ERROR_RUNTIME, str(exc))
        body, content_type = _body_text(params["MessageBody"])
        message_id = uuid.uuid5(uuid.NAMESPACE_URL, request.token).hex.upper()
        headers: dict[str, Any] = {
            **request.headers,
            "x-relayflow-flow": request.flow_name,
            "x-relayflow-execution": request.execution_name,
            "x-relayflow-step": request.step_name,
            "x-relayflow-message-id": message_id,
        }
        if request.pattern == "waitForCallback":
            headers[HEADER_TOKEN] = request.token
        if arn.kind == "topic":
            if "MessageTag" in params:
                headers["x-mns-message-tag"] = str(params["MessageTag"])
            if "MessageAttributes" in params:
                headers["x-mns-message-attributes"] = json.dumps(params["MessageAttributes"])
        if delay and not self._delays_natively:
            await asyncio.sleep(delay)  # the transport cannot delay; hold the message here
        elif delay:
            headers[HEADER_DELAY] = delay
        if self._loop_publisher is not None:
            await self._loop_publisher.publish(
                queues, body, content_type, headers, mns_priority_to_kombu(priority)
            )
        else:
            await asyncio.get_running_loop().run_in_executor(
                self._io,
                self._publish,
                queues,
                body,
                content_type,
                headers,
                mns_priority_to_kombu(priority),
            )
        md5 = hashlib.md5(body.encode()).hexdigest().upper()
        result = {"MessageId": message_id, "MessageBodyMD5": md5}
        if request.pattern == "waitForCallback":
            return Submitted(result)
        return Succeeded(result)

    def _publish(
        self,
        queues: list[str],
        body: str,
        content_type: str,
        headers: dict[str, Any],
        priority: int,
    ) -> None:
        with self._lock:
            if self._publisher is None:
                # One connection, producer and retrying publish for the process: building them
                # per message costs more than sending it.
                self._connection = Connection(
                    self.settings.transport,
                    transport=redis_transport.transport_for(self.settings.transport),
                    transport_options=self.settings.transport_options,
                )
                producer = self._connection.Producer()
                self._publisher = self._connection.ensure(
                    producer,
                    producer.publish,
                    max_retries=5,
                    interval_start=0.1,
                    interval_step=0.5,
                    interval_max=2,
                )
            for name in queues:
                queue = self._queues.get(name)
                if queue is None:
                    queue = self._queues[name] = Queue(name, routing_key=name)
                self._publisher(
                    body,
                    routing_key=name,
                    declare=[queue],
                    content_type=content_type,
                    content_encoding="utf-8",
                    serializer=None,
                    headers=headers,
                    priority=priority,
                    delivery_mode=2,
                )

    async def aclose(self) -> None:
        """Release the broker connection; `Engine.close` calls this. A later send reconnects."""
        if self._loop_publisher is not None:
            await self._loop_publisher.aclose()
        with self._lock:
            if self._connection is not None:
                self._connection.release()
                self._connection = None
                self._publisher = None

    def close(self) -> None:
        """Release the broker connection and stop the sending thread for good."""
        with self._lock:
            if self._connection is not None:
                self._connection.release()
                self._connection = None
                self._publisher = None
        self._io.shutdown(wait=False)
