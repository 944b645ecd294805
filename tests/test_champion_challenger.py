"""Champion/challenger and shadow policies: stable assignment, shadow never acting, live comparison."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from fengkong import Engine
from fengkong.errors import FengkongError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text
from fengkong.service import assignment_bucket
from fengkong.store.tables import decisions, events

TEST_SECRET = "test-secret-key-0123456789abcdef-0123456789"


def variant(version: str, decline_below: float) -> Any:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = version
    data["score"]["decline_below"] = decline_below
    data["score"]["review_below"] = max(decline_below, data["score"]["review_below"])
    return load_policy_text(yaml.safe_dump(data), source=version)


def test_assignment_is_stable_and_the_share_holds_over_many_customers() -> None:
    ids = [f"cust-{i}" for i in range(20_000)]
    first = [assignment_bucket(c) for c in ids]
    assert first == [assignment_bucket(c) for c in ids]  # the same person, the same place
    share = sum(b < 0.1 for b in first) / len(ids)
    assert 0.09 <= share <= 0.11  # binomial sd at n=20,000 is 0.002: five sd either side


def test_challenger_takes_its_share_and_each_customer_always_meets_the_same_policy(
    engine: Engine, application: dict[str, Any]
) -> None:
    engine.publish_policy(variant("strict-1", 900), actor="test")
    engine.set_policy_role("strict-1", "challenger", share=0.3)
    seen: dict[str, set[str]] = {}
    for i in range(60):
        body = copy.deepcopy(application)
        body["customer_id"] = f"cc-{i}"
        body["identity"]["device_id"] = f"dev-{i}"
        for _ in range(2):
            d = engine.decide(body)
            seen.setdefault(body["customer_id"], set()).add(d.policy_version)
    assert all(len(v) == 1 for v in seen.values())  # never switches policy
    challenged = {c for c, v in seen.items() if v == {"strict-1"}}
    assert challenged == {c for c in seen if assignment_bucket(c) < 0.3}
    assert 0 < len(challenged) < 60
    report = engine.compare_policies()
    by = {g["assignment"]: g for g in report["groups"]}
    assert by["challenger"]["decisions"] == 2 * len(challenged)
    assert by["challenger"]["approval_rate"] == 0.0  # decline below 900: nobody passes
    assert by["champion"]["decisions"] == 2 * (60 - len(challenged))
    # one applicant identity sent 120 times trips the velocity rules, but the champion approved the first ones
    assert by["champion"]["approve"] >= 1
    assert by["challenger"]["expected_bad_rate"] is None  # approved nobody
    assert 0 < by["champion"]["expected_bad_rate"] < 0.05  # scores well above 600 on the placeholder scaling
    assert by["champion"]["expected_loss"] > 0


def test_shadow_is_decided_and_stored_but_never_acts(engine: Engine, application: dict[str, Any]) -> None:
    engine.publish_policy(variant("shadow-1", 900), actor="test")
    engine.set_policy_role("shadow-1", "shadow")
    with engine.db.connect() as conn:
        events_before = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    live = engine.decide(application)
    assert live.outcome.value == "approve" and live.policy_version != "shadow-1"  # the champion answered
    with engine.db.connect() as conn:
        shadow = conn.execute(sa.select(decisions).where(decisions.c.shadow_of == live.decision_id)).one()
        events_after = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    assert (shadow.kind, shadow.assignment, shadow.policy_version) == ("shadow", "shadow", "shadow-1")
    assert shadow.outcome == "decline"  # what the shadow would have done
    assert shadow.identity_encrypted is None  # no second copy of the identifiers
    assert events_after == events_before + 1  # only the live application is an event
    assert engine.online_features(application["customer_id"])["customer_applications_30d"] == 1.0
    report = engine.compare_policies()
    assert (report["shadow_pairs"], report["shadow_swap_out"], report["shadow_swap_in"]) == (1, 1, 0)
    assert engine.verify_audit().ok  # shadow decisions are audited like any other


def test_roles_are_validated_and_audited(engine: Engine) -> None:
    engine.publish_policy(variant("cand-1", 560), actor="test")
    active = engine.active_policy_version()
    assert active is not None
    for args, field in (
        (("cand-1", "challenger", None), "share"),
        (("cand-1", "challenger", 1.5), "share"),
        (("cand-1", "boss", None), "role"),
        ((active, "shadow", None), "role"),
    ):
        with pytest.raises(FengkongError) as err:
            engine.set_policy_role(*args)
        assert err.value.field == field
    with pytest.raises(FengkongError) as err:
        engine.set_policy_role("nope", "shadow")
    assert (err.value.code, err.value.status) == ("unknown_policy_version", 404)
    engine.set_policy_role("cand-1", "challenger", 0.2)
    engine.set_policy_role("cand-1", None)
    assert engine._read_roles() == {}
    assert engine.verify_audit().ok


def test_promote_and_roll_back(engine: Engine, application: dict[str, Any]) -> None:
    original = engine.active_policy_version()
    assert original is not None
    engine.publish_policy(variant("next-1", 560), actor="test")
    engine.set_policy_role("next-1", "challenger", 0.5)
    engine.activate_policy("next-1")
    assert engine.active_policy_version() == "next-1"
    assert engine._read_roles() == {}  # the new champion gave up its challenger role
    assert engine.decide(application).policy_version == "next-1"
    engine.activate_policy(original)  # roll back
    assert engine.decide(application).policy_version == original
    with pytest.raises(FengkongError) as err:
        engine.activate_policy("never-published")
    assert err.value.status == 404
    assert engine.verify_audit().ok


def test_live_comparison_reports_the_realised_bad_rate_from_the_loan_book(
    sqlite_engine: Engine, application: dict[str, Any]
) -> None:
    import datetime as dt
    import hashlib

    engine = sqlite_engine
    lines = []
    for i in range(3):
        body = copy.deepcopy(application)
        body["customer_id"] = f"rl-{i}"
        body["identity"].pop("bank_card")
        body["identity"]["id_number_hash"] = hashlib.sha256(body["customer_id"].encode()).hexdigest()
        body["applicant"]["age"] = 36
        del body["identity"]["id_number"]
        body["identity"]["device_id"] = f"rl-dev-{i}"
        body["identity"]["phone"] = f"1390000000{i}"
        d = engine.decide(body)
        assert d.line_id is not None, d
        lines.append((d.customer_id, d.line_id))
    today = dt.date.today()
    # one loan booked 200 days ago and never repaid (bad), one booked today (good so far); the third has no loan
    engine.loans.open_loan(
        lines[0][0], 1000, "0.12", 6, "equal_instalment", today - dt.timedelta(days=200), line_id=lines[0][1]
    )
    engine.loans.open_loan(lines[1][0], 1000, "0.12", 6, "equal_instalment", today, line_id=lines[1][1])
    (champion,) = engine.compare_policies()["groups"]
    assert (champion["realised_observed"], champion["realised_bad"], champion["realised_bad_rate"]) == (2, 1, 0.5)


# ------------------------------------------------------------------------------------------------ shadow


def person(application: dict[str, Any], i: int, prefix: str = "sh", **applicant: Any) -> dict[str, Any]:
    """A distinct applicant (own identifiers), so velocity rules do not link the test's customers; ``prefix``
    names the customer (``{prefix}-{i}``), which sets their challenger bucket."""
    import hashlib

    body = copy.deepcopy(application)
    body["customer_id"] = f"{prefix}-{i}"
    ident = body["identity"]
    ident.pop("bank_card", None)
    del ident["id_number"]
    ident["id_number_hash"] = hashlib.sha256(body["customer_id"].encode()).hexdigest()
    ident["device_id"] = f"{prefix}-dev-{i}"
    ident["phone"] = f"137{i:08d}"
    body["applicant"]["age"] = 36
    body["applicant"].update(applicant)
    return body


def loose(version: str) -> Any:
    """Approves nearly anyone: no hard rules, no score cut-off."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = version
    data["rules"] = []
    data["score"]["decline_below"] = data["score"]["review_below"] = 0
    return load_policy_text(yaml.safe_dump(data), source=version)


def count(engine: Engine, table: Any, where: Any = None) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    with engine.db.connect() as conn:
        return int(conn.execute(query if where is None else query.where(where)).scalar_one())


def test_shadow_never_opens_or_changes_a_line_or_opens_a_case(engine: Engine, application: dict[str, Any]) -> None:
    from fengkong.store.tables import cases, credit_lines, line_actions

    champion = engine.active_policy_version()
    engine.publish_policy(loose("loose-1"), actor="test")
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"], data["score"]["review_below"] = "review-all", 900  # refers everyone it does not decline
    engine.publish_policy(load_policy_text(yaml.safe_dump(data), source="review-all"), actor="test")

    engine.set_policy_role("loose-1", "shadow")
    declined = engine.decide(person(application, 1, age=70))  # the champion declines (age), the shadow approves
    asks_much = person(application, 2)
    asks_much["requested_amount"] = 190_000  # over 10 × the monthly income of 18,000: the champion refers it
    referred = engine.decide(asks_much)
    assert (declined.outcome.value, referred.outcome.value) == ("decline", "review")
    with engine.db.connect() as conn:
        query = sa.select(decisions.c.shadow_of, decisions.c.outcome).where(decisions.c.kind == "shadow")
        mirrored = {r.shadow_of: r.outcome for r in conn.execute(query)}
    assert mirrored == {declined.decision_id: "approve", referred.decision_id: "approve"}
    engine.cases.sweep()  # the sweep, too, opens cases only for live REVIEW decisions
    assert count(engine, credit_lines) == count(engine, line_actions) == 0  # the shadow's approvals opened nothing
    assert declined.line_id is None and referred.line_id is None
    with engine.db.connect() as conn:
        case_decisions = list(conn.execute(sa.select(cases.c.decision_id)).scalars())
    assert case_decisions == [referred.decision_id]  # one case, for the live referral

    engine.set_policy_role("review-all", "shadow")  # moves the shadow role
    approved = engine.decide(person(application, 3))
    assert approved.outcome.value == "approve" and approved.policy_version == champion
    engine.cases.sweep()
    with engine.db.connect() as conn:
        shadow = conn.execute(sa.select(decisions).where(decisions.c.shadow_of == approved.decision_id)).one()
        line = conn.execute(sa.select(credit_lines)).one()
        acts = conn.execute(sa.select(line_actions.c.action, line_actions.c.policy_version)).all()
        case_decisions = list(conn.execute(sa.select(cases.c.decision_id)).scalars())
    assert (shadow.outcome, shadow.policy_version) == ("review", "review-all")
    assert (line.id, line.limit_amount, line.policy_version) == (approved.line_id, approved.limit, champion)
    assert [tuple(a) for a in acts] == [("open", champion)]  # only the live approval acted
    assert case_decisions == [referred.decision_id]  # the shadow's referral opened no case
    assert engine.verify_audit().ok


# ------------------------------------------------------------------------------------------------ comparison


def test_live_comparison_has_the_simulations_measures(sqlite_engine: Engine, application: dict[str, Any]) -> None:
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from fengkong.api import create_app
    from fengkong.cli import app
    from fengkong.policy.simulate import expected_pd

    engine = sqlite_engine
    champion = engine.active_policy_version()
    engine.publish_policy(variant("chal-2", 640), actor="test")  # stricter: declines below 640
    engine.publish_policy(loose("shadow-2"), actor="test")
    engine.set_policy_role("chal-2", "challenger", share=0.5)
    engine.set_policy_role("shadow-2", "shadow")
    incomes = [1900, 6000, 9000, 18000, 30000]
    made = [
        engine.decide(person(application, 100 + i, monthly_income=incomes[i % 5], employment_months=i % 30))
        for i in range(40)
    ]
    challenged = {d.customer_id for d in made if assignment_bucket(d.customer_id) < 0.5}
    assert {d.policy_version for d in made if d.customer_id in challenged} == {"chal-2"}
    on_line = next(d for d in made if d.customer_id in challenged and d.line_id)
    assert on_line.line_id is not None
    engine.lines.act(on_line.line_id, "freeze", actor="analyst-1", note="fraud call", reasons=["LINE_RISK_EVENTS"])

    report = engine.compare_policies(segments=["employment", "product"])
    by = {g["assignment"]: g for g in report["groups"]}
    assert set(by) == {"champion", "challenger", "shadow"}
    for role, version, chosen in (
        ("champion", champion, [d for d in made if d.customer_id not in challenged]),
        ("challenger", "chal-2", [d for d in made if d.customer_id in challenged]),
    ):
        g = by[role]
        approved = [d for d in chosen if d.outcome.value == "approve"]
        assert g["policy_version"] == version and g["decisions"] == len(chosen)
        assert g["approve"] == len(approved)
        assert g["review"] == sum(d.outcome.value == "review" for d in chosen)
        assert g["approval_rate"] == pytest.approx(len(approved) / len(chosen))
        assert g["limit_granted"] == sum(d.limit or 0 for d in approved)
        assert g["review_exposure"] == sum(d.limit or 0 for d in chosen if d.outcome.value == "review")
        if approved:
            pds = [expected_pd(d.score or 0) for d in approved]
            assert g["expected_bad_rate"] == pytest.approx(sum(pds) / len(pds))
            assert g["expected_loss"] == pytest.approx(sum(p * (d.limit or 0) for p, d in zip(pds, approved)))
        reasons: dict[str, dict[str, int]] = {}
        for d in chosen:
            for code in d.reasons:
                reasons.setdefault(code, {}).setdefault(d.outcome.value, 0)
                reasons[code][d.outcome.value] += 1
        assert g["reasons"] == reasons
    assert by["challenger"]["approval_rate"] < by["champion"]["approval_rate"] or by["challenger"]["approve"] == 0
    assert by["challenger"]["line_actions"] == {"freeze": {"LINE_RISK_EVENTS": 1}}
    assert by["champion"]["line_actions"] == {}
    # the shadow on the same 40 applications: its migration and swap sets
    assert by["shadow"]["decisions"] == 40 and report["shadow_pairs"] == 40
    (shadow,) = report["shadows"]
    live_not_approved = sum(d.outcome.value != "approve" for d in made)
    assert shadow["migration"]["decline"]["approve"] + shadow["migration"]["review"]["approve"] == live_not_approved
    assert shadow["swap_in"]["rows"] == live_not_approved and shadow["swap_out"]["rows"] == 0
    assert report["shadow_swap_in"] == live_not_approved
    # per segment, every group adds up to its whole
    employment = report["segments"]["employment"]
    assert sum(v["groups"]["challenger chal-2"]["decisions"] for v in employment) == by["challenger"]["decisions"]
    assert [v["value"] for v in report["segments"]["product"]] == ["consumer_line"]
    json.dumps(report, allow_nan=False)

    # the doors: CLI (JSON, Markdown, HTML report) and HTTP
    env = {"FENGKONG_DATABASE_URL": engine.database_url, "FENGKONG_SECRET_KEY": TEST_SECRET}
    out = Path(engine.database_url.removeprefix("sqlite:///")).parent / "cmp"
    r = CliRunner().invoke(app, ["policy", "compare", "--report", str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert "## Summary" in r.stdout and "challenger chal-2" in r.stdout and "## Shadow shadow-2: swap sets" in r.stdout
    assert "## Line actions by reason" in r.stdout and "| freeze | LINE_RISK_EVENTS |" in r.stdout
    page = (out / "comparison.html").read_text()
    assert "<svg" in page and "Outcome mix" in page and "<script" not in page
    r = CliRunner().invoke(app, ["policy", "compare", "--json", "--since", "2999-01-01"], env=env)
    assert r.exit_code == 0 and json.loads(r.stdout)["groups"] == []
    bad = CliRunner().invoke(app, ["policy", "compare", "--json", "--since", "yesterday"], env=env)
    assert bad.exit_code == 1 and json.loads(bad.stdout)["field"] == "since"
    client = TestClient(create_app(engine))
    auditor = {"X-API-Key": engine.create_api_key("auditor")}
    got = client.get("/v1/policies/compare", params={"segments": "employment,product"}, headers=auditor).json()
    assert [g["decisions"] for g in got["groups"]] == [g["decisions"] for g in report["groups"]]
    assert client.get("/v1/policies/compare", headers={"X-API-Key": engine.create_api_key("system")}).status_code == 403
