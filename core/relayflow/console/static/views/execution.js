// One execution's page: its header, what it waits on, the graph coloured by each step's
// state, the timeline, the selected step, the events, and the actions the role allows.
//
// Live updates poll (DescribeExecution, GET /console/view and the events after the last one
// seen) every 1.5 s while the execution runs, rather than holding a stream open: a poll is an
// ordinary short request, so it works through any balancer or proxy and whichever replica
// answers it, and it costs nothing while the tab is hidden (polling pauses then) or once the
// execution has ended (polling stops).

import { call, can, graph, view } from "../api.js";
import { facts, fill, h, link, note, section } from "../dom.js";
import { badge, duration, ms, pretty, when } from "../format.js";
import { drawGraph, legend } from "../graph.js";
import { highlighted } from "../highlight.js";
import { drawTimeline } from "../timeline.js";
import { failDialog, redriveDialog, stopDialog, succeedDialog } from "./actions.js";
import { startDialog } from "./flows.js";

const POLL_MS = 1500;
const EVENTS_PAGE = 1000;
const MAX_EVENTS = 20000; // the list shows at most this many; the rest is left for the CLI
const ENDED = new Set(["Succeeded", "Failed", "TimedOut", "Stopped"]);

function execLink(e) {
  return link(`/execution/${encodeURIComponent(e.FlowName)}/${encodeURIComponent(e.Name)}`, `${e.FlowName}/${e.Name}`, { "data-test": "family-link" });
}

// A value shown in a <pre>: JSON text from the API or a JSON value from the view; a value the
// view cut is the start of its text.
function block(title, value, test, truncated) {
  const text = pretty(value);
  if (!text) return null;
  const cut = truncated ? "(cut: the events below have it whole)" : "";
  return h("details", { class: "value", open: true, "data-test": test },
    h("summary", {}, title, cut ? h("span", { class: "muted", "data-test": `${test}-cut` }, ` ${cut}`) : null),
    h("pre", { tabindex: "0" }, text));
}

// The view's steps may be a list or a map by node id; either way, a map.
function stepsById(doc) {
  const steps = (doc && doc.steps) || {};
  if (!Array.isArray(steps)) return steps;
  return Object.fromEntries(steps.map((st) => [st.id ?? st.node, st]));
}

/** #/execution/FLOW/NAME?step=ID */
export async function renderExecution(main, flow, name, query, alive) {
  fill(main, h("p", { class: "muted" }, "Loading the execution…"));
  const state = { execution: null, view: null, events: [], lastEvent: 0, selected: query.get("step") || "", drawing: null, timer: 0, busy: false };

  const head = h("div", { class: "page-head" });
  const live = h("p", { class: "live muted", "aria-live": "polite", "data-test": "live-status" });
  const summary = h("div", {});
  const waiting = h("div", {});
  const problems = h("div", { "aria-live": "polite" });
  const graphBox = h("div", { class: "graph-holder" });
  const stepBox = h("div", { class: "step-detail", "aria-live": "polite", "data-test": "step-detail" });
  const timelineBox = h("div", {});
  const eventsBody = h("tbody", {});
  const eventsNote = h("div", {});
  // Narrows the event list to rows whose type or step holds the words typed.
  const eventsFilter = h("input", { type: "search", placeholder: "Filter by type or step", "aria-label": "filter events by type or step", "data-test": "events-filter" });
  const matches = (row) => {
    const words = eventsFilter.value.trim().toLowerCase();
    return !words || `${row.dataset.type} ${row.dataset.step}`.toLowerCase().includes(words);
  };
  eventsFilter.addEventListener("input", () => {
    for (const row of eventsBody.rows) row.hidden = !matches(row);
  });

  try {
    state.execution = await call("DescribeExecution", { FlowName: flow, ExecutionName: name, IncludeWaiting: "true" });
  } catch (error) {
    fill(main, h("h1", {}, name), note("error", error.message, "execution-error"));
    return;
  }
  if (!alive()) return;

  fill(main,
    head, live, problems, summary, waiting,
    h("div", { class: "two-columns graph-and-step" },
      section("Graph", "execution-graph", legend(), graphBox),
      section("Selected step", "selected-step", stepBox)),
    section("Timeline", "execution-timeline", timelineBox),
    section("Events", "execution-events", h("div", { class: "toolbar" }, eventsFilter), eventsNote, h("div", { class: "table-scroll" }, h("table", { class: "list events", "data-test": "events-table" },
      h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Step", "Detail"].map((x) => h("th", { scope: "col" }, x)))),
      eventsBody))));

  // Parts are drawn again only when what they show has changed, so that a poll never takes
  // the focus from a button or closes a <details> someone opened.
  const drawn = new Map();
  const changed = (part, value) => {
    const sig = JSON.stringify(value);
    if (drawn.get(part) === sig) return false;
    drawn.set(part, sig);
    return true;
  };
  const clock = h("span", { "data-test": "execution-duration" });
  const ticking = []; // [element, since ms]: "for 25s" texts brought up to date on every poll
  const tickClocks = () => {
    const e = state.execution;
    clock.textContent = duration((e.StoppedTime ? ms(e.StoppedTime) : Date.now()) - ms(e.StartedTime));
    for (const [el, since] of ticking) el.textContent = ` (for ${duration(Date.now() - since)})`;
  };

  const select = (id, { quiet } = {}) => {
    state.selected = id;
    const q = id ? `?step=${encodeURIComponent(id)}` : "";
    history.replaceState(null, "", `#/execution/${encodeURIComponent(flow)}/${encodeURIComponent(name)}${q}`);
    if (state.drawing) state.drawing.select(id);
    drawStep();
    // On a phone the step's panel is below the graph: bring it into view.
    if (!quiet && id) stepBox.scrollIntoView({ block: "nearest" });
  };

  const drawHead = () => {
    const e = state.execution;
    tickClocks();
    if (!changed("head", [e.Status, e.StoppedTime, e.RedriveCount, e.ParentExecution, e.ChildExecutions, e.Error, e.Cause, e.Output, (e.FlowDefinition || "").length])) return;
    const actions = [];
    if (e.Status === "Running" && can("StopExecution")) {
      actions.push(h("button", { type: "button", class: "danger", "data-test": "action-stop", onclick: () => act(stopDialog(flow, name)) }, "Stop…"));
    }
    if (ENDED.has(e.Status) && e.Status !== "Succeeded" && can("RedriveExecution")) {
      actions.push(h("button", { type: "button", "data-test": "action-redrive", onclick: () => act(redriveDialog(flow, name, e.Status)) }, "Redrive…"));
    }
    if (can("StartExecution")) {
      actions.push(h("button", { type: "button", "data-test": "action-start-again", onclick: () => startDialog(flow, [], [], e.Input) }, "Start again…"));
    }
    fill(head,
      h("h1", {}, h("span", { class: "muted" }, "Execution "), name, " ", badge(e.Status, "execution-status")),
      h("div", { class: "toolbar" }, link(`/flow/${encodeURIComponent(flow)}`, `Flow ${flow}`, { class: "button", "data-test": "execution-flow" }), actions));
    fill(summary,
      facts([
        ["Flow", link(`/flow/${encodeURIComponent(flow)}`, flow)],
        ["Started", when(e.StartedTime, "execution-started")],
        ["Ended", e.StoppedTime ? when(e.StoppedTime, "execution-ended") : "still running"],
        ["Duration", clock],
        ["Version", e.FlowVersion],
        ["Redrives", e.RedriveCount],
        ["Parent", e.ParentExecution ? h("span", { "data-test": "execution-parent" }, execLink(e.ParentExecution), " ", badge(e.ParentExecution.Status)) : null],
        ["Children", e.ChildExecutions && e.ChildExecutions.length
          ? h("ul", { class: "inline-list", "data-test": "execution-children" }, e.ChildExecutions.map((c) => h("li", {}, execLink(c), " ", badge(c.Status))))
          : null],
        ["Error", e.Error ? h("strong", { "data-test": "execution-error-name" }, e.Error) : null],
        ["Cause", e.Cause],
      ], "execution-facts"),
      h("div", { class: "values" }, block("Input", e.Input, "execution-input"), block("Output", e.Output, "execution-output")),
      e.FlowDefinition ? h("details", { class: "value", "data-test": "execution-definition" },
        h("summary", {}, "The definition it runs"), highlighted(e.FlowDefinition)) : null);
  };

  const drawWaiting = () => {
    // The view's items name the graph node and, for roles that may report, the task token.
    const items = (state.view && state.view.waiting) || state.execution.Waiting || [];
    if (!changed("waiting", [items, state.execution.Status])) return;
    ticking.length = 0;
    if (!items.length) {
      fill(waiting);
      return;
    }
    fill(waiting, section("Waiting on", "execution-waiting",
      h("ul", { class: "waiting-list" }, items.map((w) => {
        const kind = w.Kind || w.kind;
        const step = w.name || w.StepName || "";
        const since = w.WaitingSince || w.since;
        const due = w.Due || w.due;
        const token = w.taskToken || "";
        const key = w.correlationKey || "";
        const canReport = kind === "task" && state.execution.Status === "Running";
        return h("li", { "data-test": "waiting-item", "data-step": step },
          h("span", { class: "badge state-waiting" }, h("span", { "aria-hidden": "true" }, "‖"), ` ${kind}`), " ",
          w.node ? h("button", { type: "button", class: "link-button", "data-test": "waiting-step", onclick: () => select(w.node) }, step) : h("strong", {}, step), (w.Resource || w.resource) ? h("code", { class: "resource" }, ` ${w.Resource || w.resource}`) : null,
          (w.Attempt || w.attempt) > 1 ? ` attempt ${w.Attempt || w.attempt}` : null,
          h("span", {}, " since ", when(since, "waiting-since"), clockFrom(since),
            due ? ["; ends by itself at ", when(due, "waiting-due")] : null),
          canReport && can("ReportTaskSucceeded")
            ? h("span", { class: "toolbar" },
              h("button", { type: "button", class: "small", "data-test": "action-report-succeed", onclick: () => act(succeedDialog({ token, step, flow, key })) }, "Report succeeded…"),
              h("button", { type: "button", class: "small danger", "data-test": "action-report-fail", onclick: () => act(failDialog({ token, step, flow, key })) }, "Report failed…"))
            : null);
      }))));
  };

  const clockFrom = (since) => {
    const el = h("span", { "data-test": "waiting-for" });
    ticking.push([el, ms(since)]);
    el.textContent = ` (for ${duration(Date.now() - ms(since))})`;
    return el;
  };

  const drawStep = () => {
    const steps = stepsById(state.view);
    const id = state.selected;
    if (!changed("step", [id, steps[id] || null])) return;
    if (!id) {
      fill(stepBox, h("p", { class: "muted" }, "Choose a step in the graph or the timeline to see its input, output and error."));
      return;
    }
    const st = steps[id];
    if (!st) {
      fill(stepBox, h("h3", {}, id), h("p", { class: "muted", "data-test": "step-not-run" }, "This step has not run in this execution."));
      return;
    }
    const outcomes = Object.entries(st.outcomes || {}).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(", ");
    const name = st.name || id.split("/").pop().replace(/~1/g, "/").replace(/~0/g, "~");
    fill(stepBox,
      h("h3", { "data-test": "step-name" }, name, " ", badge(st.state, "step-state")),
      facts([
        ["Type", st.type],
        ["Node", id !== name ? h("code", {}, id) : null],
        ["Entered", st.enteredTime ? when(st.enteredTime) : null],
        ["Left", st.exitedTime ? when(st.exitedTime) : st.enteredTime ? "not yet" : null],
        ["Runs", st.runs > 1 ? `${st.runs} (${outcomes})` : null],
        ["Attempts", st.attempts ? `${st.attempts}${st.retries ? `, ${st.retries} of them retries` : ""}` : null],
      ], "step-facts"),
      st.error || st.cause ? note("error", `${st.error || ""}${st.cause ? `: ${st.cause}` : ""}`, "step-error") : null,
      block(st.runs > 1 ? "Input (the latest run's)" : "Input", st.input, "step-input", st.truncated),
      block(st.runs > 1 ? "Output (the latest run's)" : "Output", st.output, "step-output", st.truncated));
  };

  const drawGraphPart = async () => {
    if (!state.drawing) {
      try {
        const doc = await graph(flow, state.execution.FlowVersion || "", name);
        if (!alive()) return;
        state.drawing = drawGraph(doc, { onSelect: select, label: `graph of ${flow}, coloured by step state` });
        fill(graphBox, state.drawing.element);
        state.drawing.select(state.selected);
      } catch (error) {
        fill(graphBox, note("error", `The graph could not be drawn: ${error.message}`, "graph-error"));
        return;
      }
    }
    const steps = stepsById(state.view);
    state.drawing.paint(Object.fromEntries(Object.entries(steps).map(([id, st]) => [id, st.state])));
  };

  const addEvents = (events) => {
    for (const ev of events) {
      if (ev.EventId <= state.lastEvent || state.events.length >= MAX_EVENTS) continue;
      state.lastEvent = ev.EventId;
      state.events.push(ev);
      let detail = h("span", { class: "muted" }, "—");
      if (ev.EventDetail && ev.EventDetail !== "{}") {
        // The detail is laid out when first opened: thousands of events stay light.
        detail = h("details", { "data-test": "event-detail" },
          h("summary", {}, h("span", { class: "visually-hidden" }, `detail of event ${ev.EventId}`), "show"));
        const text = ev.EventDetail;
        detail.addEventListener("toggle", () => {
          if (detail.open && !detail.querySelector("pre")) detail.append(h("pre", { tabindex: "0" }, pretty(text)));
        });
      }
      const row = h("tr", { "data-test": "event-row", "data-event": ev.EventId, "data-type": ev.Type, "data-step": ev.StepName || "" },
        h("td", {}, String(ev.EventId)),
        h("td", {}, when(ev.Time, "event-time", { exact: true })),
        h("td", { class: /Failed|TimedOut|Stopped/.test(ev.Type) ? "event-bad" : "" }, ev.Type),
        h("td", {}, ev.StepName || ""),
        h("td", {}, detail));
      row.hidden = !matches(row);
      eventsBody.append(row);
    }
    fill(eventsNote, state.events.length >= MAX_EVENTS
      ? note("info", `The first ${MAX_EVENTS} events are shown; see the rest with: relayflow executions history ${flow} ${name}`, "events-capped") : "");
  };

  const loadEvents = async () => {
    // NextToken is the EventId of the last event read, so asking after the last one seen
    // gives only the new ones.
    for (let round = 0; round < 50 && state.events.length < MAX_EVENTS; round += 1) {
      const page = await call("GetExecutionHistory", { FlowName: flow, ExecutionName: name, Limit: EVENTS_PAGE, NextToken: state.lastEvent ? String(state.lastEvent) : "" });
      addEvents(page.Events || []);
      if (!page.NextToken || !(page.Events || []).length) break;
    }
  };

  const refresh = async () => {
    const [execution, { doc, failure }] = await Promise.all([
      call("DescribeExecution", { FlowName: flow, ExecutionName: name, IncludeWaiting: "true" }),
      view(flow, name).then((d) => ({ doc: d }), (f) => ({ failure: f })),
    ]);
    if (!alive()) return;
    state.execution = execution;
    if (failure) fill(problems, note("error", `The step states could not be read: ${failure.message}`, "view-error"));
    else {
      state.view = doc;
      const events = doc.events || {};
      fill(problems,
        events.truncated ? note("info", `This execution has more than ${events.limit} events; the step states and the timeline show what the first ${events.read} say.`, "view-truncated") : "",
        doc.timelineTruncated ? note("info", "The timeline shows its first items only.", "timeline-truncated") : "",
        doc.definitionReadable === false ? note("info", "The definition this execution runs cannot be read, so its steps cannot be shown; the events below are complete.", "definition-unreadable") : "");
    }
    drawHead();
    drawWaiting();
    await drawGraphPart();
    fill(timelineBox, drawTimeline((state.view && state.view.timeline) || [], { onSelect: select, width: timelineBox.clientWidth - 20, now: execution.StoppedTime ? ms(execution.StoppedTime) : ms(state.view && state.view.now) || Date.now() }));
    drawStep();
    await loadEvents();
  };

  const schedule = () => {
    clearTimeout(state.timer);
    if (!alive()) return;
    if (ENDED.has(state.execution.Status)) {
      live.textContent = "The execution has ended; the page no longer updates.";
      live.dataset.live = "ended";
      return;
    }
    if (document.hidden) {
      live.textContent = "Updates paused while this tab is hidden.";
      live.dataset.live = "paused";
      return;
    }
    live.textContent = "Live: updating every 1.5 seconds while it runs.";
    live.dataset.live = "on";
    state.timer = setTimeout(tick, POLL_MS);
  };

  const tick = async () => {
    if (state.busy || !alive()) return;
    state.busy = true;
    try {
      await refresh();
    } catch (error) {
      if (alive()) fill(problems, note("error", `Could not update: ${error.message}`, "refresh-error"));
    } finally {
      state.busy = false;
    }
    schedule();
  };

  const onVisibility = () => {
    if (!alive()) {
      document.removeEventListener("visibilitychange", onVisibility);
      return;
    }
    if (!document.hidden) tick();
    else schedule();
  };
  document.addEventListener("visibilitychange", onVisibility);

  // After an action, read everything again at once (and poll again if it runs again).
  const act = async (dialog) => {
    const result = await dialog;
    if (!result) return;
    // A redrive may go on with the flow's current definition: draw the graph again.
    state.drawing = null;
    await tick();
    // The button that opened the dialog may be gone (Stop, once stopped): keep the focus on the page.
    if (document.activeElement === document.body) main.focus({ preventScroll: true });
  };

  drawHead();
  await tick();
}
