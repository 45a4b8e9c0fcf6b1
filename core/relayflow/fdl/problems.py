"""Problems found in a definition, and the error that carries them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DataPath", "DefinitionError", "Problem", "format_path"]

DataPath = tuple[str | int, ...]


def format_path(path: DataPath) -> str:
    """Write a data path the way a person reads it: `steps[2].choices[0].goto`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where it is and one sentence on what is wrong."""

    message: str
    path: DataPath = ()
    line: int | None = None
    source: str = "<string>"

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


class DefinitionError(ValueError):
    """A definition that cannot be loaded; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
