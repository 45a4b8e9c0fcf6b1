"""contrib/grafana/relayflow.json asks only for what the plugin exposes, in PromQL Prometheus takes.

The metrics the plugin exposes are read from a real run (an engine with the plugin, its work
and API hooks, the worker's registry), so a renamed metric or label fails here. Every expression
of the dashboard is then sent to a real Prometheus's query API, which must accept it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_testkit import Prometheus

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "contrib" / "grafana" / "relayflow.json"
QUEUE = "acs:mns:::/queues/jobs/messages"
# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$flow": ".*"}
# Words of PromQL that look like names but are not metrics.
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)
# Labels every scraped series has, or histograms add.
ALWAYS = frozenset({"le", "job", "instance"})


def expressions(doc: dict) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every query in the dashboard, rows' panels included."""
    for panel in doc["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["expr"]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    names = set()
    for found in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[found.end() :].lstrip().startswith("(") or found.group() in KEYWORDS:
            continue
        names.add(found.group())
    return names


def label_names(expr: str) -> set[str]:
    """The label names an expression matches on or groups by."""
    names: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        names.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        names.update(n.strip() for n in grouping.split(",") if n.strip())
    return names


def test_every_expression_names_only_exposed_metrics_and_labels(exposed):
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = list(expressions(doc))
    assert len(queries) >= 20
    used: set[str] = set()
    for title, expr in queries:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr}"
        unknown = names - exposed.keys()
        assert not unknown, f"{title}: {sorted(unknown)} are not exposed by the plugin"
        labels = set().union(*(exposed[n] for n in names)) | ALWAYS
        assert label_names(expr) <= labels, f"{title}: labels {label_names(expr) - labels}"
        used |= names
    variable = doc["templating"]["list"][1]["definition"]
    assert metric_names(variable.replace("label_values", "f").replace(", flow", "")) <= set(exposed)
    # The dashboard shows every metric the issue asks for.
    for prefix in (
        "relayflow_executions_ended_total",
        "relayflow_step_duration_seconds",
        "relayflow_task_attempt_duration_seconds",
        "relayflow_tasks_waiting",
        "relayflow_task_oldest_waiting_seconds",
        "relayflow_outbox_lag_seconds",
        "relayflow_timer_lag_seconds",
        "relayflow_store_commit_duration_seconds",
        "relayflow_store_commit_jobs",
        "relayflow_api_requests_total",
        "relayflow_api_request_duration_seconds",
        "relayflow_worker_messages_total",
    ):
        assert any(name.startswith(prefix) for name in used), prefix


def test_the_extraction_finds_names_not_functions():
    expr = (
        'histogram_quantile(0.9, sum by (le, flow) (rate(a_bucket{flow=~"x|y", b!="c"}[5m])))'
        " / on (flow) max without (instance) (b_total) > bool 0"
    )
    assert metric_names(expr) == {"a_bucket", "b_total"}
    assert label_names(expr) == {"le", "flow", "b", "instance"}


def test_prometheus_accepts_every_expression(prometheus: Prometheus):
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    problems = []
    for title, expr in expressions(doc):
        for variable, stand_in in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, stand_in)
        assert "$" not in expr, f"{title}: a Grafana variable the test does not know: {expr}"
        error = prometheus.check(expr)
        if error is not None:
            problems.append(f"{title}: {error}")
    assert problems == []
    assert prometheus.check("sum(") is not None  # the check can fail
