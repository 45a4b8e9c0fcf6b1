"""`relayflow run` with an `[otel]` table: the installed plugin traces the execution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from otlp_receiver import OtlpReceiver

from relayflow.testing import fdl

RELAYFLOW = Path(sys.executable).parent / "relayflow"


def test_relayflow_run_exports_the_execution_trace(otlp: OtlpReceiver, tmp_path: Path) -> None:
    (tmp_path / "greet.yaml").write_text(fdl("- type: pass\n  name: hello"))
    (tmp_path / "relayflow.toml").write_text(
        f'[otel]\nendpoint = "{otlp.endpoint}"\nservice_name = "cli-test"\n'
    )
    done = subprocess.run(
        [str(RELAYFLOW), "run", "greet.yaml", "--config", "relayflow.toml", "--name", "g-1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    spans = {s["name"]: s for s in otlp.wait_for_spans(2)}
    assert set(spans) == {"execution greet", "step hello"}
    assert spans["step hello"]["parent_span_id"] == spans["execution greet"]["span_id"]
    assert spans["execution greet"]["resource"]["service.name"] == "cli-test"
    assert spans["execution greet"]["attributes"]["relayflow.execution"] == "g-1"
