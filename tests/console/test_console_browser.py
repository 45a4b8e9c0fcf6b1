"""The console driven in headless Chromium, as a person uses it (issue 17's "Done when").

One browser and one server (tests/console/browser.py) serve the module: each test signs in
as the role it needs and leaves signed out, and the tests run in any order. Every wait is
bounded; nothing is timed. RELAYFLOW_SCREENSHOTS=1 writes the pages' pictures to
docs/images/console-*.png (docs/console.md shows them).

Besides what each test is named for, the pages and dialogs visited are checked for controls
without an accessible name, and the commands the dialogs show for copying are checked against
the command line (the bulk stop's is run with --dry-run and lists the same executions).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

from tests.api_server import KEYS, config_text, serving
from tests.console.browser import (
    ENTER,
    ESCAPE,
    EVIL_PAGE,
    HOLD_FLOW,
    PHONE,
    Browser,
    ConsoleServer,
    browser,
    console_server,
    evil_site,
    fresh,
    promoted_cookie,
    self_signed_cookie,
)

__all__ = ["browser", "console_server", "fresh"]  # the fixtures, imported to be found

# Buttons of the execution page that change state, and who may see each.
STOP = '[data-test="action-stop"]'
REDRIVE = '[data-test="action-redrive"]'
REPORT = '[data-test="action-report-succeed"], [data-test="action-report-fail"]'


def sign_in(page: Browser, server: ConsoleServer, role: str, *, shot: str = "") -> None:
    """Sign in through the form with ``role``'s access key; wait until the console says who."""
    key_id, secret = KEYS[role]
    page.get(server.url)
    page.find('[data-test="signin-key-id"]').send_keys(key_id)
    page.find('[data-test="signin-secret"]').send_keys(secret)
    named(page, "the sign-in page")
    if shot:
        page.shot(shot)
    page.find('[data-test="signin-submit"]').click()
    page.wait(
        lambda _: any(role in e.text for e in page.visible('[data-test="session-role"]')),
        f"the console to show {role} signed in",
    )


def named(page: Browser, where: str) -> None:
    """Every control on the page has an accessible name (what a screen reader announces)."""
    unnamed = page.unnamed_controls()
    assert not unnamed, f"{where}: controls without an accessible name: {unnamed}"


def fits_the_width(page: Browser, where: str) -> None:
    """Nothing on the page reaches past the screen's right edge (no sideways scrolling).

    Compared with the screen's width itself: a phone's browser widens its layout (and zooms
    out) to fit a page that is too wide, so the window's own width would always agree.
    """
    width = page.driver.execute_script("return document.documentElement.scrollWidth")
    if width > page.size[0] + 1:
        # Name the innermost elements that reach past the edge, to say what to fix.
        past = page.driver.execute_script(
            """
            const edge = arguments[0];
            // A scrolling box clips what is inside it, but not what is absolutely placed
            // against a block outside it.
            const clipped = (e) => {
              if (getComputedStyle(e).position === 'absolute') return false;
              for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
                if (getComputedStyle(p).overflowX !== 'visible') return true;
              }
              return false;
            };
            return [...document.querySelectorAll('body *')]
              .filter((e) => e.getBoundingClientRect().right > edge + 1 && !clipped(e))
              .filter((e) => ![...e.children].some((c) => c.getBoundingClientRect().right > edge + 1))
              .slice(0, 5)
              .map((e) => `${e.outerHTML.slice(0, 120)} right=${Math.round(e.getBoundingClientRect().right)}`);
            """,
            page.size[0],
        )
        raise AssertionError(f"{where} is {width} px wide on a {page.size[0]} px screen: {past}")


def go(page: Browser, server: ConsoleServer, route: str) -> None:
    """Open one of the console's views by its URL fragment (`/execution/F/N`, ...)."""
    page.get(f"{server.url}#{route}")


def state_of(page: Browser, node: str) -> str:
    """The state the execution page's graph shows for the step ``node`` ('' while unknown)."""
    found = page.all(f'[data-test="graph-node"][data-node="{node}"]')
    return str(found[0].get_attribute("data-state") or "") if found else ""


def wait_state(page: Browser, node: str, *states: str) -> None:
    page.wait(
        lambda _: state_of(page, node) in states,
        f"the step {node} to be shown {' or '.join(states)} (now {state_of(page, node)!r})",
    )


def bar_states(page: Browser, node: str) -> set[str]:
    """The states of the timeline's step bars of ``node`` (its `state-X` classes)."""
    states = set()
    for bar in page.all(f'[data-test="timeline-bar"][data-node="{node}"][data-kind="step"]'):
        classes = str(bar.get_attribute("class") or "").split()
        states.update(c.removeprefix("state-") for c in classes if c.startswith("state-"))
    return states


def wait_bar(page: Browser, node: str, *states: str) -> None:
    """Wait until the timeline draws the step ``node`` in one of ``states``."""
    page.wait(
        lambda _: bool(bar_states(page, node) & set(states)),
        f"the timeline to draw {node} {' or '.join(states)} (now {bar_states(page, node)})",
    )


def wait_status(page: Browser, status: str) -> None:
    """Wait until the execution page's header says ``status``."""
    page.wait(
        lambda _: any(
            b.get_attribute("data-state") == status
            for b in page.all(
                '[data-test="execution-status"] [data-state], [data-test="execution-status"][data-state]'
            )
        ),
        f"the execution shown {status}",
    )


def csrf_post(page: Browser, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """POST /console/api/<action> from the page with the session's CSRF value (a forged click)."""
    csrf = page.session()["csrf"]
    return page.fetch(f"/console/api/{action}", params, {"X-Relayflow-CSRF": csrf})


def test_each_role_sees_what_it_may_do_and_the_server_refuses_the_rest(
    console_server: ConsoleServer, fresh: Browser
) -> None:
    server = console_server
    server.start("manual", "m-roles")
    execution = {"FlowName": "manual", "ExecutionName": "m-roles"}
    # A wrong secret: a sentence, no session.
    fresh.get(server.url)
    fresh.find('[data-test="signin-key-id"]').send_keys(KEYS["admin"][0])
    fresh.find('[data-test="signin-secret"]').send_keys("not-the-secret")
    fresh.find('[data-test="signin-submit"]').click()
    refusal = fresh.find('[data-test="signin-error"]', "a refused sign-in's sentence")
    assert refusal.text.strip(), "a refused sign-in says why"
    assert not fresh.session()["signedIn"]

    # The admin sees every action; the report dialog holds the waiting task's token.
    sign_in(fresh, server, "admin", shot="signin")
    go(fresh, server, "/execution/manual/m-roles")
    fresh.find(STOP, "the admin's stop button")
    fresh.find('[data-test="action-report-succeed"]', "the admin's report button").click()
    token = fresh.find('[data-test="report-token"]').get_attribute("value")
    assert token, "the report dialog of a waiting task holds its token"
    named(fresh, "the report dialog")
    fresh.shot("report-dialog")
    fresh.driver.switch_to.active_element.send_keys(ESCAPE)
    fresh.wait(
        lambda _: not fresh.visible('[data-test="report-succeed-dialog"]'), "Escape to close"
    )

    # A reader sees the execution and no action; what it forges is refused.
    fresh.sign_out()
    sign_in(fresh, server, "reader")
    go(fresh, server, "/execution/manual/m-roles")
    fresh.find('[data-test="graph-node"]', "the execution's graph for a reader")
    fresh.find('[data-test="waiting-item"]', "what the execution waits on")
    assert not fresh.visible(f"{STOP}, {REDRIVE}, {REPORT}"), "a reader sees no action"
    # The waiting work of every flow lists it, with a link to its page.
    go(fresh, server, "/waiting?flow=manual")
    fresh.find('[data-test="waiting-row"][data-execution="m-roles"]', "m-roles among the waiting")
    named(fresh, "the waiting work")
    fresh.shot("waiting")
    for action, params in (
        ("StopExecution", execution),
        ("ReportTaskSucceeded", {"TaskToken": token, "Output": "{}"}),
    ):
        forged = csrf_post(fresh, action, params)
        assert forged["status"] == 403, f"a reader's {action} by hand: {forged}"
        assert json.loads(forged["body"])["Code"], forged

    # A worker only reports: executions are not shown to it, stopping is refused, and the
    # report page finishes the task with the token a person pasted.
    fresh.sign_out()
    sign_in(fresh, server, "worker")
    go(fresh, server, "/execution/manual/m-roles")
    fresh.find('[data-test="role-cannot-read"]', "the sentence telling a worker it may not read")
    assert not fresh.visible(f'[data-test="graph-node"], {STOP}, {REDRIVE}')
    for action in ("DescribeExecution", "StopExecution"):
        forged = csrf_post(fresh, action, execution)
        assert forged["status"] == 403, f"a worker's {action} by hand: {forged}"
    assert server.status("manual", "m-roles") == "Running"
    go(fresh, server, "/report")
    fresh.find('[data-test="report-succeed"]', "the worker's report page").click()
    fresh.find('[data-test="report-token"]').send_keys(token)
    output = fresh.find('[data-test="report-output"]')
    output.clear()
    output.send_keys('{"approved": true}')
    assert "relayflow tasks succeed" in fresh.find('[data-test="cli-command"]').text
    fresh.find('[data-test="dialog-confirm"]').click()
    fresh.find('[data-test="report-done"]', "the report's outcome")
    done = server.api.ok({**execution, "Action": "DescribeExecution", "WaitTimeSeconds": "10"})
    assert done["Status"] == "Succeeded", done
    assert json.loads(done["Output"]) == {"approved": True}, done


def test_the_seed_execution_is_shown_live_from_start_to_end(
    console_server: ConsoleServer, fresh: Browser
) -> None:
    server = console_server
    sign_in(fresh, server, "admin")
    go(fresh, server, "/flows")
    fresh.find('[data-test="flow-row"][data-flow="seed"]', "the seed flow listed")
    named(fresh, "the flows")
    fresh.shot("flows")
    fresh.find('[data-test="flows-search"]').send_keys("queue fnf")  # words of its description
    fresh.wait(
        lambda _: (
            [r.get_attribute("data-flow") for r in fresh.visible('[data-test="flow-row"]')]
            == ["seed"]
        ),
        "the search to leave the seed flow alone",
    )
    go(fresh, server, "/flow/seed")
    fresh.find('[data-test="graph-node"]', "the seed flow's graph")
    fresh.find('[data-test="definition"]', "the seed flow's definition")
    named(fresh, "a flow's page")
    fresh.shot("flow")

    # Start it from the flow's page: the JSON editor refuses bad JSON before anything is sent.
    fresh.find('[data-test="flow-start"]').click()
    fresh.find('[data-test="start-dialog"]', "the start dialog")
    fresh.find('[data-test="start-name"]').send_keys("live")
    editor = fresh.find('[data-test="start-input"]')
    editor.clear()
    editor.send_keys('{"source": "live"')
    fresh.wait(
        lambda _: not fresh.find('[data-test="dialog-confirm"]').is_enabled(),
        "the start button disabled while the input is not JSON",
    )
    editor.send_keys("}")
    confirm = fresh.find('[data-test="dialog-confirm"]')
    fresh.wait(lambda _: confirm.is_enabled(), "the start button enabled for a JSON object")
    assert "relayflow executions start seed" in fresh.find('[data-test="cli-command"]').text
    named(fresh, "the start dialog")
    confirm.click()

    # The page follows the execution: each step waits on the worker, then is done.
    fresh.wait(lambda d: "/execution/seed/live" in d.current_url, "the new execution's page")
    wait_status(fresh, "Running")
    for job, after in (("extract", "transform"), ("transform", "load"), ("load", "")):
        wait_state(fresh, job, "running", "waiting")
        wait_bar(fresh, job, "running", "waiting")
        fresh.find(f'[data-test="waiting-item"][data-step="{job}"]', f"what {job} waits on")
        if job == "extract":
            named(fresh, "a running execution's page")
            fresh.shot("execution-running")
        assert server.status("seed", "live") == "Running"
        server.open_gate("live", job)
        wait_state(fresh, job, "succeeded")
        wait_bar(fresh, job, "succeeded")
        if after:
            assert state_of(fresh, after) in ("running", "waiting", "not_run")
    wait_status(fresh, "Succeeded")
    assert server.status("seed", "live") == "Succeeded"
    fresh.find('[data-test="timeline"]')
    # A step chosen in the graph shows its input and output.
    fresh.find('[data-test="graph-node"][data-node="transform"]').click()
    fresh.wait(
        lambda _: "transform" in fresh.find('[data-test="step-name"]').text,
        "the chosen step's detail",
    )
    assert '"seen"' in fresh.find('[data-test="step-output"]').text
    fresh.shot("execution")
    fresh.resize(PHONE)
    fresh.find('[data-test="graph-node"]')
    fresh.shot("execution-phone", tallest=1300)


def test_every_page_fits_a_phone(console_server: ConsoleServer, fresh: Browser) -> None:
    server = console_server
    for job in ("extract", "transform", "load"):
        server.open_gate("phone", job)
    server.start("seed", "phone", {"source": "phone"})
    server.start("hold", "phone-1")
    sign_in(fresh, server, "admin")
    # Wide parts (tables, graphs, the definition, the timeline) scroll inside their own box.
    fresh.resize(PHONE)
    for route, ready in (
        ("/flows", '[data-test="flow-row"]'),
        ("/flow/orders", '[data-test="graph-node"]'),
        ("/executions?flow=hold", '[data-test="execution-row"]'),
        ("/waiting", '[data-test="waiting-row"]'),
        ("/execution/hold/phone-1", '[data-test="event-row"]'),
        ("/execution/seed/phone", '[data-test="event-row"][data-type="ExecutionSucceeded"]'),
    ):
        go(fresh, server, route)
        fresh.find(ready, f"{route} on a phone")
        fits_the_width(fresh, route)


def test_a_flow_with_choices_parallels_and_foreach_is_drawn(
    console_server: ConsoleServer, fresh: Browser
) -> None:
    server = console_server
    # A reader signs in with a console token from the command line, by keyboard alone.
    printed = server.cli("relayflow console token --minutes 2", role="reader")
    assert printed.returncode == 0, printed.stderr
    fresh.get(server.url)
    fresh.find('[data-test="signin-switch"]').click()
    token = fresh.find('[data-test="signin-token"]', "the token field")
    fresh.wait(lambda d: d.switch_to.active_element == token, "the token field focused")
    token.send_keys(printed.stdout.strip() + ENTER)
    who = fresh.find('[data-test="session-role"]', "the reader signed in by token")
    assert who.text.strip() == "reader", who.text

    go(fresh, server, "/flow/orders")
    fresh.find('[data-test="graph-node"]', "the graph of orders")
    nodes = {n.get_attribute("data-node") for n in fresh.all('[data-test="graph-node"]')}
    for step in ("askManager", "charge", "reserveLine", "rejectLate", "coolOff"):
        assert any(node and node.endswith(step) for node in nodes), f"{step} not in {nodes}"
    assert len(fresh.all('[data-test="graph-lane"]')) >= 3, "lanes: two branches and a foreach"
    labels = " ".join(e.text for e in fresh.all('[data-test="graph-edge-label"]'))
    assert "order.total" in labels or "$.order" in labels, f"the choice's condition: {labels}"
    assert not fresh.visible('[data-test="flow-start"]'), "a reader cannot start executions"
    fresh.shot("flow-graph")


def test_a_failed_execution_is_redriven_from_its_page(
    console_server: ConsoleServer, fresh: Browser
) -> None:
    server = console_server
    server.open_gate("again", "extract", fail=True)
    server.open_gate("again", "transform")
    server.open_gate("again", "load")
    server.start("seed", "again", {"source": "again"})
    # Times are shown in the viewer's zone (here UTC+8, which has no summer time), UTC on hover.
    fresh.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Shanghai"})
    try:
        sign_in(fresh, server, "admin")
        go(fresh, server, "/execution/seed/again")
        wait_status(fresh, "Failed")
        started = fresh.find('[data-test="execution-started"]')
        utc = datetime.fromisoformat(started.get_attribute("datetime").replace("Z", "+00:00"))
        local = utc.astimezone(timezone(timedelta(hours=8)))
        shown = re.search(r"(\d{1,2}):(\d\d):(\d\d)\s*([AP]M)?", started.text)
        assert shown, started.text
        hour = int(shown[1]) % 12 + (12 if shown[4] == "PM" else 0) if shown[4] else int(shown[1])
        assert (hour, int(shown[2])) == (local.hour, local.minute), (started.text, local)
        assert "UTC" in started.get_attribute("title"), started.get_attribute("title")
    finally:
        fresh.driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})
    fresh.driver.refresh()  # drawn again in the machine's zone, for the picture
    wait_status(fresh, "Failed")
    wait_state(fresh, "extract", "failed")
    fresh.shot("execution-failed")
    fresh.find(REDRIVE, "the redrive button of a failed execution").click()
    fresh.find('[data-test="dialog-what"]', "what the redrive will do")
    named(fresh, "the redrive dialog")
    assert "relayflow executions redrive seed again" in fresh.find('[data-test="cli-command"]').text
    fresh.find('[data-test="dialog-confirm"]').click()
    wait_status(fresh, "Succeeded")
    wait_state(fresh, "load", "succeeded")
    assert server.status("seed", "again") == "Succeeded"


def test_a_bulk_stop_from_a_filtered_list(console_server: ConsoleServer, fresh: Browser) -> None:
    server = console_server
    for name in ("bulk-1", "bulk-2", "bulk-3", "keep-1"):
        server.start("hold", name)
    sign_in(fresh, server, "admin")
    go(fresh, server, "/executions?flow=hold")
    fresh.find('[data-test="execution-row"]', "the executions of hold")
    fresh.find('[data-test="filter-prefix"]').send_keys("bulk-")
    fresh.find('[data-test="filter-apply"]').click()
    fresh.wait(
        lambda _: len(fresh.visible('[data-test="execution-row"]')) == 3,
        "the list filtered to the three bulk- executions",
    )
    fresh.find('[data-test="bulk-stop"]').click()
    count = fresh.find('[data-test="bulk-count"]', "the count in the bulk dialog")
    assert count.get_attribute("data-matched") == "3", count.text
    # The command shown for copying matches the same executions.
    shown = fresh.find('[data-test="cli-command"]').text
    assert "--name-prefix bulk-" in shown, shown
    listed = server.cli(shown.replace("--yes", "--dry-run"))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[1:4] == ["bulk-1", "bulk-2", "bulk-3"], listed.stdout
    named(fresh, "the bulk stop dialog")
    fresh.shot("bulk-stop")
    fresh.find('[data-test="dialog-confirm"]').click()
    fresh.find('[data-test="bulk-result"]', "the bulk stop's outcome")
    for name in ("bulk-1", "bulk-2", "bulk-3"):
        assert server.status("hold", name) == "Stopped", name
    assert server.status("hold", "keep-1") == "Running"
    fresh.find('[data-test="filter-clear"]').click()
    fresh.wait(
        lambda _: fresh.find('[data-test="count-Stopped"]').text.split()[-1:] == ["3"],
        "the counts to say 3 stopped",
    )
    fresh.shot("executions")


def test_csrf_and_forged_cookies_are_refused(console_server: ConsoleServer, fresh: Browser) -> None:
    server = console_server
    for name in ("target", "control-1", "control-2"):
        server.start("manual", name)
    target = {"FlowName": "manual", "ExecutionName": "target"}
    sign_in(fresh, server, "admin")

    # From the console's own page, but without the CSRF header: refused; with it, done.
    bare = fresh.fetch("/console/api/StopExecution", target, {})
    assert bare["status"] == 403, f"a POST without X-Relayflow-CSRF: {bare}"
    control = csrf_post(
        fresh, "StopExecution", {"FlowName": "manual", "ExecutionName": "control-1"}
    )
    assert control["status"] == 200, f"the same POST with its header: {control}"

    # A page on another origin submits a form to the console: the browser sends the cookie
    # (127.0.0.1 is the same site), but neither the header nor the console's Origin. A
    # text/plain form sends `name=value`: here `{"FlowName": ..., "Cause": "x=y"}`.
    name = json.dumps({**target, "Cause": "x"})[:-2]
    page = EVIL_PAGE.format(
        action=f"{server.api.url}/console/api/StopExecution", name=name, value='y"}'
    )
    with evil_site(page) as evil:
        fresh.get(evil)
        fresh.wait(lambda d: d.current_url.startswith(server.api.url), "the form to be posted")
        answer = fresh.find("body").text
    assert '"Code"' in answer, f"the cross-site form's answer: {answer}"

    # The same with httpx: the right cookie and CSRF value, from another Origin.
    cookie = fresh.driver.get_cookie("relayflow_console")
    assert cookie is not None and cookie["httpOnly"], f"the session cookie: {cookie}"
    assert cookie["sameSite"] == "Strict", cookie
    csrf = fresh.session()["csrf"]
    with httpx.Client(base_url=server.api.url, timeout=10) as http:
        http.cookies.set("relayflow_console", cookie["value"], path="/console")
        other = http.post(
            "/console/api/StopExecution",
            json=target,
            headers={"X-Relayflow-CSRF": csrf, "Origin": "http://evil.example"},
        )
        assert other.status_code == 403, other.text
        own = http.post(
            "/console/api/StopExecution",
            json={"FlowName": "manual", "ExecutionName": "control-2"},
            headers={"X-Relayflow-CSRF": csrf, "Origin": server.api.url},
        )
        assert own.status_code == 200, f"the same request from the console's origin: {own.text}"
    assert server.status("manual", "target") == "Running"
    assert server.status("manual", "control-2") == "Stopped"

    # A reader's cookie edited to say admin, and one signed with a guessed key: not signed in.
    fresh.sign_out()
    sign_in(fresh, server, "reader")
    reader = fresh.driver.get_cookie("relayflow_console")["value"]
    for forged in (promoted_cookie(reader), self_signed_cookie(KEYS["admin"][0])):
        fresh.driver.delete_all_cookies()
        fresh.driver.add_cookie(
            {"name": "relayflow_console", "value": forged, "path": "/console", "httpOnly": True}
        )
        assert not fresh.session()["signedIn"], f"the forged cookie {forged} signed in"
        refused = fresh.fetch("/console/api/StopExecution", target, {"X-Relayflow-CSRF": csrf})
        assert refused["status"] in (401, 403), f"a forged cookie's stop: {refused}"
    assert server.status("manual", "target") == "Running"


def test_without_access_keys_there_is_no_sign_in(
    tmp_path: Path, fresh: Browser, console_server: ConsoleServer
) -> None:
    # A server of its own with no [[server.access_keys]] (it listens on loopback only).
    with serving(tmp_path, config_text(plugin=False)) as keyless:
        keyless.ok({"Action": "CreateFlow", "Name": "hold", "Definition": HOLD_FLOW, "Type": "FDL"})
        keyless.ok({"Action": "StartExecution", "FlowName": "hold", "ExecutionName": "h-1"})
        fresh.get(f"{keyless.url}/console/#/execution/hold/h-1")
        fresh.find('[data-test="action-stop"]', "an admin's stop button, with no sign-in")
        assert not fresh.visible('[data-test="signin-form"], [data-test="sign-out"]')
        who = fresh.find('[data-test="session-key"]').text
        assert "no sign-in" in who, who
        # Still no POST without the CSRF header, even here.
        bare = fresh.fetch(
            "/console/api/StopExecution", {"FlowName": "hold", "ExecutionName": "h-1"}, {}
        )
        assert bare["status"] == 403, f"a keyless POST without X-Relayflow-CSRF: {bare}"
        assert keyless.describe("hold", "h-1")["Status"] == "Running"
        # The stop button says what it will do and the command, and stops on confirmation.
        fresh.find(STOP).click()
        what = fresh.find('[data-test="stop-dialog"] [data-test="dialog-what"]').text
        assert "h-1" in what and "Stopped" in what, what
        shown = fresh.find('[data-test="stop-dialog"] [data-test="cli-command"]').text
        assert shown.startswith("relayflow executions stop hold h-1"), shown
        fresh.find('[data-test="stop-error"]').send_keys("Cancelled")
        fresh.find('[data-test="dialog-confirm"]').click()
        wait_status(fresh, "Stopped")
        stopped = keyless.describe("hold", "h-1")
        assert (stopped["Status"], stopped["Error"]) == ("Stopped", "Cancelled"), stopped
