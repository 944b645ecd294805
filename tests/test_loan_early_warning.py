"""Early warning: post-loan features in the one registry, read by ordinary policy triggers, at event time and in
the daily columnar scan; the alerts land in the alerts table (and early-warning cases open from them)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fengkong.errors import FengkongError
from fengkong.features.registry import FEATURES
from fengkong.loans.early_warning import LOAN_FEATURES, customer_features
from fengkong.policy.errors import PolicyError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text

EARLY_WARNING = """triggers:
  - id: EW_FIRST_PAYMENT
    events: [login]
    when: loan_missed_first_payment and loan_dpd >= 1
    action: early_warning
    reason: EW_MISSED_FIRST_PAYMENT
  - id: EW_PROCEEDS
    events: [transfer_out]
    when: loan_proceeds_forbidden_share_30d >= 0.5
    action: early_warning
    reason: EW_PROCEEDS_FORBIDDEN_USE
  - id: EW_MULTI_HEAD
    events: [bureau_update]
    when: loan_active_count >= 1 and bureau_inquiries_30d_growth_90d >= 4
    action: alert
    reason: EW_MULTI_HEAD_AFTER_LOAN
"""


def policy_text() -> str:
    text = Path(DEFAULT_POLICY_PATH).read_text(encoding="utf-8")
    text = re.sub(r'(?m)^version: *"?([^"\s]+)"?', r'version: "\1-ew"', text, count=1)
    assert re.search(r"(?m)^triggers:\n", text)
    if "id: EW_FIRST_PAYMENT" in text:  # the bundled policy carries the early-warning triggers already
        return text
    return re.sub(r"(?m)^triggers:\n", EARLY_WARNING, text, count=1)


def test_loan_features_are_registered_and_policies_can_name_them() -> None:
    for name in LOAN_FEATURES:
        assert FEATURES.get(name) is not None and FEATURES.get(name).group == "loan"  # type: ignore[union-attr]
    load_policy_text(policy_text())
    with pytest.raises(PolicyError) as caught:
        load_policy_text(policy_text().replace("loan_dpd >= 1", "loan_dpdd >= 1"))
    assert "loan_dpdd" in str(caught.value)


def test_customer_features_columnar() -> None:
    day = dt.date(2026, 3, 20)
    loans = pl.DataFrame(
        {
            "loan_id": ["a", "b", "c"],
            "customer_id": ["x", "x", "y"],
            "start_date": [dt.date(2026, 1, 10), dt.date(2026, 3, 1), dt.date(2026, 3, 5)],
            "status": ["active", "active", "active"],
            "status_on": [None, None, None],
            "principal_cents": [100000, 200000, 50000],
        },
        schema_overrides={"status_on": pl.Date},
    )
    inst = pl.DataFrame(
        {
            "loan_id": ["a", "a", "b", "c"],
            "period": [1, 2, 1, 1],
            "due_date": [dt.date(2026, 2, 10), dt.date(2026, 3, 10), dt.date(2026, 4, 1), dt.date(2026, 4, 5)],
            "paid_on": [dt.date(2026, 2, 14), None, None, None],
            "principal_cents": [50000, 50000, 200000, 50000],
            "principal_paid_cents": [50000, 0, 0, 0],
        }
    )
    transfers = pl.DataFrame(
        {
            "customer_id": ["x", "x", "y"],
            "on": [dt.date(2026, 2, 20), dt.date(2026, 3, 2), dt.date(2026, 3, 6)],
            "amount": [9999.0, 1500.0, 100.0],
            "payee_category": ["securities", "lender", "property"],
        }
    )
    rows = {r["customer_id"]: r for r in customer_features(loans, inst, transfers, day).iter_rows(named=True)}
    x = rows["x"]
    assert (x["loan_active_count"], x["loan_outstanding"], x["loan_dpd"], x["loan_max_dpd"]) == (2, 2500.0, 10, 10)
    assert (x["loan_bucket"], x["loan_missed_first_payment"], x["loan_new_loans_30d"]) == ("M1", True, 1)
    # loan b (2,000) started 1 March; 1,500 went to another lender after it (the 20 February transfer predates it)
    assert x["loan_proceeds_forbidden_share_30d"] == pytest.approx(0.75)
    assert rows["y"]["loan_proceeds_forbidden_share_30d"] == pytest.approx(0.2)
    assert rows["y"]["loan_missed_first_payment"] is False


def test_early_warning_at_event_time_and_in_the_daily_scan(engine: Any) -> None:
    engine.publish_policy(load_policy_text(policy_text()), actor="test", activate=True)
    engine.loans.clock = lambda: dt.datetime(2026, 4, 1, 4, tzinfo=dt.UTC)
    engine.loans.open_loan("cust-fpd", "3000", "0.12", 3, "equal_principal", dt.date(2026, 1, 20))  # due 02-20
    engine.loans.open_loan("cust-ok", "3000", "0.12", 3, "equal_principal", dt.date(2026, 3, 25))
    engine.loans.open_loan("cust-sec", "8000", "0.12", 6, "equal_instalment", dt.date(2026, 3, 28))

    # proceeds moved to a securities account three days after the loan: the transfer's own trigger fires
    moved = engine.ingest(
        [
            {
                "type": "transfer_out",
                "event_id": "tr-1",
                "customer_id": "cust-sec",
                "occurred_at": "2026-03-31T15:00:00+08:00",
                "payee": "6222000011112222",
                "amount": 6000.0,
                "payee_category": "securities",
            }
        ]
    )
    alerts = engine.list_alerts(customer_id="cust-sec")
    assert [(a["trigger_id"], a["action"], a["reason"]) for a in alerts] == [
        ("EW_PROCEEDS", "early_warning", "EW_PROCEEDS_FORBIDDEN_USE")
    ]
    assert moved.alerts == [alerts[0]["id"]]
    assert alerts[0]["features"]["loan_proceeds_forbidden_share_30d"] == pytest.approx(0.75)

    # the daily scan finds the missed first payment (no event needed) and does not repeat open alerts
    scan = engine.loans.early_warning(dt.date(2026, 4, 1))
    assert scan["triggers"] == ["EW_FIRST_PAYMENT", "EW_PROCEEDS"]  # only those reading loan_* features alone
    assert [(a["customer_id"], a["trigger_id"]) for a in scan["alerts"]] == [("cust-fpd", "EW_FIRST_PAYMENT")]
    assert engine.loans.early_warning(dt.date(2026, 4, 2))["alerts"] == []
    opened = engine.cases.list(customer_id="cust-fpd")  # early_warning alerts open early-warning cases
    assert [c["type"] for c in opened] == ["early_warning"]

    # a bureau update showing new multi-head inquiries while a loan is outstanding
    base = {"type": "bureau_update", "customer_id": "cust-ok", "inquiries_7d": 0, "active_loans": 1, "total_debt": 0}
    early = {"event_id": "bu-1", "occurred_at": "2026-03-26T10:00:00+08:00", "inquiries_30d": 1, "inquiries_90d": 1}
    later = {"event_id": "bu-2", "occurred_at": "2026-03-30T10:00:00+08:00", "inquiries_30d": 6, "inquiries_90d": 6}
    engine.ingest([{**base, **early}, {**base, **later}])
    assert [a["trigger_id"] for a in engine.list_alerts(customer_id="cust-ok")] == ["EW_MULTI_HEAD"]
    with pytest.raises(FengkongError):
        engine.loans.customer_features("bad id!")
    assert engine.loans.customer_features("nobody")["loan_active_count"] == 0


# ------------------------------------------------------------------------------------------ the newer indicators

D = dt.date


def test_per_use_shares_utilisation_and_income_change_columnar() -> None:
    day = D(2026, 3, 20)
    loans = pl.DataFrame(
        {
            "loan_id": ["a", "b", "c", "d"],
            "customer_id": ["u", "u", "u", "v"],
            "line_id": ["L1", "L1", "L1", None],
            "start_date": [D(2026, 2, 1), D(2026, 3, 10), D(2026, 1, 5), D(2026, 3, 1)],
            "status": ["active", "active", "closed", "active"],
            "status_on": [None, None, D(2026, 2, 10), None],
            "principal_cents": [200000, 500000, 300000, 100000],
        },
        schema_overrides={"status_on": pl.Date},
    )
    inst = pl.DataFrame(
        {
            "loan_id": ["a", "b", "c", "d"],
            "period": [1, 1, 1, 1],
            "due_date": [D(2026, 3, 1), D(2026, 4, 10), D(2026, 2, 5), D(2026, 4, 1)],
            "paid_on": [D(2026, 3, 1), None, None, None],
            "principal_cents": [200000, 500000, 300000, 100000],
            "principal_paid_cents": [100000, 0, 0, 0],
        }
    )
    transfers = pl.DataFrame(
        {
            "customer_id": ["u", "u", "u", "v"],
            "on": [D(2026, 3, 11), D(2026, 3, 12), D(2026, 3, 21), D(2026, 3, 2)],
            "amount": [1400.0, 700.0, 9999.0, 600.0],
            "payee_category": ["property", "lender", "securities", "securities"],
        }
    )
    repayments = pl.DataFrame(
        {"loan_id": ["a"], "paid_on": [D(2026, 3, 1)], "principal_cents": [100000]},
        schema={"loan_id": pl.String, "paid_on": pl.Date, "principal_cents": pl.Int64},
    )
    lines = pl.DataFrame(
        {
            "customer_id": ["u", "u"],
            "line_id": ["L1", "L0"],
            "status": ["active", "closed"],
            "limit": [10000.0, 50000.0],
            "opened_on": [D(2026, 1, 1), D(2025, 1, 1)],
            "opening_income": [10000.0, 99999.0],
        }
    )
    incomes = pl.DataFrame(
        {
            "customer_id": ["u", "u", "u", "v"],
            "on": [D(2026, 2, 1), D(2026, 3, 15), D(2026, 3, 25), D(2026, 3, 15)],
            "monthly_income": [9000.0, 5000.0, 1000.0, 100.0],
        }
    )
    rows = {
        r["customer_id"]: r
        for r in customer_features(
            loans, inst, transfers, day, repayments=repayments, lines=lines, incomes=incomes
        ).iter_rows(named=True)
    }
    u, v = rows["u"], rows["v"]
    # recent principal of u: loan b, 5,000 (started 10 March; loan a started 1 February is older than 30 days).
    # After it: 1,400 to property, 700 to another lender; the 21 March transfer is after the as-of date
    assert u["loan_proceeds_forbidden_share_30d"] == pytest.approx(2100 / 5000)
    assert u["loan_proceeds_property_share_30d"] == pytest.approx(1400 / 5000)
    assert u["loan_proceeds_lender_share_30d"] == pytest.approx(700 / 5000)
    assert u["loan_proceeds_securities_share_30d"] == 0.0
    assert v["loan_proceeds_securities_share_30d"] == pytest.approx(0.6)
    # drawn on line L1 now: a (2,000 − 1,000 repaid) + b 5,000 = 6,000 of 10,000 (the closed line's limit does not
    # count; loan c was closed on 10 February). 30 days earlier (18 February): a's 2,000 only
    assert u["loan_utilisation"] == pytest.approx(0.6)
    assert u["loan_utilisation_change_30d"] == pytest.approx(0.4)
    # the latest income verified by 20 March (5,000) against 10,000 when line L1 opened (the closed line L0, older
    # and with another income, is not the base)
    assert u["loan_income_change"] == pytest.approx(-0.5)
    # v has no credit line: no utilisation and no income base
    assert (v["loan_utilisation"], v["loan_utilisation_change_30d"], v["loan_income_change"]) == (None, None, None)


MORE_TRIGGERS = """triggers:
  - id: EW_UTILISATION
    events: [login]
    when: loan_utilisation_change_30d >= 0.5 and loan_utilisation >= 0.6
    action: alert
    reason: EW_UTILISATION_RISING
  - id: EW_INCOME
    events: [bureau_update]
    when: loan_outstanding > 0 and loan_income_change <= -0.3
    action: alert
    reason: EW_INCOME_DROP
  - id: EW_DELINQUENT_FREEZE
    events: [login]
    when: loan_dpd >= 15
    action: freeze_line
    reason: EW_LOAN_DELINQUENT
  - id: EW_RELENDING
    events: [transfer_out]
    when: loan_proceeds_lender_share_30d >= 0.5
    action: early_warning
    reason: EW_PROCEEDS_FORBIDDEN_USE
"""


def test_indicators_raise_alerts_move_the_behaviour_score_and_act_on_the_line(
    engine: Any, application: dict[str, Any]
) -> None:
    """Rising utilisation and income drop raise alerts, a delinquent loan freezes the line through a trigger in the
    daily scan, and the same loans lower the behaviour score the line review reads."""
    text = re.sub(r"(?m)^triggers:\n", MORE_TRIGGERS, policy_text().replace('-ew"', '-ew2"'), count=1)
    engine.publish_policy(load_policy_text(text), actor="test", activate=True)
    moment = {"now": dt.datetime(2026, 3, 1, 2, tzinfo=dt.UTC)}  # 10:00 in Shanghai
    engine.loans.clock = lambda: moment["now"]
    decision = engine.decide({**application, "customer_id": "cust-ew"}, as_of=moment["now"])
    assert decision.outcome.value == "approve" and decision.line_id is not None
    line_id = decision.line_id
    limit = engine.lines.get(line_id)["limit"]
    score_before = behaviour_score(engine, line_id, D(2026, 3, 1))

    # 70 % of the line drawn at once (to the customer's own, already used account: not held)
    engine.ingest(
        [
            {
                "type": "transfer_out",
                "event_id": "ew-own",
                "customer_id": "cust-ew",
                "occurred_at": "2026-02-20T10:00:00+08:00",
                "payee": "6222000011112222",
                "amount": 100.0,
            }
        ]
    )
    drawn = engine.lines.drawdown(
        line_id, {"amount": round(limit * 0.7), "term": 3, "destination_account": "6222000011112222"}
    )
    assert drawn.outcome.value == "approve", drawn.response()
    features = engine.loans.customer_features("cust-ew", D(2026, 3, 1))
    assert features["loan_utilisation"] == pytest.approx(round(limit * 0.7) / limit)
    assert features["loan_utilisation_change_30d"] == features["loan_utilisation"]  # nothing drawn 30 days ago
    scan = engine.loans.early_warning(D(2026, 3, 1))
    assert [(a["customer_id"], a["trigger_id"]) for a in scan["alerts"]] == [("cust-ew", "EW_UTILISATION")]
    score_drawn = behaviour_score(engine, line_id, D(2026, 3, 1))
    assert score_drawn < score_before  # utilisation costs behaviour points

    # income verified at half what was declared: the bureau update's own trigger fires
    moment["now"] = dt.datetime(2026, 3, 10, 2, tzinfo=dt.UTC)
    engine.ingest(
        [
            {
                "type": "bureau_update",
                "event_id": "ew-income",
                "customer_id": "cust-ew",
                "occurred_at": "2026-03-10T09:00:00+08:00",
                "inquiries_7d": 0,
                "inquiries_30d": 1,
                "inquiries_90d": 2,
                "active_loans": 1,
                "total_debt": 12000,
                "monthly_income": 9000,
            }
        ]
    )
    income = [a for a in engine.list_alerts(customer_id="cust-ew") if a["trigger_id"] == "EW_INCOME"]
    assert len(income) == 1 and income[0]["features"]["loan_income_change"] == pytest.approx(-0.5)
    assert income[0]["reason"] == "EW_INCOME_DROP"

    # half the proceeds sent to another lender (转贷): the transfer's own trigger reads the per-use share
    engine.ingest(
        [
            {
                "type": "transfer_out",
                "event_id": "ew-relend",
                "customer_id": "cust-ew",
                "occurred_at": "2026-03-10T10:00:00+08:00",
                "payee": "6222999988887777",
                "amount": round(limit * 0.7) * 0.6,
                "payee_category": "lender",
            }
        ]
    )
    relend = [a for a in engine.list_alerts(customer_id="cust-ew") if a["trigger_id"] == "EW_RELENDING"]
    assert len(relend) == 1 and relend[0]["features"]["loan_proceeds_lender_share_30d"] == pytest.approx(0.6)

    # the first instalment (due 1 April) is missed: on 20 April the daily scan freezes the line through a trigger
    moment["now"] = dt.datetime(2026, 4, 20, 2, tzinfo=dt.UTC)
    assert engine.lines.get(line_id)["status"] == "active"
    assert behaviour_score(engine, line_id, D(2026, 4, 20)) < score_drawn  # so do days past due
    scan = engine.loans.early_warning(D(2026, 4, 20))
    assert {a["trigger_id"] for a in scan["alerts"]} == {"EW_DELINQUENT_FREEZE", "EW_FIRST_PAYMENT"}
    line = engine.lines.get(line_id)
    assert line["status"] == "frozen" and "EW_LOAN_DELINQUENT" in [r["code"] for r in line["reasons"]]
    with pytest.raises(FengkongError) as caught:
        engine.lines.drawdown(line_id, {"amount": 100, "term": 3, "destination_account": "6222000011112222"})
    assert caught.value.code == "line_not_active"
    assert engine.verify_audit().ok


def behaviour_score(engine: Any, line_id: str, day: dt.date) -> float:
    """The behaviour score a (dry-run) line review gives the line on ``day``."""
    rows = {r["line_id"]: r for r in engine.lines.review(day).table.iter_rows(named=True)}
    score = rows[line_id]["behaviour_score"]
    assert isinstance(score, float)
    return score


def test_a_batch_still_being_written_is_counted_once(sqlite_engine: Any) -> None:
    """The events door writes a batch while its triggers run: the loan features count the batch's own transfers
    and bureau updates whether or not the write has finished, and an event already stored is not counted twice."""
    from fengkong.events.ingest import parse_events, protect

    engine = sqlite_engine
    engine.loans.clock = lambda: dt.datetime(2026, 4, 1, 4, tzinfo=dt.UTC)
    engine.loans.open_loan("cust-b", "8000", "0.12", 6, "equal_instalment", dt.date(2026, 3, 28))
    item = {
        "type": "transfer_out",
        "event_id": "tr-b1",
        "customer_id": "cust-b",
        "occurred_at": "2026-03-31T15:00:00+08:00",
        "payee": "6222000011112222",
        "amount": 4000.0,
        "payee_category": "securities",
    }
    (_, event), *_ = parse_events([item])[0]
    payload, keys = protect(event, engine.vault)
    batch = [(event, event.utc(), keys, payload)]
    at = dt.datetime(2026, 3, 31, 8, tzinfo=dt.UTC)
    assert engine.loans.customer_features("cust-b", at)["loan_proceeds_forbidden_share_30d"] == 0.0
    assert engine.loans.customer_features("cust-b", at, batch=batch)["loan_proceeds_securities_share_30d"] == 0.5
    engine.ingest([item])  # now stored as well: still counted once
    assert engine.loans.customer_features("cust-b", at, batch=batch)["loan_proceeds_forbidden_share_30d"] == 0.5
