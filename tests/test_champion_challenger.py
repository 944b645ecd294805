"""Champion/challenger and shadow policies: stable assignment, shadow never acting, live comparison."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from fengkong import Engine
from fengkong.errors import FengkongError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text
from fengkong.service import assignment_bucket
from fengkong.store.tables import decisions, events


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
