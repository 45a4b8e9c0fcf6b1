// The executions list: filters (flow, status, name prefix, started between) kept in the URL,
// counts by status, pages by NextToken, and bulk stop or redrive of what the filter matches.

import { call, can } from "../api.js";
import { fill, h, link, note } from "../dom.js";
import { confirmDialog, field } from "../dialog.js";
import { badge, command, duration, localToUtc, ms, utcToLocal, when } from "../format.js";
import { go } from "../route.js";

const STATUSES = ["Running", "Succeeded", "Failed", "TimedOut", "Stopped"];
/** Counts by status stop here and show `10000+`: see CountExecutions' MaxCount. */
const COUNT_LIMIT = 10000;
const REDRIVABLE = ["Failed", "TimedOut", "Stopped"];
const PAGE = 50;
const BULK_PAGE = 100;

function filterOf(query) {
  return {
    flow: query.get("flow") || "",
    status: query.get("status") || "",
    prefix: query.get("prefix") || "",
    after: query.get("after") || "",
    before: query.get("before") || "",
  };
}

function params(filter, status) {
  return {
    FlowName: filter.flow,
    Status: status === undefined ? filter.status : status,
    ExecutionNamePrefix: filter.prefix,
    StartedTimeBegin: filter.after,
    StartedTimeEnd: filter.before,
  };
}

function routeOf(filter) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
  return `/executions?${q}`;
}

// The CLI's filter options for a bulk command.
function cliFilter(filter) {
  return [filter.prefix && "--name-prefix", filter.prefix, filter.after && "--started-after", filter.after, filter.before && "--started-before", filter.before];
}

function describeFilter(filter) {
  const parts = [];
  if (filter.prefix) parts.push(`names start with “${filter.prefix}”`);
  if (filter.after) parts.push(`started at or after ${new Date(filter.after).toLocaleString()}`);
  if (filter.before) parts.push(`started at or before ${new Date(filter.before).toLocaleString()}`);
  return parts.length ? ` whose ${parts.join(", ")}` : "";
}

async function flowNames() {
  try {
    const page = await call("ListFlows", { Limit: 1000 });
    return (page.Flows || []).map((f) => f.Name);
  } catch {
    return [];
  }
}

/** #/executions?flow=F&status=S&prefix=P&after=T&before=T */
export async function renderExecutions(main, query, alive) {
  const filter = filterOf(query);
  const names = await flowNames();
  if (!alive()) return;
  if (!filter.flow && names.length) {
    filter.flow = names[0];
    history.replaceState(null, "", `#${routeOf(filter)}`);
  }
  const flow = h("input", { list: "flow-names", value: filter.flow, required: true, autocomplete: "off", "data-test": "filter-flow" });
  const status = h("select", { "data-test": "filter-status" },
    h("option", { value: "" }, "Any"), STATUSES.map((x) => h("option", { value: x, selected: x === filter.status }, x)));
  const prefix = h("input", { value: filter.prefix, autocomplete: "off", spellcheck: "false", "data-test": "filter-prefix" });
  const after = h("input", { type: "datetime-local", value: utcToLocal(filter.after), "data-test": "filter-after" });
  const before = h("input", { type: "datetime-local", value: utcToLocal(filter.before), "data-test": "filter-before" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "filter executions", "data-test": "filters" },
    h("datalist", { id: "flow-names" }, names.map((n) => h("option", { value: n }))),
    field("Flow", flow), field("Status", status), field("Name starts with", prefix),
    field("Started after (your time)", after), field("Started before (your time)", before),
    h("div", { class: "form-buttons" },
      h("button", { type: "submit", class: "primary", "data-test": "filter-apply" }, "Apply"),
      h("button", { type: "button", "data-test": "filter-clear", onclick: () => go(routeOf({ flow: flow.value.trim() })) }, "Clear")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    go(routeOf({ flow: flow.value.trim(), status: status.value, prefix: prefix.value, after: localToUtc(after.value), before: localToUtc(before.value) }));
  });

  const counts = h("div", { class: "counts", role: "group", "aria-label": "executions by status", "data-test": "counts" });
  const message = h("div", { "aria-live": "polite" });
  const outcome = h("div", { "aria-live": "polite" }); // a bulk action's result, kept across reloads
  const body = h("tbody", {});
  const prev = h("button", { type: "button", "data-test": "page-prev", disabled: true }, "← Previous");
  const next = h("button", { type: "button", "data-test": "page-next", disabled: true }, "Next →");
  const pageLabel = h("span", { class: "muted", "data-test": "page-number" });
  const bulk = h("div", { class: "toolbar" });
  const reload = h("button", { type: "button", "data-test": "executions-refresh" }, "Refresh");
  bulk.append(reload);
  fill(main,
    h("div", { class: "page-head" }, h("h1", {}, "Executions"), bulk),
    form, counts, outcome, message,
    h("div", { class: "table-scroll" }, h("table", { class: "list", "data-test": "executions-table" },
      h("caption", { class: "visually-hidden" }, "Executions"),
      h("thead", {}, h("tr", {}, ["Name", "Status", "Started", "Ended", "Duration", "Error", "Version"].map((x) => h("th", { scope: "col" }, x)))),
      body)),
    h("nav", { class: "pager", "aria-label": "pages" }, prev, pageLabel, next));
  if (!filter.flow) {
    fill(message, note("info", names.length ? "Choose a flow." : "There are no flows yet.", "executions-no-flow"));
    return;
  }

  const tokens = [""]; // the NextToken that gives each page seen so far
  let index = 0;
  const load = async () => {
    prev.disabled = next.disabled = true;
    try {
      const page = await call("ListExecutions", { ...params(filter), MetadataOnly: "true", Limit: PAGE, NextToken: tokens[index] });
      if (!alive()) return;
      const rows = page.Executions || [];
      fill(body, ...rows.map((e) => h("tr", { "data-test": "execution-row", "data-execution": e.Name },
        h("td", {}, link(`/execution/${encodeURIComponent(e.FlowName || filter.flow)}/${encodeURIComponent(e.Name)}`, e.Name, { "data-test": "execution-link" })),
        h("td", {}, badge(e.Status)),
        h("td", {}, when(e.StartedTime)),
        h("td", {}, when(e.StoppedTime)),
        h("td", {}, duration((e.StoppedTime ? ms(e.StoppedTime) : Date.now()) - ms(e.StartedTime))),
        h("td", { class: "wrap" }, e.Error ? h("span", { title: e.Cause || "", "data-test": "execution-row-error" }, e.Error) : ""),
        h("td", {}, e.FlowVersion || ""))));
      fill(message, rows.length ? "" : note("info", "No execution matches these filters.", "executions-empty"));
      tokens.length = index + 1;
      if (page.NextToken) tokens.push(page.NextToken);
      prev.disabled = index === 0;
      next.disabled = !page.NextToken;
      pageLabel.textContent = `Page ${index + 1}`;
    } catch (error) {
      fill(message, note("error", error.message, "executions-error"));
    }
  };
  prev.addEventListener("click", () => { index -= 1; load(); });
  reload.addEventListener("click", () => { load(); loadCounts(); });
  next.addEventListener("click", () => { index += 1; load(); });

  const loadCounts = async () => {
    if (!can("CountExecutions")) return;
    try {
      // Bounded: a status holding a million executions would otherwise be counted on every load.
      const answers = await Promise.all(STATUSES.map((x) => call("CountExecutions", { ...params(filter, x), MaxCount: COUNT_LIMIT })));
      if (!alive()) return;
      const each = answers.map((a) => `${a.Matched}${a.MoreThan ? "+" : ""}`);
      const more = answers.some((a) => a.MoreThan);
      const total = `${answers.reduce((a, b) => a + b.Matched, 0)}${more ? "+" : ""}`;
      fill(counts,
        link(routeOf({ ...filter, status: "" }), `All ${total}`, { class: `count${filter.status ? "" : " active"}`, "data-test": "count-all", "aria-current": filter.status ? false : "true" }),
        STATUSES.map((x, i) => {
          const el = link(routeOf({ ...filter, status: x }), "", { class: `count${filter.status === x ? " active" : ""}`, "data-test": `count-${x}`, "aria-current": filter.status === x ? "true" : false });
          el.append(badge(x, `count-badge-${x}`), ` ${each[i]}`);
          return el;
        }));
    } catch (error) {
      fill(counts, note("error", `Counts: ${error.message}`, "counts-error"));
    }
  };

  if (can("StopExecutions") && (!filter.status || filter.status === "Running")) {
    bulk.append(h("button", { type: "button", class: "danger", "data-test": "bulk-stop", onclick: () => bulkDialog("stop", filter).then((r) => r && r.Done && done(r)) }, "Stop matching…"));
  }
  if (can("RedriveExecutions") && REDRIVABLE.includes(filter.status)) {
    bulk.append(h("button", { type: "button", "data-test": "bulk-redrive", onclick: () => bulkDialog("redrive", filter).then((r) => r && r.Done && done(r)) }, "Redrive matching…"));
  }
  const done = (result) => {
    const failed = result.Failed.length ? ` ${result.Failed.length} could not be: ${result.Failed.slice(0, 5).map((f) => `${f.Name} (${f.Message})`).join("; ")}${result.Failed.length > 5 ? "; …" : ""}.` : "";
    fill(outcome, note(result.Failed.length ? "error" : "ok",
      `${result.verb} ${result.Done.length}; ${result.Skipped.length} skipped (no longer matching).${failed}`, "bulk-result"));
    index = 0;
    tokens.length = 1;
    load();
    loadCounts();
  };
  await Promise.all([load(), loadCounts()]);
}

/** The bulk stop or redrive dialog: counts first, then acts a page at a time. */
async function bulkDialog(kind, filter) {
  const status = kind === "stop" ? "Running" : filter.status;
  let matched;
  try {
    matched = (await call("CountExecutions", params(filter, status))).Matched;
  } catch (error) {
    return confirmDialog({ title: "Cannot count", what: note("error", error.message), confirm: "Close", run: async () => null });
  }
  const error = h("input", { maxlength: 128, "data-test": "bulk-error", placeholder: "such as Cancelled" });
  const cause = h("input", { maxlength: 4096, "data-test": "bulk-cause" });
  const current = h("input", { type: "checkbox", "data-test": "bulk-current-definition" });
  const progress = h("progress", { max: Math.max(1, matched), value: 0, "data-test": "bulk-progress", "aria-label": "progress" });
  const verb = kind === "stop" ? "Stopped" : "Redriven";
  const words = `${matched} ${status.toLowerCase()} execution${matched === 1 ? "" : "s"} of ${filter.flow}${describeFilter(filter)}`;
  return confirmDialog({
    title: kind === "stop" ? "Stop matching executions" : "Redrive matching executions",
    test: "bulk-dialog",
    what: h("p", { "data-test": "bulk-count", "data-matched": matched },
      matched === 0 ? "No execution matches these filters: there is nothing to do."
        : kind === "stop" ? `This stops the ${words}. Work already handed to workers is not called back.`
          : `This redrives the ${words}: each goes on from the step where it ended.`),
    fields: [
      kind === "stop" ? [field("Error (optional)", error), field("Cause (optional)", cause)] : h("div", { class: "field check" }, current, h("label", { for: (current.id = "bulk-current") }, "Go on with the flow's current definition")),
      progress,
    ],
    danger: kind === "stop",
    confirm: matched ? `${kind === "stop" ? "Stop" : "Redrive"} ${matched}` : "Nothing to do",
    check: () => (matched ? "" : "No execution matches."),
    command: () => command(["relayflow", "executions", kind, filter.flow, "--status", status, ...cliFilter(filter),
      kind === "stop" && error.value && "--error", kind === "stop" && error.value, kind === "stop" && cause.value && "--cause", kind === "stop" && cause.value,
      kind === "redrive" && current.checked && "--definition", kind === "redrive" && current.checked && "current", "--yes"]),
    run: async () => {
      const result = { verb, Done: [], Skipped: [], Failed: [] };
      let token = "";
      // Each call acts on one page; Matched bounds the loop should the tokens never end.
      for (let round = 0; round < Math.ceil(matched / BULK_PAGE) + 5; round += 1) {
        const answer = await call(kind === "stop" ? "StopExecutions" : "RedriveExecutions", {
          ...params(filter, status), Limit: BULK_PAGE, NextToken: token,
          Error: kind === "stop" ? error.value : "", Cause: kind === "stop" ? cause.value : "",
          UseCurrentDefinition: kind === "redrive" && current.checked ? "true" : "",
        });
        result.Done.push(...(answer.Done || []));
        result.Skipped.push(...(answer.Skipped || []));
        result.Failed.push(...(answer.Failed || []));
        progress.value = result.Done.length + result.Skipped.length + result.Failed.length;
        token = answer.NextToken || "";
        if (!token) break;
      }
      return result;
    },
  });
}
