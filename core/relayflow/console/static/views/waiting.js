// #/waiting?flow=F&older=SECONDS: what running executions wait on, every flow or one, oldest
// first as the engine lists it (ListWaitingWork); each item links to its execution's page,
// where a waiting task can be reported by hand.

import { call } from "../api.js";
import { fill, h, link, note } from "../dom.js";
import { commandBox, field } from "../dialog.js";
import { command, duration, ms, when } from "../format.js";
import { go } from "../route.js";

const PAGE = 100;
const OLDER = [["", "any time"], ["60", "a minute"], ["3600", "an hour"], ["86400", "a day"], ["604800", "a week"]];

/** Renders the waiting-work page. */
export async function renderWaiting(main, query, alive) {
  const flowName = query.get("flow") || "";
  const older = query.get("older") || "";
  const flow = h("input", { value: flowName, autocomplete: "off", placeholder: "every flow", "data-test": "waiting-flow" });
  const olderPick = h("select", { "data-test": "waiting-older" }, OLDER.map(([v, t]) => h("option", { value: v, selected: v === older }, t)));
  const form = h("form", { class: "filters", role: "search", "aria-label": "filter waiting work" },
    field("Flow", flow), field("Waiting for at least", olderPick),
    h("div", { class: "form-buttons" }, h("button", { type: "submit", class: "primary", "data-test": "waiting-apply" }, "Apply")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (flow.value.trim()) q.set("flow", flow.value.trim());
    if (olderPick.value) q.set("older", olderPick.value);
    go(`/waiting${q.toString() ? `?${q}` : ""}`);
  });
  const body = h("tbody", {});
  const message = h("div", { "aria-live": "polite" });
  const more = h("button", { type: "button", hidden: true, "data-test": "waiting-more" }, "Load more");
  const olderWords = older ? `${Math.round(Number(older) / 3600) >= 1 ? `${Math.round(Number(older) / 3600)}h` : `${older}s`}` : "";
  fill(main,
    h("div", { class: "page-head" }, h("h1", {}, "Waiting work")),
    h("p", { class: "muted" }, "What running executions wait on now: a task's callback, a wait step's timer or a retry's pause. Open an execution to report a waiting task by hand."),
    form, message,
    h("div", { class: "table-scroll" }, h("table", { class: "list", "data-test": "waiting-table" },
      h("thead", {}, h("tr", {}, ["Execution", "Step", "Kind", "Resource", "Attempt", "Waiting since", "Ends by itself"].map((x) => h("th", { scope: "col" }, x)))),
      body)),
    more,
    commandBox(command(["relayflow", "executions", "waiting", flowName, olderWords && "--older-than", olderWords])));
  let token = "";
  const load = async () => {
    more.disabled = true;
    try {
      const page = await call("ListWaitingWork", { FlowName: flowName, OlderThanSeconds: older, Limit: PAGE, NextToken: token });
      if (!alive()) return;
      for (const w of page.Waiting || []) {
        body.append(h("tr", { "data-test": "waiting-row", "data-execution": w.ExecutionName },
          h("td", {}, link(`/execution/${encodeURIComponent(w.FlowName)}/${encodeURIComponent(w.ExecutionName)}`, `${w.FlowName}/${w.ExecutionName}`, { "data-test": "waiting-link" })),
          h("td", {}, w.StepName),
          h("td", {}, w.Kind),
          h("td", { class: "wrap" }, w.Resource || ""),
          h("td", {}, w.Attempt ? String(w.Attempt) : ""),
          h("td", {}, when(w.WaitingSince), h("span", { class: "muted" }, ` (${duration(Date.now() - ms(w.WaitingSince))})`)),
          h("td", {}, w.Due ? when(w.Due) : "never")));
      }
      token = page.NextToken || "";
      more.hidden = !token;
      fill(message, body.rows.length ? "" : token ? note("info", "Nothing on this page; load more to read on.", "waiting-page-empty") : note("info", "Nothing is waiting.", "waiting-empty"));
    } catch (error) {
      fill(message, note("error", error.message, "waiting-error"));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}
