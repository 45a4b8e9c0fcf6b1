"""The web console: `relayflow server` serves it at `/console/` (docs/console.md).

Every asset is a file in `static/`, written by hand and checked in: no build step, no network.
The console reads and acts through the engine, with the same actions and role checks as the
HTTP API; it never opens the store. The routes, all under `/console`:

- `GET /console/` (and `/console`, redirected): `static/index.html`, a single page whose views
  are addressed by the URL fragment (`#/executions?flow=F`, `#/execution/F/NAME`, ...).
- `GET /console/static/<file>`: the page's scripts, styles and images; nothing outside
  `static/` is ever served.
- `GET /console/session`: who is signed in, as JSON: `{"signedIn": bool, "keyless": bool,
  "keyId": str, "role": "admin"|"worker"|"reader", "csrf": str, "expires": epoch seconds}`.
  With no access keys configured (`keyless`, loopback only) everyone is `admin`, signed in.
- `POST /console/session` with a JSON body `{"accessKeyId": ..., "accessKeySecret": ...}` or
  `{"token": ...}` (from `relayflow console token`): signs in; the answer is the same JSON and
  sets the session cookie (`relayflow_console`: signed, HttpOnly, SameSite=Strict, Secure
  over HTTPS, Path=/console). Refusals: 401 `{"Code", "Message"}`.
- `POST /console/session/end`: signs out (clears the cookie).
- `POST /console/api/<Action>` with a JSON object of the action's parameters (the names of the
  HTTP API: `FlowName`, `ExecutionName`, ...): runs the action as the HTTP API would
  (`relayflow.api.actions.run_action`) if the session's role may call it
  (`relayflow.api.auth.ROLE_ACTIONS`); the answer is the action's JSON, a refusal
  `{"Code", "Message"}` with the API's status.
- `GET /console/graph?flow=NAME[&version=N | &execution=NAME]`: the flow drawn as a graph
  (`relayflow.console.graph.flow_graph`): nodes with positions, edges, lanes; needs a role
  that may call DescribeFlow. With `execution`, the definition that execution runs (its
  FlowDefinition, whose node ids `/console/view` uses; needs DescribeExecution too). Its
  `problems` (`[{"source", "line", "path", "message"}]`, `[]` when none) are what `relayflow
  validate --strict` says of the definition with the integrations this server has now.
- `GET /console/view?flow=NAME&execution=NAME`: one execution as the execution page shows it
  (`relayflow.console.view.execution_view`): each step's state, the timeline, what it waits
  on; needs a role that may call GetExecutionHistory.

Every `POST` must carry the header `X-Relayflow-CSRF` with the session's `csrf` value and
come from the console's own origin (`Origin` / `Sec-Fetch-Site`); everything but the page and
its static files needs a session. Answers carry `Cache-Control: no-store` and a strict
Content-Security-Policy (scripts and styles from `/console/static/` only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relayflow.console.app import ConsoleApp

__all__ = ["ConsoleApp"]


def __getattr__(name: str) -> Any:
    """`ConsoleApp`, imported on first use: `relayflow console token` needs only `session`."""
    if name == "ConsoleApp":
        from relayflow.console.app import ConsoleApp

        return ConsoleApp
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
