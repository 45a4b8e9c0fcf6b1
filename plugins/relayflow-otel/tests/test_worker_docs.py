"""WORKERS.md stays true: its program example runs, its limits are the code's.

Its `jobs.py` is the handler of the end-to-end test (test_e2e_trace.py), which runs it in a
real worker process.
"""

from __future__ import annotations

import re
from pathlib import Path

import relayflow_otel.worker as otel_worker
from relayflow_fc.tracing import MAX_TRACESTATE_CHARS
from relayflow_mns.worker import _consumer

DOC = (Path(__file__).resolve().parents[1] / "WORKERS.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


def test_the_page_has_its_two_python_examples() -> None:
    assert [block.splitlines()[0] for block in BLOCKS] == [
        "# jobs.py",
        "from opentelemetry.sdk.trace import TracerProvider",
    ]


def test_the_program_example_registers_the_tracing() -> None:
    namespace: dict[str, object] = {"__name__": "workers_md"}
    exec(compile(BLOCKS[1], "WORKERS.md", "exec"), namespace)
    plugins = namespace["plugins"]
    provider = namespace["provider"]
    try:
        assert plugins.active  # type: ignore[attr-defined]
        assert plugins.implements("relayflow_worker_message")  # type: ignore[attr-defined]
    finally:
        provider.shutdown()  # type: ignore[attr-defined]


def test_the_limits_are_the_codes() -> None:
    rows = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", DOC.split("## Limits")[1], re.M))
    assert f"cut to {otel_worker.MAX_ATTRIBUTE_CHARS} characters" in rows.values()
    headers = f"{_consumer.MAX_PLUGIN_HEADERS}, values cut to "
    headers += f"{_consumer.MAX_HEADER_VALUE_CHARS:,} characters"
    assert rows["the headers a worker plugin sees"].startswith(headers)
    assert rows["`tracestate` given to an FC handler"].startswith(
        f"W3C's {MAX_TRACESTATE_CHARS} characters"
    )
    assert rows["the wait for the last spans when a worker stops"].startswith(
        f"{otel_worker.STOP_FLUSH_SECONDS:g} seconds"
    )
    assert otel_worker.DEFAULT_SERVICE_NAME in DOC
