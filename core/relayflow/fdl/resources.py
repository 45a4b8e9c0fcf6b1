"""The resourceArn forms a task step may name, parsed into a `ResourceArn`.

Recognised forms (region and account may be empty, as in `acs:fc:::services/...`):

- Function Compute: `acs:fc:{region}:{account}:services/{service}[.{qualifier}]/functions/{fn}`,
  or funcraft's `!Ref service/function` in YAML;
- MNS queue: `acs:mns:{region}:{account}:/queues/{queue}/messages`;
- MNS topic: `acs:mns:{region}:{account}:/topics/{topic}/messages`;
- child flow: `acs:fnf:::flow/{flow}`.

Integration plugins claim these forms by `service` and `kind`; the loader only checks the shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = ["ResourceArn", "fc_ref_arn", "parse_resource_arn"]

_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_FORMS: Final[dict[str, tuple[re.Pattern[str], str]]] = {
    "fc": (
        re.compile(
            rf"acs:fc:(?P<region>[^:]*):(?P<account>[^:]*):services/(?P<service>[A-Za-z0-9_\-]+)"
            rf"(?:\.(?P<qualifier>[A-Za-z0-9_\-]+))?/functions/(?P<function>{_NAME})"
        ),
        "acs:fc:{region}:{account}:services/{service}[.{qualifier}]/functions/{function}",
    ),
    "mns": (
        re.compile(
            rf"acs:mns:(?P<region>[^:]*):(?P<account>[^:]*):/(?P<kind>queues|topics)/"
            rf"(?P<name>{_NAME})/messages"
        ),
        "acs:mns:{region}:{account}:/queues/{queue}/messages or .../topics/{topic}/messages",
    ),
    "fnf": (
        re.compile(rf"acs:fnf:(?P<region>[^:]*):(?P<account>[^:]*):flow/(?P<name>{_NAME})"),
        "acs:fnf:::flow/{flow}",
    ),
}
_KIND_OF: Final = {"queues": "queue", "topics": "topic"}


@dataclass(frozen=True, slots=True)
class ResourceArn:
    """A parsed resourceArn.

    Attributes:
        raw: the ARN as written (a `!Ref` is turned into its `acs:fc` ARN).
        service: `fc`, `mns` or `fnf`.
        kind: `function`, `queue`, `topic` or `flow`.
        name: the function, queue, topic or flow name.
        region, account: as written; often empty.
        fc_service, qualifier: the FC service and its optional qualifier (FC only).
    """

    raw: str
    service: str
    kind: str
    name: str
    region: str = ""
    account: str = ""
    fc_service: str = field(default="")
    qualifier: str | None = None

    def __str__(self) -> str:
        return self.raw


def fc_ref_arn(ref: str) -> str:
    """The ARN that funcraft's `!Ref service/function` stands for.

    Raises:
        ValueError: ``ref`` is not `service/function`.
    """
    parts = ref.split("/")
    if len(parts) != 2 or not all(re.fullmatch(_NAME, p) for p in parts):
        raise ValueError(f"!Ref '{ref}' must name a function as service/function")
    return f"acs:fc:::services/{parts[0]}/functions/{parts[1]}"


def parse_resource_arn(raw: str) -> ResourceArn:
    """Parse a resourceArn.

    Raises:
        ValueError: one sentence saying what is wrong and which form was expected.
    """
    if not isinstance(raw, str):
        raise ValueError(
            f"resourceArn must be a string such as acs:fc:::services/s/functions/f, got {raw!r}"
        )
    parts = raw.split(":", 2)
    if len(parts) < 3 or parts[0] != "acs":
        raise ValueError(
            f"'{raw}' is not a resourceArn; expected acs:fc, acs:mns or acs:fnf, "
            "such as acs:fc:::services/s/functions/f"
        )
    service = parts[1]
    if service not in _FORMS:
        raise ValueError(
            f"resourceArn service '{service}' is not one relayflow knows; "
            "use acs:fc, acs:mns or acs:fnf, or action: for other integrations"
        )
    pattern, form = _FORMS[service]
    m = pattern.fullmatch(raw)
    if m is None:
        raise ValueError(f"'{raw}' is not a valid acs:{service} resourceArn; expected {form}")
    g = m.groupdict()
    if service == "fc":
        return ResourceArn(
            raw,
            "fc",
            "function",
            g["function"],
            g["region"],
            g["account"],
            g["service"],
            g["qualifier"],
        )
    kind = _KIND_OF.get(g.get("kind") or "", "flow")
    return ResourceArn(raw, service, kind, g["name"], g["region"], g["account"])
