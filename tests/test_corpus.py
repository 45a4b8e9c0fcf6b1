"""The public sample flows load unchanged and satisfy the emitted JSON Schema."""

import jsonschema
import pytest

from relayflow.fdl import flow_json_schema, load_flow_file
from relayflow.fdl.source import parse_source
from tests.helpers import EXAMPLES, corpus_files

FLOWS = corpus_files() + sorted(EXAMPLES.glob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    schema = flow_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_corpus_is_present():
    if not corpus_files():
        pytest.skip("../shared/fdl-corpus is not beside this checkout (CI requires it)")
    assert len(corpus_files()) >= 11


@pytest.mark.parametrize("path", FLOWS, ids=[p.name for p in FLOWS])
def test_flow_loads(path):
    flow = load_flow_file(path)
    assert flow.step_count() >= 1


@pytest.mark.parametrize("path", FLOWS, ids=[p.name for p in FLOWS])
def test_flow_satisfies_json_schema(path, validator):
    data = parse_source(path.read_text(), str(path)).data
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_schema_rejects_what_the_loader_rejects(validator):
    bad = {"version": "v2", "type": "flow", "steps": [{"type": "tsk", "name": "a"}]}
    messages = [e.message for e in validator.iter_errors(bad)]
    assert any("'v2'" in m for m in messages)
    assert len(messages) >= 2


def test_schema_shape():
    schema = flow_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["required"]) == {"version", "type", "steps"}
    step_refs = {r["$ref"].rsplit("/", 1)[-1] for r in schema["$defs"]["Step"]["oneOf"]}
    assert step_refs == {
        "TaskStep",
        "PassStep",
        "WaitStep",
        "ChoiceStep",
        "ParallelStep",
        "ForeachStep",
        "SucceedStep",
        "FailStep",
    }
    assert "resourceArn" in schema["$defs"]["TaskStep"]["properties"]


def test_every_corpus_flow_passes_strict_validation_with_its_functions_mapped(tmp_path):
    """`relayflow validate --strict`: child flows are served by the engine itself, MNS queues by
    the queue plugin, and FC functions once relayflow.toml maps them to handlers."""
    import subprocess
    import sys
    from pathlib import Path

    from relayflow.fdl import TaskStep

    exe = str(Path(sys.executable).with_name("relayflow"))

    files = corpus_files()
    if not files:
        pytest.skip("../shared/fdl-corpus is not beside this checkout (CI requires it)")
    functions: set[str] = set()
    for path in files:
        for _, step in load_flow_file(path).walk():
            arn = getattr(step, "resource_arn", None)
            if isinstance(step, TaskStep) and arn is not None and arn.service == "fc":
                functions.add(f"{arn.fc_service}/{arn.name}")
    assert len(functions) >= 10
    mapped = "\n".join(f'"{key}" = "corpus_stub:handler"' for key in sorted(functions))
    config = tmp_path / "relayflow.toml"
    config.write_text(f"[integrations.fc.functions]\n{mapped}\n", encoding="utf-8")
    (tmp_path / "corpus_stub.py").write_text("def handler(event, context):\n    return {}\n")
    command = [exe, "validate", "--strict", "--config", str(config), *map(str, files)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "no-config"  # relayflow.toml is looked for in the working folder
    elsewhere.mkdir()
    unmapped = subprocess.run(
        [exe, "validate", "--strict", *map(str, files)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unmapped.returncode == 2
    assert "no installed integration serves acs:fc:" in unmapped.stderr
    assert "acs:fnf" not in unmapped.stderr  # child flows need no plugin
