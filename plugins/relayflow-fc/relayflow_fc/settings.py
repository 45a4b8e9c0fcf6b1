"""The `[integrations.fc]` table of `relayflow.toml`, and how a resourceArn finds its handler.

```toml
[integrations.fc]
default_timeout_seconds = 60          # optional

[integrations.fc.functions]
"trip/bookTrain" = "trip_functions:book_train"
```

Every key is `service/function` (an ARN's qualifier plays no part in the lookup); every value is
`module:attribute`, where the attribute may be dotted (`module:Class.method`). The model is
strict, so a misspelt key is a one-sentence configuration error naming it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from relayflow.fdl.resources import ResourceArn, parse_resource_arn

__all__ = ["FcSettings", "function_key", "parse_fc_arn"]

_KEY = re.compile(r"[A-Za-z0-9_\-]+/[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TARGET = re.compile(rf"{_IDENT}(?:\.{_IDENT})*:{_IDENT}(?:\.{_IDENT})*")


def _check_key(value: str) -> str:
    if not _KEY.fullmatch(value):
        raise PydanticCustomError(
            "fc_function_key",
            'a function is named service/function, like "trip/bookTrain"',
        )
    return value


def _check_target(value: str) -> str:
    if not _TARGET.fullmatch(value):
        raise PydanticCustomError(
            "fc_handler_target",
            'a handler is named module:function, like "trip_functions:book_train"',
        )
    return value


FunctionKey = Annotated[str, AfterValidator(_check_key)]
HandlerTarget = Annotated[str, AfterValidator(_check_target)]


class FcSettings(BaseModel):
    """Settings of the `fc` integration (the `[integrations.fc]` table).

    Attributes:
        functions: handlers by `service/function`, each `module:attribute`.
        default_timeout_seconds: the timeout of a handler whose task step sets no
            `timeoutSeconds`; the integration stops waiting for it after that long and fails
            the task with `FnF.TaskTimeout`. None (the default) waits as long as it takes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    functions: dict[FunctionKey, HandlerTarget] = Field(default_factory=dict)
    default_timeout_seconds: float | None = Field(default=None, gt=0)


@lru_cache(maxsize=1024)
def parse_fc_arn(resource: str) -> ResourceArn | None:
    """The parsed ARN if ``resource`` names a Function Compute function, else None."""
    try:
        arn = parse_resource_arn(resource)
    except ValueError:
        return None
    if arn.service != "fc" or arn.kind != "function":
        return None
    return arn


def function_key(resource: str) -> str | None:
    """The `service/function` key of an `acs:fc` function ARN, or None for anything else."""
    arn = parse_fc_arn(resource)
    return None if arn is None else f"{arn.fc_service}/{arn.name}"
