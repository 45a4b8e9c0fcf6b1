// Confirmation dialogs: every action that changes something says what it will do, shows the
// equivalent `relayflow` command for copying, and runs only when the person confirms.
// Escape or Cancel closes the dialog; Enter in a field confirms.

import { fill, h, note } from "./dom.js";

/** A block with a command line and a Copy button. */
export function commandBox(text, test) {
  const code = h("code", { "data-test": test || "cli-command" }, text);
  const said = h("span", { class: "copy-said", role: "status" });
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(code.textContent);
      said.textContent = "Copied.";
    } catch {
      // Without the clipboard API (plain HTTP on another host), select it for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      said.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  };
  return h("div", { class: "command" },
    h("span", { class: "command-title" }, "The same with the command line:"),
    h("pre", {}, code),
    h("button", { type: "button", class: "small", "data-test": "copy-command", "aria-label": "copy the command", onclick: copy }, "Copy"),
    said);
}

/**
 * Opens a dialog and resolves to what `run` returned, or null when cancelled.
 *
 * options: title; what (a sentence or nodes: what confirming will do); fields (nodes: the form's
 * inputs); command() (the equivalent command line, recomputed as fields change); confirm (the
 * button's words); danger (a red button); check() (a sentence when the form is not right, else
 * ""); run() (does the action; a thrown error's message is shown and the dialog stays open).
 */
export function confirmDialog(options) {
  return new Promise((resolve) => {
    const problem = h("div", { class: "dialog-problem", "aria-live": "assertive" });
    const cmd = h("div", { class: "dialog-command" });
    const confirm = h("button", { type: "submit", class: options.danger ? "danger" : "primary", "data-test": "dialog-confirm" }, options.confirm || "Confirm");
    const cancel = h("button", { type: "button", "data-test": "dialog-cancel" }, "Cancel");
    const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
    const form = h("form", { method: "dialog", novalidate: true },
      h("h2", { id: titleId }, options.title),
      h("div", { class: "dialog-what", "data-test": "dialog-what" }, options.what),
      options.fields || null,
      cmd,
      problem,
      h("div", { class: "dialog-buttons" }, cancel, confirm));
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId, "data-test": options.test || "dialog" }, form);
    let result = null;
    const refresh = () => {
      if (options.command) fill(cmd, commandBox(options.command()));
      const why = options.check ? options.check() : "";
      confirm.disabled = Boolean(why);
      // What is missing is guidance, not a failure: shown plainly until the server refuses.
      fill(problem, why ? note("info", why, "dialog-check") : "");
    };
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
    cancel.addEventListener("click", () => dialog.close());
    const opener = document.activeElement;
    dialog.addEventListener("close", () => {
      dialog.remove();
      // Back to the button that opened it, or to the page when a redraw took that away.
      if (opener && opener.isConnected && typeof opener.focus === "function") opener.focus();
      else document.getElementById("app")?.focus({ preventScroll: true });
      resolve(result);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (confirm.disabled) return;
      confirm.disabled = true;
      confirm.setAttribute("aria-busy", "true");
      fill(problem, note("info", "Working…", "dialog-working"));
      try {
        result = (await options.run()) ?? true;
        dialog.close();
      } catch (error) {
        fill(problem, note("error", error.message || String(error), "dialog-error"));
        confirm.disabled = false;
      } finally {
        confirm.removeAttribute("aria-busy");
      }
    });
    document.body.append(dialog);
    refresh();
    dialog.showModal();
    const first = form.querySelector("input, textarea, select");
    (first || confirm).focus();
  });
}

/** A labelled form field around an input, select or textarea; `hint` is read with it. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h("small", { id: `${id}-hint`, class: "hint" }, hint);
    control.setAttribute("aria-describedby", `${id}-hint`);
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl);
}

/**
 * A JSON editor: a textarea checked as the person types. `check()` gives "" when the text is
 * a JSON object, else the sentence saying what is wrong and where.
 */
export function jsonEditor(initial, { label, test, rows } = {}) {
  const area = h("textarea", { rows: rows || 8, spellcheck: "false", class: "json-editor", "data-test": test || "json-editor", "aria-label": label || "JSON" });
  area.value = initial;
  const status = h("small", { class: "hint", "aria-live": "polite", "data-test": `${test || "json-editor"}-status` });
  const check = () => {
    const text = area.value.trim();
    if (!text) return `${label || "The JSON"} is empty: give a JSON object such as {}.`;
    let value;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return `${label || "The JSON"} is not valid JSON: ${error.message}.`;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return `${label || "The JSON"} must be a JSON object ({...}), not ${Array.isArray(value) ? "an array" : typeof value}.`;
    }
    return "";
  };
  const update = () => {
    const why = check();
    status.textContent = why || "Valid JSON object.";
    status.className = why ? "hint bad" : "hint good";
    area.setAttribute("aria-invalid", why ? "true" : "false");
  };
  area.addEventListener("input", update);
  area.addEventListener("keydown", (e) => {
    // Tab inserts two spaces only with Alt held, so that Tab still moves focus for keyboards.
    if (e.key === "Tab" && e.altKey) {
      e.preventDefault();
      area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
    }
  });
  update();
  return { area, status, check, value: () => area.value.trim() };
}
