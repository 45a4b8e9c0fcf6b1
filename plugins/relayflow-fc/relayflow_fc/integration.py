"""`FcIntegration`: Function Compute task steps served by local Python handlers.

It claims a resourceArn `acs:fc:{region}:{account}:services/{service}[.{qualifier}]/functions/
{function}` (funcraft's `!Ref service/function` is the same ARN) when `service/function` is
mapped in `[integrations.fc.functions]`, and calls the handler as Function Compute would:
`handler(event, context)`, on its own daemon thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Final

from relayflow.engine.integration import (
    Failed,
    Integration,
    Submitted,
    Succeeded,
    TaskOutcome,
    TaskRequest,
)
from relayflow.errors import ERROR_RUNTIME, ERROR_TASK_TIMEOUT
from relayflow.importing import ImportTargetError, import_callable
from relayflow_fc.context import FcContext, FunctionMeta, Reporter, ServiceMeta
from relayflow_fc.runner import HandlerCall
from relayflow_fc.settings import FcSettings, function_key, parse_fc_arn
from relayflow_fc.tracing import span_opener, tracing_of

__all__ = ["STEP_TIMEOUT_GRACE_SECONDS", "FcIntegration"]

log = logging.getLogger("relayflow_fc")

#: How long after a step's own `timeoutSeconds` the integration stops waiting for the handler.
#: The engine's timer fails the task with `FnF.TaskTimeout` at the timeout itself; this only
#: frees the dispatcher (and lets a shutdown finish) when the handler never returns.
STEP_TIMEOUT_GRACE_SECONDS: Final = 1.0

_SERVICE_PARAMS: Final = ("InvocationType", "StatefulAsyncInvocationID")
_INVOCATION_TYPES: Final = ("Sync", "Async")
_NAMESPACE: Final = uuid.UUID("8e5c7a40-6f0e-5d3b-9a51-2f1c4b7d9e20")


class FcIntegration(Integration):
    """Runs Function Compute style Python handlers for `acs:fc` task steps.

    Attributes:
        settings: the validated `[integrations.fc]` table.
        reporter: what finishes waitForCallback tasks from inside the process
            (`context.report_succeeded` / `report_failed`, and a callback handler that
            raises); the engine sets it when it starts (`bind`). Anything with async
            `report_task_succeeded(token, output)` and `report_task_failed(token, error,
            cause)` will do: `relayflow.engine.Engine` has both.
        loop: the event loop reports are scheduled on; None (the default) means the loop
            that invokes the task, which is the engine's.
    """

    name = "fc"
    patterns = frozenset({"requestResponse", "sync", "waitForCallback"})
    config_model = FcSettings

    def __init__(
        self,
        settings: FcSettings | None = None,
        *,
        reporter: Reporter | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.settings = settings if settings is not None else FcSettings()
        self.reporter = reporter
        self.loop = loop
        self._background: set[asyncio.Task[None]] = set()

    def bind(self, reporter: Reporter) -> None:
        """Keep the engine as the reporter of in-process callbacks (called when it starts)."""
        self.reporter = reporter

    def problems(self) -> list[str]:
        """Every mapped handler must import and be callable; one sentence for each that is not."""
        found = []
        for key, target in self.settings.functions.items():
            try:
                import_callable(target)
            except ImportTargetError as exc:
                found.append(f'[integrations.fc.functions] "{key}" = "{target}": {exc}')
        return found

    def claims(self, resource: str) -> bool:
        """Whether ``resource`` is an `acs:fc` function ARN whose `service/function` is mapped."""
        key = function_key(resource)
        return key is not None and key in self.settings.functions

    async def invoke(self, request: TaskRequest) -> TaskOutcome:
        """Call the mapped handler; see the README for each pattern."""
        arn = parse_fc_arn(request.resource)
        key = function_key(request.resource)
        target = self.settings.functions.get(key) if key is not None else None
        if arn is None or key is None or target is None:
            return Failed(
                ERROR_RUNTIME,
                f"no fc handler is mapped for {request.resource}; add it under "
                '[integrations.fc.functions] as "service/function" = "module:function"',
            )
        invocation_type, problem = _invocation_type(request.service_params)
        if problem is not None:
            return problem
        timeout = request.timeout_seconds or self.settings.default_timeout_seconds
        loop = asyncio.get_running_loop()
        reporter = self.reporter
        callback = request.pattern == "waitForCallback"
        background = callback or (
            request.pattern == "requestResponse" and invocation_type == "Async"
        )
        submitted = asyncio.Event() if callback else None
        tracing = tracing_of(request.headers)
        context = FcContext(
            request_id=_request_id(request),
            token=request.token,
            function=FunctionMeta(arn.name, target, None, timeout),
            service=ServiceMeta(arn.fc_service, arn.qualifier),
            region=arn.region,
            account_id=arn.account,
            flow_name=request.flow_name,
            execution_name=request.execution_name,
            step_name=request.step_name,
            attempt=request.attempt,
            deadline=time.monotonic() + timeout if timeout else None,
            reporter=reporter,
            loop=self.loop or loop,
            submitted=submitted,
            tracing=tracing,
        )
        call = HandlerCall(
            key=key,
            target=target,
            event=_event(request.input),
            context=context,
            loop=loop,
            wants_result=not background,
            span=span_opener(key, tracing, _span_attributes(request, context)),
        )
        call.start()
        try:
            return await self._outcome(call, request, background, reporter, submitted)
        finally:
            if submitted is not None:
                # Reports wait for this. The engine queues the outcome for commit as soon as
                # invoke returns, before anything woken here runs, so a report made at once
                # by the handler lands after TaskSubmitted (and is not lost if invoke failed).
                submitted.set()

    async def _outcome(
        self,
        call: HandlerCall,
        request: TaskRequest,
        background: bool,
        reporter: Reporter | None,
        submitted: asyncio.Event | None,
    ) -> TaskOutcome:
        """Wait for the handler's outcome, or, in the background, only for it to load."""
        key = call.key
        if request.timeout_seconds:
            wait: float | None = request.timeout_seconds + STEP_TIMEOUT_GRACE_SECONDS
        else:
            wait = self.settings.default_timeout_seconds
        try:
            async with asyncio.timeout(wait):
                if not background:
                    return await call.finished
                failed = await call.loaded
        except TimeoutError:
            return Failed(
                ERROR_TASK_TIMEOUT,
                f"the fc handler of '{key}' ran longer than {wait:g} seconds "
                "(it may still be running)",
            )
        if failed is not None:
            return failed
        call.finished.add_done_callback(
            lambda done: self._after_background(key, request.token, reporter, submitted, done)
        )
        if submitted is not None:
            return Submitted({"RequestId": call.context.request_id})
        return Succeeded({"RequestId": call.context.request_id})

    def _after_background(
        self,
        key: str,
        token: str,
        reporter: Reporter | None,
        submitted: asyncio.Event | None,
        done: asyncio.Future[TaskOutcome],
    ) -> None:
        """A handler whose result nobody awaits has ended: report an exception if it raised."""
        if done.cancelled():
            return
        outcome = done.result()
        if not isinstance(outcome, Failed):
            return
        if submitted is None:
            log.warning(
                "fc handler of %s (invoked asynchronously) raised %s: %s",
                key,
                outcome.error,
                outcome.cause,
            )
            return
        if reporter is None:
            log.warning(
                "fc handler of %s raised %s after its task was submitted, and the integration "
                "has no reporter to fail the task with; it waits for a report or its timeout",
                key,
                outcome.error,
            )
            return
        task = asyncio.get_running_loop().create_task(
            _report_failure(reporter, key, token, outcome, submitted),
            name=f"relayflow-fc-report-{key}",
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _report_failure(
    reporter: Reporter, key: str, token: str, outcome: Failed, submitted: asyncio.Event
) -> None:
    await submitted.wait()
    try:
        await reporter.report_task_failed(token, outcome.error, outcome.cause)
    except Exception as exc:  # the task already has its answer (or the execution ended)
        log.debug("fc handler of %s raised %s; not reported: %s", key, outcome.error, exc)


def _invocation_type(params: dict[str, Any] | None) -> tuple[str, Failed | None]:
    """`InvocationType` from the step's serviceParams (default Sync), or why they are wrong."""
    params = params or {}
    for name in params:
        if name not in _SERVICE_PARAMS:
            return "", Failed(
                ERROR_RUNTIME,
                f"serviceParams key '{name}' is not one Function Compute takes; "
                "use InvocationType (Sync or Async) or StatefulAsyncInvocationID",
            )
    value = params.get("InvocationType", "Sync")
    if value not in _INVOCATION_TYPES:
        return "", Failed(
            ERROR_RUNTIME, f"serviceParams InvocationType must be Sync or Async, got {value!r}"
        )
    return str(value), None


def _request_id(request: TaskRequest) -> str:
    """The same for every dispatch of one attempt, different for every attempt."""
    seed = request.token or (
        f"{request.flow_name}#{request.execution_name}#{request.task_id}#{time.time_ns()}"
    )
    return str(uuid.uuid5(_NAMESPACE, seed))


def _span_attributes(request: TaskRequest, context: FcContext) -> dict[str, Any]:
    """The attributes of the handler's span (FaaS semantic conventions, and relayflow's)."""
    attributes: dict[str, Any] = {
        "faas.name": context.function.name,
        "faas.invocation_id": context.request_id,
        "faas.trigger": "other",
        "cloud.provider": "alibaba_cloud",
        "relayflow.flow": request.flow_name,
        "relayflow.execution": request.execution_name,
        "relayflow.step": request.step_name,
        "relayflow.attempt": request.attempt,
    }
    if context.region:
        attributes["cloud.region"] = context.region
    return attributes


def _event(data: dict[str, Any]) -> bytes:
    """The task's input as Function Compute hands it to a handler: JSON bytes."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
