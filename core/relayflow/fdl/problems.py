"""Problems found in a definition, and the error that carries them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from relayflow.errors import RelayflowError

__all__ = ["DataPath", "DefinitionError", "Problem", "format_path", "printable"]

DataPath = tuple[str | int, ...]

# Line breaks, other control characters and lone surrogates, which a definition's keys, names
# and conditions may hold: shown escaped, a problem stays one line and can always be encoded.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def printable(text: str) -> str:
    """``text`` with control characters and lone surrogates written as escapes."""
    return _UNPRINTABLE.sub(_escape, text)


def format_path(path: DataPath) -> str:
    """Write a data path the way a person reads it: `steps[2].choices[0].goto`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = printable(part)
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where it is and one sentence on what is wrong."""

    message: str
    path: DataPath = ()
    line: int | None = None
    source: str = "<string>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", printable(self.message))

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        at = format_path(self.path)
        return f"{where}: {at}: {self.message}" if at else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form, for `relayflow validate --json`."""
        return {
            "source": self.source,
            "line": self.line,
            "path": format_path(self.path),
            "message": self.message,
        }


class DefinitionError(RelayflowError, ValueError):
    """A definition that cannot be loaded; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
