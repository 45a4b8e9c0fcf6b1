// The execution's actions, each behind a dialog that says what it will do and shows the
// equivalent command: stop, redrive, and reporting a waiting task by hand.

import { call } from "../api.js";
import { h } from "../dom.js";
import { confirmDialog, field, jsonEditor } from "../dialog.js";
import { command } from "../format.js";

/** Stops one running execution. */
export function stopDialog(flow, name) {
  const error = h("input", { maxlength: 128, placeholder: "such as Cancelled", "data-test": "stop-error" });
  const cause = h("input", { maxlength: 4096, "data-test": "stop-cause" });
  return confirmDialog({
    title: `Stop ${name}`,
    test: "stop-dialog",
    what: h("p", {}, "This ends the execution ", h("strong", {}, name), " of ", h("strong", {}, flow),
      " now, with status Stopped, and its child executions with it. Work already handed to a worker is not called back; its report will be refused."),
    fields: [field("Error (optional)", error, "At most 128 characters."), field("Cause (optional)", cause, "Why, for whoever reads the execution later.")],
    danger: true,
    confirm: "Stop the execution",
    command: () => command(["relayflow", "executions", "stop", flow, name, error.value && "--error", error.value, cause.value && "--cause", cause.value]),
    run: () => call("StopExecution", { FlowName: flow, ExecutionName: name, Error: error.value, Cause: cause.value }),
  });
}

/** Redrives one ended execution. */
export function redriveDialog(flow, name, status) {
  const current = h("input", { type: "checkbox", id: "redrive-current", "data-test": "redrive-current-definition" });
  return confirmDialog({
    title: `Redrive ${name}`,
    test: "redrive-dialog",
    what: h("p", {}, "This makes the ", h("strong", {}, status), " execution ", h("strong", {}, name),
      " go on from the step where it ended, with its status Running again; the steps that succeeded are not run again."),
    fields: h("div", { class: "field check" }, current, h("label", { for: "redrive-current" }, "Go on with the flow's current definition instead of the one it started with")),
    confirm: "Redrive",
    command: () => command(["relayflow", "executions", "redrive", flow, name, current.checked && "--definition", current.checked && "current"]),
    run: () => call("RedriveExecution", { FlowName: flow, ExecutionName: name, UseCurrentDefinition: current.checked ? "true" : "" }),
  });
}

function tokenField(token) {
  const input = h("textarea", { rows: 2, spellcheck: "false", class: "token", "data-test": "report-token", "aria-label": "task token" });
  input.value = token || "";
  return input;
}

const WHICH = (step) => (step ? h("p", {}, "The task of step ", h("strong", {}, step), " is waiting for its result.") : null);
const TOKEN_HINT = "The token the task gave its worker (taskToken in its message).";

// Which task a report names: its token, or (a step with a correlationKey, no token known)
// the flow and the key. Gives the form's field, a check, the API parameters and CLI words.
function target({ token, flow, key }) {
  if (!token && flow && key) {
    return {
      field: h("p", { "data-test": "report-key" }, "The task is named by its correlation key ", h("code", {}, key), "."),
      check: () => "",
      params: () => ({ FlowName: flow, CorrelationKey: key }),
      words: () => ["--flow", flow, "--key", key],
    };
  }
  const input = tokenField(token);
  return {
    field: field("Task token", input, token ? "" : TOKEN_HINT),
    check: () => (input.value.trim() ? "" : "Give the task's token."),
    params: () => ({ TaskToken: input.value.trim() }),
    words: () => [input.value.trim() || "TOKEN"],
  };
}

/** Reports a waiting task succeeded with an output. */
export function succeedDialog(task = {}) {
  const which = target(task);
  const output = jsonEditor("{}", { label: "The output", test: "report-output" });
  return confirmDialog({
    title: "Report the task succeeded",
    test: "report-succeed-dialog",
    what: [WHICH(task.step), h("p", {}, "This finishes the task as if its worker had reported success, with the output below as the task's result; the execution goes on to the next step. The first report on a task wins: a later one from the worker will be refused.")],
    fields: [
      which.field,
      h("div", { class: "field" }, h("label", { for: "report-output-area" }, "Output (a JSON object)"), Object.assign(output.area, { id: "report-output-area" }), output.status),
    ],
    confirm: "Report success",
    check: () => which.check() || output.check(),
    command: () => command(["relayflow", "tasks", "succeed", ...which.words(), "--output", compact(output.value())]),
    run: () => call("ReportTaskSucceeded", { ...which.params(), Output: output.value() }),
  });
}

/** Reports a waiting task failed with an error name and a cause. */
export function failDialog(task = {}) {
  const which = target(task);
  const error = h("input", { maxlength: 128, required: true, placeholder: "such as PrinterJammed", "data-test": "report-error" });
  const cause = h("input", { maxlength: 4096, "data-test": "report-cause" });
  return confirmDialog({
    title: "Report the task failed",
    test: "report-fail-dialog",
    what: [WHICH(task.step), h("p", {}, "This fails the task with the error below, as if its worker had reported it: the step's retry and catch rules then decide what happens, and with none the execution fails.")],
    fields: [which.field, field("Error name", error, "1 to 128 characters; retry and catch match it."), field("Cause (optional)", cause)],
    danger: true,
    confirm: "Report failure",
    check: () => which.check() || (error.value.trim() ? "" : "Give an error name."),
    command: () => command(["relayflow", "tasks", "fail", ...which.words(), "--error", error.value.trim() || "ERROR", cause.value && "--cause", cause.value]),
    run: () => call("ReportTaskFailed", { ...which.params(), Error: error.value.trim(), Cause: cause.value }),
  });
}

function compact(text) {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}
