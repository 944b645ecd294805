"""Online features change decisions: velocity windows, the entity-link graph, the internal lists and victim
protection, each through Engine.decide with the bundled default policy.

Applications are placed in time with ``decide(app, as_of=...)``. The features describe what happened *before* an
application (windows cover ``(as_of - window, as_of]``, and the application itself is recorded after it is decided),
so "five customers on one device" is what the sixth applicant sees. Most tests run on SQLite; the last one runs on
both stores and restarts the engine.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import TEST_SECRET
from fengkong import Engine
from fengkong.domain import Outcome
from fengkong.errors import FengkongError
from fengkong.pii import id_number_check_digit
from fengkong.store.tables import decisions, risk_lists

ROOT = Path(__file__).resolve().parent.parent
BASE: dict[str, Any] = json.loads((ROOT / "examples" / "application.json").read_text(encoding="utf-8"))
BASE.pop("application_id")
T0 = dt.datetime(2026, 10, 5, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


# ------------------------------------------------------------------------------------------------ helpers


def id_number(n: int) -> str:
    """A valid 18-digit resident ID for person n: born 1975-1994 (aged 31-51 in 2026), check digit computed."""
    first17 = f"110101{1975 + n % 20}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return first17 + id_number_check_digit(first17)


def app(n: int, customer: str | None = None, **identity: str) -> dict[str, Any]:
    """The example application for person n, with identifiers of its own unless given."""
    data = copy.deepcopy(BASE)
    data["customer_id"] = customer or f"cust-{n:04d}"
    data["identity"] = {
        "id_number": id_number(n),
        "phone": f"139{n:08d}",
        "bank_card": f"6222 0212 {n:011d}",
        "device_id": f"dev-{n:04d}",
        "ip": f"198.51.{n // 200}.{n % 200 + 1}",
    } | identity
    return data


def stored_features(engine: Any, decision: Any) -> dict[str, Any]:
    with engine.db.connect() as conn:
        row = conn.execute(sa.select(decisions.c.features).where(decisions.c.id == decision.decision_id)).one()
    return dict(row.features)


def outcome(decision: Any) -> tuple[str, str | None]:
    return decision.outcome.value, (decision.reasons[0] if decision.reasons else None)


def test_id_numbers_and_the_base_application_are_clean(sqlite_engine: Any) -> None:
    """The premise of every test below: each person alone is approved with no reason."""
    assert len({id_number(n) for n in range(300)}) == 300
    for n in (0, 1, 250):
        d = sqlite_engine.decide(app(n), as_of=T0 + n * HOUR)
        assert outcome(d) == ("approve", None)
        f = stored_features(sqlite_engine, d)
        assert f["id_number_valid"] is True and 31 <= f["age"] <= 51


# ------------------------------------------------------------------------------------------------ velocity


def test_customers_piling_onto_one_device_are_reviewed_then_declined(sqlite_engine: Any) -> None:
    results = [sqlite_engine.decide(app(n, device_id="dev-farm"), as_of=T0 + n * DAY) for n in range(6)]
    seen = [stored_features(sqlite_engine, d)["device_distinct_customers_30d"] for d in results]
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [outcome(d) for d in results] == [
        ("approve", None),
        ("approve", None),
        ("approve", None),
        ("review", "DEVICE_NOT_VERIFIED"),  # DEVICE_SHARED: 3+ customers in 30 d
        ("review", "DEVICE_NOT_VERIFIED"),
        ("decline", "DEVICE_NOT_VERIFIED"),  # DEVICE_FARM: 5+
    ]
    # 30 days after the last of them the device is clean again (the window, not a permanent mark)
    later = sqlite_engine.decide(app(10, device_id="dev-farm"), as_of=T0 + 5 * DAY + 30 * DAY)
    assert stored_features(sqlite_engine, later)["device_distinct_customers_30d"] == 0.0
    assert outcome(later) == ("approve", None)


def test_devices_seen_in_events_are_the_devices_of_applications(sqlite_engine: Any) -> None:
    """Logins and device bindings sent as events count on the same device key as an application's device_id."""
    engine = sqlite_engine
    engine.ingest(
        [
            {
                "type": "login" if n % 2 else "device_bound",
                "event_id": f"ev-mule-{n}",
                "customer_id": f"cust-mule-{n}",
                "occurred_at": (T0 + n * HOUR).isoformat(),
                "device_id": " dev-mule ",  # normalised like the application's
            }
            for n in range(4)
        ]
    )
    d = engine.decide(app(9, device_id="dev-mule"), as_of=T0 + DAY)
    f = stored_features(engine, d)
    assert f["device_distinct_customers_30d"] == 4.0
    assert f["graph_group_size"] == 5.0 and f["graph_shared_identifiers"] == 1.0
    assert outcome(d) == ("review", "DEVICE_NOT_VERIFIED")


def test_four_applications_from_one_device_in_24h_trip_application_velocity(sqlite_engine: Any) -> None:
    """Two customers (below the shared-device rule) alternate on a device; exact at the 24 h edge."""
    engine = sqlite_engine
    for device, people in (("dev-edge-out", (1, 2)), ("dev-edge-in", (3, 4))):
        for i in range(4):
            d = engine.decide(app(people[i % 2], device_id=device), as_of=T0 + i * HOUR)
            assert outcome(d) == ("approve", None), (device, i, d.reasons)
    # T0 + 24 h: the application at T0 has just left the window (it covers (T0, T0 + 24 h])
    out = engine.decide(app(1, device_id="dev-edge-out"), as_of=T0 + 24 * HOUR)
    assert stored_features(engine, out)["device_applications_24h"] == 3.0
    assert outcome(out) == ("approve", None)
    # one second earlier it is still in: 4 applications in 24 h
    inside = engine.decide(app(3, device_id="dev-edge-in"), as_of=T0 + 24 * HOUR - dt.timedelta(seconds=1))
    assert stored_features(engine, inside)["device_applications_24h"] == 4.0
    assert outcome(inside) == ("review", "APPLICATION_VELOCITY")


def test_a_family_phone_shared_by_three_is_not_held_against_them(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    family = [engine.decide(app(n, phone="+86 139 1234 5678"), as_of=T0 + n * HOUR) for n in range(3)]
    assert [outcome(d) for d in family] == [("approve", None)] * 3
    last = stored_features(engine, family[-1])
    assert last["phone_distinct_customers_30d"] == 2.0 and last["graph_group_size"] == 3.0
    # each applies again a week later: still approved (their own earlier applications do not count against them)
    again = [engine.decide(app(n, phone="13912345678"), as_of=T0 + 7 * DAY + n * HOUR) for n in range(3)]
    assert [outcome(d) for d in again] == [("approve", None)] * 3
    # the rule is live: a phone already used by four customers is checked by a person
    engine.decide(app(3, phone="13912345678"), as_of=T0 + 8 * DAY)
    crowd = engine.decide(app(4, phone="13912345678"), as_of=T0 + 8 * DAY + HOUR)
    assert stored_features(engine, crowd)["phone_distinct_customers_30d"] == 4.0
    assert outcome(crowd) == ("review", "DEVICE_NOT_VERIFIED")


def test_two_hundred_colleagues_behind_one_office_ip_are_approved(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    office = "203.0.113.7"
    step = dt.timedelta(seconds=432)  # 200 applications over 24 h: about 8 an hour, below the 20/h rule
    results = [engine.decide(app(n, ip=office), as_of=T0 + n * step) for n in range(200)]
    assert [d.outcome for d in results].count(Outcome.APPROVE) == 200
    last = stored_features(engine, results[-1])
    assert last["ip_distinct_customers_24h"] == 199.0  # the IP is seen...
    assert last["ip_applications_1h"] == 8.0
    with engine.db.connect() as conn:
        seen = conn.execute(sa.select(decisions.c.features)).scalars().all()
    assert len(seen) == 200
    assert {(f["graph_group_size"], f["graph_shared_identifiers"]) for f in seen} == {(1.0, 0.0)}  # ...links no one
    # so a colleague found to be a fraudster does not taint the rest of the office
    engine.add_to_list("blacklist", "customer", "cust-0000", "confirmed_fraud")
    colleague = engine.decide(app(1, ip=office), as_of=T0 + DAY + 6 * HOUR)
    assert stored_features(engine, colleague)["graph_hops_to_fraud"] is None
    assert outcome(colleague) == ("approve", None)
    # the per-hour rule is live: 20 more within one hour and the next is reviewed
    burst_start = T0 + 2 * DAY
    for n in range(200, 220):
        engine.decide(app(n, ip=office), as_of=burst_start + (n - 200) * dt.timedelta(minutes=2))
    burst = engine.decide(app(220, ip=office), as_of=burst_start + 41 * dt.timedelta(minutes=1))
    assert stored_features(engine, burst)["ip_applications_1h"] == 20.0
    assert outcome(burst) == ("review", "APPLICATION_VELOCITY")


def test_decisions_as_of_a_past_moment_see_the_windows_as_of_then(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    a = T0 + 3 * DAY

    def login(event_id: str, offset_s: int, success: bool = False) -> dict[str, Any]:
        at = a + dt.timedelta(seconds=offset_s)
        return {
            "type": "login",
            "event_id": event_id,
            "customer_id": "cust-0007",
            "occurred_at": at.isoformat(),
            "success": success,
        }

    result = engine.ingest(
        [
            login("f-edge", -3600),  # exactly one hour before: out
            login("f-in1", -3599),
            login("f-in2", -60),
            login("ok", -30, success=True),  # a successful login is not a failed one
            login("f-at", 0),  # at the moment itself: in
        ]
    )
    assert len(result.accepted) == 5
    counts = [stored_features(engine, engine.decide(app(7), as_of=a))["customer_failed_logins_1h"]]
    engine.ingest([login("f-after", 1)])  # replayed in time order: what came after the first decision
    for moment in (a + dt.timedelta(seconds=3599), a + HOUR, a + 2 * HOUR):
        d = engine.decide(app(7), as_of=moment)
        counts.append(stored_features(engine, d)["customer_failed_logins_1h"])
    assert counts == [3.0, 2.0, 1.0, 0.0]


# ------------------------------------------------------------------------------------------------ lists and links


def test_a_blacklisted_device_declines_the_next_application_from_it(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    assert outcome(engine.decide(app(1, device_id="dev-stolen"), as_of=T0)) == ("approve", None)
    engine.add_to_list("blacklist", "device", "dev-stolen", "confirmed_fraud")
    d = engine.decide(app(2, device_id="dev-stolen"), as_of=T0 + HOUR)
    assert outcome(d) == ("decline", "IDENTITY_RISK")
    assert stored_features(engine, d)["list_blacklist_hit"] is True
    # a phone is matched after normalisation: the list holds only its keyed hash
    engine.add_to_list("blacklist", "phone", "+86 139 8888 0000", "confirmed_fraud")
    assert outcome(engine.decide(app(3, phone="13988880000"), as_of=T0 + 2 * HOUR)) == ("decline", "IDENTITY_RISK")
    with engine.db.connect() as conn:
        keys = conn.execute(sa.select(risk_lists.c.key_hash)).scalars().all()
    assert "dev-stolen" not in keys and "13988880000" not in keys
    # another device is unaffected
    assert outcome(engine.decide(app(4), as_of=T0 + 3 * HOUR)) == ("approve", None)


def _ring(engine: Any) -> None:
    """A — device — B — phone — C; D stands alone. All approved at first."""
    steps = [
        app(1, "cust-A", device_id="dev-ring", phone="13900000001"),
        app(2, "cust-B", device_id="dev-ring", phone="13900000002"),
        app(3, "cust-C", device_id="dev-C", phone="13900000002"),
        app(4, "cust-D"),
    ]
    for i, step in enumerate(steps):
        assert outcome(engine.decide(step, as_of=T0 + i * HOUR)) == ("approve", None)


def test_blacklisting_a_customer_reaches_those_linked_to_them(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    _ring(engine)
    engine.add_to_list("blacklist", "customer", "cust-A", "confirmed_fraud")
    later = T0 + DAY

    a = engine.decide(app(1, "cust-A", device_id="dev-A2"), as_of=later)
    assert outcome(a) == ("decline", "IDENTITY_RISK")
    newcomer = engine.decide(app(5, "cust-E", device_id="dev-ring"), as_of=later + HOUR)  # 1 hop, new to the graph
    assert outcome(newcomer) == ("decline", "LINKED_TO_FRAUD")
    b = engine.decide(app(2, "cust-B", device_id="dev-ring", phone="13900000002"), as_of=later + 2 * HOUR)
    assert stored_features(engine, b)["graph_hops_to_fraud"] == 1.0
    assert outcome(b) == ("decline", "LINKED_TO_FRAUD")
    c = engine.decide(app(3, "cust-C", device_id="dev-C", phone="13900000002"), as_of=later + 3 * HOUR)
    assert stored_features(engine, c)["graph_hops_to_fraud"] == 2.0
    assert outcome(c) == ("review", "LINKED_TO_FRAUD")
    d = engine.decide(app(4, "cust-D"), as_of=later + 4 * HOUR)
    assert stored_features(engine, d)["graph_hops_to_fraud"] is None
    assert outcome(d) == ("approve", None)


def test_a_watchlist_entry_sends_to_review(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    engine.add_to_list("watchlist", "bank_card", "6222 0212 00000000009", "chargeback_cluster")
    d = engine.decide(app(9), as_of=T0)
    assert outcome(d) == ("review", "IDENTITY_RISK")
    assert stored_features(engine, d)["list_watchlist_hit"] is True
    engine.add_to_list("watchlist", "customer", "cust-0008", "analyst_hunch")
    assert outcome(engine.decide(app(8), as_of=T0 + HOUR)) == ("review", "IDENTITY_RISK")
    # a watched customer is not a blacklisted one, also after a restart rebuilds the graph
    with Engine(engine.database_url, secret_key=TEST_SECRET) as restarted:
        assert outcome(restarted.decide(app(8), as_of=T0 + 2 * HOUR)) == ("review", "IDENTITY_RISK")


def test_expired_list_entries_no_longer_hit(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    engine.add_to_list("blacklist", "device", "dev-temp", "chargeback", expires_at=T0 + DAY)
    assert outcome(engine.decide(app(1, device_id="dev-temp"), as_of=T0)) == ("decline", "IDENTITY_RISK")
    expired = engine.decide(app(2, device_id="dev-temp"), as_of=T0 + DAY)  # expired at that very moment
    assert stored_features(engine, expired)["list_blacklist_hit"] is False
    assert outcome(expired) == ("approve", None)

    # a customer entry: the link graph forgets it too, for the customer and for those linked to them
    now = dt.datetime.now(dt.UTC)
    engine.decide(app(3, "cust-old", device_id="dev-shared"), as_of=now - HOUR)
    engine.add_to_list("blacklist", "customer", "cust-old", "old_case", expires_at=now - dt.timedelta(minutes=1))
    assert outcome(engine.decide(app(3, "cust-old", device_id="dev-shared"), as_of=now)) == ("approve", None)
    engine.add_to_list("blacklist", "customer", "cust-temp", "case_open", expires_at=now + DAY)
    assert outcome(engine.decide(app(4, "cust-temp"), as_of=now)) == ("decline", "IDENTITY_RISK")
    linked = engine.decide(app(5, device_id="dev-0004"), as_of=now + HOUR)
    assert outcome(linked) == ("decline", "LINKED_TO_FRAUD")
    after = engine.decide(app(5, device_id="dev-0004"), as_of=now + 2 * DAY)
    assert stored_features(engine, after)["graph_hops_to_fraud"] is None
    assert outcome(after) == ("approve", None)
    assert outcome(engine.decide(app(4, "cust-temp"), as_of=now + 2 * DAY + HOUR)) == ("approve", None)


def test_a_protected_victim_is_reviewed_and_never_blacklisted(sqlite_engine: Any) -> None:
    engine = sqlite_engine
    engine.decide(app(1, "cust-victim", device_id="dev-home"), as_of=T0)
    engine.decide(app(2, "cust-spouse", device_id="dev-home"), as_of=T0 + HOUR)
    engine.add_to_list("blacklist", "customer", "cust-victim", "reported_by_merchant")
    assert outcome(engine.decide(app(1, "cust-victim", device_id="dev-home"), as_of=T0 + DAY)) == (
        "decline",
        "IDENTITY_RISK",
    )
    assert outcome(engine.decide(app(2, "cust-spouse", device_id="dev-home"), as_of=T0 + DAY + HOUR)) == (
        "decline",
        "LINKED_TO_FRAUD",
    )

    engine.protect_customer("cust-victim", "scam_victim")
    victim = engine.decide(app(1, "cust-victim", device_id="dev-home"), as_of=T0 + 2 * DAY)
    assert victim.outcome is Outcome.REVIEW
    assert "ACCOUNT_PROTECTION" in victim.reasons and "IDENTITY_RISK" not in victim.reasons
    assert "LINKED_TO_FRAUD" not in victim.reasons
    features = stored_features(engine, victim)
    assert features["customer_protected"] is True and features["list_blacklist_hit"] is False
    spouse = engine.decide(app(2, "cust-spouse", device_id="dev-home"), as_of=T0 + 2 * DAY + HOUR)
    assert outcome(spouse) == ("approve", None)
    with engine.db.connect() as conn:
        entries = conn.execute(sa.select(risk_lists).where(risk_lists.c.key_hash == "cust-victim")).all()
    assert len(entries) == 1 and entries[0].removed_at is not None

    for list_name in ("blacklist", "watchlist"):
        with pytest.raises(FengkongError) as refused:
            engine.add_to_list(list_name, "customer", "cust-victim", "fraud")
        assert (refused.value.code, refused.value.status, refused.value.field) == ("protected_customer", 409, "value")
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(risk_lists)).scalar_one() == 1
    # and a restart does not bring the old entry back
    with Engine(engine.database_url, secret_key=TEST_SECRET) as restarted:
        again = restarted.decide(app(2, "cust-spouse", device_id="dev-home"), as_of=T0 + 3 * DAY)
        assert outcome(again) == ("approve", None)


# ------------------------------------------------------------------------------------------------ both stores


def test_lists_links_and_windows_survive_a_restart(engine: Any) -> None:
    """On SQLite and PostgreSQL: a new engine on the same database decides as the old one would."""
    now = dt.datetime.now(dt.UTC)
    engine.decide(app(1, "cust-ring-1", device_id="dev-ring"), as_of=now - 3 * HOUR)
    engine.decide(app(2, "cust-ring-2", device_id="dev-ring"), as_of=now - 2 * HOUR)
    engine.decide(app(3, "cust-watched"), as_of=now - 2 * HOUR)
    engine.decide(app(4, "cust-lapsed", device_id="dev-lapsed"), as_of=now - 2 * HOUR)
    engine.add_to_list("blacklist", "customer", "cust-ring-1", "confirmed_fraud")
    engine.add_to_list("watchlist", "customer", "cust-watched", "analyst_hunch")
    engine.add_to_list("blacklist", "customer", "cust-lapsed", "old", expires_at=now - dt.timedelta(minutes=5))
    engine.add_to_list("blacklist", "device", "dev-bad", "confirmed_fraud")

    with Engine(engine.database_url, secret_key=TEST_SECRET) as restarted:
        ring = restarted.decide(app(2, "cust-ring-2", device_id="dev-ring"))
        assert outcome(ring) == ("decline", "LINKED_TO_FRAUD")
        f = stored_features(restarted, ring)
        assert f["device_distinct_customers_30d"] == 2.0 and f["device_applications_24h"] == 2.0
        assert f["graph_group_size"] == 2.0 and f["graph_hops_to_fraud"] == 1.0
        assert outcome(restarted.decide(app(3, "cust-watched"))) == ("review", "IDENTITY_RISK")
        assert outcome(restarted.decide(app(4, "cust-lapsed", device_id="dev-lapsed"))) == ("approve", None)
        assert outcome(restarted.decide(app(5, device_id="dev-bad"))) == ("decline", "IDENTITY_RISK")


def test_community_job_stores_group_ids_and_feeds_a_feature(sqlite_engine: Any, tmp_path: Any) -> None:
    """The batch job finds a ring sharing devices, stores group ids (surviving a restart) and
    graph_community_size then tells a later decision how big the applicant's community is."""
    import sqlalchemy as sa

    from fengkong import Engine
    from fengkong.store.tables import graph_groups

    eng = sqlite_engine
    ring = [f"ring-{i}" for i in range(5)]
    events = []
    for i, customer in enumerate(ring):
        for device in (f"farm-{i % 2}", f"farm-{(i + 1) % 2}"):
            events.append(
                {
                    "type": "device_bound",
                    "event_id": f"{customer}-{device}",
                    "customer_id": customer,
                    "occurred_at": "2026-11-01T10:00:00Z",
                    "device_id": device,
                }
            )
    events.append(
        {
            "type": "device_bound",
            "event_id": "loner-1",
            "customer_id": "loner",
            "occurred_at": "2026-11-01T10:00:00Z",
            "device_id": "own-device",
        }
    )
    assert len(eng.ingest(events).accepted) == len(events)
    assert eng.online_features("ring-0")["graph_community_size"] is None  # no batch run yet

    summary = eng.find_communities(min_size=3)
    assert summary == {**summary, "groups": 1, "customers": 5, "largest": 5}
    with eng.db.connect() as conn:
        rows = conn.execute(sa.select(graph_groups)).all()
    assert sorted(r.customer_id for r in rows) == sorted(ring)
    assert len({r.group_id for r in rows}) == 1
    assert eng.online_features("ring-3")["graph_community_size"] == 5.0
    assert eng.online_features("loner")["graph_community_size"] is None
    assert eng.verify_audit().ok

    restarted = Engine(str(eng.db.url), secret_key=TEST_SECRET)
    assert restarted.online_features("ring-1")["graph_community_size"] == 5.0


def test_two_replicas_share_windows_through_redis(
    tmp_path: Path, application: dict[str, Any], redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API replicas (two Engines, one database, FENGKONG_REDIS_URL set) see each other's applications in
    the velocity windows, and a restart does not replay events into the shared state twice."""
    import uuid

    from fengkong.state.redis import RedisState

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("FENGKONG_REDIS_URL", redis_server.url)
    a = Engine(url, secret_key=TEST_SECRET)
    b = Engine(url, secret_key=TEST_SECRET)
    assert isinstance(a.online.velocity.state, RedisState)
    a.online.velocity.state.clear()  # a clean slate on the session's shared server
    device = f"dev-{uuid.uuid4().hex[:8]}"
    for engine, customer in ((a, "r-1"), (b, "r-2"), (a, "r-3")):
        body = copy.deepcopy(application)
        body["customer_id"] = customer
        body["identity"]["device_id"] = device
        engine.decide(body)
    probe = copy.deepcopy(application)
    probe["identity"]["device_id"] = device
    keys = b.explain(b.decide(probe).decision_id)["features"]
    assert keys["device_distinct_customers_30d"] == 3.0  # r-1 and r-3 were decided by the other replica
    c = Engine(url, secret_key=TEST_SECRET)  # a third replica starting later: no double counting
    assert c.online_features("r-1")["customer_applications_30d"] == 1.0
    a.online.velocity.state.clear()
