"""Browser journeys: Debian's Chromium driven by Playwright against the real
IdP and the demo relying parties, each served on a free local port.

Every test gets empty tables, the demo data and fresh servers (the `demo`
fixture), and a fresh browser context. `axe_check(page)` runs axe-core (from
the npm registry, `npm ci` in this folder) on the page shown and fails on any
serious or critical violation. A failing test leaves a screenshot of its last
page in tests/artifacts/<test name>.png."""

from __future__ import annotations

import json
import os
import re
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from clients.rp import create_rp_app
from idp.demo import DEMO_PASSWORD, clients_file_path, load_demo_data

CHROMIUM = os.environ.get("IDP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
HERE = Path(__file__).resolve().parent
AXE_JS = HERE / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = HERE.parent / "artifacts"
#: Playwright's own waits (milliseconds): generous for a loaded 2-core machine, short enough to fail fast.
TIMEOUT_MS = 15_000

SAM = "sam.jones@example.org"  # CPOMS SSO: oakwood, elmfield, oakwood-trust (StaffSafe)
ALEX = "alex.head@oakwood.example.org"  # CPOMS Identity admin of oakwood
PAT = "pat.lee@riverside.example.org"  # CPOMS Identity at riverside, a school with no SSO users


def _why_no_browser() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing: apt-get install chromium (CI installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not AXE_JS.is_file():
        return "axe-core is not installed: run `npm ci` in tests/browser (CI does)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _why_no_browser()
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


class LocalServer:
    """A threaded werkzeug server whose port is bound at once (no other process can take it
    between choosing and serving), so its URL can go into settings before the app exists."""

    def __init__(self) -> None:
        self.app = None
        self._server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.port}"

    def _dispatch(self, environ, start_response):
        return self.app(environ, start_response)

    @contextmanager
    def serving(self, wsgi_app):
        self.app = wsgi_app
        thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            thread.join(timeout=10)
            self._server.server_close()


@pytest.fixture
def idp_server():
    return LocalServer()


@pytest.fixture
def app_overrides(idp_server):
    # The issuer must be the URL the browser (and the relying parties) use.
    return {"issuer": idp_server.url, "mail_url": "outbox"}


@dataclass
class Demo:
    idp: str
    school: str  # the CPOMS school app: /oakwood/, /elmfield/, /riverside/
    staffsafe: str  # the StaffSafe app: /oakwood-trust/
    outbox: Path
    password: str = DEMO_PASSWORD

    def last_mail_to(self, email: str) -> str:
        """The text of the newest mail to `email` in the outbox."""
        from email import policy
        from email.parser import BytesParser

        for path in sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
            with path.open("rb") as handle:
                message = BytesParser(policy=policy.default).parse(handle)
            if email in message.get("To", ""):
                return message.get_body(preferencelist=("plain",)).get_content()
        raise AssertionError(f"no mail to {email} in {self.outbox}")

    def link_in_last_mail_to(self, email: str) -> str:
        links = re.findall(r"https?://\S+", self.last_mail_to(email))
        assert links, f"the mail to {email} has no link"
        return links[0]


@contextmanager
def background_worker(app, interval: float = 0.1):
    """`idp worker` as a thread: back-channel logout notices go out while the journeys run."""
    from idp.worker import one_round

    stop = threading.Event()

    def loop():
        while not stop.is_set():
            with app.app_context():
                try:
                    one_round(chores=False)
                except Exception as error:  # noqa: BLE001  a round that fails is tried again
                    print(f"worker round failed: {error!r}")
            stop.wait(interval)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def demo(app, idp_server) -> Demo:
    school, staffsafe = LocalServer(), LocalServer()
    load_demo_data(school_app_url=school.url, staffsafe_app_url=staffsafe.url)
    clients = clients_file_path()
    with ExitStack() as stack:
        stack.enter_context(idp_server.serving(app))
        stack.enter_context(background_worker(app))
        stack.enter_context(school.serving(create_rp_app("school", "CPOMS demo school app", clients_file=clients)))
        stack.enter_context(staffsafe.serving(create_rp_app("staffsafe", "StaffSafe demo app", clients_file=clients)))
        yield Demo(idp=idp_server.url, school=school.url, staffsafe=staffsafe.url,
                   outbox=app.config["SETTINGS"].outbox_path)


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open_page(request, chromium, **context_options):
    context = chromium.new_context(locale="en-GB", **context_options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems: list[str] = []
    # A CSP refusal means a page relies on something our policy forbids (inline script or style).
    page.on("console", lambda m: problems.append(m.text)
            if m.type == "error" and "Content Security Policy" in m.text else None)
    page.csp_problems = problems
    return context, page


def _screenshot_on_failure(request, page) -> None:
    failed = any(getattr(request.node, f"report_{when}", None) is not None
                 and getattr(request.node, f"report_{when}").failed for when in ("setup", "call"))
    if not failed:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    except Exception as error:  # the page may be gone: say so, keep the test's own failure
        print(f"no screenshot for {name}: {error}")


@pytest.fixture
def page(request, chromium, demo):
    context, page = _open_page(request, chromium)
    yield page
    _screenshot_on_failure(request, page)
    context.close()
    assert not page.csp_problems, f"the Content Security Policy blocked something: {page.csp_problems}"


@pytest.fixture
def page_without_js(request, chromium, demo):
    context, page = _open_page(request, chromium, java_script_enabled=False)
    yield page
    _screenshot_on_failure(request, page)
    context.close()


#: GOV.UK's large buttons (40px high) and WCAG 2.2's 24px minimum for radios and checkboxes.
SMALL_TARGETS_JS = """() => {
    const small = [];
    const visible = (el) => el.offsetParent !== null;
    for (const el of document.querySelectorAll('main button, main .button, main input[type=submit]')) {
        const box = el.getBoundingClientRect();
        if (visible(el) && (box.height < 40 || parseFloat(getComputedStyle(el).fontSize) < 16)) {
            small.push(`${el.textContent.trim()}: ${Math.round(box.width)}x${Math.round(box.height)}`);
        }
    }
    for (const el of document.querySelectorAll('main input[type=radio], main input[type=checkbox]')) {
        const box = el.getBoundingClientRect();
        if (visible(el) && (box.height < 24 || box.width < 24)) {
            small.push(`${el.id || el.name}: ${Math.round(box.width)}x${Math.round(box.height)}`);
        }
    }
    return small;
}"""


@pytest.fixture(scope="session")
def axe_source() -> str:
    return AXE_JS.read_text()


@pytest.fixture
def axe_check(axe_source):
    """axe_check(page): no serious or critical axe-core violations on the page shown,
    and buttons, radios and checkboxes big enough to hit.

    axe is evaluated through the DevTools protocol, which our pages' CSP
    (script-src 'self') does not govern, so the CSP stays on while checking."""

    def check(page, *, exclude: tuple[str, ...] = ()) -> None:
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(axe_source)
        results = page.evaluate(
            """async (exclude) => {
                const context = exclude.length ? {exclude: exclude.map((s) => [s])} : document;
                const r = await axe.run(context, {resultTypes: ['violations']});
                return r.violations.map((v) => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary),
                }));
            }""",
            list(exclude),
        )
        if os.environ.get("IDP_TEST_PAGE_SHOTS"):
            # For looking at every checked page by eye: IDP_TEST_PAGE_SHOTS=1 pytest -m browser
            shots = ARTIFACTS / "pages"
            shots.mkdir(parents=True, exist_ok=True)
            count = len(list(shots.glob("*.png")))
            slug = re.sub(r"[^A-Za-z0-9]+", "_", page.url.split("://", 1)[-1].split("?")[0])[:80]
            page.screenshot(path=str(shots / f"{count:03d}_{slug}.png"), full_page=True)
            if results:
                print(f"axe-core (minor or moderate) on {page.url}: " + json.dumps(results))
        serious = [v for v in results if v["impact"] in ("serious", "critical")]
        assert not serious, f"axe-core on {page.url}:\n" + json.dumps(serious, indent=2)
        small = page.evaluate(SMALL_TARGETS_JS)
        assert not small, f"controls smaller than GOV.UK's large targets on {page.url}: {small}"

    return check
