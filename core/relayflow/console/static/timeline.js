// The execution's timeline as a Gantt chart in SVG: a row per step, task attempt, retry pause
// and wait, from GET /console/view's `timeline` items.

import { h, s } from "./dom.js";
import { duration, ms, stateLook } from "./format.js";

const ROW = 22;
const LABEL = 190;
const TOP = 24;
const MAX_ROWS = 400; // past this a chart stops being read; the events list has the rest
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400].map((x) => x * 1000);

function tickStep(span) {
  for (const step of STEPS) if (span / step <= 8) return step;
  return Math.ceil(span / 8 / 86400000) * 86400000;
}

function tickLabel(t, step) {
  const d = new Date(t);
  if (step >= 86400000) return d.toLocaleDateString();
  return d.toLocaleTimeString(undefined, step < 60000 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
}

/**
 * Draws the timeline. `items` are {kind, node, name, start, end, state, attempt}; an item
 * without an end is still going (drawn up to `now`). `onSelect(node)` is called on a click.
 */
export function drawTimeline(items, { now, onSelect, width } = {}) {
  const WIDTH = Math.max(640, Math.round(width || 900));
  const all = (items || []).filter((i) => !Number.isNaN(ms(i.start)));
  if (!all.length) return h("p", { class: "muted", "data-test": "timeline-empty" }, "Nothing to draw yet.");
  const rows = all.slice(0, MAX_ROWS);
  const end = now || Date.now();
  const t0 = Math.min(...rows.map((i) => ms(i.start)));
  const t1 = Math.max(t0 + 1000, ...rows.map((i) => (i.end ? ms(i.end) : end)));
  const span = t1 - t0;
  const x = (t) => LABEL + ((t - t0) / span) * (WIDTH - LABEL - 24);
  const height = TOP + rows.length * ROW + 8;
  const svg = s("svg", {
    class: "timeline", viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, role: "img",
    "aria-label": `timeline of ${rows.length} items over ${duration(span)}`, "data-test": "timeline",
  });
  const step = tickStep(span);
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    svg.append(
      s("line", { class: "tick", x1: x(t), x2: x(t), y1: TOP - 6, y2: height - 4 }),
      s("text", { class: "tick-label", x: x(t), y: TOP - 10, "text-anchor": x(t) > WIDTH - 40 ? "end" : "middle" }, tickLabel(t, step)),
    );
  }
  rows.forEach((item, index) => {
    const y = TOP + index * ROW;
    const a = ms(item.start);
    const b = item.end ? ms(item.end) : end;
    const [cls, shape] = stateLook(item.state || (item.end ? "succeeded" : "running"));
    const depth = item.kind === "step" ? 0 : 1;
    const where = item.indices && item.indices.length ? ` [${item.indices.join(".")}]` : "";
    const name = `${item.kind === "step" ? "" : `${item.kind} `}${item.name || item.node || ""}${where}${item.attempt > 1 ? ` #${item.attempt}` : ""}`;
    const label = name.length > 26 ? `${name.slice(0, 25)}…` : name;
    const g = s("g", { class: `bar bar-${item.kind || "step"} state-${cls}`, "data-test": "timeline-bar", "data-node": item.node || "", "data-kind": item.kind || "" },
      s("title", {}, `${name}: ${item.state || ""}\n${new Date(a).toISOString()} → ${item.end ? new Date(b).toISOString() : "now"} (${duration(b - a)})`),
      s("text", { class: "bar-label", x: 4 + depth * 12, y: y + 15 }, label),
      s("rect", { x: x(a), y: y + 4, width: Math.max(2, x(b) - x(a)), height: ROW - 8, rx: 3 }),
      s("text", { class: "bar-glyph", x: Math.min(x(b) + 4, WIDTH - 10), y: y + 15, "aria-hidden": "true" }, shape),
    );
    if (item.node && onSelect) g.addEventListener("click", () => onSelect(item.node));
    svg.append(g);
  });
  if (rows.some((i) => !i.end)) {
    svg.append(s("line", { class: "now-line", x1: x(end), x2: x(end), y1: TOP - 6, y2: height - 4 }));
  }
  return h("div", { class: "timeline-box" }, svg,
    all.length > rows.length ? h("p", { class: "muted", "data-test": "timeline-capped" }, `The first ${rows.length} of ${all.length} items are drawn; the events below have every one.`) : null);
}
