"""The producer side: what a task step sends, to which queues, with which headers."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from kombu import Connection

from relayflow.engine import Failed, Submitted, Succeeded, TaskRequest
from relayflow_mns.integration import HEADER_TOKEN, MnsIntegration, MnsSettings, TopicSettings

QUEUE = "acs:mns:::/queues/jobs/messages"


def request(resource=QUEUE, pattern="waitForCallback", params=None, **extra):
    return TaskRequest(
        flow_name="f",
        execution_name="e1",
        step_name="ask",
        task_id=3,
        token="tok-3",
        resource=resource,
        pattern=pattern,
        input={"job": "x"},
        service_params={"MessageBody": {"job": "x", "taskToken": "tok-3"}}
        if params is None
        else params,
        timeout_seconds=None,
        attempt=0,
        **extra,
    )


@pytest.fixture
def memory_url(request):
    # kombu's memory transport is per process; a virtual host per test keeps queues apart.
    return f"memory://localhost/{request.node.name}"


def receive(url, queue, timeout=2.0):
    with Connection(url) as conn:
        simple = conn.SimpleQueue(queue)
        message = simple.get(timeout=timeout)
        message.ack()
        simple.close()
        return message


def test_claims_queues_and_topics_only():
    integration = MnsIntegration()
    assert integration.claims(QUEUE)
    assert integration.claims("acs:mns:cn-hangzhou:123:/topics/t/messages")
    assert not integration.claims("acs:fc:::services/s/functions/f")
    assert not integration.claims("acs:mns:::/queue/typo/messages")


def test_wait_for_callback_sends_the_body_and_the_token_header(memory_url):
    integration = MnsIntegration(MnsSettings(transport=memory_url))
    outcome = asyncio.run(integration.invoke(request(headers={"traceparent": "00-1"})))
    assert isinstance(outcome, Submitted)
    message = receive(memory_url, "jobs")
    body = message.body.decode() if isinstance(message.body, bytes) else message.body
    assert json.loads(body) == {"job": "x", "taskToken": "tok-3"}
    assert message.headers[HEADER_TOKEN] == "tok-3"
    assert message.headers["traceparent"] == "00-1"
    assert message.headers["x-relayflow-step"] == "ask"
    assert outcome.detail["MessageBodyMD5"] == hashlib.md5(body.encode()).hexdigest().upper()
    integration.close()


def test_request_response_answers_with_message_id_and_md5(memory_url):
    integration = MnsIntegration(MnsSettings(transport=memory_url))
    outcome = asyncio.run(
        integration.invoke(request(pattern="requestResponse", params={"MessageBody": "plain text"}))
    )
    assert isinstance(outcome, Succeeded)
    assert set(outcome.output) == {"MessageId", "MessageBodyMD5"}
    message = receive(memory_url, "jobs")
    assert HEADER_TOKEN not in message.headers
    integration.close()


def test_topics_fan_out_to_subscribed_queues(memory_url):
    settings = MnsSettings(transport=memory_url, topics={"news": TopicSettings(queues=["a", "b"])})
    integration = MnsIntegration(settings)
    outcome = asyncio.run(
        integration.invoke(
            request(
                resource="acs:mns:::/topics/news/messages",
                params={"MessageBody": "hello", "MessageTag": "urgent"},
            )
        )
    )
    assert isinstance(outcome, Submitted)
    for queue in ("a", "b"):
        assert receive(memory_url, queue).headers["x-mns-message-tag"] == "urgent"
    integration.close()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "serviceParams.MessageBody is required"),
        ({"MessageBody": "x", "Priority": 0}, "Priority must be a whole number from 1 to 16"),
        ({"MessageBody": "x", "DelaySeconds": 604801}, "DelaySeconds must be"),
    ],
)
def test_bad_service_params_fail_the_task(params, fragment, memory_url):
    integration = MnsIntegration(MnsSettings(transport=memory_url))
    outcome = asyncio.run(integration.invoke(request(params=params)))
    assert isinstance(outcome, Failed) and outcome.error == "FnF.RuntimeError"
    assert fragment in outcome.cause


def test_unknown_topic_fails_clearly(memory_url):
    integration = MnsIntegration(MnsSettings(transport=memory_url))
    outcome = asyncio.run(
        integration.invoke(
            request(resource="acs:mns:::/topics/nope/messages", params={"MessageBody": "x"})
        )
    )
    assert isinstance(outcome, Failed) and "[integrations.mns.topics.nope]" in outcome.cause


def test_settings_reject_unknown_keys():
    with pytest.raises(ValueError):
        MnsSettings.model_validate({"transprt": "memory://"})
