"""relayflow.importing: one `module:function` loader, one sentence for each way it fails."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relayflow.importing import ImportTargetError, import_callable, import_object


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Write a module with a fresh name in a fresh current directory; return its name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    written: list[str] = []

    def write(source: str) -> str:
        name = f"imp_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def message(spec: str, **kwargs: object) -> str:
    with pytest.raises(ImportTargetError) as caught:
        import_callable(spec, **kwargs)  # type: ignore[arg-type]
    assert caught.value.spec == spec and caught.value.message == str(caught.value)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_a_function_a_method_and_a_module_in_the_current_directory(module) -> None:
    name = module(
        "def handle(body):\n    return 1\n\nclass Jobs:\n    def run(self):\n        pass\n"
    )
    assert import_callable(f"{name}:handle")(None) == 1
    assert import_callable(f"{name}:Jobs.run").__qualname__ == "Jobs.run"
    assert import_object(f"{name}:Jobs").__name__ == "Jobs"
    assert str(Path.cwd()) == sys.path[0]


@pytest.mark.parametrize("spec", ["jobs", "jobs:", ":handle", "1jobs:handle", "jobs:a b"])
def test_malformed_text(spec: str) -> None:
    assert message(spec) == f"{spec!r} is not MODULE:FUNCTION, such as jobs:handle"
    assert message(spec, label="--handler").startswith("--handler must be MODULE:FUNCTION")


def test_a_module_that_is_not_there(module) -> None:
    text = message("no_such_module_xyz:handle")
    assert text.startswith("cannot import module 'no_such_module_xyz': no module named ")
    assert str(Path.cwd()) in text
    assert "no module named 'os.nowhere'" in message("os.nowhere:handle")


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("import not_a_module_anywhere\n", "ModuleNotFoundError at {file} line 1: No module"),
        ("x = 1\ndef broken(:\n", "SyntaxError at {file} line 2: invalid syntax"),
        ("x = 1\nraise RuntimeError('boom at import')\n", "RuntimeError at {file} line 2: boom"),
        ("import os\nos.no_such_thing\n", "AttributeError at {file} line 2: module 'os'"),
        ("import sys\nsys.exit(3)\n", "SystemExit at {file} line 2: 3"),
    ],
)
def test_a_module_that_fails_to_import_names_its_own_line(module, source: str, said: str) -> None:
    name = module(source)
    text = message(f"{name}:handle")
    assert text.startswith(f"cannot import module '{name}': ")
    assert said.format(file=f"{name}.py") in text


def test_a_missing_attribute_and_one_that_is_not_a_function(module) -> None:
    name = module("VALUE = 1\n\nclass Jobs:\n    pass\n")
    assert message(f"{name}:nope") == f"module '{name}' has no attribute 'nope'"
    assert message(f"{name}:Jobs.run") == f"'{name}:Jobs' has no attribute 'run'"
    assert message(f"{name}:VALUE") == f"'{name}:VALUE' is an int, not a function"
    assert import_object(f"{name}:VALUE") == 1


def test_the_plugins_use_it() -> None:
    from relayflow_fc import runner
    from relayflow_mns import cli

    assert runner.HandlerImportError is ImportTargetError
    assert cli.HandlerError is ImportTargetError
