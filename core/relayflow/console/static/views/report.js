// #/report: report a task by its token, for the worker role (which may not read executions)
// and for anyone holding a token from a worker's message or log.

import { can } from "../api.js";
import { fill, h, note } from "../dom.js";
import { failDialog, succeedDialog } from "./actions.js";

/** Renders the report page. */
export function renderReport(main) {
  const message = h("div", { "aria-live": "polite" });
  const allowed = can("ReportTaskSucceeded");
  const after = (result) => {
    if (result && result.EventId) fill(message, note("ok", `Reported: the task's event is number ${result.EventId} of its execution's history.`, "report-done"));
  };
  fill(main,
    h("div", { class: "page-head" }, h("h1", {}, "Report a task")),
    h("p", {}, "A task that waits for a callback ends when someone reports its token. When its worker cannot, report it here: the first report on a token wins, and a later one is refused."),
    allowed
      ? h("div", { class: "toolbar" },
        h("button", { type: "button", class: "primary", "data-test": "report-succeed", onclick: () => succeedDialog().then(after) }, "Report succeeded…"),
        h("button", { type: "button", class: "danger", "data-test": "report-fail", onclick: () => failDialog().then(after) }, "Report failed…"))
      : note("info", "Your role may not report tasks.", "report-not-allowed"),
    message);
}
