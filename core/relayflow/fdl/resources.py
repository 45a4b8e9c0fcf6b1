"""The resourceArn forms a task step may name, parsed into a `ResourceArn`.

Recognised forms (region and account may be empty, as in `acs:fc:::services/...`):

- Function Compute: `acs:fc:{region}:{account}:services/{service}[.{qualifier}]/functions/{fn}`,
  or funcraft's `!Ref service/function` in YAML;
- MNS queue: `acs:mns:{region}:{account}:/queues/{queue}/messages`;
- MNS topic: `acs:mns:{region}:{account}:/topics/{topic}/messages`;
- child flow: `acs:fnf:::flow/{flow}`;
- a service an integration registered (`register(..., services=["oss"])` in
  `relayflow_register_integrations`): `acs:{service}:{region}:{account}:{resource}`, any
  non-empty resource.

Integrations claim these forms by `service` and `kind`; the loader only checks the shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "ResourceArn",
    "fc_ref_arn",
    "parse_resource_arn",
    "register_resource_service",
    "resource_services",
    "unregister_resource_service",
]

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
_SERVICE = re.compile(r"[a-z0-9][a-z0-9\-]*")
#: Services that integrations registered, and the integration that registered each.
_REGISTERED: dict[str, str] = {}


def register_resource_service(service: str, integration: str) -> None:
    """Let task steps name `acs:{service}:...` resources, which ``integration`` serves.

    The built-in services (fc, mns, fnf) are always known; registering one changes nothing.

    Raises:
        ValueError: ``service`` is not a lower-case name such as `oss`.
    """
    if not isinstance(service, str) or not _SERVICE.fullmatch(service):
        raise ValueError(f"resourceArn service {service!r} must be a lower-case name such as 'oss'")
    if service not in _FORMS:
        _REGISTERED.setdefault(service, integration)


def unregister_resource_service(service: str) -> None:
    """Forget a registered service (for plugins being unloaded, and tests)."""
    _REGISTERED.pop(service, None)


def resource_services() -> dict[str, str]:
    """The services flows may name, each with what serves it (`relayflow` for built-ins)."""
    return {**dict.fromkeys(sorted(_FORMS), "relayflow"), **_REGISTERED}


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
    if service in _REGISTERED:
        return _registered_arn(raw, service)
    if service not in _FORMS:
        known = ", ".join(sorted([*_FORMS, *_REGISTERED]))
        raise ValueError(
            f"resourceArn service '{service}' is not one relayflow knows: no installed "
            f"integration serves acs:{service} (known: {known}); use action: for other "
            "integrations"
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


def _registered_arn(raw: str, service: str) -> ResourceArn:
    parts = raw.split(":", 4)
    if len(parts) != 5 or not parts[4]:
        raise ValueError(
            f"'{raw}' is not a valid acs:{service} resourceArn; expected "
            f"acs:{service}:{{region}}:{{account}}:{{resource}}"
        )
    return ResourceArn(raw, service, "resource", parts[4], parts[2], parts[3])
