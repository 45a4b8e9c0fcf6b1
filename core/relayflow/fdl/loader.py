"""Load an FDL document from text or a file into a validated, compiled `Flow`.

Loading reports every problem it finds, each with the line and path it concerns::

    >>> from relayflow.fdl import load_flow
    >>> flow = load_flow('''
    ... version: v1
    ... type: flow
    ... steps:
    ...   - type: pass
    ...     name: hello
    ... ''')
    >>> flow.steps[0].name
    'hello'
"""

from __future__ import annotations

from pathlib import Path as FilePath

from pydantic import ValidationError

from relayflow.fdl.checks import check_siblings
from relayflow.fdl.flow import Flow
from relayflow.fdl.messages import describe_error
from relayflow.fdl.problems import DefinitionError, Problem
from relayflow.fdl.source import ParsedSource, parse_quick, parse_source

__all__ = ["check_flow", "load_flow", "load_flow_file"]


def _problem(parsed: ParsedSource, path: tuple[str | int, ...], message: str) -> Problem:
    return Problem(message, path, parsed.line_of(path), parsed.name)


def check_flow(text: str, name: str = "<string>") -> tuple[Flow | None, list[Problem]]:
    """Load ``text``; return the flow (None when invalid) and every problem found."""
    parsed = parse_quick(text, name) or parse_source(text, name)
    problems = list(parsed.problems)
    if parsed.data is None and problems:
        return None, problems
    if not isinstance(parsed.data, dict):
        kind = type(parsed.data).__name__
        problems.append(
            Problem(
                f"a flow must be a mapping with version, type and steps, got a {kind}",
                (),
                parsed.line_of(()),
                name,
            )
        )
        return None, problems
    flow: Flow | None = None
    try:
        flow = Flow.model_validate(parsed.data)
    except ValidationError as exc:
        # A value the reader already reported (a bad !Ref, say) is not reported twice.
        reported = {p.path for p in parsed.problems}
        for error in exc.errors(include_url=False):
            path, message = describe_error(parsed.data, error)
            if path not in reported:
                problems.append(_problem(parsed, path, message))
    for path, message in check_siblings(parsed.data):
        problems.append(_problem(parsed, path, message))
    if problems and not parsed.container_lines:
        # Read quickly, without lines: read again, slowly, to say where the problems are.
        located = parse_source(text, name)
        if located.data == parsed.data:
            problems = [_problem(located, p.path, p.message) for p in problems]
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path.__repr__()))
        return None, problems
    return flow, []


def load_flow(text: str, name: str = "<string>") -> Flow:
    """Load a flow from YAML or JSON text.

    Raises:
        DefinitionError: the text is not a valid flow; `problems` lists why.
    """
    flow, problems = check_flow(text, name)
    if flow is None:
        raise DefinitionError(problems)
    return flow


def read_text(path: str | FilePath) -> str:
    """Read a definition file as UTF-8.

    Raises:
        DefinitionError: the file cannot be read or is not UTF-8 text.
    """
    try:
        return FilePath(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(
            [Problem(f"cannot read the file: {exc.strerror}", source=str(path))]
        ) from None
    except UnicodeDecodeError:
        raise DefinitionError([Problem("the file is not UTF-8 text", source=str(path))]) from None


def load_flow_file(path: str | FilePath) -> Flow:
    """Load a flow from a `.yaml`, `.yml` or `.json` file.

    Raises:
        DefinitionError: the file cannot be read or is not a valid flow.
    """
    return load_flow(read_text(path), str(path))
