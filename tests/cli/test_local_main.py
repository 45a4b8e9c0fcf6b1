"""The `relayflow` command: validate, schema, outline and --version."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from relayflow import __version__
from relayflow.cli import main
from tests.engine.helpers import BROKEN
from tests.helpers import EXAMPLES, corpus_files

SEED = EXAMPLES / "seed-three-tasks.yaml"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def broken(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    return path


def test_validate_accepts_examples_and_corpus(runner):
    files = [str(p) for p in [*sorted(EXAMPLES.glob("*.yaml")), *corpus_files()]]
    result = runner.invoke(main, ["validate", *files])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("valid    ") == len(files)
    assert f"{len(files)} of {len(files)} valid" in result.stdout


def test_validate_rejects_with_exit_2_and_errors_on_stderr(runner, broken):
    result = runner.invoke(main, ["validate", str(SEED), str(broken)])
    assert result.exit_code == 2
    assert (
        f"{broken}:8: steps[0].choices[0].goto: no sibling step named 'nowhere'; "
        "siblings are: c, b" in result.stderr
    )
    assert "valid    " in result.stdout and "invalid" not in result.stdout
    assert "1 of 2 valid" in result.stderr
    assert "Traceback" not in result.output


def test_validate_missing_file(runner, tmp_path):
    result = runner.invoke(main, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read the file" in result.stderr


def test_validate_json(runner, broken):
    result = runner.invoke(main, ["validate", "--json", str(SEED), str(broken)])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    ok, bad = report["files"]
    assert ok == {"file": str(SEED), "valid": True, "steps": 3, "problems": []}
    assert bad["problems"] == [
        {
            "source": str(broken),
            "line": 8,
            "path": "steps[0].choices[0].goto",
            "message": "no sibling step named 'nowhere'; siblings are: c, b",
        }
    ]


def test_validate_needs_a_file(runner):
    result = runner.invoke(main, ["validate"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


def test_schema_is_valid_draft_2020_12(runner, tmp_path):
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    out = tmp_path / "fdl.schema.json"
    assert runner.invoke(main, ["schema", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == schema


def test_outline(runner):
    result = runner.invoke(main, ["outline", str(EXAMPLES / "order-approval.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "(FDL v1, 11 steps)" in lines[0]
    assert any("when $.order.total > $.limit && !$.order.trusted" in line for line in lines)
    assert any("otherwise → fulfil" in line for line in lines)
    assert any("foreach  reserve  over $.order.lines as line" in line for line in lines)


def test_outline_of_a_broken_file(runner, broken):
    result = runner.invoke(main, ["outline", str(broken)])
    assert result.exit_code == 2
    assert "no sibling step named 'nowhere'" in result.stderr


def test_help_teaches(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "schema", "outline"):
        assert command in result.stdout
    assert "FILE:LINE: PATH: MESSAGE" in runner.invoke(main, ["validate", "--help"]).stdout


def test_installed_command(tmp_path, broken):
    exe = Path(sys.executable).with_name("relayflow")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"relayflow, version {__version__}"
    bad = subprocess.run([exe, "validate", str(broken)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "nowhere" in bad.stderr
