"""Checking what callers pass to the engine: names, JSON, Error and Cause, pages, Environment.

Each check answers a bad value with an `InvalidArgument` refusal whose message names the field,
as Serverless Workflow's API does.

Page sizes: each listing takes `Limit` from 1 to the largest value the official SDKs and the
tools built on them send, which is at times one more than the SDKs' comments say (a tool lists
flows with `Limit=1000` where the comment says 1-999); the default is 60 everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from relayflow import jsontext
from relayflow.errors import EngineError, first_line

__all__ = [
    "DEFAULT_PAGE",
    "MAX_ENVIRONMENT_BYTES",
    "MAX_EXECUTIONS_PAGE",
    "MAX_FLOWS_PAGE",
    "MAX_HISTORY_PAGE",
    "MAX_OBJECTS_PAGE",
    "MAX_VARIABLES",
    "MAX_VARIABLE_DESCRIPTION",
    "MAX_VARIABLE_VALUE",
    "check_environment",
    "check_name",
    "check_text",
    "environment_variables",
    "page_size",
    "parse_object",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")

#: A page's size when the caller gives no `Limit`.
DEFAULT_PAGE = 60
#: ListFlows' largest `Limit` (the SDK says 1-999; tools send 1000).
MAX_FLOWS_PAGE = 1000
#: ListExecutions' largest `Limit` (the SDK says 1-99, the service's reference 1-100).
MAX_EXECUTIONS_PAGE = 100
#: GetExecutionHistory's largest `Limit` (the SDK says 1-999).
MAX_HISTORY_PAGE = 1000
#: The largest `Limit` of ListSchedules (1-1000 in the service's reference), ListFlowVersions
#: and ListFlowAliases.
MAX_OBJECTS_PAGE = 1000

#: How many variables a flow's Environment may hold.
MAX_VARIABLES = 100
#: The longest variable Value, in characters.
MAX_VARIABLE_VALUE = 4096
#: The longest variable Description, in characters.
MAX_VARIABLE_DESCRIPTION = 256
#: The largest Environment as stored (UTF-8 JSON), whatever the counts above allow.
MAX_ENVIRONMENT_BYTES = 64 * 1024
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_name(value: str, what: str) -> str:
    """Check a flow or execution name against Serverless Workflow's rules."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise EngineError.of(
            "InvalidArgument",
            f"{what} {value!r} must be 1 to 128 characters of letters, "
            "digits, _ and -, starting with a letter or _",
        )
    return value


def parse_object(value: Any, what: str, max_depth: int = jsontext.MAX_DEPTH) -> dict[str, Any]:
    """A JSON object given as a dict or as JSON text, nested at most ``max_depth`` levels."""
    if value is None or value == "":
        return {}
    if isinstance(value, str | bytes):
        try:
            value = jsontext.loads_input(value)
        except ValueError as exc:
            if "recursion limit" in str(exc):
                raise _too_deep(what, max_depth) from None
            raise EngineError.of(
                "InvalidArgument", f"{what} is not valid JSON: {first_line(exc)}"
            ) from None
    if not isinstance(value, dict):
        raise EngineError.of(
            "InvalidArgument", f"{what} must be a JSON object, not a {type(value).__name__}"
        )
    if jsontext.too_deep(value, max_depth):
        raise _too_deep(what, max_depth)
    return value


def _too_deep(what: str, max_depth: int) -> EngineError:
    return EngineError.of(
        "InvalidArgument",
        f"{what} nests objects and arrays more than {max_depth} levels deep "
        "(engine.max_json_depth)",
    )


def check_text(value: str, what: str, top: int, *, required: bool = False) -> str:
    """An Error or Cause field, held to the service's length (Error 1-128, Cause 0-4,096).

    A NUL character is refused: no store keeps one in text (PostgreSQL refuses it).
    """
    if not isinstance(value, str) or len(value) > top or (required and not value):
        least = 1 if required else 0
        raise EngineError.of("InvalidArgument", f"{what} must be {least} to {top} characters")
    if "\x00" in value:
        raise EngineError.of("InvalidArgument", f"{what} must not hold a NUL character")
    return value


def page_size(value: int | None, default: int, top: int, what: str) -> int:
    """A page's Limit: ``default`` when not given, else from 1 to ``top``."""
    if value is None:
        return default
    if not 1 <= value <= top:
        raise EngineError.of("InvalidArgument", f"{what} must be from 1 to {top}, got {value}")
    return value


def _bad_environment(message: str) -> EngineError:
    return EngineError.of("InvalidArgument", f"Environment {message}")


def check_environment(value: Any) -> str:
    """A flow's Environment as the JSON text the store keeps; "" when it holds no variables.

    The SDKs send `{"Variables": [{"Name": ..., "Value": ..., "Description": ...}]}` as JSON
    text; a dict of that shape is taken too. The text kept lists each variable's `Name`,
    `Value` and `Description` (`""` when not given) in the order given.

    Limits: at most `MAX_VARIABLES` variables with distinct names of 1 to 128 letters, digits
    and `_` (not starting with a digit), values of at most `MAX_VARIABLE_VALUE` characters,
    descriptions of at most `MAX_VARIABLE_DESCRIPTION`, and `MAX_ENVIRONMENT_BYTES` in all.

    Raises:
        EngineError: `InvalidArgument`, naming the variable and what is wrong with it.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, str | bytes):
        if len(value) > 2 * MAX_ENVIRONMENT_BYTES:  # before parsing: the text is too long
            raise _bad_environment(f"is larger than {MAX_ENVIRONMENT_BYTES} bytes")
        try:
            value = jsontext.loads_input(value)
        except ValueError as exc:
            raise _bad_environment(f"is not valid JSON: {first_line(exc)}") from None
    if not isinstance(value, dict):
        raise _bad_environment(
            'must be a JSON object such as {"Variables": [{"Name": "A", "Value": "1"}]}'
        )
    unknown = sorted(set(value) - {"Variables"})
    if unknown:
        raise _bad_environment(f"has {unknown[0]!r}; the only field is Variables")
    variables = value.get("Variables")
    if variables is None:
        variables = []
    if not isinstance(variables, list):
        raise _bad_environment("Variables must be a JSON array of variables")
    if len(variables) > MAX_VARIABLES:
        raise _bad_environment(f"has {len(variables)} variables, more than {MAX_VARIABLES}")
    kept: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, variable in enumerate(variables):
        kept.append(_check_variable(variable, index, seen))
    if not kept:
        return ""
    text = jsontext.dumps({"Variables": kept})
    if len(text.encode()) > MAX_ENVIRONMENT_BYTES:
        raise _bad_environment(f"is larger than {MAX_ENVIRONMENT_BYTES} bytes")
    return text


def _check_variable(variable: Any, index: int, seen: set[str]) -> dict[str, str]:
    where = f"Variables[{index}]"
    if not isinstance(variable, dict):
        raise _bad_environment(f"{where} must be an object with Name, Value and Description")
    unknown = sorted(set(variable) - {"Name", "Value", "Description"})
    if unknown:
        raise _bad_environment(
            f"{where} has {unknown[0]!r}; a variable has Name, Value, Description"
        )
    name = variable.get("Name")
    if not isinstance(name, str) or not _VARIABLE.fullmatch(name):
        raise _bad_environment(
            f"{where}.Name {name!r} must be 1 to 128 letters, digits and _, "
            "not starting with a digit"
        )
    if name in seen:
        raise _bad_environment(f"names the variable {name!r} twice")
    seen.add(name)
    value = variable.get("Value", "")
    description = variable.get("Description", "")
    if not isinstance(value, str) or len(value) > MAX_VARIABLE_VALUE:
        raise _bad_environment(
            f"variable {name!r}: Value must be text of at most {MAX_VARIABLE_VALUE} characters"
        )
    if not isinstance(description, str) or len(description) > MAX_VARIABLE_DESCRIPTION:
        raise _bad_environment(
            f"variable {name!r}: Description must be text of at most "
            f"{MAX_VARIABLE_DESCRIPTION} characters"
        )
    return {"Name": name, "Value": value, "Description": description}


def environment_variables(text: str) -> list[dict[str, str]]:
    """The variables of an Environment kept by `check_environment` ([] for "")."""
    if not text:
        return []
    variables: list[dict[str, str]] = jsontext.loads_input(text)["Variables"]
    return variables
