"""Fixtures and helpers for the console's browser tests (tests/console/test_console_browser*.py).

What runs, all real:

- Debian's headless Chromium driven by chromedriver through selenium, one browser per test
  module; the page is resized (Chromium's device metrics) to a laptop (1280x800) or a phone
  (390x844). Missing chromium/chromedriver/selenium skips the tests, unless
  RELAYFLOW_REQUIRE_SERVICES is set (CI sets it): then they fail.
- A `relayflow server` subprocess (tests/api_server.py's helpers) with three access keys, one
  per role, whose `mns` integration sends task messages to a real redis-server (the `redis_url`
  fixture of tests/services.py).
- A `relayflow worker fnf-demo` subprocess serving the seed scenario
  (contrib/examples/seed-three-tasks.yaml) with a handler that waits for the test's go-ahead for
  each job (a file named after the execution and the job), so that a test sees every step of an
  execution running, then done, with no timed assertion. A second file makes a job fail, for
  the redrive test.

Every wait is bounded (`WAIT` seconds, WebDriverWait); screenshots of the pages go to
docs/images/console-*.png only when RELAYFLOW_SCREENSHOTS=1, so an ordinary run (and CI) never
rewrites the checked-in images.

The module is imported by the test modules (not registered as a plugin), so its asserts are
not rewritten; they carry their own messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.api_server import (
    EXE,
    KEYS,
    ApiServer,
    config_text,
    server_env,
    start_server,
    stop_server,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "contrib" / "examples"
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The longest any one wait in the browser may take: generous for a loaded 2-core machine,
# and only ever reached when something is wrong.
WAIT = 20.0
LAPTOP = (1280, 800)
# WebDriver's codes of two keys (selenium's Keys, without importing selenium at collection).
ENTER = "\ue007"
ESCAPE = "\ue00c"
PHONE = (390, 844)
T = TypeVar("T")
# The roles of what a person operates: each needs an accessible name.
CONTROL_ROLES = frozenset(
    {
        "button",
        "checkbox",
        "combobox",
        "dialog",
        "link",
        "listbox",
        "radio",
        "searchbox",
        "slider",
        "spinbutton",
        "switch",
        "tab",
        "textbox",
    }
)

# The flows every browser test may use, created once per module.
HOLD_FLOW = """version: v1
type: flow
steps:
  - type: wait
    name: pause
    duration: 3600
  - type: pass
    name: done
"""
MANUAL_FLOW = """version: v1
type: flow
steps:
  - type: task
    name: approve
    resourceArn: acs:mns:::/queues/manual/messages
    pattern: waitForCallback
    inputMappings:
      - target: taskToken
        source: $context.task.token
    serviceParams:
      MessageBody: $
  - type: pass
    name: after
"""

# The seed scenario's handler with a go-ahead per job: `gates/<source>-<job>` lets the job run,
# `gates/<source>-<job>.fail` makes it raise once instead. The wait is bounded so that a stuck
# test never leaves a worker thread behind for long.
GATED_WORKER = textwrap.dedent(
    '''\
    """seed_worker.handle, run only once the test opens the job's gate.

    Only extract's message holds the execution's input `source`; extract tags its rows with it
    (`run`), so that transform and load, which get the rows, know whose job they do.
    """

    import time
    from pathlib import Path

    from seed_worker import handle as seed_handle

    GATES = Path(__file__).with_name("gates")


    class JobRefused(Exception):
        """The test asked this job to fail."""


    def handle(body):
        run = body["source"] if body["job"] == "extract" else body["rows"][0]["run"]
        gate = GATES / f"{run}-{body['job']}"
        deadline = time.monotonic() + 60
        # gates/all: the test module is ending; let every job go.
        while not gate.exists() and not (GATES / "all").exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        failing = gate.with_suffix(".fail")
        if failing.exists():
            failing.unlink()
            raise JobRefused(f"the test failed {body['job']} of {run}")
        output = seed_handle(body)
        if body["job"] == "extract":
            output["rows"] = [dict(row, run=run) for row in output["rows"]]
        return output
    '''
)


def _missing(what: str) -> None:
    message = (
        f"{what} is not installed (apt-get install chromium chromium-driver; pip install selenium)"
    )
    if os.environ.get("RELAYFLOW_REQUIRE_SERVICES"):
        pytest.fail(message)
    pytest.skip(message)


def screenshots_on() -> bool:
    """Whether this run writes docs/images/console-*.png (RELAYFLOW_SCREENSHOTS=1)."""
    return os.environ.get("RELAYFLOW_SCREENSHOTS") == "1"


# -- the server ---------------------------------------------------------------------------------


@dataclass
class ConsoleServer:
    """A `relayflow server` with the console, a real broker and a gated seed worker."""

    api: ApiServer
    redis_url: str
    worker: subprocess.Popen[bytes] | None = None
    gates: Path = field(init=False)

    def __post_init__(self) -> None:
        self.gates = self.api.folder / "gates"
        self.gates.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        """The console's address, `http://127.0.0.1:PORT/console/`."""
        return f"{self.api.url}/console/"

    def open_gate(self, source: str, job: str, *, fail: bool = False) -> None:
        """Let the seed job ``job`` of the execution whose input source is ``source`` run."""
        gate = self.gates / f"{source}-{job}"
        if fail:
            gate.with_suffix(".fail").write_text("fail")
        gate.write_text("go")

    def start(self, flow: str, name: str, data: dict[str, Any] | None = None) -> None:
        """StartExecution as the admin, through the HTTP API."""
        params = {"Action": "StartExecution", "FlowName": flow, "ExecutionName": name}
        if data is not None:
            params["Input"] = json.dumps(data)
        self.api.ok(params)

    def status(self, flow: str, name: str) -> str:
        """The execution's status as DescribeExecution says."""
        doc = self.api.describe(flow, name)
        assert "Status" in doc, f"{flow}/{name}: {doc}"
        return str(doc["Status"])

    def cli(self, command: str, role: str = "admin") -> subprocess.CompletedProcess[str]:
        """Run a `relayflow ...` command line as the console shows it, with ``role``'s key."""
        config = self.api.folder / f"{role}.toml"
        key_id, secret = KEYS[role]
        config.write_text(
            f'[client]\nendpoint = "{self.api.url}"\naccess_key_id = "{key_id}"\n'
            f'access_key_secret = "{secret}"\n',
            encoding="utf-8",
        )
        words = shlex.split(command)
        assert words[0] == "relayflow", f"not a relayflow command: {command}"
        return subprocess.run(
            [EXE, *words[1:], "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            env=server_env(),
            check=False,
        )

    def worker_log(self) -> str:
        """What the seed worker has logged so far."""
        path = self.api.folder / "worker.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def console_config(redis_url: str) -> str:
    """relayflow.toml: keys of each role, the mns integration on redis, the worker's [client].

    The queues live in a redis database of their own (7), apart from other tests' queues of the
    same names on the session's redis-server.
    """
    broker = redis_url.rsplit("/", 1)[0] + "/7"
    text = config_text(keys=KEYS, plugin=False)
    text += (
        f'\n[integrations.mns]\ntransport = "{broker}"\n'
        "transport_options = { visibility_timeout = 120 }\n"
    )
    return text


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[ConsoleServer]:
    """The server and the seed worker for one test module; both must stop cleanly at the end."""
    folder = tmp_path_factory.mktemp("console")
    (folder / "relayflow.toml").write_text(console_config(redis_url), encoding="utf-8")
    shutil.copy(EXAMPLES / "seed_worker.py", folder)
    (folder / "gated_worker.py").write_text(GATED_WORKER, encoding="utf-8")
    process, port = start_server(folder)
    server = ConsoleServer(ApiServer(folder, port, process), redis_url)
    try:
        worker_id, worker_secret = KEYS["worker"]
        (folder / "relayflow.toml").write_text(
            console_config(redis_url)
            + f'\n[client]\nendpoint = "{server.api.url}"\naccess_key_id = "{worker_id}"\n'
            f'access_key_secret = "{worker_secret}"\n',
            encoding="utf-8",
        )
        log = (folder / "worker.log").open("wb")
        server.worker = subprocess.Popen(
            [EXE, "worker", "fnf-demo", "--handler", "gated_worker:handle", "--concurrency", "4"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(),
        )
        log.close()
        server.api.ok(
            {
                "Action": "CreateFlow",
                "Name": "seed",
                "Definition": (EXAMPLES / "seed-three-tasks.yaml").read_text(),
                "Type": "FDL",
                "Description": "the seed scenario: three tasks on the queue fnf-demo",
            }
        )
        for name, text, about in (
            ("hold", HOLD_FLOW, "waits an hour"),
            ("manual", MANUAL_FLOW, "waits for a person to report the approval"),
            (
                "orders",
                (EXAMPLES / "order-approval.yaml").read_text(),
                "choice, parallel, foreach, wait and catch in one flow",
            ),
        ):
            server.api.ok(
                {
                    "Action": "CreateFlow",
                    "Name": name,
                    "Definition": text,
                    "Type": "FDL",
                    "Description": about,
                }
            )
        yield server
    finally:
        # Open every gate so that no worker thread still waits, and stop the worker first.
        worker_code = None
        (server.gates / "all").write_text("go")
        if server.worker is not None:
            worker_code = stop_server(server.worker)
        server.api.http.close()
        code = stop_server(process)
    assert worker_code in (None, 0), f"the worker exited with {worker_code}:\n{server.worker_log()}"
    assert code == 0, f"relayflow server exited with {code} on SIGTERM:\n{server.api.log()}"


# -- the browser --------------------------------------------------------------------------------


class Browser:
    """One headless Chromium and the few moves the tests make with it."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.size = LAPTOP

    def resize(self, size: tuple[int, int]) -> None:
        """Show the page as a laptop or a phone would (viewport size, mobile layout)."""
        width, height = size
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
        )
        self.size = size

    def get(self, url: str) -> None:
        """Open ``url``."""
        self.driver.get(url)

    def wait(self, until: Callable[[Any], T], what: str, timeout: float = WAIT) -> T:
        """Wait (bounded) until ``until(driver)`` is truthy; fail naming ``what`` otherwise."""
        from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        # The page redraws as it updates: an element read a moment ago may be gone; look again.
        waiting = WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(StaleElementReferenceException,),
        )
        try:
            return waiting.until(until)
        except TimeoutException:
            raise AssertionError(
                f"waited {timeout} s for {what}; the page shows:\n{self.text()[:2000]}"
            ) from None

    def find(self, css: str, what: str | None = None, timeout: float = WAIT) -> Any:
        """The first visible element matching ``css`` (waited for)."""

        def visible(driver: Any) -> Any:
            for element in driver.find_elements("css selector", css):
                try:
                    if element.is_displayed():
                        return element
                except Exception:  # replaced while we looked: look again
                    continue
            return None

        return self.wait(visible, what or f"a visible {css}", timeout)

    def all(self, css: str) -> list[Any]:
        """Every element matching ``css`` now (no wait)."""
        return list(self.driver.find_elements("css selector", css))

    def visible(self, css: str) -> list[Any]:
        """The visible elements matching ``css`` now (no wait)."""
        found = []
        for element in self.all(css):
            try:
                if element.is_displayed():
                    found.append(element)
            except Exception:  # gone while we looked
                continue
        return found

    def text(self) -> str:
        """The page's visible text."""
        try:
            return str(self.driver.find_element("css selector", "body").text)
        except Exception:  # the page is between two documents
            return ""

    def script(self, source: str, *args: Any) -> Any:
        """Run JavaScript in the page (async: the last argument is the callback)."""
        return self.driver.execute_async_script(source, *args)

    def fetch(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """POST JSON from the page's own origin, as a forged request would; status and body."""
        return dict(
            self.script(
                """
                const [path, body, headers, done] = arguments;
                fetch(path, {method: 'POST', credentials: 'same-origin',
                             headers: Object.assign({'Content-Type': 'application/json'}, headers),
                             body: JSON.stringify(body)})
                  .then(async (r) => done({status: r.status, body: await r.text()}))
                  .catch((e) => done({status: 0, body: String(e)}));
                """,
                path,
                body,
                headers,
            )
        )

    def session(self) -> dict[str, Any]:
        """GET /console/session from the page (the signed-in role and the csrf value)."""
        answer = self.script(
            """
            const done = arguments[arguments.length - 1];
            fetch('/console/session', {credentials: 'same-origin'})
              .then(async (r) => done({status: r.status, body: await r.json()}))
              .catch((e) => done({status: 0, body: String(e)}));
            """
        )
        assert answer["status"] == 200, f"GET /console/session answered {answer}"
        return dict(answer["body"])

    def unnamed_controls(self) -> list[str]:
        """The controls on the page with no accessible name, as Chromium computes names.

        Each as `role: the start of its HTML`; a screen reader would announce them by role only.
        """
        tree = self.driver.execute_cdp_cmd("Accessibility.getFullAXTree", {})
        found = []
        for node in tree["nodes"]:
            role = str(node.get("role", {}).get("value", ""))
            if node.get("ignored") or role not in CONTROL_ROLES:
                continue
            if str(node.get("name", {}).get("value", "")).strip():
                continue
            html = ""
            if "backendDOMNodeId" in node:
                html = self.driver.execute_cdp_cmd(
                    "DOM.getOuterHTML", {"backendNodeId": node["backendDOMNodeId"]}
                )["outerHTML"][:160]
            found.append(f"{role}: {html}")
        return found

    def shot(self, name: str, *, tallest: int = 2000) -> None:
        """Save the page as docs/images/console-<name>.png when RELAYFLOW_SCREENSHOTS=1.

        The whole page down to ``tallest`` pixels, at the current width (the viewport is made
        as tall as the page for the picture, then set back).
        """
        if not screenshots_on():
            return
        IMAGES.mkdir(parents=True, exist_ok=True)
        width, height = self.size
        page_height = int(self.driver.execute_script("return document.body.scrollHeight"))
        self.resize((width, max(height, min(page_height, tallest))))
        self.driver.execute_script("window.scrollTo(0, 0)")
        try:
            self.driver.save_screenshot(str(IMAGES / f"console-{name}.png"))
        finally:
            self.resize((width, height))

    def sign_out(self) -> None:
        """Forget the session cookie (as closing a private window would)."""
        self.driver.delete_all_cookies()


def _driver() -> Any:
    if importlib.util.find_spec("selenium") is None:
        _missing("selenium")
    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).exists():
            _missing(program)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # containers run tests as root, where the sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--lang=en-US",
        f"--window-size={LAPTOP[0]},{LAPTOP[1]}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    return driver


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the test module, shown as a laptop to start with."""
    driver = _driver()
    page = Browser(driver)
    try:
        page.resize(LAPTOP)
        yield page
    finally:
        driver.quit()


@pytest.fixture
def fresh(browser: Browser) -> Iterator[Browser]:
    """The module's browser signed out and shown as a laptop, as each test expects to find it."""
    browser.sign_out()
    browser.resize(LAPTOP)
    yield browser
    browser.sign_out()


def console_http(server: ConsoleServer) -> httpx.Client:
    """An httpx client for the console's own routes (no cookies kept between clients)."""
    return httpx.Client(base_url=server.api.url, timeout=10)


# -- an attacker's page and forged cookies ------------------------------------------------------

# A page on another origin that posts a JSON-looking body to the console as soon as it loads:
# the classic cross-site request (an HTML form cannot set headers, but `text/plain` lets it
# send `{"FlowName": ...}` as the body). {action} and {name}, {value} are filled in.
EVIL_PAGE = """<!doctype html>
<html><body>
<form id="f" method="POST" action="{action}" enctype="text/plain">
<input type="hidden" name='{name}' value='{value}'>
</form>
<script>document.getElementById("f").submit();</script>
</body></html>
"""


@contextmanager
def evil_site(page: str) -> Iterator[str]:
    """Serve ``page`` at `/` on another port of 127.0.0.1 (same site, other origin); its URL."""
    body = page.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows stderr of failures

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def promoted_cookie(cookie: str, role: str = "admin") -> str:
    """A session cookie whose payload says ``role``, keeping the original signature.

    The cookie is `base64url(JSON payload) "." base64url(MAC)` (relayflow.console.session);
    a person who edits it in the browser's tools gets exactly this.
    """
    payload, _, mac = cookie.partition(".")
    fields = json.loads(_unb64(payload))
    assert "r" in fields, f"a session cookie's payload without a role: {fields}"
    fields["r"] = role
    return _b64(json.dumps(fields, separators=(",", ":")).encode()) + "." + mac


def self_signed_cookie(key_id: str, role: str = "admin") -> str:
    """A session cookie made up by someone who does not know the server's key."""
    fields = {"k": key_id, "r": role, "e": int(time.time()) + 3600, "s": _b64(os.urandom(16))}
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    mac = hmac.new(b"a guess at the key", payload.encode(), hashlib.sha256).digest()
    return payload + "." + _b64(mac)
