// A small highlighter for flow definitions (YAML or JSON), drawn with line numbers.
// It colours keys, strings, numbers, literals and comments; it is not a parser, and text it
// does not recognise is shown plain.

import { h } from "./dom.js";

const YAML_TOKENS = [
  ["comment", /#.*/y],
  ["string", /"(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?/y],
  ["key", /[^\s"'#:{}[\],][^:#]*?(?=:(?:\s|$))/y],
  ["number", /[-+]?(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?=\s*(?:$|#|,|\]|\}))/y],
  ["literal", /(?:true|false|null|True|False|Null|TRUE|FALSE|NULL|~)(?=\s*(?:$|#|,|\]|\}))/y],
  ["punct", /[-:{}[\],|>?&*!]/y],
  ["plain", /[^\s#]+(?:[ \t]+[^\s#:]+)*/y],
  ["space", /\s+/y],
];

const JSON_TOKENS = [
  ["key", /"(?:[^"\\]|\\.)*"(?=\s*:)/y],
  ["string", /"(?:[^"\\]|\\.)*"?/y],
  ["number", /-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/y],
  ["literal", /true|false|null/y],
  ["punct", /[{}[\],:]/y],
  ["space", /\s+/y],
  ["plain", /[^\s"{}[\],:]+/y],
];

function tokens(line, table) {
  const out = [];
  let at = 0;
  while (at < line.length) {
    let matched = false;
    for (const [kind, pattern] of table) {
      pattern.lastIndex = at;
      const m = pattern.exec(line);
      if (m && m[0].length) {
        out.push([kind, m[0]]);
        at += m[0].length;
        matched = true;
        break;
      }
    }
    if (!matched) {
      out.push(["plain", line[at]]);
      at += 1;
    }
  }
  return out;
}

/** Whether a definition is JSON (it starts with { or [) rather than YAML. */
export function isJson(text) {
  return /^\s*[{[]/.test(text);
}

/**
 * The definition drawn as a list of numbered lines. `problems` maps a line number (1-based) to
 * the sentences about it; those lines are marked and the sentences shown under them.
 */
export function highlighted(text, problems) {
  const json = isJson(text);
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  let blockIndent = -1; // inside a YAML block scalar (| or >): lines indented deeper are text
  const rows = lines.map((line, index) => {
    const number = index + 1;
    const indent = line.length - line.trimStart().length;
    let parts;
    if (!json && blockIndent >= 0 && (line.trim() === "" || indent > blockIndent)) {
      parts = [["string", line]];
    } else {
      blockIndent = -1;
      parts = tokens(line, json ? JSON_TOKENS : YAML_TOKENS);
      if (!json && /:\s*[|>][-+0-9]*\s*(?:#.*)?$/.test(line)) blockIndent = indent;
    }
    const said = (problems && problems.get(number)) || [];
    return h(
      "div",
      { class: said.length ? "code-line has-problem" : "code-line", "data-line": number, "data-test": `definition-line-${number}` },
      h("span", { class: "line-number", "aria-hidden": "true" }, String(number)),
      h("code", { class: "line-text" }, parts.map(([kind, t]) => (kind === "space" || kind === "plain" ? t : h("span", { class: `tok-${kind}` }, t))), "\n"),
      said.map((sentence) => h("div", { class: "line-problem", role: "note", "data-test": "definition-problem" }, `⚠ ${sentence}`)),
    );
  });
  return h(
    "div",
    { class: "code", role: "region", "aria-label": `definition, ${json ? "JSON" : "YAML"}, ${lines.length} lines`, tabindex: "0", "data-test": "definition" },
    rows,
  );
}
