"""Collections: the one gate every contact passes (hard limits no strategy can loosen), the contact log, the
pause a complaint about a collector starts (with its case), and the queue ordered by expected recovery."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from fengkong.api import create_app
from fengkong.errors import FengkongError
from fengkong.loans import collections as coll
from fengkong.loans.collections import ContactContext, Strategy, check_contact
from fengkong.store.tables import collection_contacts

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def ctx(hour: int, minute: int = 0, **changes: Any) -> ContactContext:
    base: dict[str, Any] = {
        "local_time": dt.datetime(2026, 6, 1, hour, minute, tzinfo=SHANGHAI),
        "loan_status": "active",
        "dpd": 45,
        "bucket": "M2",
        "paused": False,
        "contacts_today": 0,
        "emergency_today": 0,
    }
    base.update(changes)
    return ContactContext(**base)


@pytest.mark.parametrize(
    ("hour", "minute", "refusal"),
    [
        (7, 59, "quiet_hours"),
        (8, 0, None),
        (12, 0, None),
        (21, 59, None),
        (22, 0, "quiet_hours"),
        (2, 30, "quiet_hours"),
    ],
)
def test_contact_hours(hour: int, minute: int, refusal: str | None) -> None:
    assert check_contact("call", "customer", ctx(hour, minute)) == refusal


def test_hard_limits_come_before_any_strategy() -> None:
    # a strategy that would allow everything, everywhere, still cannot break a hard limit
    anything = {b: Strategy(("sms", "app", "call"), emergency_contact=True) for b in ("M1", "M2", "M3", "M3+")}
    assert check_contact("call", "third_party", ctx(12), anything) == "third_party"
    assert check_contact("call", "customer", ctx(23), anything) == "quiet_hours"
    assert (
        check_contact("sms", "customer", ctx(12, contacts_today=coll.MAX_CONTACTS_PER_DAY), anything) == "daily_limit"
    )
    assert check_contact("call", "emergency_contact", ctx(12, emergency_today=1), anything) == (
        "emergency_contact_daily_limit"
    )
    assert check_contact("sms", "customer", ctx(12, paused=True), anything) == "collections_paused"
    assert check_contact("sms", "customer", ctx(12, dpd=0, bucket="current"), anything) == "not_delinquent"
    assert check_contact("sms", "customer", ctx(12, loan_status="paid_off"), anything) == "loan_not_collectable"
    assert check_contact("call", "emergency_contact", ctx(12, bucket="M1", dpd=5), anything) is None


def test_default_strategy_per_bucket() -> None:
    assert check_contact("sms", "customer", ctx(12, bucket="M1", dpd=5)) is None
    assert check_contact("call", "customer", ctx(12, bucket="M1", dpd=5)) == "not_in_strategy"  # M1: sms, app
    assert check_contact("call", "customer", ctx(12, bucket="M2", dpd=40)) is None
    assert check_contact("call", "emergency_contact", ctx(12, bucket="M2", dpd=40)) == "not_in_strategy"
    assert check_contact("call", "emergency_contact", ctx(12, bucket="M3", dpd=70)) is None
    assert check_contact("app", "customer", ctx(12, bucket="M3+", dpd=120)) == "not_in_strategy"


# ------------------------------------------------------------------------------------------ on the store


def _loan(engine: Any, customer: str, principal: str, start: dt.date, tz: str = "Asia/Shanghai") -> str:
    loan = engine.loans.open_loan(customer, principal, "0.12", 12, "equal_instalment", start, timezone=tz)
    return str(loan["loan_id"])


def test_contacts_are_gated_logged_and_paused_by_a_complaint(engine: Any) -> None:
    moment = {"now": dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)}  # 10:00 in Shanghai, 22:00 in New York
    engine.loans.clock = lambda: moment["now"]
    shanghai = _loan(engine, "cust-sh", "10000", dt.date(2026, 3, 15))  # first due 04-15: 47 DPD on 1 June (M2)
    new_york = _loan(engine, "cust-ny", "10000", dt.date(2026, 3, 15), tz="America/New_York")

    refused = engine.loans.contact(new_york, "call", "customer", "key:collector1")
    assert (refused["allowed"], refused["refusal"]) == (False, "quiet_hours")
    assert refused["local_time"].startswith("2026-05-31T22:00")
    results = [engine.loans.contact(shanghai, "call", "customer", "key:collector1")["allowed"] for _ in range(4)]
    assert results == [True, True, True, False]  # the fourth contact of the local day is refused
    assert engine.loans.contact(shanghai, "sms", "third_party", "key:collector1")["refusal"] == "third_party"
    assert engine.loans.contact(shanghai, "call", "emergency_contact", "key:c1")["refusal"] == "daily_limit"
    with pytest.raises(FengkongError) as caught:
        engine.loans.contact(shanghai, "fax", "customer", "key:collector1")  # malformed: an error, not logged
    assert caught.value.field == "channel"

    log = engine.loans.contacts("cust-sh")
    assert [(c["allowed"], c["refusal"]) for c in log] == [
        (True, None), (True, None), (True, None), (False, "daily_limit"), (False, "third_party"),
        (False, "daily_limit"),
    ]  # fmt: skip
    assert all(c["bucket"] == "M2" and c["dpd"] == 47 for c in log)
    moment["now"] = dt.datetime(2026, 6, 2, 1, 0, tzinfo=dt.UTC)  # the next local day: allowed again
    assert engine.loans.contact(shanghai, "call", "customer", "key:collector1")["allowed"] is True

    # a complaint about a collector, as an event: contact pauses and a complaint case opens
    engine.ingest(
        [
            {
                "type": "complaint",
                "event_id": "cmp-1",
                "customer_id": "cust-sh",
                "occurred_at": "2026-06-02T09:30:00+08:00",
                "category": "collector",
            }
        ]
    )
    assert engine.loans.paused("cust-sh")
    assert engine.loans.contact(shanghai, "sms", "customer", "key:c2")["refusal"] == "collections_paused"
    assert all(row["customer_id"] != "cust-sh" for row in engine.loans.queue(dt.date(2026, 6, 2)))
    with engine.db.connect() as conn:
        pause = conn.execute(sa.text("SELECT case_id, source FROM collection_pauses")).one()
    assert pause.source == "event:cmp-1"
    case = engine.cases.get(pause.case_id)
    assert (case["type"], case["customer_id"]) == ("complaint", "cust-sh")
    assert engine.loans.resume_collections("cust-sh", actor="key:supervisor") == 1
    assert engine.loans.contact(shanghai, "sms", "customer", "key:c2")["allowed"] is True
    assert engine.verify_audit().ok
    with engine.db.connect() as conn:
        logged = conn.execute(sa.select(sa.func.count()).select_from(collection_contacts)).scalar_one()
    assert logged == 10  # every attempt, allowed or refused, and nothing for the malformed one


def test_queue_by_expected_recovery_and_the_http_door(engine: Any) -> None:
    engine.loans.clock = lambda: dt.datetime(2026, 9, 1, 3, 0, tzinfo=dt.UTC)
    m1_big = _loan(engine, "cust-a", "50000", dt.date(2026, 7, 20))  # due 08-20: 12 DPD, M1
    m3_small = _loan(engine, "cust-b", "5000", dt.date(2026, 5, 20))  # due 06-20: 73 DPD, M3
    m2_mid = _loan(engine, "cust-c", "20000", dt.date(2026, 6, 25))  # due 07-25: 38 DPD, M2
    _loan(engine, "cust-d", "9000", dt.date(2026, 8, 10))  # first due 09-10: current, not in the queue
    engine.loans.pause_collections("cust-e", actor="key:someone")  # a paused customer without loans: harmless
    queue = engine.loans.queue(dt.date(2026, 9, 1))
    assert [q["loan_id"] for q in queue] == [m1_big, m2_mid, m3_small]
    for q in queue:
        assert q["expected_recovery"] == pytest.approx(q["outstanding"] * coll.RECOVERY_RATES[q["bucket"]], abs=0.01)
    assert [q["bucket"] for q in queue] == ["M1", "M2", "M3"]
    assert queue[2]["emergency_contact"] is True and queue[0]["channels"] == ["sms", "app"]

    client = TestClient(create_app(engine), raise_server_exceptions=False)
    keys = {role: {"X-API-Key": engine.create_api_key(role)} for role in ("analyst", "auditor", "system")}
    got = client.get("/v1/collections/queue", params={"as_of": "2026-09-01"}, headers=keys["analyst"])
    assert got.status_code == 200 and [q["loan_id"] for q in got.json()] == [m1_big, m2_mid, m3_small]
    for role in ("auditor", "system"):
        assert client.get("/v1/collections/queue", headers=keys[role]).status_code == 403
        denied = client.post(
            "/v1/collections/contacts", json={"loan_id": m1_big, "channel": "sms", "party": "customer"},
            headers=keys[role],
        )  # fmt: skip
        assert denied.status_code == 403
    ok = client.post(
        "/v1/collections/contacts",
        json={"loan_id": m1_big, "channel": "sms", "party": "customer", "result": "promise_to_pay"},
        headers=keys["analyst"],
    )
    assert ok.status_code == 200 and ok.json()["allowed"] is True
    refused = client.post(
        "/v1/collections/contacts", json={"loan_id": m1_big, "channel": "call", "party": "customer"},
        headers=keys["analyst"],
    )  # fmt: skip
    assert refused.status_code == 200 and refused.json()["refusal"] == "not_in_strategy"
    bad = client.post(
        "/v1/collections/contacts", json={"loan_id": "nope", "channel": "sms", "party": "customer"},
        headers=keys["analyst"],
    )  # fmt: skip
    assert (bad.status_code, bad.json()["code"]) == (404, "loan_not_found")
    assert [c["collector"].startswith("key:") for c in engine.loans.contacts("cust-a")] == [True, True]


def test_resolving_the_complaint_case_ends_the_pause(engine: Any) -> None:
    engine.loans.clock = lambda: dt.datetime(2026, 6, 1, 2, 0, tzinfo=dt.UTC)
    loan_id = _loan(engine, "cust-cx", "10000", dt.date(2026, 3, 15))
    pause = engine.loans.pause_collections("cust-cx", actor="key:supervisor")
    assert engine.loans.paused("cust-cx") and pause["case_id"] is not None
    assert engine.loans.contact(loan_id, "sms", "customer", "key:c1")["refusal"] == "collections_paused"
    engine.cases.claim(pause["case_id"], "key:analyst1")
    engine.cases.resolve(pause["case_id"], "key:analyst1", "upheld", "spoke to the collector's team; apology sent")
    assert not engine.loans.paused("cust-cx")
    assert engine.loans.contact(loan_id, "sms", "customer", "key:c1")["allowed"] is True


def test_collector_complaints_in_one_batch_each_pause_contact_once_with_their_own_case(engine: Any) -> None:
    def complaint(event_id: str, customer: str, category: str = "collector") -> dict[str, Any]:
        return {
            "type": "complaint",
            "event_id": event_id,
            "customer_id": customer,
            "occurred_at": "2026-06-02T09:30:00+08:00",
            "category": category,
        }

    batch = [complaint("cb-1", "cust-b1"), complaint("cb-2", "cust-b2"), complaint("cb-3", "cust-b3", "service")]
    engine.ingest(batch)
    engine.ingest([complaint("cb-1", "cust-b1"), complaint("cb-4", "cust-b1")])  # a retry, and a second one
    with engine.db.connect() as conn:
        pauses = conn.execute(
            sa.text("SELECT customer_id, source, case_id FROM collection_pauses ORDER BY source")
        ).all()
    assert [(p.customer_id, p.source) for p in pauses] == [
        ("cust-b1", "event:cb-1"), ("cust-b2", "event:cb-2"), ("cust-b1", "event:cb-4"),
    ]  # fmt: skip
    cases = [engine.cases.get(p.case_id) for p in pauses]
    assert len({c["case_id"] for c in cases}) == 3
    assert [(c["type"], c["event_id"], c["evidence"]["category"]) for c in cases] == [
        ("complaint", "cb-1", "collector"), ("complaint", "cb-2", "collector"), ("complaint", "cb-4", "collector"),
    ]  # fmt: skip
    # the complaint hook found the pause's case for the same event: one case per complaint event, no more
    complaints = engine.cases.list(type="complaint", limit=50)
    assert sorted(c["event_id"] for c in complaints) == ["cb-1", "cb-2", "cb-3", "cb-4"]
    assert engine.loans.paused("cust-b1") and engine.loans.paused("cust-b2") and not engine.loans.paused("cust-b3")
    assert engine.verify_audit().ok


def test_when_a_batchs_cases_cannot_be_written_its_alerts_and_pauses_still_are(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    # another customer's case already holds the source a complaint event would open its case under
    engine.cases.open("complaint", "cust-other", source="complaint:event:cf-9", evidence={"x": 1}, actor="key:a1")
    at = "2026-06-02T09:{:02d}:00+08:00"
    batch = [
        {"type": "login", "event_id": f"lf-{i}", "customer_id": "cust-f", "occurred_at": at.format(i), "success": False}
        for i in range(5)
    ]  # five failed logins in an hour: FAILED_LOGIN_BURST alerts
    batch.append(
        {
            "type": "complaint",
            "event_id": "cf-9",
            "customer_id": "cust-f",
            "occurred_at": at.format(9),
            "category": "collector",
        }
    )
    result = engine.ingest(batch)
    assert len(result.accepted) == 6 and result.alerts  # the events are stored and the alerts reported
    stored = {a["id"]: a for a in engine.list_alerts(customer_id="cust-f")}
    assert set(result.alerts) <= set(stored) and all(a["trigger_id"] == "FAILED_LOGIN_BURST" for a in stored.values())
    # the complaint still pauses contact, without a case (its source is taken), and nothing else was lost
    assert engine.loans.paused("cust-f")
    with engine.db.connect() as conn:
        pause = conn.execute(sa.text("SELECT case_id, source FROM collection_pauses")).one()
    assert pause.source == "event:cf-9" and pause.case_id is None
    assert [c["customer_id"] for c in engine.cases.list(type="complaint")] == ["cust-other"]
    assert engine.verify_audit().ok
