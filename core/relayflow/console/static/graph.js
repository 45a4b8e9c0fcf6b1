// The flow drawn as SVG from GET /console/graph (relayflow/console/graph.py gives the layout:
// nodes with positions and sizes, edges with their points, lanes of parallels and foreaches).
// The execution page colours each node by its step's state from GET /console/view.

import { h, s } from "./dom.js";
import { stateLook } from "./format.js";

const num = (v, d = 0) => (Number.isFinite(Number(v)) ? Number(v) : d);
const pt = (p) => (Array.isArray(p) ? [num(p[0]), num(p[1])] : [num(p.x), num(p.y)]);

function box(item) {
  return {
    x: num(item.x), y: num(item.y),
    w: num(item.width ?? item.w, 140), h: num(item.height ?? item.h, 40),
  };
}

function shorten(text, max) {
  const t = String(text ?? "");
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

const MOVES = {
  ArrowDown: [0, 1], ArrowUp: [0, -1], ArrowRight: [1, 0], ArrowLeft: [-1, 0],
  Home: [0, 0, "first"], End: [0, 0, "last"],
};

function edgeLabel(edge) {
  if (edge.label) return String(edge.label);
  if (edge.condition) return String(edge.condition);
  if (Array.isArray(edge.errors) && edge.errors.length) return `catch ${edge.errors.join(", ")}`;
  if (edge.kind === "default") return "default";
  if (edge.kind === "goto") return "goto";
  return "";
}

function nodeShape(node, b) {
  const type = node.type || "task";
  if (type === "choice") {
    const c = Math.min(14, b.h / 2);
    const points = [
      [b.x + c, b.y], [b.x + b.w - c, b.y], [b.x + b.w, b.y + b.h / 2],
      [b.x + b.w - c, b.y + b.h], [b.x + c, b.y + b.h], [b.x, b.y + b.h / 2],
    ];
    return s("polygon", { class: "node-shape", points: points.map((p) => p.join(",")).join(" ") });
  }
  if (type === "join") {
    return s("circle", { class: "node-shape", cx: b.x + b.w / 2, cy: b.y + b.h / 2, r: Math.max(3, Math.min(b.w, b.h) / 2) });
  }
  const round = ["start", "end", "succeed", "fail"].includes(type) ? b.h / 2 : 6;
  return s("rect", { class: "node-shape", x: b.x, y: b.y, width: b.w, height: b.h, rx: round, ry: round });
}

/**
 * Draws a graph. Returns {element, paint(states), select(id)}: `states` maps a node id to its
 * step's state (running, succeeded, failed, caught, retried, waiting, not_run); `onSelect(id)`
 * is called when a node is clicked or chosen with Enter.
 */
export function drawGraph(doc, { onSelect, label } = {}) {
  let width = Math.max(num(doc.width, 400), 100);
  let left0 = 0; // a retry loop or a label may reach left of the layout's origin
  const height = Math.max(num(doc.height, 200), 60);
  const nodes = new Map();
  const svg = s("svg", {
    class: "graph", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "group", "aria-label": label || "flow graph", "data-test": "graph",
  });
  svg.append(
    s("defs", {},
      s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
  );
  const boxes = (doc.nodes || []).map(box);
  for (const lane of doc.groups || doc.lanes || []) {
    const b = box(lane);
    const text = shorten(lane.label || lane.name || "", Math.max(6, b.w / 7));
    // A lane's label is left out where a node would cover it, and for a choice's cases,
    // whose conditions their edges already show.
    const spot = { x: b.x + 8, y: b.y + 5, w: text.length * 6, h: 10 };
    const covered = boxes.some((n) => n.x < spot.x + spot.w && spot.x < n.x + n.w && n.y < spot.y + spot.h && spot.y < n.y + n.h);
    const quiet = covered || lane.kind === "case" || lane.kind === "default";
    svg.append(
      s("g", { class: `lane lane-${lane.kind || "branch"}`, "data-test": "graph-lane", "data-lane": lane.id || "", "data-node": lane.node || "" },
        s("title", {}, lane.label || lane.name || ""),
        s("rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: 8, ry: 8 }),
        quiet ? null : s("text", { x: b.x + 8, y: b.y + 14, class: "lane-label" }, text)),
    );
  }
  for (const edge of doc.edges || []) {
    const from = edge.from ?? edge.source;
    const to = edge.to ?? edge.target;
    let points = (edge.points || []).map(pt);
    if (points.length < 2) {
      const a = (doc.nodes || []).find((n) => n.id === from);
      const b = (doc.nodes || []).find((n) => n.id === to);
      if (!a || !b) continue;
      const ba = box(a), bb = box(b);
      points = [[ba.x + ba.w / 2, ba.y + ba.h], [bb.x + bb.w / 2, bb.y]];
    }
    const text = edgeLabel(edge);
    for (const [px] of points) left0 = Math.min(left0, px - 4);
    const g = s("g", { class: `edge edge-${edge.kind || "next"}`, "data-test": "graph-edge", "data-from": from, "data-to": to },
      s("polyline", { points: points.map((p) => p.join(",")).join(" "), "marker-end": "url(#arrow)" }));
    if (text) {
      const shown = shorten(text, 28);
      const wide = shown.length * 6.2;
      // The layout's place for the label (left end, baseline) when it gives one, else the
      // middle of the edge's middle run.
      let left, base;
      if (edge.kind === "retry" || from === to) {
        // A loop onto its own step: the label goes left of the loop, clear of the node.
        left = Math.min(...points.map((p) => p[0])) - 4 - wide;
        base = (Math.min(...points.map((p) => p[1])) + Math.max(...points.map((p) => p[1]))) / 2 + 4;
      } else if (Array.isArray(edge.labelAt)) {
        [left, base] = pt(edge.labelAt);
      } else {
        const mid = points[Math.floor((points.length - 1) / 2)];
        const next = points[Math.floor((points.length - 1) / 2) + 1] || mid;
        left = (mid[0] + next[0]) / 2 - wide / 2;
        base = (mid[1] + next[1]) / 2 + 4;
      }
      width = Math.max(width, left + wide + 6); // a label at the right edge stays in view
      left0 = Math.min(left0, left - 4);
      g.append(
        s("rect", { class: "edge-label-bg", x: left - 2, y: base - 11, width: wide + 4, height: 14, rx: 3 }),
        s("text", { class: "edge-label", x: left, y: base, "data-test": "graph-edge-label" }, s("title", {}, edge.condition ? String(edge.condition) : text), shown),
      );
    }
    svg.append(g);
  }
  for (const node of doc.nodes || []) {
    const b = box(node);
    const type = node.type || "task";
    const marker = ["start", "end", "join"].includes(type); // not a step: nothing to choose
    const name = marker ? type : node.label || node.name || node.id;
    const glyph = s("text", { class: "node-glyph", x: b.x + b.w - 12, y: b.y + 14, "text-anchor": "middle", "aria-hidden": "true" }, "");
    const g = s("g", {
      class: `node node-${type} state-not-run`, tabindex: marker ? null : -1, role: marker ? null : "button",
      "aria-label": marker ? `${type} of the flow` : `${type} step ${name}`, "data-test": marker ? "graph-marker" : "graph-node", "data-node": node.id, "data-state": "",
    },
    s("title", {}, `${name} (${type})${node.detail && node.detail.resource ? `\n${node.detail.resource}` : ""}`),
    nodeShape(node, b),
    marker && type !== "join" ? s("text", { class: "node-type", x: b.x + b.w + 5, y: b.y + b.h / 2 + 4 }, type) : null,
    marker ? null : s("text", { class: "node-label", x: b.x + b.w / 2, y: b.y + b.h / 2 + (b.h > 36 ? -2 : 4), "text-anchor": "middle" }, shorten(name, Math.max(4, Math.floor(b.w / 7.5)))),
    b.h > 36 && !["start", "end", "join"].includes(type)
      ? s("text", { class: "node-type", x: b.x + b.w / 2, y: b.y + b.h / 2 + 12, "text-anchor": "middle" }, shorten(node.sublabel || type, Math.max(4, Math.floor(b.w / 6.5))))
      : null,
    glyph);
    const choose = () => !marker && onSelect && onSelect(node.id);
    g.addEventListener("click", choose);
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        choose();
      } else if (MOVES[e.key]) {
        e.preventDefault();
        move(node.id, MOVES[e.key]);
      }
    });
    if (!marker) nodes.set(node.id, { g, glyph, name, type, cx: b.x + b.w / 2, cy: b.y + b.h / 2 });
    svg.append(g);
  }

  // The graph is one stop for Tab; the arrow keys go from step to step (the nearest one that
  // way), Home and End to the first and last, Enter or Space chooses.
  const focusable = (id) => {
    for (const [nid, n] of nodes) n.g.setAttribute("tabindex", nid === id ? "0" : "-1");
  };
  function move(from, [dx, dy, edge]) {
    const here = nodes.get(from);
    let best = null;
    let bestScore = Infinity;
    const list = [...nodes.entries()];
    if (edge) best = edge === "first" ? list[0][0] : list[list.length - 1][0];
    else {
      for (const [id, n] of list) {
        const ax = n.cx - here.cx, ay = n.cy - here.cy;
        const ahead = ax * dx + ay * dy; // how far that way
        if (id === from || ahead <= 1) continue;
        const aside = Math.abs(ax * dy) + Math.abs(ay * dx); // how far off the line
        const score = ahead + aside * 2;
        if (score < bestScore) {
          bestScore = score;
          best = id;
        }
      }
    }
    if (!best) return;
    focusable(best);
    nodes.get(best).g.focus();
  }
  if (nodes.size) focusable(nodes.keys().next().value);

  width -= left0;
  svg.setAttribute("viewBox", `${left0} 0 ${width} ${height}`);
  svg.setAttribute("width", String(width));
  let scale = 1;
  const scroller = h("div", { class: "graph-scroll", "data-test": "graph-scroll" }, svg);
  const zoom = (factor) => {
    scale = factor === 0 ? Math.min(1, (scroller.clientWidth - 8) / width || 1) : Math.min(3, Math.max(0.2, scale * factor));
    svg.setAttribute("width", String(Math.round(width * scale)));
    svg.setAttribute("height", String(Math.round(height * scale)));
  };
  const tools = h("div", { class: "graph-tools", role: "toolbar", "aria-label": "graph zoom" },
    h("small", { class: "hint graph-hint" }, "Tab to the graph, then the arrow keys move between steps and Enter chooses one."),
    h("button", { type: "button", class: "small", "aria-label": "zoom out", "data-test": "graph-zoom-out", onclick: () => zoom(1 / 1.25) }, "−"),
    h("button", { type: "button", class: "small", "aria-label": "zoom in", "data-test": "graph-zoom-in", onclick: () => zoom(1.25) }, "+"),
    h("button", { type: "button", class: "small", "aria-label": "fit the graph to the width", "data-test": "graph-fit", onclick: () => zoom(0) }, "Fit"));
  const element = h("div", { class: "graph-box" }, tools, scroller);
  // Fit wide graphs once the box has a width.
  requestAnimationFrame(() => {
    if (scroller.clientWidth && width > scroller.clientWidth) zoom(0);
  });

  return {
    element,
    paint(states) {
      for (const [id, n] of nodes) {
        const state = (states && states[id]) || "not_run";
        const [cls, shape] = stateLook(state);
        n.g.setAttribute("class", n.g.getAttribute("class").replace(/state-[a-z-]+/, `state-${cls}`));
        n.g.setAttribute("data-state", state);
        n.g.setAttribute("aria-label", `${n.type} step ${n.name}: ${state.replace("_", " ")}`);
        n.glyph.textContent = states ? shape : "";
      }
    },
    select(id) {
      if (nodes.has(id)) focusable(id);
      for (const [nid, n] of nodes) {
        n.g.classList.toggle("selected", nid === id);
        if (nid === id) n.g.setAttribute("aria-pressed", "true");
        else n.g.removeAttribute("aria-pressed");
      }
    },
  };
}

/** The legend of step states: colour, shape and word. */
export function legend() {
  const items = ["running", "waiting", "succeeded", "failed", "caught", "retried", "cancelled", "not_run"];
  return h("ul", { class: "legend", "aria-label": "step states", "data-test": "legend" },
    items.map((state) => {
      const [cls, shape] = stateLook(state);
      return h("li", { class: `state-${cls}` }, h("span", { class: "swatch", "aria-hidden": "true" }, shape), ` ${state.replace("_", " ")}`);
    }));
}
