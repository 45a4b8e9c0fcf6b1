// Times, durations, JSON and shell quoting, as the pages show them.

import { h } from "./dom.js";

const local = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});

const precise = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3,
});

/**
 * Milliseconds since the epoch of a time: the API's text ("2026-11-28T12:20:26.701Z") or the
 * view's seconds since the epoch (a number); NaN for none.
 */
export function ms(value) {
  if (typeof value === "number") return Number.isFinite(value) ? value * 1000 : NaN;
  return value ? Date.parse(value) : NaN;
}

/** A <time> in the viewer's zone, UTC on hover; `exact` shows the time of day to the millisecond. */
export function when(value, test, { exact } = {}) {
  const t = ms(value);
  if (Number.isNaN(t)) return h("span", { class: "muted", "data-test": test }, "—");
  const utc = new Date(t).toISOString();
  const shown = exact ? precise.format(t) : local.format(t);
  return h("time", { datetime: utc, title: `${utc.replace("T", " ").replace(".000Z", "Z")} (UTC)`, "data-test": test }, shown);
}

/** A duration in milliseconds as "2h 10m", "3.2s", "450ms". */
export function duration(millis) {
  if (!Number.isFinite(millis) || millis < 0) return "—";
  if (millis < 1000) return `${Math.round(millis)}ms`;
  const secs = millis / 1000;
  if (secs < 60) return `${secs.toFixed(secs < 10 ? 1 : 0)}s`;
  const parts = [];
  let rest = Math.floor(secs);
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n || (parts.length && unit !== "s")) parts.push(`${n}${unit}`);
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

/** JSON text (or a value) pretty-printed; text that is not JSON is given back as it is. */
export function pretty(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

/** A word quoted for a POSIX shell when it needs to be. */
export function shellQuote(word) {
  const text = String(word);
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A command line from its words, quoted. */
export function command(words) {
  return words.filter((w) => w !== null && w !== undefined && w !== "" && w !== false).map(shellQuote).join(" ");
}

/** A local "datetime-local" input's value as RFC 3339 UTC, or "" when empty. */
export function localToUtc(value) {
  if (!value) return "";
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? "" : new Date(t).toISOString().replace(".000Z", "Z");
}

/** An RFC 3339 time as a "datetime-local" input's value, in the viewer's zone. */
export function utcToLocal(value) {
  const t = ms(value);
  if (Number.isNaN(t)) return "";
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// Each status and step state with its colour class and a shape, so that it reads without colour.
const STATES = {
  Running: ["running", "●"], Succeeded: ["succeeded", "✓"], Failed: ["failed", "✕"],
  TimedOut: ["failed", "✕"], Stopped: ["stopped", "■"], Starting: ["running", "●"],
  running: ["running", "●"], succeeded: ["succeeded", "✓"], failed: ["failed", "✕"],
  caught: ["caught", "⚑"], retried: ["retried", "↻"], waiting: ["waiting", "‖"],
  not_run: ["not-run", "○"], cancelled: ["stopped", "–"], stopped: ["stopped", "■"], timed_out: ["failed", "✕"],
};

/** The class and shape of a status or a step state. */
export function stateLook(state) {
  return STATES[state] || ["not-run", "○"];
}

/** A status badge: colour, shape and the word. */
export function badge(state, test) {
  const [cls, shape] = stateLook(state);
  const word = String(state || "unknown").replace("_", " ");
  return h("span", { class: `badge state-${cls}`, "data-test": test || "status", "data-state": state }, h("span", { "aria-hidden": "true" }, shape), ` ${word}`);
}
