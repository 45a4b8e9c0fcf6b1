"""The Python client of relayflow's HTTP API, synchronous (`Client`) and asyncio (`AsyncClient`).

The API is Alibaba Cloud Serverless Workflow's RPC API, version 2019-03-15: every call is
`POST /` with `Action=<name>&Version=2019-03-15` and the action's parameters as a form body,
signed with an access key (signature version 1.0, see `relayflow.signing`). The client
does all of that; you call methods with Python values and get frozen dataclasses back:
`FlowInfo`, `ExecutionInfo`, `HistoryEvent` and `Page` from `relayflow.results`, the very types
the embedded engine (`relayflow.engine.SyncEngine`) returns, so a script moves between the two
by changing the line that makes its engine or client. `Flow` and `Execution` are the client's
former names for `FlowInfo` and `ExecutionInfo` (the same classes; `relayflow.fdl.Flow` is a
flow *definition*, not this resource).

Connecting
----------

Give the endpoint and, when the server has `[[server.access_keys]]`, a key:

    from relayflow.client import Client

    client = Client("http://127.0.0.1:8765", access_key_id="ops", access_key_secret="s3cr3t-key")

or read the `[client]` table of relayflow.toml (and `RELAYFLOW_CLIENT__*` variables), as the
`relayflow flows ...` and `relayflow executions ...` commands do:

    from relayflow.config import load_config

    client = Client.from_config(load_config(None))

    [client]
    endpoint = "http://127.0.0.1:8765"
    access_key_id = "ops"
    access_key_secret = "s3cr3t-key"
    timeout_seconds = 30

Without a key, requests go unsigned; only a server with no access keys accepts them. The
client keeps connections open: use it as a context manager, or call `close()`
(`await aclose()` for `AsyncClient`).

An `https://` endpoint (a server with `[server] tls_cert_file`) has its certificate and host
name verified, always. For a certificate a private CA signed, pass that CA's PEM file:

    client = Client("https://relayflow.internal:8443", "ops", "s3cr3t-key", ca_file="ca.pem")

(`[client] ca_file` in relayflow.toml, `$RELAYFLOW_CLIENT__CA_FILE`). Without it the client
trusts `$SSL_CERT_FILE` / `$SSL_CERT_DIR` when set, else the public CAs of `certifi`.

Flows and executions
--------------------

    with Client("http://127.0.0.1:8765", "ops", "s3cr3t-key") as client:
        client.create_flow("orders", Path("flows/orders.yaml").read_text())
        run = client.start_execution("orders", {"id": 7}, name="order-7")
        done = client.wait_for_execution("orders", run.name)    # long polls, 60 s at a time
        if done.succeeded:
            print(done.output)                                  # a dict
        else:
            print(done.status, done.error, done.cause)

An Express flow (`create_flow(..., execution_mode="Express")`) runs in one call and answers
with its end: `client.start_sync_execution("quick", {"id": 7})` returns the ended execution
(`status`, `output`, or `error` and `cause`). Versions and aliases: `qualifier=` on
`start_execution`, `start_sync_execution` and `list_executions`, `flow_version=` on
`describe_flow`.

Schedules have their methods (`create_schedule`, `describe_schedule`, `list_schedules`,
`iter_schedules`, `update_schedule`, `delete_schedule`), which return
`relayflow.flow_objects.ScheduleInfo`, as the embedded engine does.

Actions without a method of their own (published versions, aliases, regions) go
through `request`, with the API's parameter names, and come back as the answer's dict:

    client.request("CreateSchedule", {"FlowName": "orders", "ScheduleName": "nightly",
                                      "CronExpression": "0 0 2 * * *", "Enable": True})

`describe_execution(flow, name, wait_seconds=30)` is one long poll: the server answers when
the execution ends or after 30 seconds (at most 60); the client waits that much longer for
the answer than its usual timeout.

Listings come a page at a time (`Page`: `items`, a list, and `next_token`); the `iter_*`
methods walk every page for you:

    page = client.list_executions("orders", status="Running", limit=50)
    for execution in client.iter_executions("orders", status="Failed"):
        print(execution.name, execution.error)
    for event in client.iter_history("orders", "order-7"):
        print(event.event_id, event.type, event.step_name, event.detail)

Workers: reporting task results
-------------------------------

A waitForCallback task step hands a task token to a worker; the worker reports with it.
The first report on a token wins; later ones raise `ClientError` with a specific code.

    try:
        client.report_task_succeeded(token, {"booked": True})
    except ClientError as exc:
        if exc.code != "TaskAlreadyCompleted":     # a duplicate delivery: nothing to do
            raise

    client.report_task_failed(token, "Booking.SoldOut", "no seats left on 2024-06-01")

A task whose step declares `correlationKey` can be reported on without its token, by its flow
and key (docs/correlation.md); the first report wins there too (`CorrelationKeyNotExists`
for the later ones):

    client.report_task_succeeded(output={"paid": True}, flow_name="orders", correlation_key="A-7")

Operating flows in production
-----------------------------

relayflow's own actions have methods too (docs/redrive.md, docs/bulk-actions.md,
docs/waiting.md, docs/retention.md):

    client.redrive_execution("orders", "order-7")            # Running again, redrive_count 1
    page = client.stop_executions("orders", name_prefix="import-", limit=500)   # a BulkPage
    page.matched, page.done, page.failed, page.next_token
    client.redrive_executions("orders", "Failed", dry_run=True).selected
    client.count_executions("orders", "Running")
    for work in client.iter_waiting("orders", older_than=3600):
        print(work.execution_name, work.step_name, work.since)
    client.purge_executions(datetime.now(UTC) - timedelta(days=30)).more
    client.describe_execution("orders", "order-7", include_waiting=True).waiting
    client.delete_flow("orders", force=True)                  # stops what runs, then deletes

asyncio
-------

`AsyncClient` has the same methods as coroutines, and async iterators for the `iter_*` ones:

    async with AsyncClient.from_config(config) as client:
        run = await client.start_execution("orders", {"id": 7})
        done = await client.wait_for_execution("orders", run.name, timeout=300)
        async for event in client.iter_history("orders", run.name):
            ...

Errors
------

Every failed call raises `ClientError`, with `code`, `message`, `status` (HTTP; 0 when there
was no answer) and `request_id` (find it in the server's log):

- the server's codes, unchanged: `FlowNotExists`, `ExecutionNotExists`,
  `ExecutionAlreadyExists`, `TaskAlreadyCompleted`, `AccessDenied`, `SignatureDoesNotMatch`,
  `InvalidTimeStamp.Expired` (the clocks differ by more than the server's window), ...;
- `ConnectionFailed`: the server cannot be reached (wrong endpoint, not running, plain
  `http://` to a server that serves HTTPS);
- `InvalidCertificate`: the server's TLS certificate is not accepted (an unknown CA: give
  `ca_file`; a host name it does not cover; expired); the message names OpenSSL's reason;
- `RequestTimeout`: no answer within the timeout;
- `InvalidResponse`: something answered that is not the API.

Arguments that cannot be right whatever the server says (an endpoint that is not a URL, half
an access key, `wait_seconds=90`, a `ca_file` that does not exist) raise `ValueError` before
anything is sent.

Testing
-------

Both clients take an httpx transport, so tests can answer without a server:

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"RequestId": "1", "EventId": 5})

    client = Client("http://relayflow.test", transport=httpx.MockTransport(answer))
    assert client.report_task_succeeded("token", {}) == 5
"""

from __future__ import annotations

from relayflow.client._async import AsyncClient
from relayflow.client._calls import API_VERSION
from relayflow.client._errors import ClientError
from relayflow.client._http import Client
from relayflow.results import (
    FINAL_STATUSES,
    BulkPage,
    ExecutionInfo,
    FlowInfo,
    HistoryEvent,
    HistoryPage,
    Page,
    PurgeResult,
    WaitingWork,
)

__all__ = [
    "API_VERSION",
    "FINAL_STATUSES",
    "AsyncClient",
    "BulkPage",
    "Client",
    "ClientError",
    "Execution",
    "ExecutionInfo",
    "ExecutionPage",
    "Flow",
    "FlowInfo",
    "FlowPage",
    "HistoryEvent",
    "HistoryPage",
    "Page",
    "PurgeResult",
    "WaitingWork",
]

Flow = FlowInfo
"""The client's former name for `FlowInfo`, the same class (not `relayflow.fdl.Flow`)."""

Execution = ExecutionInfo
"""The client's former name for `ExecutionInfo` (the same class)."""

FlowPage = Page[FlowInfo]
"""A page of `ListFlows`: `Page[FlowInfo]`."""

ExecutionPage = Page[ExecutionInfo]
"""A page of `ListExecutions`: `Page[ExecutionInfo]`."""
