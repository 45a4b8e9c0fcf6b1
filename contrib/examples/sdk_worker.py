"""A worker for the seed scenario that reports through Alibaba Cloud's own Python SDK.

`relayflow worker` is the short way to serve a queue. This script is the long way, written the
way a Serverless Workflow user already writes workers: messages come off the queue with plain
kombu (no relayflow code involved beyond registering the embedded transport's URL scheme), the
job is `seed_worker.handle(body)`, and the result goes back with the official SDK,

    aliyunsdkcore.client.AcsClient
    aliyunsdkfnf.request.v20190315.ReportTaskSucceededRequest / ReportTaskFailedRequest

pointed at relayflow's API with `request.set_endpoint(...)`. Point the endpoint at Alibaba
Cloud instead (`--endpoint https://cn-hangzhou.fnf.aliyuncs.com`, with your AccessKey) and the
same reporting code talks to Serverless Workflow: relayflow speaks its API, version 2019-03-15.

For every message, in this order:

1. the body is decoded (JSON objects and arrays become Python values, other bodies stay text);
2. the task token is read from the header `x-relayflow-task-token`, or else from the body's
   `taskToken` key, where the flow's inputMappings put it (FnF's way);
3. `seed_worker.handle(body)` runs: a returned dict is reported with ReportTaskSucceeded, an
   exception with ReportTaskFailed (its class name as Error, its message as Cause);
4. only after the report is the message acknowledged, which deletes it. A report refused with
   TaskAlreadyCompleted, TaskExpired or ExecutionNotRunning means the message was delivered
   twice and the task already has its answer: it is deleted too.

Run `python contrib/examples/sdk_worker.py --help` for the options; contrib/examples/README.md
walks through the whole scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

import seed_worker  # next to this file: the jobs of seed-three-tasks.yaml
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.http import protocol_type as PT
from aliyunsdkfnf.request.v20190315 import ReportTaskFailedRequest, ReportTaskSucceededRequest
from kombu import Connection, Consumer, Queue

import relayflow_mns.sqlite_transport  # noqa: F401  (registers relayflow-sqlite:// with kombu)

PROG = "sdk_worker"
QUEUE = "fnf-demo"
DEFAULT_TRANSPORT = "relayflow-sqlite:///relayflow-queues.db"
DEFAULT_ENDPOINT = "127.0.0.1:8765"
KEY_ID_ENV = "RELAYFLOW_ACCESS_KEY_ID"
KEY_SECRET_ENV = "RELAYFLOW_ACCESS_KEY_SECRET"

TOKEN_HEADER = "x-relayflow-task-token"
#: Refusals that mean "this task needs nothing more from this message": delete it.
SETTLED = frozenset({"TaskAlreadyCompleted", "TaskExpired", "ExecutionNotRunning"})
#: Refusals that mean "this message is not for this server" (another store, a deleted flow):
#: keeping it would only bring it back forever, so it is deleted with a warning.
FOREIGN = frozenset({"TaskTokenInvalid", "TaskTokenMalformed", "ExecutionNotExists"})
#: Refusals caused by the worker's own key, secret or clock: stop and say what to fix.
CREDENTIALS = frozenset(
    {
        "MissingAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidAccessKeyId",
        "InvalidTimeStamp.Expired",
    }
)
MAX_ERROR, MAX_CAUSE = 128, 4096  # Serverless Workflow's limits on Error and Cause
#: Seconds to hold a message whose report could not be made before giving it back.
RETRY_PAUSE = 2.0

log = logging.getLogger(PROG)


class Fatal(Exception):
    """The worker cannot go on; the message is one line for a person."""


@dataclass
class Endpoint:
    """Where reports go: `host[:port]` and `http` or `https`, as the SDK's requests take them."""

    host: str
    protocol: str

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        scheme, sep, rest = text.partition("://")
        if not sep:
            scheme, rest = "http", text
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise argparse.ArgumentTypeError(f"{text!r}: use host:port, http://... or https://...")
        host = rest.rstrip("/")
        if not host or "/" in host:
            raise argparse.ArgumentTypeError(f"{text!r}: expected host:port, like 127.0.0.1:8765")
        return cls(host, scheme)

    def __str__(self) -> str:
        return f"{self.protocol}://{self.host}"


class Reporter:
    """Sends task reports with the official SDK; the part that is the same on Alibaba Cloud."""

    def __init__(self, client: AcsClient, endpoint: Endpoint) -> None:
        self.client = client
        self.endpoint = endpoint

    def succeeded(self, token: str, output: dict[str, Any]) -> dict[str, Any]:
        request = ReportTaskSucceededRequest.ReportTaskSucceededRequest()
        request.set_TaskToken(token)
        request.set_Output(json.dumps(output))  # a JSON object: the task step's $local
        return self._send(request)

    def failed(self, token: str, error: str, cause: str) -> dict[str, Any]:
        request = ReportTaskFailedRequest.ReportTaskFailedRequest()
        request.set_TaskToken(token)
        request.set_Error(error[:MAX_ERROR] or "Error")  # what the flow's retry and catch match
        request.set_Cause(cause[:MAX_CAUSE])
        return self._send(request)

    def _send(self, request: Any) -> dict[str, Any]:
        # These two lines are the whole difference between relayflow and Alibaba Cloud.
        request.set_endpoint(self.endpoint.host)
        # The SDK's own constant, not an equal string: aliyunsdkcore tests `protocol is
        # PT.HTTPS`, so "https" built at run time would quietly send plain HTTP.
        request.set_protocol_type(PT.HTTPS if self.endpoint.protocol == "https" else PT.HTTP)
        answer: dict[str, Any] = json.loads(self.client.do_action_with_exception(request))
        return answer


def decode_body(message: Any) -> Any:
    """The message body: JSON objects and arrays as Python values, anything else as text."""
    raw = message.body
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode(message.content_encoding or "utf-8")
        except (UnicodeDecodeError, LookupError):
            return bytes(raw)
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        content_type = (message.content_type or "").split(";")[0].strip().lower()
        if isinstance(value, dict | list) or content_type == "application/json":
            return value
    return raw


def task_token(headers: dict[str, Any], body: Any) -> str | None:
    """The token from the header, else from the body's `taskToken`; None when there is none."""
    token = headers.get(TOKEN_HEADER)
    if isinstance(token, bytes):
        token = token.decode("utf-8", "replace")
    if isinstance(token, str) and token:
        return token
    if isinstance(body, dict) and isinstance(body.get("taskToken"), str) and body["taskToken"]:
        return str(body["taskToken"])
    return None


class SdkWorker:
    """Receives messages with kombu, runs the job, reports with the SDK, then acknowledges."""

    def __init__(
        self, transport: str, queue: str, reporter: Reporter, count: int | None, visibility: float
    ) -> None:
        self.transport = transport
        self.queue = queue
        self.reporter = reporter
        self.count = count
        self.visibility = visibility
        self.deleted = 0
        self.stopping = threading.Event()

    def done(self) -> bool:
        return self.stopping.is_set() or (self.count is not None and self.deleted >= self.count)

    def run(self) -> None:
        """Serve the queue until --count messages are deleted or a stop is requested."""
        connection = self._connect()
        inbox: list[Any] = []
        try:
            channel = connection.channel()
            consumer = Consumer(
                channel,
                queues=[Queue(self.queue, routing_key=self.queue)],
                on_message=inbox.append,  # raw kombu messages: decoded here, not by kombu
                no_ack=False,
            )
            consumer.qos(prefetch_count=1)  # hold one message at a time
            consumer.consume()
            log.info("waiting for messages on %s (%s)", self.queue, safe_url(self.transport))
            while not self.done():
                try:
                    connection.drain_events(timeout=0.5)
                    while inbox and not self.done():
                        self.handle(inbox.pop(0))
                except TimeoutError:
                    continue
                except connection.connection_errors as exc:
                    raise Fatal(
                        f"lost the broker at {safe_url(self.transport)} ({exc}); run the worker "
                        "again: the messages it had not deleted are delivered again"
                    ) from exc
        finally:
            for message in inbox:  # received after the last one counted: give it back
                with contextlib.suppress(Exception):  # else it returns after its timeout
                    message.requeue()
            connection.release()

    def _connect(self) -> Any:
        where = safe_url(self.transport)
        connection: Any = None
        try:
            connection = Connection(
                self.transport, transport_options={"visibility_timeout": self.visibility}
            )
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        except (KeyError, ImportError) as exc:
            if connection is not None:
                connection.release()
            scheme = self.transport.partition(":")[0]
            raise Fatal(
                f"kombu has no transport '{scheme}' ({exc}); use relayflow-sqlite:///FILE, "
                "redis://HOST:6379/0 or amqp://USER:PASS@HOST:5672//"
            ) from exc
        except Exception as exc:  # kombu raises many kinds here
            if connection is not None:
                connection.release()
            raise Fatal(f"cannot reach the broker at {where}: {exc}") from exc
        return connection

    def handle(self, message: Any) -> None:
        """One message: the job, the report, then the acknowledgement (or not)."""
        headers = dict(message.headers or {})
        body = decode_body(message)
        token = task_token(headers, body)
        job = body.get("job", "-") if isinstance(body, dict) else "-"
        where = "{}/{} {}".format(  # the flow, execution and step the message comes from
            headers.get("x-relayflow-flow", "-"),
            headers.get("x-relayflow-execution", "-"),
            headers.get("x-relayflow-step", job),
        )
        failure: tuple[str, str] | None = None
        output: Any = None
        try:
            output = seed_worker.handle(body)
        except Exception as exc:
            failure = (type(exc).__name__, str(exc))
        else:
            if not isinstance(output, dict):
                failure = ("InvalidOutput", f"the job returned {type(output).__name__}, not a dict")
        if token is None:
            log.warning("%s: no task token in the message, nothing to report; deleted", where)
            self._ack(message)
            return
        try:
            if failure is None:
                answer = self.reporter.succeeded(token, output)
                outcome = f"succeeded (EventId {answer.get('EventId')})"
            else:
                answer = self.reporter.failed(token, *failure)
                outcome = (
                    f"failed with {failure[0]}: {failure[1]} (EventId {answer.get('EventId')})"
                )
        except ServerException as exc:
            code, status = exc.get_error_code(), exc.get_http_status()
            if code in SETTLED:
                log.info("%s: already answered (%s), a redelivery; deleted", where, code)
                self._ack(message)
                return
            if code in FOREIGN:
                log.warning(
                    "%s: %s: %s; not for this server, deleted", where, code, exc.get_error_msg()
                )
                self._ack(message)
                return
            if status is not None and status >= 500:
                self._keep(message, where, f"{code} ({status}): {exc.get_error_msg()}")
                return
            message.requeue()
            hint = ""
            if code in CREDENTIALS:
                hint = (
                    f"; check the access key ({KEY_ID_ENV}, {KEY_SECRET_ENV} or --access-key-id,"
                    " --access-key-secret), its role (worker or admin) and the clock"
                )
            raise Fatal(
                f"the API at {self.reporter.endpoint} refused the report: "
                f"{code} ({status}): {exc.get_error_msg()}{hint}"
            ) from exc
        except ClientException as exc:  # no answer: the API is down or the endpoint is wrong
            reason = short_reason(exc.get_error_msg())
            reason = f"cannot reach the API at {self.reporter.endpoint}: {reason}"
            self._keep(message, where, reason)
            return
        log.info("%s: %s", where, outcome)
        self._ack(message)

    def _ack(self, message: Any) -> None:
        message.ack()  # deletes the message
        self.deleted += 1

    def _keep(self, message: Any, where: str, reason: str) -> None:
        log.warning(
            "%s: report not made (%s); the message goes back to the queue in %.0f s",
            where,
            reason,
            RETRY_PAUSE,
        )
        self.stopping.wait(RETRY_PAUSE)
        message.requeue()


def short_reason(text: str) -> str:
    """The gist of an SDK transport error, whose text holds the whole signed URL and token."""
    found = re.search(r"\[Errno -?\d+\][^'\")]*|Read timed out|timed out", text)
    if found:
        return found.group(0).strip()
    return text if len(text) <= 160 else text[:160] + "..."


def safe_url(url: str) -> str:
    """The URL with its password hidden."""
    head, sep, tail = url.partition("://")
    if not sep or "@" not in tail:
        return url
    auth, _, rest = tail.partition("@")
    user = auth.partition(":")[0]
    return f"{head}://{user}:***@{rest}" if ":" in auth else url


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sdk_worker.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Serve the queue of contrib/examples/seed-three-tasks.yaml with plain kombu and\n"
            "report each task with Alibaba Cloud's official SDK (aliyunsdkcore AcsClient and\n"
            "aliyunsdkfnf's ReportTaskSucceededRequest / ReportTaskFailedRequest).\n"
            "\n"
            "For each message: take the task token from the header x-relayflow-task-token\n"
            "(else the body's taskToken), run seed_worker.handle(body), report the dict it\n"
            "returns with ReportTaskSucceeded (an exception: ReportTaskFailed, Error = its\n"
            "class name), and only then acknowledge (delete) the message. A report refused\n"
            "with TaskAlreadyCompleted, TaskExpired or ExecutionNotRunning is a redelivered\n"
            "message whose task has its answer: it is deleted too."
        ),
        epilog=(
            "examples:\n"
            "  # the embedded transport; run from the folder where `relayflow server` runs\n"
            "  export RELAYFLOW_ACCESS_KEY_ID=seed-worker\n"
            "  export RELAYFLOW_ACCESS_KEY_SECRET=seed-worker-secret-change-me\n"
            "  python sdk_worker.py --endpoint 127.0.0.1:8765\n"
            "\n"
            "  # Redis or RabbitMQ: the server's [integrations.mns] transport\n"
            "  python sdk_worker.py --transport redis://127.0.0.1:6379/0\n"
            "  python sdk_worker.py --transport amqp://guest:guest@127.0.0.1:5672// --count 3\n"
            "\n"
            "the Alibaba Cloud mapping: the Reporter class is what you would run against\n"
            "Serverless Workflow itself, unchanged; only its endpoint and key differ,\n"
            "  --endpoint https://cn-hangzhou.fnf.aliyuncs.com --region cn-hangzhou\n"
            "  --access-key-id LTAI... --access-key-secret ...\n"
            "and there the messages come from MNS (aliyun-mns-sdk's receive_message and\n"
            "delete_message) where this script uses kombu's consume and ack.\n"
            "\n"
            "exit status: 0 after --count messages, SIGTERM or Ctrl-C; 2 when the options,\n"
            "the broker or the access key cannot be used (one line on stderr)."
        ),
    )
    p.add_argument(
        "--transport",
        default=DEFAULT_TRANSPORT,
        metavar="URL",
        help=(
            "kombu broker URL: the server's [integrations.mns] transport "
            f"(default: {DEFAULT_TRANSPORT}, relative to the current folder)"
        ),
    )
    p.add_argument(
        "--queue", default=QUEUE, help=f"the queue to serve (default: {QUEUE}, the seed flow's)"
    )
    p.add_argument(
        "--endpoint",
        type=Endpoint.parse,
        default=Endpoint.parse(DEFAULT_ENDPOINT),
        metavar="HOST:PORT",
        help=(
            "where to report: relayflow's [server] host and port (plain HTTP), or "
            "https://HOST:PORT for a server with [server] tls_cert_file, a TLS proxy or "
            f"Alibaba Cloud (default: {DEFAULT_ENDPOINT})"
        ),
    )
    p.add_argument(
        "--ca-file",
        metavar="FILE",
        help=(
            "for an https:// endpoint whose certificate a private CA signed: that CA's PEM "
            "certificate (the SDK then trusts only it; default: the SDK's own CA bundle, or "
            "$ALIBABA_CLOUD_CA_BUNDLE). Certificates are always verified"
        ),
    )
    p.add_argument(
        "--access-key-id",
        default=os.environ.get(KEY_ID_ENV),
        metavar="ID",
        help=f"the key to sign reports with, a worker-role key (default: ${KEY_ID_ENV})",
    )
    p.add_argument(
        "--access-key-secret",
        default=os.environ.get(KEY_SECRET_ENV),
        metavar="SECRET",
        help=f"its secret (default: ${KEY_SECRET_ENV}; the environment keeps it out of ps)",
    )
    p.add_argument(
        "--region",
        default="cn-hangzhou",
        help="the SDK's region; relayflow ignores it (default: cn-hangzhou)",
    )
    p.add_argument(
        "--count",
        type=positive,
        metavar="N",
        help="stop after N messages have been answered and deleted (default: run until stopped)",
    )
    p.add_argument(
        "--visibility-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help=(
            "how long a received message stays hidden from other workers, on transports that "
            "take it (embedded, Redis, SQS; default: 30)"
        ),
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    # The SDK logs every failed call with its whole signed URL, task token included; the
    # worker says what happened in its own, shorter line.
    logging.getLogger("aliyunsdkcore").setLevel(logging.CRITICAL)
    try:
        if not args.access_key_id or not args.access_key_secret:
            raise Fatal(
                f"no access key: set {KEY_ID_ENV} and {KEY_SECRET_ENV}, or pass --access-key-id "
                "and --access-key-secret (a key of [[server.access_keys]] with role worker)"
            )
        if args.ca_file is not None and not os.path.isfile(args.ca_file):
            raise Fatal(f"--ca-file {args.ca_file!r} is not a file; give the CA's PEM certificate")
        client = AcsClient(
            args.access_key_id,
            args.access_key_secret,
            args.region,
            timeout=30,
            verify=args.ca_file,  # None: the SDK's default bundle, never "no verification"
        )
        worker = SdkWorker(
            args.transport,
            args.queue,
            Reporter(client, args.endpoint),
            args.count,
            args.visibility_timeout,
        )

        def on_signal(signum: int, frame: Any) -> None:
            worker.stopping.set()  # finish the message in hand, then exit

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        worker.run()
    except Fatal as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    log.info("stopped after deleting %d message(s)", worker.deleted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
