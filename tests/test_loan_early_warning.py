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
