"""The console in a real headless Chromium against the real service (uvicorn on a free port, a SQLite file):
sign in and out, work a case from the queue to resolution, file an appeal and resolve it under four eyes, PII
masked for a role that may not see it, and forms without their CSRF token refused. One browser for the module.

Outside CI these tests skip, saying why, when chromium or chromedriver is missing; with CI=true they must run.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLE_APPLICATION, IN_CI, TEST_SECRET


def find_browser() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None and Path("/usr/bin/chromium").exists():
        chromium = "/usr/bin/chromium"
    if driver is None and Path("/usr/bin/chromedriver").exists():
        driver = "/usr/bin/chromedriver"
    if chromium is None or driver is None:
        return None
    return chromium, driver


def require_browser() -> tuple[str, str]:
    found = find_browser()
    if found is None:
        if IN_CI:
            pytest.fail(
                "chromium/chromedriver not installed but CI=true: .ci/run must install chromium chromium-driver"
            )
        pytest.skip(
            "chromium and chromedriver not found; install them (Debian: apt-get install chromium chromium-driver)"
        )
    return found


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium with a fresh profile, kept off the network except for the service under test."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = require_browser()
    profile = tempfile.mkdtemp(prefix="fengkong-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The real ASGI app under uvicorn on a free 127.0.0.1 port, in a thread; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fengkong service did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def example(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(json.loads(EXAMPLE_APPLICATION.read_text()))
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return data


@dataclass
class World:
    engine: Any
    base: str
    driver: Any
    passwords: dict[str, str]
    review_decision: str
    declined_decision: str

    # ---------------------------------------------------------------------------------------- browsing

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)

    def by_id(self, element_id: str) -> Any:
        from selenium.webdriver.common.by import By

        found = self.driver.find_elements(By.ID, element_id)
        if not found:
            shown = [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, ".notice, h1")]
            raise AssertionError(f"no #{element_id} on {self.path()}; the page shows {shown}")
        return found[0]

    def has(self, element_id: str) -> bool:
        from selenium.webdriver.common.by import By

        return bool(self.driver.find_elements(By.ID, element_id))

    def text(self, element_id: str) -> str:
        return str(self.by_id(element_id).text)

    def fill(self, element_id: str, value: str) -> None:
        field = self.by_id(element_id)
        field.clear()
        field.send_keys(value)

    def click(self, element_id: str) -> None:
        """Click, and when that submits a form or follows a link, wait until the next page has loaded."""
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        element = self.by_id(element_id)
        navigates = element.tag_name in ("button", "a") or element.get_attribute("type") == "submit"
        old = self.driver.find_element("tag name", "html")
        element.click()
        if not navigates:
            return

        def loaded(driver: Any) -> bool:
            try:
                old.tag_name  # raises once the old page is gone
                return False
            except WebDriverException:  # stale, or "node does not belong to the document" mid-navigation
                pass
            try:
                return bool(driver.execute_script("return document.readyState") == "complete")
            except WebDriverException:
                return False

        try:
            WebDriverWait(self.driver, 10, poll_frequency=0.05).until(loaded)
        except TimeoutException:
            raise AssertionError(f"clicking #{element_id} did not load a page") from None

    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base)

    def login(self, name: str, next_path: str = "") -> None:
        self.go("/console/login" + (f"?next={next_path}" if next_path else ""))
        self.fill("name", name)
        self.fill("password", self.passwords[name])
        self.click("sign-in")
        assert self.text("signed-in-as") == name

    def logout(self) -> None:
        self.click("logout")
        assert self.path().startswith("/console/login")

    def case(self, case_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.engine.cases.get(case_id)
        return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_browser()
    from fengkong import Engine
    from fengkong.api import create_app

    folder = tmp_path_factory.mktemp("console-browser")
    engine = Engine(f"sqlite:///{folder / 'console.db'}", secret_key=TEST_SECRET)
    passwords = {
        "alice": engine.console.create_user("alice", "analyst"),
        "bob": engine.console.create_user("bob", "analyst"),
        "sam": engine.console.create_user("sam", "supervisor"),
    }
    review = engine.decide(
        example(application_id="rev-1", customer_id="cust-review", **{"bureau.worst_delinquency_days": 45})
    )
    declined = engine.decide(
        example(application_id="dec-1", customer_id="cust-declined", **{"applicant.employment": "student"})
    )
    assert (review.outcome.value, declined.outcome.value) == ("review", "decline")
    try:
        with serve(create_app(engine)) as base, chromium() as driver:
            yield World(engine, base, driver, passwords, review.decision_id, declined.decision_id)
    finally:
        engine.close()


@pytest.fixture
def w(world: World) -> World:
    """The shared browser, signed out, with one tab."""
    driver = world.driver
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    world.go("/console/login")
    driver.delete_all_cookies()
    return world


# ------------------------------------------------------------------------------------------ scenarios


def test_sign_in_fails_then_succeeds_and_signs_out(w: World) -> None:
    w.go("/console/cases")
    assert w.path().startswith("/console/login?next=/console/cases")
    w.fill("name", "alice")
    w.fill("password", "not-her-password")
    w.click("sign-in")
    assert w.text("problem").startswith("wrong user name or password")
    assert w.path() == "/console/login" and not w.has("signed-in-as")
    assert w.by_id("name").get_attribute("value") == "alice" and w.by_id("password").get_attribute("value") == ""

    w.fill("password", w.passwords["alice"])
    w.click("sign-in")
    assert w.path() == "/console/cases" and w.text("signed-in-as") == "alice"
    session = w.driver.get_cookie("fk_console_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict" and session["path"] == "/console"
    assert w.driver.execute_script("return document.cookie") == ""  # invisible to scripts
    # the page's own stylesheet loaded under the Content-Security-Policy, and nothing was blocked
    assert (
        w.driver.execute_script("return getComputedStyle(document.querySelector('header.top')).backgroundColor")
        == "rgb(26, 54, 93)"
    )
    blocked = [e for e in w.driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not blocked

    w.logout()
    w.go("/console/cases")
    assert w.path().startswith("/console/login")


def test_work_a_case_from_the_queue_to_resolution(w: World) -> None:
    engine = w.engine
    case_id = engine.cases.case_id_for_decision(w.review_decision)
    w.login("alice", "/console/cases")
    w.driver.find_element("css selector", "#f-type option[value=review]").click()
    w.click("apply-filters")
    assert "type=review" in w.path()
    links = [a.text for a in w.driver.find_elements("css selector", "#queue a.case-link")]
    assert links == [case_id]
    w.go(w.driver.find_element("link text", case_id).get_attribute("href").removeprefix(w.base))
    assert w.text("case-status") == "open" and w.has("claim")
    w.click("claim")
    assert w.text("notice") == "You claimed this case." and w.text("assignee") == "user:alice"

    # a stale copy of the page, opened now, still offers the form after the case is resolved
    first = w.driver.current_window_handle
    w.driver.switch_to.new_window("tab")
    w.go(f"/console/cases/{case_id}")
    stale = w.driver.current_window_handle
    w.driver.switch_to.window(first)

    w.click("outcome-decline")
    w.click("resolve")  # no note
    assert "a note is required" in w.text("problem")
    assert w.case(case_id)["status"] == "claimed"
    assert w.by_id("outcome-decline").is_selected()  # what the analyst chose is kept
    w.fill("note", "Bureau shows a 45-day delinquency last month; confirmed with the customer by phone.")
    w.click("resolve")
    assert w.text("notice").startswith("The case is resolved")
    assert w.text("case-outcome") == "decline"
    resolved = w.case(case_id)
    assert resolved["status"] == "resolved" and resolved["outcome"] == "decline"

    w.driver.switch_to.window(stale)
    w.click("outcome-decline")
    w.fill("note", "second try from an old tab")
    w.click("resolve")
    assert "already resolved" in w.text("problem")
    after = w.case(case_id)
    assert after["steps"] == resolved["steps"] and after["updated_at"] == resolved["updated_at"]


def test_file_an_appeal_and_resolve_it_under_four_eyes(w: World) -> None:
    engine = w.engine
    # the customer: no console login; a wrong customer id reveals nothing
    w.go("/console/appeal?lang=en")
    w.fill("customer_id", "cust-review")
    w.fill("reference", w.declined_decision)
    w.click("look-up")
    assert w.text("problem").startswith("We found no decision")
    assert "student" not in w.driver.page_source.lower()
    w.fill("customer_id", "cust-declined")
    w.click("look-up")
    assert "cannot approve" in w.text("customer-headline")
    assert "EMPLOYMENT_NOT_ELIGIBLE" not in w.driver.page_source  # plain words, no codes
    w.click("file-appeal")  # no message
    assert "why you want a person to review it" in w.text("problem")
    w.fill("message", "I finished my studies and started a full-time job in October.")
    w.click("file-appeal")
    assert "We have received your request" in w.text("appeal-received")
    appeal_id = w.text("appeal-case")
    assert engine.cases.get(appeal_id)["type"] == "appeal"

    # the first analyst upholds it: that overrides an automated decline, so it waits for a second analyst
    w.driver.delete_all_cookies()
    w.login("alice", "/console/cases?type=appeal")
    w.driver.find_element("link text", appeal_id).get_attribute("id") or w.go(f"/console/cases/{appeal_id}")
    assert "I finished my studies" in w.text("customer-message")
    w.click("claim")
    w.click("outcome-upheld")
    w.fill("limit", "20000")
    w.fill("note", "Employment letter checked: full-time since October; the student decline no longer applies.")
    w.click("resolve")
    assert w.text("notice").startswith("Your resolution waits for a second analyst")
    assert w.text("case-status") == "pending second approval"
    # ... and the same analyst cannot give the second approval
    assert w.has("own-proposal")
    w.fill("approve-note", "approving my own resolution")
    w.click("approve")
    assert "a second, different analyst must approve it" in w.text("problem")
    assert w.case(appeal_id)["status"] == "pending_second_approval"
    w.logout()

    w.login("bob", f"/console/cases/{appeal_id}")
    assert not w.has("own-proposal")
    w.fill("approve-note", "Read the employment letter; agree the decline should be overturned.")
    w.click("approve")
    assert w.text("notice").startswith("You approved the resolution")
    case = w.case(appeal_id)
    assert case["status"] == "resolved" and case["outcome"] == "upheld"
    assert [s["actor"] for s in case["steps"] if s["action"] in ("proposed", "approved")] == ["user:alice", "user:bob"]
    w.logout()

    # the customer now reads the answer
    w.go("/console/appeal?lang=en")
    w.fill("customer_id", "cust-declined")
    w.fill("reference", w.declined_decision)
    w.click("look-up")
    assert w.text("customer-headline").startswith("After review by a person")
    assert "changed our decision" in w.text("appeal-status")
    assert engine.verify_audit().ok


def test_an_analyst_sees_masked_pii_and_a_supervisor_may_unmask_it(w: World) -> None:
    case_id = w.engine.cases.case_id_for_decision(w.review_decision)
    raw_id = "110101199003074514"
    w.login("alice", f"/console/cases/{case_id}")
    assert "110101********4514" in w.text("identity") and raw_id not in w.driver.page_source
    assert w.has("pii-masked") and not w.has("reveal")
    w.go(f"/console/cases/{case_id}?reveal=true")
    assert "may not view unmasked personal data" in w.text("error-message")
    assert raw_id not in w.driver.page_source
    w.go(f"/console/decisions/{w.review_decision}?reveal=true")
    assert raw_id not in w.driver.page_source
    w.logout()

    w.login("sam", f"/console/cases/{case_id}")
    assert raw_id not in w.driver.page_source  # masked until asked for
    w.click("reveal")
    assert raw_id in w.text("identity") and w.has("pii-revealed")


def test_a_form_without_its_csrf_token_is_refused(w: World) -> None:
    engine = w.engine
    decision = engine.decide(
        example(application_id="rev-2", customer_id="cust-csrf", **{"bureau.worst_delinquency_days": 45})
    )
    case_id = engine.cases.case_id_for_decision(decision.decision_id)
    w.login("bob", f"/console/cases/{case_id}")
    # WebDriver scripts are not page scripts: the page's CSP (script-src 'none') does not stop the test tampering
    w.driver.execute_script("document.querySelectorAll('#work input[name=csrf]').forEach(e => e.remove())")
    w.click("claim")
    assert w.text("error-title") == "Form refused"
    assert "Nothing was changed" in w.text("error-message")
    assert w.case(case_id)["status"] == "open"
    w.go(f"/console/cases/{case_id}")
    w.driver.execute_script("document.querySelector('#work input[name=csrf]').value = 'forged'")
    w.click("claim")
    assert w.text("error-title") == "Form refused" and w.case(case_id)["status"] == "open"
    w.go(f"/console/cases/{case_id}")
    w.click("claim")  # the real form still works
    assert w.case(case_id)["assignee"] == "user:bob"
