// The relayflow console: a single page whose views are addressed by the URL fragment.
// No framework and no build step: ES modules served from /console/static/, CSP-clean
// (no inline scripts, styles or handlers).
//
// Routes: #/flows?q=  #/flow/NAME?version=N  #/executions?flow=&status=&prefix=&after=&before=
//         #/execution/FLOW/NAME?step=ID  #/waiting?flow=&older=SECONDS  #/report  #/signin
//
// Selectors for the browser tests (every interactive element also has an accessible name):
//   chrome:     [data-test=skip-link] [data-test=nav-flows] [data-test=nav-executions] [data-test=nav-report]
//               [data-test=session-key] [data-test=session-role] [data-test=sign-out]
//   sign-in:    [data-test=signin-form] [data-test=signin-key-id] [data-test=signin-secret]
//               [data-test=signin-switch] [data-test=signin-token] [data-test=signin-submit]
//               [data-test=signin-error]
//   flows:      [data-test=flows-search] [data-test=flows-table] [data-test=flow-row][data-flow=NAME]
//               [data-test=flow-link] [data-test=flow-executions-link] [data-test=flows-more]
//   flow page:  [data-test=flow-start] [data-test=flow-executions] [data-test=flow-version-select]
//               [data-test=flow-facts] [data-test=flow-graph] [data-test=flow-definition]
//               [data-test=definition] [data-test^=definition-line-] [data-test=definition-problem]
//               [data-test=flow-versions] [data-test=flow-aliases] [data-test=flow-schedules]
//   graph:      [data-test=graph] [data-test=graph-node][data-node=ID][data-state=STATE] (steps; one
//               Tab stop, arrow keys, Home and End move between them, Enter or Space chooses;
//               start, end and joins are [data-test=graph-marker])
//               [data-test=graph-edge][data-from][data-to] [data-test=graph-edge-label]
//               [data-test=graph-lane] [data-test=graph-zoom-in|graph-zoom-out|graph-fit]
//               [data-test=legend] [data-test=graph-error]
//   start:      [data-test=start-dialog] [data-test=start-name] [data-test=start-qualifier]
//               [data-test=start-input] [data-test=start-input-status]
//   dialogs:    [data-test=dialog-what] [data-test=dialog-confirm] [data-test=dialog-cancel]
//               [data-test=cli-command] [data-test=copy-command] [data-test=dialog-check]
//               [data-test=dialog-error]
//   executions: [data-test=filters] [data-test=filter-flow|filter-status|filter-prefix|
//               filter-after|filter-before] [data-test=filter-apply] [data-test=filter-clear]
//               [data-test=counts] [data-test=count-all] [data-test=count-Running] (each status)
//               [data-test=executions-table] [data-test=execution-row][data-execution=NAME]
//               [data-test=execution-link] [data-test=page-prev] [data-test=page-next]
//               [data-test=page-number] [data-test=executions-empty] [data-test=executions-refresh]
//   bulk:       [data-test=bulk-stop] [data-test=bulk-redrive] [data-test=bulk-dialog]
//               [data-test=bulk-count][data-matched=N] [data-test=bulk-error] [data-test=bulk-cause]
//               [data-test=bulk-current-definition] [data-test=bulk-progress] [data-test=bulk-result]
//   execution:  [data-test=execution-status][data-state=STATUS] [data-test=live-status][data-live=on|paused|ended]
//               [data-test=execution-facts] [data-test=execution-started] [data-test=execution-ended]
//               [data-test=execution-duration] [data-test=view-error] [data-test=view-truncated]
//               [data-test=timeline-truncated] [data-test=definition-unreadable]
//               [data-test=execution-parent] [data-test=execution-children] [data-test=family-link]
//               [data-test=execution-input] [data-test=execution-output] [data-test=execution-error-name]
//               [data-test=execution-definition] (a closed <details>)
//               [data-test=execution-waiting] [data-test=waiting-item][data-step=STEP]
//               [data-test=waiting-step] (selects its node) [data-test=waiting-since] [data-test=waiting-for]
//               [data-test=waiting-due]
//               [data-test=execution-graph] [data-test=selected-step] [data-test=step-detail]
//               [data-test=step-name] [data-test=step-state] [data-test=step-input]
//               [data-test=step-output] [data-test=step-error] [data-test=step-not-run]
//               [data-test=step-input-cut] [data-test=step-output-cut] [data-test=step-facts]
//               [data-test=execution-timeline] [data-test=timeline] [data-test=timeline-bar][data-node][data-kind]
//               [data-test=timeline-empty] [data-test=timeline-capped]
//               [data-test=events-table] [data-test=event-row][data-event=ID][data-type=TYPE][data-step=STEP]
//               [data-test=event-detail] [data-test=event-time] [data-test=events-filter]
//               [data-test=events-capped]
//   actions:    [data-test=action-stop] [data-test=action-redrive] [data-test=action-start-again]
//               [data-test=action-report-succeed]
//               [data-test=action-report-fail] [data-test=stop-dialog] [data-test=stop-error]
//               [data-test=stop-cause] [data-test=redrive-dialog] [data-test=redrive-current-definition]
//               [data-test=report-succeed-dialog] [data-test=report-fail-dialog] [data-test=report-token]
//               [data-test=report-output] [data-test=report-error] [data-test=report-cause]
//               [data-test=report-key] (a task named by its correlation key: no token field)
//   waiting:    [data-test=nav-waiting] [data-test=waiting-flow] [data-test=waiting-older]
//               [data-test=waiting-apply] [data-test=waiting-table] [data-test=waiting-row][data-execution=NAME]
//               [data-test=waiting-link] [data-test=waiting-more] [data-test=waiting-empty]
//   report:     [data-test=report-succeed] [data-test=report-fail] [data-test=report-done]
//               [data-test=report-not-allowed]
//   roles:      [data-test=role-cannot-read] [data-test=go-report] (a worker on a reading page)
//   anywhere:   .note-error[role=alert] holds a refusal: the server's own sentence (its data-test
//               names the place, such as flows-error, dialog-error, execution-error)

import { canRead, loadSession, session, signOut, whenSignedOut } from "./api.js";
import { fill, h, note } from "./dom.js";
import { current, go } from "./route.js";
import { renderExecution } from "./views/execution.js";
import { renderExecutions } from "./views/executions.js";
import { renderFlow, renderFlows } from "./views/flows.js";
import { renderReport } from "./views/report.js";
import { renderSignIn } from "./views/signin.js";
import { renderWaiting } from "./views/waiting.js";

const main = document.getElementById("app");
const bar = document.getElementById("session");
const nav = document.getElementById("nav");
let generation = 0; // each route change starts a new one; pages stop updating when it moves on

function drawChrome() {
  nav.hidden = !session.signedIn;
  for (const a of nav.querySelectorAll("a")) {
    const route = a.getAttribute("href").slice(1);
    const readOnly = route !== "/report";
    a.hidden = readOnly && !canRead();
    if (current().parts[0] === route.split("/")[1]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!session.signedIn) {
    fill(bar);
    return;
  }
  const out = h("button", { type: "button", class: "small", "data-test": "sign-out" }, "Sign out");
  out.addEventListener("click", async () => {
    try {
      await signOut();
    } finally {
      go("/signin");
    }
  });
  fill(bar,
    session.keyless ? h("span", { class: "muted", "data-test": "session-key", title: "no access keys are configured: the server listens on loopback only" }, "no sign-in (local)")
      : h("span", { "data-test": "session-key" }, session.keyId),
    " ", h("span", { class: `role role-${session.role}`, "data-test": "session-role", title: "your role" }, session.role),
    session.keyless ? null : [" ", out]);
}

async function route(event) {
  generation += 1;
  const mine = generation;
  const alive = () => mine === generation;
  const { parts, query } = current();
  if (!session.signedIn) {
    drawChrome();
    renderSignIn(main, () => {
      if (!parts[0] || parts[0] === "signin") go(canRead() ? "/flows" : "/report");
      else route();
    });
    return;
  }
  drawChrome();
  const home = canRead() ? "/flows" : "/report";
  if (!canRead() && ["flows", "flow", "executions", "execution", "waiting"].includes(parts[0])) {
    // The server would refuse every read; say so once instead of showing its refusals.
    fill(main, h("h1", {}, "Not for your role"),
      note("info", `Your access key's role, ${session.role}, may not read flows or executions; it may report tasks.`, "role-cannot-read"),
      h("p", {}, h("a", { href: "#/report", "data-test": "go-report" }, "Report a task")));
    return;
  }
  try {
    switch (parts[0]) {
      case "flows":
        return await renderFlows(main, query, alive);
      case "flow":
        if (parts[1]) return await renderFlow(main, parts[1], query, alive);
        break;
      case "executions":
        return await renderExecutions(main, query, alive);
      case "execution":
        if (parts[1] && parts[2]) return await renderExecution(main, parts[1], parts[2], query, alive);
        break;
      case "waiting":
        return await renderWaiting(main, query, alive);
      case "report":
        return renderReport(main);
      default:
        break;
    }
    go(home);
  } catch (error) {
    if (alive() && session.signedIn) fill(main, note("error", error.message, "page-error"));
  } finally {
    // After a move within the page, start the next Tab (and a screen reader) at the page.
    if (alive() && event && event.type === "hashchange" && !document.querySelector("dialog[open]")) main.focus({ preventScroll: true });
    if (alive()) document.title = `${main.querySelector("h1") ? main.querySelector("h1").textContent : "relayflow"} · relayflow console`;
  }
}

whenSignedOut(() => {
  drawChrome();
  renderSignIn(main, route, "Your session has ended; sign in again.");
});
window.addEventListener("hashchange", route);
// The skip link moves focus to the page without touching the fragment (the router owns it).
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

(async () => {
  try {
    await loadSession();
  } catch (error) {
    fill(main, note("error", `The console could not reach its server: ${error.message}`, "page-error"));
    return;
  }
  route();
})();
