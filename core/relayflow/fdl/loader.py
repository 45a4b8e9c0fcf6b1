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

Whatever the text, loading returns a flow or raises `DefinitionError`, and `DefinitionLimits`
bound its work: the text's size, how deeply it nests, and what its aliases add.
"""

from __future__ import annotations

import os
from pathlib import Path as FilePath

from pydantic import ValidationError

from relayflow.fdl.checks import check_siblings
from relayflow.fdl.flow import Flow
from relayflow.fdl.limits import DEFAULT_LIMITS, DefinitionLimits
from relayflow.fdl.messages import describe_error
from relayflow.fdl.problems import DefinitionError, Problem
from relayflow.fdl.source import ParsedSource, parse_quick, parse_source, size_problem

__all__ = ["check_flow", "load_flow", "load_flow_file"]


def _problem(parsed: ParsedSource, path: tuple[str | int, ...], message: str) -> Problem:
    return Problem(message, path, parsed.line_of(path), parsed.name)


def _capped(problems: list[Problem], limits: DefinitionLimits, name: str) -> list[Problem]:
    """The problems in document order, at most ``limits.max_problems`` of them, and a note."""
    problems.sort(key=lambda p: (p.line or 0, p.path.__repr__()))
    limit = limits.max_problems
    if len(problems) <= limit:
        return problems
    note = f"more problems are not listed; a report lists at most {limit:,}"
    return [*problems[:limit], Problem(note, (), None, name)]


def _decode(data: bytes, name: str, limits: DefinitionLimits) -> str | Problem:
    if len(data) > limits.max_bytes:
        return size_problem(len(data), limits, name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"the document is not UTF-8 text (byte 0x{data[exc.start]:02x})"
        return Problem(message, (), line, name)


def check_flow(
    text: str | bytes, name: str = "<string>", *, limits: DefinitionLimits = DEFAULT_LIMITS
) -> tuple[Flow | None, list[Problem]]:
    """Load ``text``; return the flow (None when invalid) and every problem found.

    ``text`` may be UTF-8 bytes. ``limits`` bound the work; past them the text is a problem.
    """
    if isinstance(text, bytes):
        decoded = _decode(text, name, limits)
        if isinstance(decoded, Problem):
            return None, [decoded]
        text = decoded
    parsed = parse_quick(text, name, limits) or parse_source(text, name, limits)
    problems = list(parsed.problems)
    if parsed.data is None and problems:
        return None, _capped(problems, limits, name)
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
            if len(problems) > limits.max_problems:
                break  # describing the rest would only make a report nobody reads
            path, message = describe_error(parsed.data, error)
            if path not in reported:
                problems.append(_problem(parsed, path, message))
    for path, message in check_siblings(parsed.data):
        if len(problems) > limits.max_problems:
            break
        problems.append(_problem(parsed, path, message))
    if problems and not parsed.container_lines:
        # Read quickly, without lines: read again, slowly, to say where the problems are.
        located = parse_source(text, name, limits)
        if located.data == parsed.data:
            problems = [_problem(located, p.path, p.message) for p in problems]
    if problems:
        return None, _capped(problems, limits, name)
    return flow, []


def load_flow(
    text: str | bytes, name: str = "<string>", *, limits: DefinitionLimits = DEFAULT_LIMITS
) -> Flow:
    """Load a flow from YAML or JSON text (or its UTF-8 bytes), within ``limits``.

    Raises:
        DefinitionError: the text is not a valid flow, or is past a limit; `problems` lists why.
    """
    flow, problems = check_flow(text, name, limits=limits)
    if flow is None:
        raise DefinitionError(problems)
    return flow


def read_text(path: str | FilePath, *, limits: DefinitionLimits = DEFAULT_LIMITS) -> str:
    """Read a definition file as UTF-8, reading no more than ``limits.max_bytes`` allow.

    Raises:
        DefinitionError: the file cannot be read, is too large or is not UTF-8 text.
    """
    try:
        with open(path, "rb") as file:
            data = file.read(limits.max_bytes + 1)
            size = max(len(data), os.fstat(file.fileno()).st_size)
    except OSError as exc:
        raise DefinitionError(
            [Problem(f"cannot read the file: {exc.strerror}", source=str(path))]
        ) from None
    if len(data) > limits.max_bytes:
        raise DefinitionError([size_problem(size, limits, str(path))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DefinitionError([Problem("the file is not UTF-8 text", source=str(path))]) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as reading in text mode does


def load_flow_file(path: str | FilePath, *, limits: DefinitionLimits = DEFAULT_LIMITS) -> Flow:
    """Load a flow from a `.yaml`, `.yml` or `.json` file, within ``limits``.

    Raises:
        DefinitionError: the file cannot be read or is not a valid flow.
    """
    return load_flow(read_text(path, limits=limits), str(path), limits=limits)
