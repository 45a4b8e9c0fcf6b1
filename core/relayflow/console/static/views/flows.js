// The flows list and each flow's page: its definition, graph, versions, aliases, schedules,
// and the Start dialog.

import { call, can, graph } from "../api.js";
import { facts, fill, h, link, note, section } from "../dom.js";
import { confirmDialog, field, jsonEditor } from "../dialog.js";
import { command, pretty, when } from "../format.js";
import { drawGraph } from "../graph.js";
import { highlighted } from "../highlight.js";
import { go } from "../route.js";

const PAGE = 100;

/** #/flows?q=TEXT: every flow, a page at a time, filtered by the search box. */
export async function renderFlows(main, query, alive) {
  const search = h("input", { type: "search", placeholder: "Search by name or description", "aria-label": "search flows", "data-test": "flows-search", value: query.get("q") || "" });
  const body = h("tbody", {});
  const more = h("button", { type: "button", hidden: true, "data-test": "flows-more" }, "Load more flows");
  const status = h("div", { "aria-live": "polite" });
  const table = h("table", { class: "list", "data-test": "flows-table" },
    h("caption", { class: "visually-hidden" }, "Flows"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Mode"), h("th", { scope: "col" }, "Description"), h("th", { scope: "col" }, "Last modified"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Links")))));
  table.append(body);
  fill(main,
    h("div", { class: "page-head" }, h("h1", {}, "Flows"), h("div", { class: "toolbar" }, search)),
    status, h("div", { class: "table-scroll" }, table), more);
  const flows = [];
  let token = "";
  const draw = () => {
    const words = search.value.trim().toLowerCase();
    const shown = flows.filter((f) => !words || f.Name.toLowerCase().includes(words) || (f.Description || "").toLowerCase().includes(words));
    fill(body, ...shown.map((f) => h("tr", { "data-test": "flow-row", "data-flow": f.Name },
      h("td", {}, link(`/flow/${encodeURIComponent(f.Name)}`, f.Name, { "data-test": "flow-link" })),
      h("td", {}, f.ExecutionMode || "Standard"),
      h("td", { class: "wrap" }, f.Description || ""),
      h("td", {}, when(f.LastModifiedTime)),
      h("td", {}, link(`/executions?flow=${encodeURIComponent(f.Name)}`, "Executions", { "data-test": "flow-executions-link", "aria-label": `executions of ${f.Name}` })))));
    fill(status, flows.length === 0 && !token ? note("info", "No flows yet. Create one with: relayflow flows create NAME --definition flow.yaml", "flows-empty")
      : words && !shown.length ? note("info", `No loaded flow matches “${search.value.trim()}”${token ? "; load more flows to search further" : ""}.`, "flows-none") : "");
    more.hidden = !token;
  };
  const load = async () => {
    more.disabled = true;
    try {
      const page = await call("ListFlows", { Limit: PAGE, NextToken: token });
      if (!alive()) return;
      flows.push(...(page.Flows || []));
      token = page.NextToken || "";
      draw();
    } catch (error) {
      fill(status, note("error", error.message, "flows-error"));
    } finally {
      more.disabled = false;
    }
  };
  search.addEventListener("input", () => {
    history.replaceState(null, "", `#/flows${search.value ? `?q=${encodeURIComponent(search.value)}` : ""}`);
    draw();
  });
  more.addEventListener("click", load);
  await load();
}

// A problem sentence's line number, when it names one ("flow.yaml:12: ..." or "line 12").
function problemLine(text) {
  const m = /(?:^|[\s:])(\d+):\s|line (\d+)/.exec(text);
  return m ? Number(m[1] || m[2]) : 0;
}

function problemsOf(doc) {
  const lines = new Map();
  const loose = [];
  const add = (line, sentence) => {
    if (line > 0) lines.set(line, [...(lines.get(line) || []), sentence]);
    else loose.push(sentence);
  };
  for (const p of (doc && doc.problems) || []) {
    const sentence = typeof p === "string" ? p : p.message || p.Message || JSON.stringify(p);
    add(Number(p.line) || problemLine(sentence), sentence);
  }
  return { lines, loose };
}

async function optional(action, params) {
  if (!can(action)) return [];
  try {
    const page = await call(action, { ...params, Limit: 100 });
    return page.FlowVersions || page.Aliases || page.Schedules || [];
  } catch {
    return [];
  }
}

/** #/flow/NAME?version=N: one flow. */
export async function renderFlow(main, name, query, alive) {
  const version = query.get("version") || "";
  fill(main, h("p", { class: "muted" }, "Loading the flow…"));
  let flow;
  try {
    flow = await call("DescribeFlow", { Name: name, FlowVersion: version });
  } catch (error) {
    fill(main, h("h1", {}, name), note("error", error.message, "flow-error"));
    return;
  }
  const [versions, aliases, schedules] = await Promise.all([
    optional("ListFlowVersions", { FlowName: name }),
    optional("ListFlowAliases", { FlowName: name }),
    optional("ListSchedules", { FlowName: name }),
  ]);
  let drawing = null;
  let graphError = null;
  try {
    drawing = await graph(name, version);
  } catch (error) {
    graphError = error;
  }
  if (!alive()) return;
  const problems = problemsOf(drawing);

  const versionPick = versions.length
    ? h("select", { "aria-label": "definition to show", "data-test": "flow-version-select" },
      h("option", { value: "" }, "Current definition"),
      versions.map((v) => h("option", { value: String(v.Version), selected: String(v.Version) === version }, `Version ${v.Version}${v.Description ? ` — ${v.Description}` : ""}`)))
    : null;
  if (versionPick) {
    versionPick.addEventListener("change", () => go(`/flow/${encodeURIComponent(name)}${versionPick.value ? `?version=${versionPick.value}` : ""}`));
  }
  const start = can("StartExecution") && flow.ExecutionMode !== "Express"
    ? h("button", { type: "button", class: "primary", "data-test": "flow-start", onclick: () => startDialog(name, versions, aliases) }, "Start execution…")
    : null;

  const code = highlighted(flow.Definition || "", problems.lines);
  // Choosing a step in the graph shows its lines in the definition.
  const showStep = (id) => {
    const node = (drawing.nodes || []).find((n) => n.id === id);
    const wanted = node && node.name;
    if (!wanted) return;
    const pattern = new RegExp(`^\\s*-?\\s*"?name"?\\s*:\\s*["']?${wanted.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*,?\\s*(#.*)?$`);
    const lines = [...code.querySelectorAll(".code-line")].filter((el) => pattern.test(el.querySelector(".line-text").textContent.replace(/\n$/, "")));
    // Steps of one name in several lists come in the definition's order, as the nodes do.
    const nth = drawing.nodes.filter((n) => n.name === wanted).indexOf(node);
    const line = lines[nth] || lines[0];
    for (const el of code.querySelectorAll(".chosen")) el.classList.remove("chosen");
    if (!line) return;
    line.classList.add("chosen");
    code.scrollTop = line.offsetTop - code.offsetTop - 40;
  };
  let graphDrawing = null;
  if (drawing) {
    graphDrawing = drawGraph(drawing, { label: `graph of ${name}`, onSelect: (id) => { graphDrawing.select(id); showStep(id); } });
  }
  const graphPart = section("Graph", "flow-graph",
    graphDrawing ? graphDrawing.element : null,
    graphError ? note("error", `The graph could not be drawn: ${graphError.message}`, "graph-error") : null);
  const definition = section(version ? `Definition (version ${version})` : "Definition", "flow-definition",
    problems.loose.map((p) => note("error", p, "definition-problem")),
    code);

  fill(main,
    h("div", { class: "page-head" },
      h("h1", {}, h("span", { class: "muted" }, "Flow "), name),
      h("div", { class: "toolbar" }, versionPick, link(`/executions?flow=${encodeURIComponent(name)}`, "Executions", { class: "button", "data-test": "flow-executions" }), start)),
    facts([
      ["Description", flow.Description],
      ["Mode", flow.ExecutionMode],
      ["Created", when(flow.CreatedTime)],
      ["Last modified", when(flow.LastModifiedTime)],
      ["Variables", (flow.Environment && flow.Environment.Variables || []).map((v) => `${v.Name}=${v.Value}`).join(", ")],
    ], "flow-facts"),
    h("div", { class: "two-columns" }, graphPart, definition),
    versions.length ? section("Versions", "flow-versions", table(["Version", "Description", "Published"], versions.map((v) => [
      link(`/flow/${encodeURIComponent(name)}?version=${v.Version}`, String(v.Version)), v.Description || "", when(v.CreatedTime)]))) : null,
    aliases.length ? section("Aliases", "flow-aliases", table(["Alias", "Routes", "Description"], aliases.map((a) => [
      a.Name, routes(a.RoutingConfigurations), a.Description || ""]))) : null,
    schedules.length ? section("Schedules", "flow-schedules", table(["Schedule", "Cron", "Enabled", "Payload", "Description"], schedules.map((sc) => [
      sc.ScheduleName, h("code", {}, sc.CronExpression), sc.Enable ? "yes" : "no", h("code", { class: "wrap" }, sc.Payload || ""), sc.Description || ""]))) : null,
  );
}

function routes(config) {
  let list = config;
  if (typeof config === "string") {
    try {
      list = JSON.parse(config);
    } catch {
      return config;
    }
  }
  return (list || []).map((r) => `${r.Version}=${r.Weight}`).join(" ");
}

function table(heads, rows) {
  return h("div", { class: "table-scroll" }, h("table", { class: "list" },
    h("thead", {}, h("tr", {}, heads.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))));
}

/**
 * The Start dialog: a name, a qualifier, the input checked as JSON before it is sent;
 * `initial` is the input it opens with (an execution's, to start it again).
 */
export function startDialog(flowName, versions = [], aliases = [], initial = "{}") {
  const name = h("input", { "data-test": "start-name", autocomplete: "off", spellcheck: "false", placeholder: "made up by the server" });
  const qualifier = h("select", { "data-test": "start-qualifier" },
    h("option", { value: "" }, "The current definition"),
    versions.map((v) => h("option", { value: String(v.Version) }, `Version ${v.Version}`)),
    aliases.map((a) => h("option", { value: a.Name }, `Alias ${a.Name}`)));
  const input = jsonEditor(pretty(initial) || "{}", { label: "The input", test: "start-input" });
  return confirmDialog({
    title: `Start an execution of ${flowName}`,
    test: "start-dialog",
    what: h("p", {}, "This starts a new execution of ", h("strong", {}, flowName), " with the input below. A name that is already running answers that execution and starts nothing."),
    fields: [
      field("Execution name (optional)", name, "Letters, digits, _ and -, starting with a letter or _."),
      versions.length || aliases.length ? field("Run", qualifier) : null,
      h("div", { class: "field" }, h("label", { for: "start-input-area" }, "Input (a JSON object)"), Object.assign(input.area, { id: "start-input-area" }), input.status),
    ],
    confirm: "Start",
    check: () => input.check() || (name.value && !/^[A-Za-z_][A-Za-z0-9_-]{0,127}$/.test(name.value.trim()) ? "The name must be 1 to 128 letters, digits, _ and -, starting with a letter or _." : ""),
    command: () => command(["relayflow", "executions", "start", flowName, "--input", JSON.stringify(safeParse(input.value())),
      name.value.trim() && "--name", name.value.trim(), qualifier.value && "--qualifier", qualifier.value]),
    run: async () => {
      const answer = await call("StartExecution", { FlowName: flowName, ExecutionName: name.value.trim(), Input: input.value(), Qualifier: qualifier.value });
      go(`/execution/${encodeURIComponent(flowName)}/${encodeURIComponent(answer.Name)}`);
      return answer;
    },
  });
}

function safeParse(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
