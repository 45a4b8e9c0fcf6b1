"""Draw docs/observability.md's figures as SVG from a real run of bench_observability.py.

    .venv/bin/python contrib/bench/bench_observability.py --save /tmp/obs
    .venv/bin/python contrib/bench/observability_plots.py /tmp/obs [--out docs/images]

Writes, from what ``--save`` kept:

- ``observability-executions.svg``: executions ended per second by status, and worker
  messages handled per second, as Prometheus scraped them during the seed-scenario rounds
  with the plugins on (range queries over the run, 1 s apart; `prometheus.json`);
- ``observability-trace.svg``: one trace as a waterfall, the execution's root span, its
  steps and task attempts (engine) and the workers' spans inside them, from the spans the
  OTLP sink kept (`spans.jsonl`);
- ``observability-overhead.svg``: executions per second in every round, plugins off and on
  (`figures.json`).

No plotting library: the SVG is written by hand, so this runs wherever the benchmark does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COLORS = ["#2f6db5", "#d9822b", "#3b9c5a", "#b8433b", "#7a5bb5", "#7d7d7d"]


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 up to at least ``top``."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step) + 1)]


def label(value: float) -> str:
    """A tick's text: no trailing zeros."""
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}"


class Svg:
    """An SVG document built line by line."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = [
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        ]

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, words: str, anchor: str = "start", **extra: str) -> None:
        extra = {"font_family": "sans-serif", "font_size": "12", **extra}
        attrs = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in extra.items())
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {attrs}>{escape(words)}</text>'
        )

    def render(self) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" '
            f'height="{self.height}" viewBox="0 0 {self.width} {self.height}">'
        )
        return "\n".join([head, *self.parts, "</svg>\n"])


def line_chart(
    title: str,
    series: list[tuple[str, list[tuple[float, float]]]],
    unit: str,
    shade: list[tuple[float, float, str]],
) -> str:
    """Lines of (seconds from the start, value) with a legend; ``shade`` marks time spans."""
    svg = Svg(860, 340)
    left, right, top, bottom = 70, 220, 40, 50
    width, height = svg.width - left - right, svg.height - top - bottom
    end = max([x for _, points in series for x, _ in points] + [e for _, e, _ in shade] + [1])
    peak = max([y for _, points in series for _, y in points] + [0])
    ticks = nice_ticks(peak * 1.05)

    def px(x: float) -> float:
        return left + x / end * width

    def py(y: float) -> float:
        return top + height - y / ticks[-1] * height

    svg.text(left, 22, title, font_weight="bold", font_size="14")
    for i, (first, last, what) in enumerate(shade):
        svg.add(
            f'<rect x="{px(first):.1f}" y="{top}" width="{px(last) - px(first):.1f}" '
            f'height="{height}" fill="{"#f1f1f1" if i % 2 == 0 else "#e6eef7"}"/>'
        )
        svg.text((px(first) + px(last)) / 2, top + 14, what, "middle", fill="#888")
    for tick in ticks:
        y = py(tick)
        svg.add(f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.text(left - 6, y + 4, label(tick), "end")
    for tick in nice_ticks(end, 8):
        if tick > end:
            break
        svg.text(px(tick), top + height + 18, f"{tick:g}", "middle")
    svg.text(left + width / 2, svg.height - 10, "seconds since the run started", "middle")
    svg.text(16, top + height / 2, unit, "middle", transform=f"rotate(-90 16 {top + height / 2})")
    svg.add(
        f'<polyline points="{left},{top} {left},{top + height} {left + width},{top + height}" '
        'fill="none" stroke="#444"/>'
    )
    for i, (name, points) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        # A gap in the samples (plugins off, nothing scraped) is a gap in the line.
        runs: list[list[tuple[float, float]]] = []
        for x, y in points:
            if runs and x - runs[-1][-1][0] <= 1.5:
                runs[-1].append((x, y))
            else:
                runs.append([(x, y)])
        for run in runs:
            coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
            svg.add(
                f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.8"/>'
            )
        y = top + 10 + i * 20
        svg.add(
            f'<line x1="{left + width + 14}" y1="{y}" x2="{left + width + 34}" y2="{y}" '
            f'stroke="{color}" stroke-width="3"/>'
        )
        svg.text(left + width + 40, y + 4, name)
    return svg.render()


def prometheus_series(
    material: dict[str, Any], key: str, name_of: str | None, scale: float = 1.0
) -> list[tuple[str, list[tuple[float, float]]]]:
    """One saved range query as chart series (seconds from the run's start, value)."""
    out = []
    for result in material["series"][key]["result"]:
        name = result["metric"].get(name_of, key) if name_of else key
        points = [
            (float(t) - material["start"], float(v) * scale)
            for t, v in result["values"]
            if math.isfinite(float(v))
        ]
        if points:
            out.append((name, points))
    return out


def observed_windows(material: dict[str, Any]) -> list[tuple[float, float, str]]:
    """The queue rounds, as shaded spans named by their configuration (metrics exist only
    where Prometheus scraped: "on" and "prometheus")."""
    return [
        (w["start"] - material["start"], w["end"] - material["start"], w["mode"])
        for w in material["windows"]
        if w["part"] == "queue"
    ]


# -- the waterfall ------------------------------------------------------------------------------


def pick_trace(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The kept trace with the most services and spans (engine and workers both, ideally)."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    return max(
        by_trace.values(),
        key=lambda group: (len({s["service"] for s in group}), len(group)),
    )


def tree_order(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The spans depth first (children by start time), each with its depth."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for span in spans:
        if span["parent_span_id"] and span["parent_span_id"] in ids:
            children.setdefault(span["parent_span_id"], []).append(span)
        else:
            roots.append(span)
    ordered: list[tuple[int, dict[str, Any]]] = []

    def visit(span: dict[str, Any], depth: int) -> None:
        ordered.append((depth, span))
        for child in sorted(children.get(span["span_id"], []), key=lambda s: s["start_ns"]):
            visit(child, depth + 1)

    for root in sorted(roots, key=lambda s: s["start_ns"]):
        visit(root, 0)
    return ordered


def waterfall(spans: list[dict[str, Any]]) -> str:
    """One trace's spans as bars on a shared time axis, nested by parent."""
    rows = tree_order(spans)
    services = sorted({s["service"] for s in spans})
    first = min(s["start_ns"] for s in spans)
    last = max(s["end_ns"] for s in spans)
    total_ms = max((last - first) / 1e6, 0.001)
    row_height, top, label_width = 22, 56, 300
    svg = Svg(900, top + row_height * len(rows) + 50)
    width = svg.width - label_width - 90
    execution = next(
        (s["attributes"].get("relayflow.execution") for s in spans if not s["parent_span_id"]),
        None,
    )
    title = f"one trace, {len(spans)} spans"
    if execution:
        title += f": execution {execution}"
    svg.text(10, 22, title, font_weight="bold", font_size="14")
    svg.text(10, 40, f"trace id {spans[0]['trace_id']}", fill="#666")
    for i, service in enumerate(services):
        x = svg.width - 10 - 150 * (len(services) - i)
        svg.add(f'<rect x="{x}" y="12" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>')
        svg.text(x + 16, 22, service)
    for tick in nice_ticks(total_ms, 6):
        if tick > total_ms * 1.001:
            break
        x = label_width + tick / total_ms * width
        svg.add(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" '
            f'y2="{top + row_height * len(rows)}" stroke="#eee"/>'
        )
        svg.text(x, top + row_height * len(rows) + 16, f"{label(tick)} ms", "middle", fill="#666")
    for row, (depth, span) in enumerate(rows):
        y = top + row * row_height
        color = COLORS[services.index(span["service"]) % len(COLORS)]
        start = (span["start_ns"] - first) / 1e6
        length = max((span["end_ns"] - span["start_ns"]) / 1e6, 0.0)
        x = label_width + start / total_ms * width
        bar = max(length / total_ms * width, 1.5)
        name = span["name"] if len(span["name"]) <= 34 else span["name"][:33] + "…"
        svg.text(10 + 14 * depth, y + 15, name)
        fill = "#b8433b" if span.get("status") == 2 else color
        svg.add(
            f'<rect x="{x:.1f}" y="{y + 4}" width="{bar:.1f}" height="{row_height - 8}" '
            f'fill="{fill}" rx="2"/>'
        )
        svg.text(x + bar + 4, y + 15, f"{length:.1f} ms", fill="#444")
    return svg.render()


# -- the rounds ---------------------------------------------------------------------------------


MODE_NAMES = {
    "off": "plugins off",
    "on": "otel 100 % + prometheus",
    "on10": "otel 10 % + prometheus",
    "otel": "otel 100 % alone",
    "prometheus": "prometheus alone",
    "down": "collector down",
}


def bar_panel(
    svg: Svg, box: tuple[float, float, float, float], values: dict[str, list[float]], unit: str
) -> None:
    """Bars of each mode's value round by round in ``box`` (left, top, width, height)."""
    left, top, width, height = box
    modes = list(values)
    ticks = nice_ticks(max(v for mode in modes for v in values[mode]) * 1.05)
    for tick in ticks:
        y = top + height - tick / ticks[-1] * height
        svg.add(f'<line x1="{left}" y1="{y:.1f}" x2="{left + width}" y2="{y:.1f}" stroke="#ddd"/>')
        svg.text(left - 6, y + 4, label(tick), "end")
    svg.text(left, top - 8, unit, fill="#444")
    rounds = len(values[modes[0]])
    group = width / rounds
    bar = group * 0.8 / len(modes)
    for r in range(rounds):
        for m, mode in enumerate(modes):
            x = left + r * group + group * 0.1 + m * bar
            h = values[mode][r] / ticks[-1] * height
            svg.add(
                f'<rect x="{x:.1f}" y="{top + height - h:.1f}" width="{bar - 1.5:.1f}" '
                f'height="{h:.1f}" fill="{COLORS[m % len(COLORS)]}"/>'
            )
        svg.text(left + (r + 0.5) * group, top + height + 16, f"round {r + 1}", "middle")


def overhead_bars(figures: dict[str, Any]) -> str:
    """Executions per second and CPU per execution by round and configuration, for each
    measurement: the CPU is steadier than the rate on a busy machine."""
    parts = [key for key in ("engine", "queue") if key in figures]
    modes = figures["modes"]
    svg = Svg(900, 60 + 290 * len(parts))
    for m, mode in enumerate(modes):  # one legend for all panels, across the top
        x = 20 + m * 175
        svg.add(f'<rect x="{x}" y="14" width="12" height="12" fill="{COLORS[m % len(COLORS)]}"/>')
        svg.text(x + 16, 24, MODE_NAMES.get(mode, mode))
    titles = {
        "engine": "engine throughput (in-process, SQLite, 10 trivial tasks an execution)",
        "queue": "seed scenario (relayflow server, 2 workers, Redis)",
    }
    for p, key in enumerate(parts):
        summary = figures[key]["summary"]
        base = 60 + p * 290
        title = titles[key]
        if "on" in summary["median_ratio"]:
            title += (
                f": on/off {summary['median_ratio']['on']:.2f} exec/s, "
                f"{summary['cpu_ratio']['on']:.2f} CPU"
            )
        svg.text(20, base + 14, title, font_weight="bold", font_size="14")
        rates = {mode: summary["rates"][mode] for mode in modes}
        cpu = {mode: summary["cpu_ms"][mode] for mode in modes}
        bar_panel(svg, (60, base + 50, 370, 190), rates, "executions per second")
        bar_panel(svg, (510, base + 50, 370, 190), cpu, "CPU ms per execution")
    return svg.render()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("saved", help="the folder bench_observability.py --save wrote")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="where SVGs go")
    args = parser.parse_args(argv)
    saved, out = Path(args.saved), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    prometheus = saved / "prometheus.json"
    if prometheus.exists():
        material = json.loads(prometheus.read_text(encoding="utf-8"))
        shade = observed_windows(material)
        series = prometheus_series(material, "ended", "status")
        series = [(f"ended {name}", points) for name, points in series]
        series += [
            (f"messages {name}", points)
            for name, points in prometheus_series(material, "messages", "outcome")
        ]
        chart = line_chart(
            "seed scenario: executions ended and worker messages, per second",
            series,
            "per second",
            shade,
        )
        written.append(out / "observability-executions.svg")
        written[-1].write_text(chart, encoding="utf-8")
    spans_file = saved / "spans.jsonl"
    if spans_file.exists() and spans_file.stat().st_size:
        spans = [json.loads(line) for line in spans_file.read_text(encoding="utf-8").splitlines()]
        written.append(out / "observability-trace.svg")
        written[-1].write_text(waterfall(pick_trace(spans)), encoding="utf-8")
    figures_file = saved / "figures.json"
    if figures_file.exists():
        figures = json.loads(figures_file.read_text(encoding="utf-8"))
        written.append(out / "observability-overhead.svg")
        written[-1].write_text(overhead_bars(figures), encoding="utf-8")
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(
            f"{saved} holds none of figures.json, prometheus.json, spans.jsonl "
            "(bench_observability.py --save DIR writes them)",
            file=sys.stderr,
        )
    return 0 if written else 1


if __name__ == "__main__":
    raise SystemExit(main())
