"""The route header: which execution a call is about, for a balancer to hash on.

Behind a balancer, any replica answers any call. A replica that wrote an execution last can
apply the next report on it in one round trip to PostgreSQL (its writer remembers the row's
version), while another replica first reads the row. So the clients name the execution of the
calls that change one (StartExecution with a name, StopExecution, ReportTaskSucceeded and
ReportTaskFailed by token) in `X-Relayflow-Route: FLOW/EXECUTION`, and a balancer that hashes
on that header (contrib/deploy/haproxy.cfg) sends every such call of one execution to the same
replica. The header is a hint only: servers ignore it, and a call without it (or routed
elsewhere) is answered the same.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["ROUTE_HEADER", "route_of", "token_route"]

ROUTE_HEADER = "X-Relayflow-Route"
"""The header's name; its value is `FLOW/EXECUTION`."""

# Printable ASCII without spaces: nothing that could end the header or start another. A name
# outside this gets no route rather than an escaped one; the call is unaffected.
_SAFE = re.compile(r"[!-~]{1,256}")
_LONGEST_TOKEN = 4096


def route_of(flow_name: str, execution_name: str | None) -> str | None:
    """The header's value for one execution, or None when a name is missing or unsafe."""
    if not flow_name or not execution_name:
        return None
    if not (_SAFE.fullmatch(flow_name) and _SAFE.fullmatch(execution_name)):
        return None
    return f"{flow_name}/{execution_name}"


def token_route(token: str | None) -> str | None:
    """The route of the execution a task token names, read without checking its signature.

    None for anything that is not a token's layout; the server judges the token itself.
    """
    if not token or len(token) > _LONGEST_TOKEN:
        return None
    try:
        text = base64.b64decode(token, validate=True).decode()
    except (ValueError, binascii.Error, UnicodeError):
        return None
    fields = text.split("#")
    if len(fields) != 5 or fields[0] != "v1":
        return None
    return route_of(fields[1], fields[2])
