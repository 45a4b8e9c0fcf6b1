"""The value of one YAML scalar, and the checks for values JSON cannot hold.

Both readers of `relayflow.fdl.source` ask here what a scalar means, untagged (resolved by
YAML 1.1 rules, timestamps kept as strings) or tagged (`!Ref`, `!!int`, ...). A flow's constants
become execution data, which is JSON, so a value JSON cannot hold is refused while reading, with
`Unreadable` saying why: an integer too long to print, an infinity or NaN, a tag whose value has
no JSON form (`!!binary`), and a lone surrogate, in YAML text or behind a JSON escape.
"""

from __future__ import annotations

import math
import re
from typing import Any

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from relayflow.errors import RelayflowError
from relayflow.fdl.problems import DataPath
from relayflow.fdl.resources import fc_ref_arn

__all__ = [
    "PLAIN_CACHE",
    "SURROGATE",
    "SURROGATE_ESCAPE",
    "Unreadable",
    "escape_line",
    "find_surrogate",
    "json_constant",
    "json_float",
    "plain",
    "surrogate_problem",
    "tagged",
]

_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CONSTRUCTOR = SafeConstructor()
_JSON_SCALARS = (str, int, float, bool)
_RESOLVER = Resolver()
# Plain scalars repeat a lot in flows (keys, error names, paths); resolving one costs
# microseconds, so results are kept. Only immutable values are cached. The quick reader looks
# here itself before calling `plain`, which saves a call per scalar.
PLAIN_CACHE: dict[str, Any] = {}
_PLAIN_CACHE_LIMIT = 20000
# Python reads at most this many decimal digits into an int (sys.get_int_max_str_digits), so
# a longer integer could not be written back as JSON; hexadecimal and base 60 have no such cap.
_MAX_INT_DIGITS = 4300
_INT_BOUND = 10**_MAX_INT_DIGITS
_TOO_LONG = f"this integer has more than {_MAX_INT_DIGITS:,} digits, the limit for a number"
SURROGATE = re.compile("[\ud800-\udfff]")
# An escape that may stand for a surrogate; only when one is present is the data searched.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE = re.compile(r"\\u[dD]([89a-fA-F])[0-9a-fA-F]{2}")


class Unreadable(RelayflowError):
    """A scalar that has no JSON value; ``message`` says why, ``text`` is how it was written."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.text = text


def _not_finite(text: str) -> Unreadable:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return Unreadable(f"{shown} is not a finite number, and JSON has no other kind", text)


def _unreadable(exc: Exception, text: str) -> Unreadable:
    if "digits" in str(exc):  # int() refuses more than 4,300 of them
        return Unreadable(_TOO_LONG, text)
    if isinstance(exc, ValueError):
        return Unreadable(f"cannot read this value: {exc}", text)
    return Unreadable("cannot read this value as its tag says", text)


def _check_number(value: Any, text: str) -> None:
    """Refuse a number that JSON cannot carry into execution data."""
    kind = value.__class__
    if kind is float and not math.isfinite(value):
        raise _not_finite(text)
    if kind is int and not -_INT_BOUND < value < _INT_BOUND:
        raise Unreadable(_TOO_LONG, text)


def surrogate_problem(char: str) -> str:
    """The problem of a lone surrogate ``char`` in a definition."""
    return f"U+{ord(char):04X} is a lone surrogate, not a character, and JSON text cannot hold it"


def plain(value: str) -> Any:
    """The value of the untagged plain scalar ``value``, by YAML 1.1 rules.

    Timestamps and merge keys (`<<`) stay strings: JSON has no date type, and the readers
    handle merge keys themselves.

    Raises:
        Unreadable: the scalar has no JSON value.
    """
    cached = PLAIN_CACHE.get(value, PLAIN_CACHE)
    if cached is not PLAIN_CACHE:
        return cached
    tag = _RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    result: Any = value
    if tag not in (_STR, _TIMESTAMP, _MERGE_TAG):
        try:
            result = _CONSTRUCTOR.construct_object(ScalarNode(tag, value), deep=True)
        except ConstructorError:  # a YAML 1.1 type without a meaning here, such as `=`
            result = value
        except ValueError as exc:
            raise _unreadable(exc, value) from None
        _check_number(result, value)
    if len(PLAIN_CACHE) < _PLAIN_CACHE_LIMIT:
        PLAIN_CACHE[value] = result
    return result


def tagged(tag: str, text: str) -> Any:
    """The value of the scalar ``text`` written with the explicit ``tag``.

    Raises:
        Unreadable: the tag is not supported, or the scalar has no JSON value as it says.
    """
    if tag == "!Ref":
        try:
            return fc_ref_arn(text)
        except ValueError as exc:
            raise Unreadable(str(exc), text) from None
    if tag.startswith("!") and not tag.startswith("!!"):
        raise Unreadable(f"YAML tag {tag} is not supported; only !Ref service/function is", text)
    if tag in (_STR, _TIMESTAMP):
        return text
    try:
        value = _CONSTRUCTOR.construct_object(ScalarNode(tag, text), deep=True)
    except ConstructorError as exc:
        raise Unreadable(f"cannot read this value: {exc.problem}", text) from None
    except (ValueError, LookupError, TypeError) as exc:  # `!!int x`, `!!bool maybe`
        raise _unreadable(exc, text) from None
    if value is not None and value.__class__ not in _JSON_SCALARS:  # `!!binary` gives bytes
        raise Unreadable(f"a {tag.rsplit(':', 1)[-1]} value has no JSON form", text)
    _check_number(value, text)
    return value


def json_float(text: str) -> float:
    """Read a JSON number with a fraction or exponent, refusing one that overflows.

    Raises:
        Unreadable: ``text`` is too large for a float.
    """
    value = float(text)
    if not math.isfinite(value):  # 1e999 overflows to infinity
        raise _not_finite(text)
    return value


def json_constant(text: str) -> float:
    """Refuse NaN, Infinity and -Infinity, which Python's JSON reader accepts.

    Raises:
        Unreadable: always.
    """
    raise _not_finite(text)


def find_surrogate(data: Any) -> tuple[DataPath, str] | None:
    """The path of a string (or of the mapping of a key) holding a lone surrogate, and it.

    ``data`` is a tree, as the JSON reader makes: nothing in it is reached twice.
    """
    pending: list[tuple[DataPath, Any]] = [((), data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            found = SURROGATE.search(value)
            if found:
                return path, found.group()
        elif isinstance(value, dict):
            for key in value:
                found = SURROGATE.search(key)
                if found:
                    return path, found.group()
            pending.extend(((*path, key), child) for key, child in value.items())
        elif isinstance(value, list):
            pending.extend(((*path, i), child) for i, child in enumerate(value))
    return None


def escape_line(text: str) -> int | None:
    """The line of the first JSON escape of a lone surrogate in ``text``."""
    after_high = -1  # where a pair would continue, after a high surrogate's escape
    for match in _ESCAPE.finditer(text):
        low = match.group(1) in "cdefCDEF"
        if low and match.start() == after_high:
            after_high = -1
            continue
        if after_high >= 0 or low:  # a high one not followed by a low one, or a low one alone
            at = after_high - 6 if after_high >= 0 else match.start()
            return text.count("\n", 0, at) + 1
        after_high = match.end()
    if after_high >= 0:
        return text.count("\n", 0, after_high - 6) + 1
    return None
