// Small DOM helpers. Every text from the server goes in through text nodes or attributes,
// never through innerHTML, so nothing a flow or an execution holds can run as markup.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * Makes an element: h("button", {class: "x", "data-test": "y", onclick: fn}, "text", child).
 * Attributes starting with "on" become listeners; false, null and undefined are left out;
 * children may be nested arrays, strings or nodes.
 */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same as h, for SVG elements. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in el && !(el instanceof SVGElement)) {
      el.value = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A message line: kind is "error", "info" or "ok"; errors are announced to screen readers. */
export function note(kind, text, test) {
  return h(
    "p",
    { class: `note note-${kind}`, role: kind === "error" ? "alert" : "status", "data-test": test || `note-${kind}` },
    text,
  );
}

/** A section with a heading. */
export function section(title, test, ...children) {
  return h("section", { class: "panel", "data-test": test, "aria-label": title }, h("h2", {}, title), children);
}

/** A definition list from [term, value] pairs (values may be nodes). */
export function facts(pairs, test) {
  return h(
    "dl",
    { class: "facts", "data-test": test },
    pairs.filter((p) => p && p[1] !== undefined && p[1] !== null && p[1] !== "").map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

/** A link to a console route. */
export function link(route, text, attrs) {
  return h("a", { href: `#${route}`, ...(attrs || {}) }, text);
}
