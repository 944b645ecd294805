"""The analyst console without a browser: users and passwords, sessions, lockout, CSRF, permissions on every
page, PII masking, security headers and the numbers behind the charts. (tests/test_console_browser.py drives the
same pages in a real headless Chromium.)"""

from __future__ import annotations

import copy
import datetime as dt
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import EXAMPLE_APPLICATION, TEST_SECRET
from fengkong import Engine
from fengkong.api import create_app
from fengkong.cli import app as cli_app
from fengkong.pii import id_number_check_digit
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text
from fengkong.store.tables import audit_log, console_login_failures, console_sessions, console_users
from fengkong.web import svg
from fengkong.web.guard import safe_next
from fengkong.web.users import verify_password

BASE = "http://127.0.0.1"


def example(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(EXAMPLE_APPLICATION.read_text())
    data = copy.deepcopy(data)
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return data


class Console:
    """A console client: a real app on a real store, signed in as one user."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.client = TestClient(create_app(engine), base_url=BASE)

    def form_token(self, path: str = "/console/login") -> str:
        page = self.client.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, f"no csrf field on {path}"
        return found.group(1)

    def login(self, name: str, password: str, next_path: str = "/console") -> Any:
        token = self.form_token()
        return self.client.post(
            "/console/login",
            data={"csrf": token, "name": name, "password": password, "next": next_path},
            follow_redirects=False,
        )

    def csrf(self) -> str:
        return self.form_token("/console/decisions")


def problem(page: Any) -> str:
    found = re.search(r'id="(?:problem|error-message)"[^>]*>([^<]+)', page.text)
    return html.unescape(found.group(1)) if found else ""


@pytest.fixture
def console(sqlite_engine: Engine) -> Console:
    return Console(sqlite_engine)


@pytest.fixture
def console_both(engine: Engine) -> Console:
    return Console(engine)


# ------------------------------------------------------------------------------------------ users


def test_cli_user_create_prints_a_password_that_signs_in(sqlite_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["user", "create", "--role", "analyst", "Alice", "--database-url", sqlite_url])
    assert result.exit_code == 0, result.output
    password = result.stdout.strip().splitlines()[-1]
    assert len(password) >= 16 and " " not in password
    again = runner.invoke(cli_app, ["user", "create", "--role", "analyst", "alice", "--database-url", sqlite_url])
    assert again.exit_code == 1 and "user_exists" in again.stderr
    bad_role = runner.invoke(cli_app, ["user", "create", "--role", "wizard", "bob", "--database-url", sqlite_url])
    assert bad_role.exit_code != 0
    listed = runner.invoke(cli_app, ["user", "list", "--json", "--database-url", sqlite_url])
    assert [u["name"] for u in json.loads(listed.stdout)] == ["alice"]

    engine = Engine(sqlite_url, secret_key=TEST_SECRET)
    try:
        response = Console(engine).login("alice", password)
        assert response.status_code == 303 and response.headers["location"] == "/console"
    finally:
        engine.close()


def test_passwords_are_stored_only_as_salted_scrypt(engine: Engine) -> None:
    """On SQLite and PostgreSQL: the table holds an scrypt hash with a per-user salt, never the password."""
    first = engine.console.create_user("alice", "analyst")
    second = engine.console.create_user("bob", "analyst")
    with engine.db.connect() as conn:
        rows = {r.name: r.password_hash for r in conn.execute(sa.select(console_users))}
        dump = json.dumps([list(map(str, r)) for r in conn.execute(sa.select(console_users)).all()])
        log_dump = json.dumps([list(map(str, r)) for r in conn.execute(sa.select(audit_log)).all()])
    assert first not in dump and second not in dump and first not in log_dump
    assert all(h.startswith("scrypt$16384$8$1$") for h in rows.values())
    assert rows["alice"].split("$")[4] != rows["bob"].split("$")[4]  # per-user salt
    assert verify_password(first, rows["alice"]) and not verify_password(first, rows["bob"])
    with pytest.raises(Exception, match="already exists"):
        engine.console.create_user("ALICE ", "admin")
    with pytest.raises(Exception, match="user name"):
        engine.console.create_user("a b", "admin")
    assert [(u.name, u.role.value) for u in engine.console.list_users()] == [("alice", "analyst"), ("bob", "analyst")]


def test_a_role_edited_in_the_table_is_found_by_audit_verify(sqlite_engine: Engine) -> None:
    sqlite_engine.console.create_user("mallory", "analyst")
    assert sqlite_engine.verify_audit().ok
    with sqlite_engine.db.begin() as conn:
        conn.execute(sa.update(console_users).values(role="admin"))
    report = sqlite_engine.verify_audit()
    assert not report.ok
    assert any("console_user_created" in f.problem and "edited" in f.problem for f in report.findings)


# ------------------------------------------------------------------------------------------ sign-in


def test_sign_in_sets_a_strict_httponly_cookie_and_stores_only_its_hash(console: Console) -> None:
    password = console.engine.console.create_user("alice", "analyst")
    response = console.login("alice", password, "/console/decisions")
    assert response.status_code == 303 and response.headers["location"] == "/console/decisions"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("fk_console_session="))
    token = cookie.split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    with console.engine.db.connect() as conn:
        stored = conn.execute(sa.select(console_sessions)).all()
    assert len(stored) == 1 and token not in json.dumps([list(map(str, r)) for r in stored])
    page = console.client.get("/console/decisions")
    assert page.status_code == 200 and 'id="signed-in-as">alice<' in page.text


def test_wrong_password_unknown_name_and_lockout(console: Console) -> None:
    engine = console.engine
    password = engine.console.create_user("alice", "analyst")
    wrong = console.login("alice", "not-the-password")
    assert wrong.status_code == 401
    assert problem(wrong).startswith("wrong user name or password; 4 more attempts")
    assert 'value="alice"' in wrong.text and "not-the-password" not in wrong.text  # the password is not echoed
    unknown = console.login("nobody", "whatever")
    assert unknown.status_code == 401 and problem(unknown).startswith("wrong user name or password; 4 more")
    for _ in range(4):
        last = console.login("alice", "still-wrong")
    assert last.status_code == 401 and "now locked for 15 minutes" in problem(last)
    locked = console.login("alice", password)  # the right password does not help while locked
    assert locked.status_code == 429 and "too many failed sign-ins" in problem(locked)
    assert "fk_console_session" not in console.client.cookies
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(console_sessions)).scalar_one() == 0
    # when the lock ends the right password works again and the failures are forgotten
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)
    session, _token = engine.console.login("alice", password, now=later)
    assert session.name == "alice"
    with engine.db.connect() as conn:
        names = conn.execute(sa.select(console_login_failures.c.name)).scalars().all()
    assert names == ["nobody"]


def test_missing_fields_and_a_forged_login_form_are_refused(console: Console) -> None:
    password = console.engine.console.create_user("alice", "analyst")
    empty = console.login("", "x")
    assert empty.status_code == 422 and problem(empty) == "enter your user name"
    no_token = console.client.post("/console/login", data={"name": "alice", "password": password})
    assert no_token.status_code == 403 and "expired or did not come from this console" in problem(no_token)
    assert "fk_console_session" not in console.client.cookies


def test_sessions_expire_when_idle_and_end_on_logout_or_disable(console: Console) -> None:
    engine = console.engine
    password = engine.console.create_user("alice", "analyst")
    _session, token = engine.console.login("alice", password)
    assert engine.console.session(token) is not None
    idle = dt.datetime.now(dt.UTC) + engine.console.idle_timeout + dt.timedelta(seconds=1)
    assert engine.console.session(token, now=idle) is None
    assert engine.console.session(token + "x") is None
    engine.console.disable_user("alice")
    assert engine.console.session(token) is None
    with pytest.raises(Exception, match="disabled"):
        engine.console.login("alice", password)

    engine.console.create_user("bob", "analyst")
    bob_password = engine.console.reset_password("bob")
    console.login("bob", bob_password)
    assert console.client.get("/console/decisions").status_code == 200
    out = console.client.post("/console/logout", data={"csrf": console.csrf()}, follow_redirects=False)
    assert out.status_code == 303
    after = console.client.get("/console/decisions", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/console/login")


def test_next_only_leads_inside_the_console() -> None:
    assert safe_next("/console/cases?status=open") == "/console/cases?status=open"
    for evil in ("//evil.example/x", "https://evil.example", "/console\\..\\x", "/v1/decisions", "", None):
        assert safe_next(evil) == "/console"


# ------------------------------------------------------------------------------------------ every door


def _console_routes(method: str) -> list[str]:
    """Every console route (both routers), as declared."""
    from fengkong.web import app as pages
    from fengkong.web import cases_pages

    routes = [*pages.router.routes, *cases_pages.router.routes]
    return sorted({r.path for r in routes if isinstance(r, APIRoute) and method in r.methods})


def _fill(path: str, decision_id: str) -> str:
    return (
        path.replace("{decision_id}", decision_id)
        .replace("{customer_id}", "cust-000123")
        .replace("{case_id}", "case_unknown")
    )


PUBLIC = {"/console", "/console/", "/console/login", "/console/appeal", "/console/appeal/view"}


def test_every_page_needs_a_session_and_every_form_a_csrf_token(console: Console) -> None:
    engine = console.engine
    decision = engine.decide(example())
    gets = [p for p in _console_routes("GET") if p not in PUBLIC]
    posts = [p for p in _console_routes("POST") if p not in PUBLIC]
    assert len(gets) >= 8 and posts
    for path in gets:
        response = console.client.get(_fill(path, decision.decision_id), follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login?next=/console"), path
    password = engine.console.create_user("admin1", "admin")
    console.login("admin1", password)
    with engine.db.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
    for path in posts:
        response = console.client.post(_fill(path, decision.decision_id), data={"note": "x", "outcome": "upheld"})
        assert response.status_code == 403, path
        assert "did not carry a valid security token" in problem(response), path
        wrong = console.client.post(_fill(path, decision.decision_id), data={"csrf": "forged", "note": "x"})
        assert wrong.status_code == 403, path
    # the forms shown before sign-in (the customer's appeal) carry a double-submit token instead
    for path in ("/console/appeal/view", "/console/appeal"):
        body = {"lang": "en", "customer_id": "cust-000123", "reference": decision.decision_id, "message": "please"}
        response = console.client.post(path, data=body)
        assert response.status_code == 403 and "form expired" in problem(response), path
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one() == before
    assert console.client.get("/console/decisions").status_code == 200  # still signed in: nothing changed


def test_console_pages_carry_security_headers_and_stay_out_of_openapi(console: Console) -> None:
    login = console.client.get("/console/login")
    assert login.headers["content-security-policy"].startswith("default-src 'self'")
    assert "script-src 'none'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["cache-control"] == "no-store"
    assert "<script" not in login.text and not re.search(r"\son[a-z]+\s*=", login.text)  # no inline handlers
    css = console.client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["x-content-type-options"] == "nosniff"
    paths = console.client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]


def test_roles_decide_which_pages_open(console: Console) -> None:
    engine = console.engine
    decision = engine.decide(example())
    users = {role: engine.console.create_user(f"u-{role}", role) for role in ("analyst", "auditor", "system")}
    expect = {
        "analyst": {"/console/decisions": 200, "/console/audit": 403, "/console/policies": 200},
        "auditor": {
            "/console/decisions": 200,
            "/console/audit": 200,
            f"/console/decisions/{decision.decision_id}": 200,
        },
        "system": {"/console/policies": 403, "/console/audit": 403, "/console/portfolio": 200},
    }
    for role, pages in expect.items():
        console.client.cookies.clear()
        assert console.login(f"u-{role}", users[role]).status_code == 303
        for path, status in pages.items():
            response = console.client.get(path)
            assert response.status_code == status, (role, path)
            if status == 403:
                assert f"Your role ({role}) may not" in problem(response)


def test_pii_masked_unless_the_role_may_view_it_and_each_reveal_is_audited(console: Console) -> None:
    engine = console.engine
    decision = engine.decide(example())
    raw_id, raw_phone = "110101199003074514", "+86 138 0013 8000"
    analyst = engine.console.create_user("ana", "analyst")
    admin = engine.console.create_user("root", "admin")

    console.login("ana", analyst)
    for path in (f"/console/decisions/{decision.decision_id}", "/console/customers/cust-000123"):
        page = console.client.get(path)
        assert page.status_code == 200 and raw_id not in page.text and raw_phone not in page.text
        assert "110101********4514" in page.text and 'id="pii-masked"' in page.text
        refused = console.client.get(path + "?reveal=true")
        assert refused.status_code == 403 and raw_id not in refused.text
    console.client.cookies.clear()

    console.login("root", admin)
    page = console.client.get(f"/console/decisions/{decision.decision_id}?reveal=true")
    assert page.status_code == 200 and raw_id in page.text and raw_phone in page.text
    with engine.db.connect() as conn:
        viewed = conn.execute(sa.select(audit_log.c.actor).where(audit_log.c.kind == "pii_viewed")).scalars().all()
    assert viewed == ["user:root"]
    assert engine.verify_audit().ok


# ------------------------------------------------------------------------------------------ pages


def test_decision_page_shows_the_analyst_view_and_replays(console: Console) -> None:
    engine = console.engine
    review = engine.decide(example(application_id="r-1", **{"bureau.worst_delinquency_days": 45}))
    password = engine.console.create_user("ana", "analyst")
    console.login("ana", password)
    page = console.client.get(f"/console/decisions/{review.decision_id}")
    assert page.status_code == 200
    assert "BUREAU_RECENT_DELINQUENCY" in page.text and review.policy_version in page.text
    assert 'id="reproduced"' in page.text and "same outcome, reasons, limit and APR" in page.text
    replay = console.client.get(f"/console/decisions/{review.decision_id}/replay")
    assert replay.status_code == 200
    runs = re.findall(r'<td class="same">(yes|no)</td>', replay.text)
    assert runs == ["yes"]
    for table in ("rule-hits", "score", "features"):  # the analyst view: rules with values, score lines, features
        assert f'id="{table}"' in page.text
    assert "bureau_worst_dpd = 45" in page.text and review.model_version in page.text
    # a new policy version goes live: the replay decides the stored features under the version in force at the
    # time (it reproduces) and under the active one (what the same facts would get today)
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = "strict-bureau"
    for rule in data["rules"]:
        if rule.get("reason") == "BUREAU_RECENT_DELINQUENCY":
            rule["action"] = "decline"
    engine.publish_policy(load_policy_text(yaml.safe_dump(data)), actor="test", activate=True)
    replay = console.client.get(f"/console/decisions/{review.decision_id}/replay")
    rows = re.findall(r'<tr class="replay-run">\s*<th>([^<]+)</th><td>([^<]+)</td>', replay.text)
    assert rows == [("version in force at the time", review.policy_version), ("active now", "strict-bureau")]
    assert re.findall(r'<td class="same">(yes|no)</td>', replay.text) == ["yes", "no"]
    assert 'class="badge decline"' in replay.text
    missing = console.client.get("/console/decisions/dec_nope")
    assert missing.status_code == 404 and "no decision with id 'dec_nope'" in problem(missing)


def test_portfolio_numbers_on_both_stores(console_both: Console) -> None:
    """The SQL behind the charts (per-day outcomes, reasons unnested from JSON) on SQLite and PostgreSQL."""
    engine = console_both.engine
    engine.decide(example(application_id="a-1"))
    engine.decide(example(application_id="a-2", customer_id="cust-2", **{"bureau.worst_delinquency_days": 120}))
    engine.decide(example(application_id="a-3", customer_id="cust-3", **{"bureau.worst_delinquency_days": 45}))
    engine.decide(example(application_id="a-4", customer_id="cust-4", **{"applicant.employment": "student"}))
    from fengkong.web.views import portfolio

    p = portfolio(engine, 7)
    assert p["decided"] == 4 and p["outcome_totals"] == {"approve": 1, "review": 1, "decline": 2}
    assert p["approval_rate"] == pytest.approx(0.25)
    codes = {code: n for code, n, _text in p["reasons"]}
    assert codes["BUREAU_SERIOUS_DELINQUENCY"] == 1 and codes["EMPLOYMENT_NOT_ELIGIBLE"] == 1
    password = engine.console.create_user("ana", "analyst")
    console_both.login("ana", password)
    page = console_both.client.get("/console/portfolio?days=7")
    assert page.status_code == 200 and 'id="approval-rate">25.0%<' in page.text
    assert page.text.count("<svg") >= 4


def test_customer_page_draws_the_linked_group(console: Console) -> None:
    engine = console.engine
    engine.decide(example(application_id="g-1", customer_id="ring-1"))
    other_id = "11010119920101123" + id_number_check_digit("11010119920101123")
    engine.decide(example(application_id="g-2", customer_id="ring-2", **{"identity.id_number": other_id}))
    password = engine.console.create_user("ana", "analyst")
    console.login("ana", password)
    page = console.client.get("/console/customers/ring-1")
    assert page.status_code == 200
    picture = page.text.split('id="group-picture"', 1)[1].split("</svg>", 1)[0]
    assert "ring-1" in picture and "ring-2" in picture and "<line" in picture
    assert "a3f9c2e1" not in page.text  # the shared device is drawn by kind, never by its value
    assert console.client.get("/console/customers/nobody").status_code == 404


def test_svg_labels_are_escaped() -> None:
    chart = svg.bar_chart([("<script>alert(1)</script>", 3.0)], 'a "title"')
    assert "<script>" not in chart and "&lt;script&gt;" in chart
    group = svg.graph_picture([svg.GraphNode("c:x", "<b>x</b>", "customer", "self")], [], "g")
    assert "<b>" not in group


def test_customer_timeline_and_portfolio_show_lines_and_loans(console: Console) -> None:
    engine = console.engine
    approved = engine.decide(example(application_id="tl-1"))
    # an approval opens its line (or, where the deciding path does not yet, a person opens it)
    line = next(iter(engine.lines.for_customer("cust-000123")), None) or engine.lines.open_from_decision(
        approved.decision_id, "cli:test"
    )
    engine.lines.act(
        line["line_id"], "freeze", actor="cli:test", reasons=["LINE_DELINQUENT"], note="two missed payments"
    )
    start = dt.date.today() - dt.timedelta(days=75)
    engine.loans.open_loan("cust-000123", 6000, 0.12, 6, "equal_instalment", start, loan_id="loan-tl-1")
    login = {
        "type": "login",
        "event_id": "ev-tl-1",
        "customer_id": "cust-000123",
        "occurred_at": "2026-11-20T09:00:00+08:00",
        "device_id": "a3f9c2e1-7d4b-4c8e-9f10-2b6d8e4a1c77",
        "ip": "203.0.113.42",
        "success": True,
    }
    engine.ingest([login])
    complaint = engine.cases.open("complaint", "cust-000123", note="phoned about the freeze", actor="user:ana")
    password = engine.console.create_user("ana", "analyst")
    console.login("ana", password)
    page = console.client.get("/console/customers/cust-000123")
    assert page.status_code == 200
    timeline = page.text.split('id="timeline"', 1)[1]
    for expected in (
        "application approve",
        "line open",
        "line freeze (active → frozen)",
        "loan loan-tl-1 (active)",
        "event login",
        "case complaint (open)",
        f"/console/cases/{complaint['case_id']}",
    ):
        assert expected in timeline, expected
    assert "LINE_DELINQUENT" in timeline
    assert "203.0.113.42" not in page.text and "a3f9c2e1-7d4b" not in page.text  # identifiers never shown raw
    loans = page.text.split('id="loans"', 1)[1].split("</table>", 1)[0]
    assert "loan-tl-1" in loans and ">M2<" in loans
    portfolio = console.client.get("/console/portfolio").text
    assert "freeze: LINE_DELINQUENT" in portfolio
    buckets = portfolio.split('id="buckets"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"<td>M2</td><td class=\"num\">1</td>", buckets)


def _case_row(engine: Engine, case_id: str) -> dict[str, Any]:
    from fengkong.store.tables import case_actions, cases

    with engine.db.connect() as conn:
        row = dict(conn.execute(sa.select(cases).where(cases.c.id == case_id)).mappings().one())
        row["steps"] = conn.execute(
            sa.select(sa.func.count()).select_from(case_actions).where(case_actions.c.case_id == case_id)
        ).scalar_one()
    return row


def test_queue_filters_and_sla_warnings(console_both: Console) -> None:
    from fengkong.store.tables import cases

    engine = console_both.engine
    late = engine.decide(example(application_id="q-1", customer_id="c-late", **{"bureau.worst_delinquency_days": 45}))
    soon = engine.decide(example(application_id="q-2", customer_id="c-soon", **{"bureau.worst_delinquency_days": 45}))
    fresh = engine.decide(example(application_id="q-3", customer_id="c-new", **{"bureau.worst_delinquency_days": 45}))
    ids = {
        name: engine.cases.case_id_for_decision(d.decision_id)
        for name, d in (("late", late), ("soon", soon), ("new", fresh))
    }
    now = dt.datetime.now(dt.UTC)
    with engine.db.begin() as conn:  # age two cases: one past its SLA, one in its last quarter
        conn.execute(sa.update(cases).where(cases.c.id == ids["late"]).values(due_at=now - dt.timedelta(hours=3)))
        conn.execute(
            sa.update(cases)
            .where(cases.c.id == ids["soon"])
            .values(created_at=now - dt.timedelta(hours=22), due_at=now + dt.timedelta(hours=2))
        )
    password = engine.console.create_user("ana", "analyst")
    console_both.login("ana", password)
    engine.cases.claim(ids["new"], "user:ana")

    def listed(query: str) -> list[str]:
        page = console_both.client.get("/console/cases" + query)
        assert page.status_code == 200, problem(page)
        return re.findall(r'class="case-link">([^<]+)<', page.text)

    page = console_both.client.get("/console/cases")
    assert "1 case in this list is past its due time" in page.text and "1 case due soon" in page.text
    assert re.search(rf'<tr class="overdue" data-case="{ids["late"]}"', page.text)
    assert re.search(rf'<tr class="due-soon" data-case="{ids["soon"]}"', page.text)
    assert set(listed("")) == set(ids.values())
    assert listed("?overdue=yes") == [ids["late"]]
    assert listed("?assignee=me") == [ids["new"]]
    assert listed("?status=claimed") == [ids["new"]]
    assert listed("?type=appeal") == []
    assert listed("?customer_id=c-soon") == [ids["soon"]]
    bad = console_both.client.get("/console/cases?status=lost")
    assert bad.status_code == 422 and "unknown case status 'lost'" in problem(bad)


def test_bad_case_steps_are_refused_on_the_page_and_change_nothing(console: Console) -> None:
    engine = console.engine
    decision = engine.decide(example(application_id="b-1", **{"bureau.worst_delinquency_days": 45}))
    case_id = engine.cases.case_id_for_decision(decision.decision_id)
    ana = engine.console.create_user("ana", "analyst")
    bo = engine.console.create_user("bo", "analyst")
    console.login("ana", ana)
    token = console.csrf()
    url = f"/console/cases/{case_id}"

    not_claimed = console.client.post(url + "/resolve", data={"csrf": token, "outcome": "decline", "note": "x"})
    assert not_claimed.status_code == 409 and "claim case" in problem(not_claimed)
    assert console.client.post(url + "/claim", data={"csrf": token}).status_code == 200
    before = _case_row(engine, case_id)
    for data, status, message in (
        ({"outcome": "decline", "note": "  "}, 422, "a note is required"),
        ({"note": "checked"}, 422, "choose an outcome"),
        ({"outcome": "upheld", "note": "checked"}, 422, "not an outcome of a review case"),
        ({"outcome": "approve", "note": "checked", "limit": "lots"}, 422, "limit: must be a number"),
    ):
        response = console.client.post(url + "/resolve", data={"csrf": token, **data})
        assert response.status_code == status and message in problem(response), data
        if data.get("note", "").strip():
            assert data["note"] in response.text  # what was typed is kept on the page
        assert _case_row(engine, case_id) == before
    # a second analyst can neither resolve nor approve it
    console.client.cookies.clear()
    console.login("bo", bo)
    other = console.client.post(url + "/resolve", data={"csrf": console.csrf(), "outcome": "decline", "note": "x"})
    assert other.status_code == 409 and "claimed by user:ana" in problem(other)
    approve = console.client.post(url + "/approve", data={"csrf": console.csrf(), "note": "ok"})
    assert approve.status_code == 409 and "only a resolution waiting for a second analyst" in problem(approve)
    assert _case_row(engine, case_id) == before
    missing = console.client.get("/console/cases/cas_nope")
    assert missing.status_code == 404 and "no case with id 'cas_nope'" in problem(missing)


def test_the_appeal_page_reveals_nothing_about_other_customers(console: Console) -> None:
    from fengkong.store.tables import cases

    engine = console.engine
    mine = engine.decide(example(application_id="ap-1", customer_id="cust-a", **{"applicant.employment": "student"}))
    theirs = engine.decide(example(application_id="ap-2", customer_id="cust-b", **{"applicant.employment": "student"}))
    client = console.client
    token = console.form_token("/console/appeal?lang=en")

    def post(path: str, customer: str, reference: str, message: str = "") -> Any:
        data = {"csrf": token, "lang": "en", "customer_id": customer, "reference": reference, "message": message}
        return client.post(path, data=data)

    unknown = post("/console/appeal/view", "cust-a", "dec_does_not_exist")
    foreign = post("/console/appeal/view", "cust-a", theirs.decision_id)
    assert unknown.status_code == foreign.status_code == 404
    assert problem(unknown) == problem(foreign) and problem(foreign).startswith("We found no decision")
    assert "cust-b" not in foreign.text.replace(theirs.decision_id, "")
    filed_foreign = post("/console/appeal", "cust-a", theirs.decision_id, "please review")
    assert filed_foreign.status_code == 404 and problem(filed_foreign) == problem(foreign)
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cases)).scalar_one() == 0

    own = post("/console/appeal/view", "cust-a", mine.decision_id)
    assert own.status_code == 200 and "cannot approve your application" in own.text
    assert "EMPLOYMENT_NOT_ELIGIBLE" not in own.text
    filed = post("/console/appeal", "cust-a", mine.decision_id, "I have a job now")
    assert filed.status_code == 200 and "We have received your request" in filed.text
    again = post("/console/appeal/view", "cust-a", mine.decision_id)
    assert 'id="appeal-status"' in again.text and 'id="appeal-form"' not in again.text
    zh = client.post(
        "/console/appeal/view",
        data={"csrf": token, "lang": "zh", "customer_id": "cust-a", "reference": "dec_does_not_exist"},
    )
    assert problem(zh).startswith("没有找到")


def test_the_appeal_page_shows_a_line_change_only_to_its_customer(console: Console) -> None:
    engine = console.engine
    approved = engine.decide(example(application_id="lc-1", customer_id="cust-l"))
    frozen = engine.lines.act(
        approved.line_id, "freeze", actor="EW", actor_kind="trigger", reasons=["LINE_RISK_EVENTS"], review_days=30
    )
    ref = frozen["history"][-1]["action_id"]
    token = console.form_token("/console/appeal?lang=en")

    def post(path: str, customer: str, message: str = "") -> Any:
        data = {"csrf": token, "lang": "en", "customer_id": customer, "reference": ref, "message": message}
        return console.client.post(path, data=data)

    foreign = post("/console/appeal/view", "cust-other")
    assert foreign.status_code == 404 and problem(foreign).startswith("We found no decision or credit-line change")
    assert "paused" not in foreign.text
    own = post("/console/appeal/view", "cust-l")
    assert own.status_code == 200 and "Your credit line is paused" in own.text
    assert 'id="customer-reasons"' in own.text and "LINE_RISK_EVENTS" not in own.text
    assert "EW_" not in own.text  # no early-warning code (a ULID reference may hold the letters "EW")
    assert ref in problem_free(own, "appeal-how") and 'id="appeal-form"' in own.text
    filed = post("/console/appeal", "cust-l", "I was travelling, that is all")
    assert filed.status_code == 200 and "We have received your request" in filed.text
    case = engine.cases.list(type="appeal", customer_id="cust-l")[0]
    assert case["line_action_id"] == ref and case["line_id"] == approved.line_id
    again = post("/console/appeal/view", "cust-l")
    assert 'id="appeal-status"' in again.text and 'id="appeal-form"' not in again.text


def problem_free(page: Any, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]+)', page.text)
    return html.unescape(found.group(1)) if found else ""


def test_a_held_drawdown_reads_as_a_drawdown(console: Console) -> None:
    from test_drawdowns import ask, open_line

    engine = console.engine
    line = open_line(engine, json.loads(EXAMPLE_APPLICATION.read_text()), "dd-page")
    held = engine.lines.drawdown(line["line_id"], ask(500, call_in_progress=True))
    password = engine.console.create_user("ana", "analyst")
    console.login("ana", password)
    case_page = console.client.get(f"/console/cases/{held.case_id}")
    assert case_page.status_code == 200 and 'id="drawdown-decision"' in case_page.text
    assert "DD_CALL_IN_PROGRESS" in case_page.text and "under policy" not in case_page.text  # not the application's
    case_replay = case_page.text.split('id="case-replay"', 1)[1].split("</table>", 1)[0]
    assert f"drawdown rules of policy {held.policy_version} (in force then)" in case_replay
    assert case_replay.count("DD_CALL_IN_PROGRESS") == 2  # stored, and the same rule again in the replay
    assert 'id="release-hint"' not in case_page.text  # (shown once claimed, in the resolve form)
    decision_page = console.client.get(f"/console/decisions/{held.decision_id}")
    assert decision_page.status_code == 200 and 'id="drawdown-decision"' in decision_page.text
    assert 'id="reproduced"' not in decision_page.text and 'id="replay"' in decision_page.text
    # the replay page runs the drawdown rules (one replay: engine.cases.replay), never the application policy
    replay = console.client.get(f"/console/decisions/{held.decision_id}/replay")
    assert replay.status_code == 200 and "drawdown rules" in replay.text and 'id="replay-table"' in replay.text
    assert re.findall(r'<td class="same">(yes|no)</td>', replay.text) == ["yes"]
    assert (
        "<th>rules fired</th>" in replay.text and ">APR<" not in replay.text and "give the same outcome" in replay.text
    )
    # a new version without the call rule goes live: what the same facts would get today
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = "no-call-rule"
    rules = data["lines"]["drawdowns"]["rules"]
    data["lines"]["drawdowns"]["rules"] = [r for r in rules if r["id"] != "DD_CALL_IN_PROGRESS"]
    engine.publish_policy(load_policy_text(yaml.safe_dump(data)), actor="test", activate=True)
    replay = console.client.get(f"/console/decisions/{held.decision_id}/replay")
    rows = re.findall(r'<tr class="replay-run">\s*<th>([^<]+)</th><td>([^<]+)</td>', replay.text)
    assert rows == [("version in force at the time", held.policy_version), ("active now", "no-call-rule")]
    assert re.findall(r'<td class="same">(yes|no)</td>', replay.text) == ["yes", "no"]
    assert 'class="badge approve"' in replay.text
    engine.cases.claim(held.case_id, "user:ana")
    claimed = console.client.get(f"/console/cases/{held.case_id}")
    assert (
        'id="release-hint"' in claimed.text and "second analyst" not in claimed.text.split('id="release-hint"')[1][:300]
    )


def test_a_human_decision_says_who_made_it(console: Console) -> None:
    engine = console.engine
    declined = engine.decide(example(application_id="h-1", **{"applicant.employment": "student"}))
    case = engine.cases.appeal("cust-000123", decision_id=declined.decision_id, message="I work now", language="en")
    engine.cases.claim(case["case_id"], "user:ana")
    engine.cases.resolve(case["case_id"], "user:ana", "upheld", "employment letter checked", limit=20000)
    done = engine.cases.approve(case["case_id"], "user:bo", "agree")
    override = done["result"]["override_decision_id"]
    password = engine.console.create_user("ana", "analyst")
    console.login("ana", password)
    page = console.client.get(f"/console/decisions/{override}")
    assert page.status_code == 200 and 'id="reproduced"' not in page.text
    notice = html.unescape(page.text.split('id="human-decision">', 1)[1].split("</p>", 1)[0])
    assert "user:ana and user:bo" in notice and case["case_id"] in notice and declined.decision_id in notice


def test_audit_page_shows_the_chain_status_and_finds_tampering(console: Console) -> None:
    engine = console.engine
    decision = engine.decide(example())
    password = engine.console.create_user("audrey", "auditor")
    console.login("audrey", password)
    page = console.client.get("/console/audit")
    assert page.status_code == 200 and "Intact:" in page.text and "console_login" in page.text
    with engine.db.begin() as conn:
        from fengkong.store.tables import decisions

        conn.execute(sa.update(decisions).where(decisions.c.id == decision.decision_id).values(limit_amount=99999))
    assert "Intact:" in console.client.get("/console/audit").text  # the last walk, until asked again
    fresh = console.client.get("/console/audit?verify=true")
    assert "TAMPERED" in fresh.text and "the decision this entry records was edited" in fresh.text
