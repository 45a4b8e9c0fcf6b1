"""relayflow.logs: the JSON formatter's fields, and configure_logging's handler."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relayflow.config import ConfigError, load_config
from relayflow.engine import FunctionIntegration, Succeeded, TaskRequest
from relayflow.engine.dispatch import invoke_integration
from relayflow.logs import TEXT_FORMAT, JsonFormatter, configure_logging, trace_ids

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _record(msg: str, *args: Any, level: int = logging.WARNING, **extra: Any) -> logging.LogRecord:
    logger = logging.getLogger("relayflow.test")
    return logger.makeRecord(logger.name, level, __file__, 1, msg, args, None, extra=extra)


def _render(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def test_fields_and_context() -> None:
    record = _record(
        "execution %s/%s: stuck", "orders", "e-1", flow="orders", execution="e-1", step="Pay"
    )
    record.created = 1_780_000_000.25
    entry = _render(record)
    assert entry == {
        "time": "2026-05-28T20:26:40.250Z",
        "level": "WARNING",
        "logger": "relayflow.test",
        "message": "execution orders/e-1: stuck",
        "flow": "orders",
        "execution": "e-1",
        "step": "Pay",
    }


def test_no_context_fields_when_the_record_has_none() -> None:
    entry = _render(_record("plain", level=logging.INFO))
    assert set(entry) == {"time", "level", "logger", "message"}
    assert RFC3339_MS.match(entry["time"])
    assert entry["level"] == "INFO"


def test_newlines_and_non_ascii_stay_on_one_line() -> None:
    line = JsonFormatter().format(_record("first\nsecond\r\nthird é ✓"))
    assert "\n" not in line and "é ✓" in line
    assert json.loads(line)["message"] == "first\nsecond\r\nthird é ✓"


def test_other_extra_fields_kept_and_odd_ones_as_text() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd-one"

    entry = _render(
        _record(
            "x",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
            attempt=2,
            tags=["a", {"b": None}],
            odd=Odd(),
            nan=float("nan"),
            keys={1: "int key is fine", "x": Odd()},
        )
    )
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["span_id"] == "00f067aa0ba902b7"
    assert entry["attempt"] == 2
    assert entry["tags"] == ["a", {"b": None}]
    assert entry["odd"] == "odd-one"
    assert entry["nan"] == "nan"  # NaN is not JSON: a collector would refuse the line
    assert isinstance(entry["keys"], str) and entry["keys"].startswith("{1: 'int key is fine'")


def test_exception_is_one_field() -> None:
    logger = logging.getLogger("relayflow.test")
    try:
        raise KeyError("missing\nkey")
    except KeyError:
        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "failed on %s",
            ("e-1",),
            exc_info=sys.exc_info(),
            extra={"execution": "e-1"},
        )
    entry = _render(record)
    assert entry["message"] == "failed on e-1"
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert "KeyError" in entry["exc"]
    assert entry["execution"] == "e-1"


@pytest.fixture
def bare_root() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards; a test empties it (pytest adds its handlers late)."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield root
    root.handlers = saved
    root.setLevel(level)


def test_configure_logging_json_then_text(bare_root: logging.Logger) -> None:
    bare_root.handlers = []
    out = io.StringIO()
    configure_logging("warning", "json", out)
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    logging.getLogger("relayflow.x").info("below the level")
    configure_logging("INFO", "text", out)  # replaces its own handler: not two lines per record
    logging.getLogger("relayflow.x").info("now text")
    assert len(bare_root.handlers) == 1
    first, second = out.getvalue().splitlines()
    assert json.loads(first)["message"] == "from uvicorn"
    assert json.loads(first)["logger"] == "uvicorn.error"
    assert second.endswith(" INFO now text")


def test_configure_logging_leaves_others_handlers(bare_root: logging.Logger) -> None:
    theirs = logging.NullHandler()
    bare_root.handlers = [theirs]
    configure_logging("INFO", "json", io.StringIO())
    assert bare_root.handlers == [theirs]


def test_configure_logging_refuses_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format 'xml'"):
        configure_logging("INFO", "xml", io.StringIO())  # type: ignore[arg-type]


def test_server_log_format_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "relayflow.toml"
    path.write_text('[server]\nlog_format = "json"\n', encoding="utf-8")
    assert load_config(path).server.log_format == "json"
    path.write_text("", encoding="utf-8")
    assert load_config(path).server.log_format == "text"
    monkeypatch.setenv("RELAYFLOW_SERVER__LOG_FORMAT", "json")
    assert load_config(path).server.log_format == "json"
    path.write_text('[server]\nlog_format = "xml"\n', encoding="utf-8")
    monkeypatch.delenv("RELAYFLOW_SERVER__LOG_FORMAT")
    with pytest.raises(ConfigError, match="log_format"):
        load_config(path)


DOCS = Path(__file__).resolve().parents[1] / "docs"


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_configuration_docs_logs_examples(tmp_path: Path) -> None:
    section = _section((DOCS / "configuration.md").read_text(encoding="utf-8"), "## Logs")
    blocks = dict(re.findall(r"```(\w+)\n(.*?)```", section, re.S))
    path = tmp_path / "relayflow.toml"
    path.write_text(blocks["toml"], encoding="utf-8")
    assert load_config(path).server.log_format == "json"
    # The example line is what the formatter writes for such a record.
    shown = json.loads(blocks["json"])
    record = _record(shown["message"], level=logging.ERROR, flow="orders", execution="o-17")
    record.name = shown["logger"]
    written = _render(record)
    assert list(written) == list(shown)
    assert {k: v for k, v in written.items() if k != "time"} == {
        k: v for k, v in shown.items() if k != "time"
    }
    assert RFC3339_MS.match(shown["time"])
    # And the text line has the human format's shape.
    text_line = blocks["text"].strip()
    formatted = logging.Formatter(TEXT_FORMAT).format(_record("m", level=logging.INFO))
    shape = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO "
    assert re.match(shape, text_line) and re.match(shape, formatted)


def test_trace_ids_from_a_traceparent() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert trace_ids(good) == {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
    }
    for bad in (None, 7, "", "00-XYZ-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01"):
        assert trace_ids(bad) == {}
    entry = _render(_record("m", traceparent=good, span_id="1111111111111111"))
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["span_id"] == "1111111111111111"  # passed as such: it wins
    assert "traceparent" not in entry


def test_an_integration_that_raises_logs_its_execution_and_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: TaskRequest) -> Succeeded:
        raise OSError("queue full")

    request = TaskRequest(
        flow_name="orders",
        execution_name="o-17",
        step_name="Pay",
        task_id=1,
        token="tok",
        resource="acs:mns:::/queues/q/messages",
        pattern="waitForCallback",
        input={},
        service_params=None,
        timeout_seconds=None,
        attempt=1,
        headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    integration = FunctionIntegration({request.resource: broken}, name="queue")
    with caplog.at_level(logging.WARNING, logger="relayflow.engine"):
        outcome = asyncio.run(invoke_integration(integration, request))
    assert outcome.error == "FnF.RuntimeError"  # type: ignore[union-attr]
    (record,) = [r for r in caplog.records if r.name.startswith("relayflow.engine")]
    entry = _render(record)
    assert entry["message"] == "integration queue raised on Pay: OSError('queue full')"
    assert (entry["flow"], entry["execution"], entry["step"]) == ("orders", "o-17", "Pay")
    assert (entry["trace_id"], entry["span_id"]) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )
