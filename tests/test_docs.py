"""Meta-tests for docs/fdl.md: its examples load, and it documents every step type and attribute.

- Every ```yaml block must be a complete flow that `load_flow` accepts; every ```yaml invalid block
  must be rejected with `DefinitionError`. Each block is its own test case, named by its line.
- Every registered step type needs a heading of its own.
- Every attribute of every registered step model (and of the models nested in them, such as retry
  policies) must appear in backticks; each step type's section must name all of its attributes.

A plugin that registers a step type, or a change that adds an attribute, fails here until the
documentation catches up.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel

from relayflow.fdl import DefinitionError, Flow, load_flow, step_types

DOCS = Path(__file__).resolve().parents[1] / "docs"
FDL_MD = DOCS / "fdl.md"

VALID = "yaml"
INVALID = "yaml invalid"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string, the line of its opening fence and its text."""

    info: str
    line: int
    text: str


@dataclass(frozen=True)
class Markdown:
    """A markdown file split into fenced blocks and the numbered lines outside them."""

    blocks: list[Block]
    prose: list[tuple[int, str]]

    def headings(self) -> list[tuple[int, int, str]]:
        """(line, level, text) of every heading outside code blocks."""
        found = []
        for number, line in self.prose:
            m = _HEADING.match(line)
            if m:
                found.append((number, len(m["level"]), m["text"]))
        return found


def split_markdown(text: str) -> Markdown:
    """Split markdown into fenced blocks and prose lines.

    Raises:
        ValueError: a fence is opened and never closed.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    prose: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if (
                close is not None
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                break
            line = lines[j]
            body.append(line[indent:] if line[:indent].strip() == "" else line)
            j += 1
        else:
            raise ValueError(f"{FDL_MD.name}:{i + 1}: this code fence is never closed")
        blocks.append(Block(m["info"].strip(), i + 1, "\n".join(body) + "\n"))
        i = j + 1
    return Markdown(blocks, prose)


def _read() -> Markdown:
    try:
        return split_markdown(FDL_MD.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Markdown([], [])  # test_fdl_md_is_well_formed says what is wrong


DOC = _read()
YAML_BLOCKS = [b for b in DOC.blocks if b.info == VALID]
INVALID_BLOCKS = [b for b in DOC.blocks if b.info == INVALID]


def _block_id(block: Block) -> str:
    return f"fdl.md:{block.line}"


def _at_its_line(block: Block) -> str:
    """The block's text, shifted down so that problems report their line in docs/fdl.md."""
    return "\n" * block.line + block.text


def test_fdl_md_is_well_formed():
    assert FDL_MD.is_file(), f"{FDL_MD} is missing"
    doc = split_markdown(FDL_MD.read_text(encoding="utf-8"))
    odd = [
        f"line {b.line}: ```{b.info}"
        for b in doc.blocks
        if b.info.split(maxsplit=1)[:1] == ["yaml"] and b.info not in (VALID, INVALID)
    ]
    assert not odd, f"yaml blocks must be fenced as ```yaml or ```yaml invalid: {odd}"
    assert len([b for b in doc.blocks if b.info == VALID]) >= 10
    assert [b for b in doc.blocks if b.info == INVALID]


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=_block_id)
def test_yaml_example_is_a_valid_flow(block: Block):
    try:
        load_flow(_at_its_line(block), "docs/fdl.md")
    except DefinitionError as exc:
        pytest.fail(f"the example at docs/fdl.md:{block.line} is not a valid flow:\n{exc}")


@pytest.mark.parametrize("block", INVALID_BLOCKS, ids=_block_id)
def test_invalid_yaml_example_is_rejected(block: Block):
    with pytest.raises(DefinitionError):
        load_flow(_at_its_line(block), "docs/fdl.md")


def _plain(heading: str) -> str:
    return heading.replace("`", "").strip()


def test_every_step_type_has_a_heading():
    headings = {_plain(text) for _, _, text in DOC.headings()}
    missing = sorted(set(step_types()) - headings)
    assert not missing, f"docs/fdl.md has no heading for the step type(s): {', '.join(missing)}"


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def documented_models() -> list[type[BaseModel]]:
    """The flow, every registered step model and every model reachable from their fields."""
    todo: list[type[BaseModel]] = [Flow, *step_types().values()]
    seen: list[type[BaseModel]] = []
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return seen


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def test_models_are_found():
    names = {m.__name__ for m in documented_models()}
    assert {"TaskStep", "RetryPolicy", "CatchPolicy", "IterationMapping", "Mapping"} <= names


def test_every_attribute_is_documented_in_backticks():
    text = FDL_MD.read_text(encoding="utf-8")
    missing = sorted(
        {
            f"{model.__name__}.{alias}"
            for model in documented_models()
            for alias in _aliases(model)
            if f"`{alias}`" not in text
        }
    )
    assert not missing, f"docs/fdl.md does not mention these attributes in backticks: {missing}"


def _section(title: str) -> str:
    """The prose under the heading ``title`` down to the next heading of the same or higher level."""
    headings = DOC.headings()
    for k, (line, level, text) in enumerate(headings):
        if _plain(text) != title:
            continue
        end = next((ln for ln, lv, _ in headings[k + 1 :] if lv <= level), None)
        return "\n".join(t for n, t in DOC.prose if line < n and (end is None or n < end))
    return ""


@pytest.mark.parametrize("type_name", sorted(step_types()))
def test_step_section_lists_all_its_attributes(type_name: str):
    section = _section(type_name)
    assert section, f"docs/fdl.md has no section headed {type_name}"
    missing = [a for a in _aliases(step_types()[type_name]) if f"`{a}`" not in section]
    assert not missing, f"the {type_name} section of docs/fdl.md does not mention: {missing}"
