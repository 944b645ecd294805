"""Event ingestion: every door (Python, HTTP, CLI) stores each event once, durably, with identifiers only as keyed
hashes, counts it in the online features once, and refuses malformed events with their index, field and reason
while keeping the valid ones. Storage-touching tests take the `engine` fixture, so they run on SQLite and on a real
PostgreSQL server.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import TEST_SECRET
from fengkong import Engine
from fengkong.api import create_app
from fengkong.cli import app as cli_app
from fengkong.errors import FengkongError
from fengkong.events.schema import EVENT_TYPES
from fengkong.pii import normalize, sha256_hex
from fengkong.store.tables import events

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_EVENTS_FILE = ROOT / "examples" / "events.jsonl"
EXAMPLE_EVENTS: list[dict[str, Any]] = [
    json.loads(line) for line in EXAMPLE_EVENTS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()
]
T = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)  # a fixed moment for tests that pass as_of


# ------------------------------------------------------------------------------------------------ helpers


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def login(event_id: str, customer: str, at: dt.datetime, success: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "type": "login",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": iso(at),
        "success": success,
        **extra,
    }


def payment(event_id: str, customer: str, at: dt.datetime, amount: float, merchant: str = "mch-1") -> dict[str, Any]:
    return {
        "type": "payment",
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": iso(at),
        "merchant_id": merchant,
        "amount": amount,
    }


def key(engine: Any, kind: str, raw: str) -> str:
    """The keyed hash the engine stores and counts for a raw identifier."""
    return str(engine.vault.keyed_hash(kind, sha256_hex(normalize(kind, raw))))


def stored(engine: Any) -> dict[str, dict[str, Any]]:
    with engine.db.connect() as conn:
        rows = conn.execute(sa.select(events)).mappings().all()
    return {r["event_id"]: dict(r) for r in rows}


def features(engine: Any, customer: str, at: dt.datetime, **identity: str) -> dict[str, Any]:
    """Online features as of ``at``; identity maps e.g. device_id='raw' to its keyed hash."""
    kinds = {"device_id": "device", "ip": "ip", "phone": "phone", "id_number": "id_number", "bank_card": "bank_card"}
    protected = {f"{name}_key": key(engine, kinds[name], raw) for name, raw in identity.items()}
    return dict(engine.online_features(customer, protected, as_of=at))


def activity(prefix: str, customer: str, at: dt.datetime) -> list[dict[str, Any]]:
    """Three failed logins within the hour before ``at`` and two payments within the day: 3 and 150.0."""
    return [
        login(f"{prefix}-l1", customer, at - dt.timedelta(minutes=50), device_id="dev-777"),
        login(f"{prefix}-l2", customer, at - dt.timedelta(minutes=20), device_id="dev-777"),
        login(f"{prefix}-l3", customer, at - dt.timedelta(minutes=5), device_id="dev-777"),
        login(f"{prefix}-l4", customer, at - dt.timedelta(minutes=4), success=True, device_id="dev-777"),
        payment(f"{prefix}-p1", customer, at - dt.timedelta(hours=3), 100.0),
        payment(f"{prefix}-p2", customer, at - dt.timedelta(hours=2), 50.0),
    ]


# ------------------------------------------------------------------------------------------------ Python door


def test_every_example_event_ingests(engine: Any) -> None:
    assert {e["type"] for e in EXAMPLE_EVENTS} == set(EVENT_TYPES), "examples/events.jsonl shows every type"
    result = engine.ingest(EXAMPLE_EVENTS)
    assert result.rejected == []
    assert result.accepted == [e["event_id"] for e in EXAMPLE_EVENTS]
    rows = stored(engine)
    assert {i: r["type"] for i, r in rows.items()} == {e["event_id"]: e["type"] for e in EXAMPLE_EVENTS}
    # and each is counted where its windows say
    after_transfer = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)  # 11:00 +08:00, an hour after the drawdown
    f = engine.online_features("cust-000123", as_of=after_transfer)
    assert f["customer_drawdown_sum_24h"] == 5000.0
    assert f["customer_transfer_out_sum_24h"] == 4800.0
    assert f["customer_payment_sum_24h"] == 268.5
    assert f["customer_applications_30d"] == 1.0
    assert f["customer_new_devices_24h"] == 0.0  # bound 26 h before
    f = engine.online_features("cust-000123", as_of=dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC))
    assert f["customer_new_devices_24h"] == 1.0
    assert f["customer_password_changes_24h"] == 1.0
    assert f["customer_distinct_devices_7d"] == 1.0
    end = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
    assert engine.online_features("cust-000123", as_of=end)["customer_complaints_30d"] == 1.0


def test_the_same_batch_twice_is_stored_and_counted_once(engine: Any) -> None:
    batch = activity("dup", "cust-dup", T)
    first = engine.ingest(batch)
    assert len(first.accepted) == len(batch) and first.duplicates == [] and first.rejected == []
    before = features(engine, "cust-dup", T)
    assert before["customer_failed_logins_1h"] == 3.0
    assert before["customer_payment_sum_24h"] == 150.0

    again = engine.ingest(batch)
    assert again.accepted == []
    assert again.duplicates == [e["event_id"] for e in batch]
    assert features(engine, "cust-dup", T) == before
    assert len(stored(engine)) == len(batch)


def test_duplicates_inside_one_batch_count_once(engine: Any) -> None:
    one = login("in-1", "cust-in", T - dt.timedelta(minutes=10))
    other = login("in-2", "cust-in", T - dt.timedelta(minutes=9))
    result = engine.ingest([one, one, other, dict(one), other])
    assert result.accepted == ["in-1", "in-2"]
    assert result.rejected == []
    assert features(engine, "cust-in", T)["customer_failed_logins_1h"] == 2.0
    assert set(stored(engine)) == {"in-1", "in-2"}


def test_a_batch_with_malformed_items_keeps_the_valid_ones(engine: Any) -> None:
    at = T - dt.timedelta(minutes=30)
    good = [login("ok-1", "cust-mix", at), payment("ok-2", "cust-mix", at, 99.5)]
    batch: list[Any] = [
        good[0],
        "not an object",  # 1
        login("bad-type", "cust-mix", at) | {"type": "teleport"},  # 2
        {k: v for k, v in login("bad-missing", "cust-mix", at).items() if k != "customer_id"},  # 3
        login("bad-bool", "cust-mix", at) | {"success": "no"},  # 4
        payment("bad-neg", "cust-mix", at, -5),  # 5
        login("bad-naive", "cust-mix", at) | {"occurred_at": "2026-11-02T09:30:00"},  # 6
        login("bad-number", "cust-mix", at) | {"occurred_at": 1_793_000_000},  # 7
        good[1],
        [login("bad-list", "cust-mix", at)],  # 9
    ]
    result = engine.ingest(batch)
    assert result.accepted == ["ok-1", "ok-2"]
    errors = {r.index: r for r in result.rejected}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6, 7, 9]
    expected = {
        1: ("invalid_event", None, "object", None),
        2: ("invalid_field", "type", "teleport", "bad-type"),
        3: ("missing_field", "customer_id", "required", "bad-missing"),
        4: ("invalid_field", "success", "true or false", "bad-bool"),
        5: ("invalid_field", "amount", "greater than 0", "bad-neg"),
        6: ("invalid_field", "occurred_at", "timezone", "bad-naive"),
        7: ("invalid_field", "occurred_at", "ISO 8601", "bad-number"),
        9: ("invalid_event", None, "object", None),
    }
    for index, (code, field, text, event_id) in expected.items():
        r = errors[index]
        assert (r.code, r.field, r.event_id) == (code, field, event_id), r
        assert text in r.message, r
    as_dict = result.as_dict()
    assert (as_dict["accepted"], as_dict["duplicates"], as_dict["rejected"]) == (2, 0, 8)
    assert as_dict["errors"][0] == {
        "index": 1,
        "event_id": None,
        "code": "invalid_event",
        "field": None,
        "message": errors[1].message,
    }
    # only the valid ones are stored and counted
    assert set(stored(engine)) == {"ok-1", "ok-2"}
    f = features(engine, "cust-mix", T)
    assert f["customer_failed_logins_1h"] == 1.0
    assert f["customer_payment_sum_24h"] == 99.5


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"amount": -1}, "invalid_field", "amount"),
        ({"amount": "12"}, "invalid_field", "amount"),
        ({"customer_id": None}, "missing_field", "customer_id"),
        ({"occurred_at": "2026-11-02T09:30:00"}, "invalid_field", "occurred_at"),
        ({"colour": "red"}, "unknown_field", "colour"),
        ({"type": "teleport"}, "invalid_field", "type"),
    ],
)
def test_a_single_invalid_event_is_refused_whole(engine: Any, change: dict[str, Any], code: str, field: str) -> None:
    event = payment("single-1", "cust-single", T, 10.0) | change
    event = {k: v for k, v in event.items() if v is not None}
    with pytest.raises(FengkongError) as caught:
        engine.ingest_json(json.dumps(event))
    assert (caught.value.code, caught.value.field, caught.value.status) == (code, field, 422)
    assert field in str(caught.value)
    assert stored(engine) == {}


def test_a_single_valid_event_via_ingest_json(engine: Any) -> None:
    result = engine.ingest_json(json.dumps(payment("single-ok", "cust-single", T, 10.0)))
    assert result.accepted == ["single-ok"]
    assert set(stored(engine)) == {"single-ok"}


def test_an_all_invalid_batch_is_refused_with_every_problem(engine: Any) -> None:
    batch = ["x", {"type": "login"}, payment("neg", "cust-x", T, 0)]
    with pytest.raises(FengkongError) as caught:
        engine.ingest_json(json.dumps(batch))
    err = caught.value
    assert (err.code, err.status, err.field) == ("no_valid_events", 422, "events[0]")
    assert [p.field for p in err.problems] == ["events[0]", "events[1].event_id", "events[2].amount"]
    assert stored(engine) == {}
    # the {"events": [...]} form is the same
    with pytest.raises(FengkongError) as caught:
        engine.ingest_json(json.dumps({"events": batch}))
    assert caught.value.code == "no_valid_events"


def test_a_batch_of_only_duplicates_is_not_an_error(engine: Any) -> None:
    batch = [login("again-1", "cust-a", T)]
    engine.ingest_json(json.dumps(batch))
    result = engine.ingest_json(json.dumps(batch))
    assert (result.accepted, result.duplicates) == ([], ["again-1"])


def test_events_are_durable_and_a_restart_rebuilds_the_same_features(engine: Any) -> None:
    """A new engine on the same database (a restarted process) replays the stored events: same windows, same graph,
    and nothing counted twice when a sender retries after the restart."""
    now = dt.datetime.now(dt.UTC)
    batch = [
        *activity("dur", "cust-dur", now),
        # two other customers on the same device: one of them was declined elsewhere in the stream
        login("dur-o1", "cust-dur-2", now - dt.timedelta(hours=2), success=True, device_id="dev-777"),
        {
            "type": "application",
            "event_id": "dur-o2",
            "customer_id": "cust-dur-3",
            "occurred_at": iso(now - dt.timedelta(hours=1)),
            "device_id": "dev-777",
            "phone": "+86 139 0000 1111",
            "outcome": "decline",
        },
        {
            "type": "transfer_out",
            "event_id": "dur-t1",
            "customer_id": "cust-dur",
            "occurred_at": iso(now - dt.timedelta(hours=1)),
            "payee": "6217 0000 1111 2222 333",
            "amount": 800,
        },
    ]
    engine.ingest(batch)
    live = features(engine, "cust-dur", now, device_id="dev-777")
    assert live["customer_failed_logins_1h"] == 3.0
    assert live["customer_payment_sum_24h"] == 150.0
    assert live["customer_transfer_out_sum_24h"] == 800.0
    assert live["device_distinct_customers_30d"] == 3.0
    assert live["graph_group_size"] == 3.0
    assert live["graph_group_declined"] == 1.0

    with Engine(engine.database_url, secret_key=TEST_SECRET) as restarted:
        assert features(restarted, "cust-dur", now, device_id="dev-777") == live
        phone = features(restarted, "cust-new", now, phone="13900001111")
        assert phone["phone_distinct_customers_30d"] == 1.0
        payee = {"customer": "cust-other", "payee": key(restarted, "payee", "6217 0000 1111 2222 333")}
        assert restarted.online.features(payee, now.timestamp())["payee_distinct_senders_30d"] == 1.0
        retry = restarted.ingest(batch)
        assert retry.accepted == [] and len(retry.duplicates) == len(batch)
        assert features(restarted, "cust-dur", now, device_id="dev-777") == live


def test_identifiers_are_stored_only_as_keyed_hashes(engine: Any) -> None:
    engine.ingest(EXAMPLE_EVENTS)
    raw = {
        "device": "a3f9c2e1-7d4b-4c8e-9f10-2b6d8e4a1c77",
        "ip": "203.0.113.42",
        "phone": "13800138000",
        "payee": "6217 0000 1111 2222 333",
    }
    rows = stored(engine)
    text = json.dumps([r["payload"] for r in rows.values()])
    for value in (*raw.values(), "621700001111222233" + "3", "a3f9c2e1"):
        assert value not in text, value
    login_payload = rows["ev-0001"]["payload"]
    assert set(login_payload) >= {"device_id_key", "ip_key"} and "device_id" not in login_payload
    assert login_payload["device_id_key"] == key(engine, "device", raw["device"])
    assert login_payload["device_id_key"] != sha256_hex(raw["device"]), "keyed with the secret, not a plain digest"
    transfer = rows["ev-0008"]["payload"]
    assert "payee" not in transfer and transfer["payee_key"] == key(engine, "payee", raw["payee"])
    application = rows["ev-0004"]["payload"]
    assert application["phone_key"] == key(engine, "phone", "+86 138 0013 8000"), "normalised before hashing"
    # the keys are what the windows count on
    at = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)
    payee = {"customer": "someone-else", "payee": transfer["payee_key"]}
    assert engine.online.features(payee, at.timestamp())["payee_distinct_senders_30d"] == 1.0
    assert features(engine, "someone-else", at, device_id=raw["device"])["device_distinct_customers_30d"] == 1.0


# ------------------------------------------------------------------------------------------------ HTTP door


class Api:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.client = TestClient(create_app(engine), raise_server_exceptions=False)
        self.keys = {role: engine.create_api_key(role) for role in ("system", "analyst")}

    def post(self, body: Any, role: str = "system") -> Any:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "X-API-Key": self.keys[role]}
        return self.client.post("/v1/events", content=content, headers=headers)


def test_http_post_events_one_list_and_wrapped(engine: Any) -> None:
    api = Api(engine)
    now = dt.datetime.now(dt.UTC)
    one = api.post(login("h-1", "cust-http", now - dt.timedelta(minutes=3)))
    assert one.status_code == 200, one.text
    assert one.json()["accepted"] == 1 and one.json()["accepted_ids"] == ["h-1"]

    listed = api.post([login("h-2", "cust-http", now - dt.timedelta(minutes=2)), "bad"])
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["errors"] == [
        {"index": 1, "event_id": None, "code": "invalid_event", "field": None, "message": body["errors"][0]["message"]}
    ]

    wrapped = api.post({"events": [login("h-3", "cust-http", now - dt.timedelta(minutes=1)), login("h-1", "x", now)]})
    assert wrapped.status_code == 200, wrapped.text
    assert (wrapped.json()["accepted_ids"], wrapped.json()["duplicate_ids"]) == (["h-3"], ["h-1"])
    assert set(stored(engine)) == {"h-1", "h-2", "h-3"}

    got = api.client.get("/v1/customers/cust-http/features", headers={"X-API-Key": api.keys["analyst"]})
    assert got.status_code == 200, got.text
    assert got.json()["customer_failed_logins_1h"] == 3.0
    assert got.json()["graph_group_size"] == 1.0


def test_http_post_events_refusals(engine: Any) -> None:
    api = Api(engine)
    event = login("h-x", "cust-http", dt.datetime.now(dt.UTC))

    forbidden = api.post(event, role="analyst")
    assert forbidden.status_code == 403, forbidden.text
    assert forbidden.json()["code"] == "forbidden"

    no_key = api.client.post("/v1/events", content=json.dumps(event).encode())
    assert no_key.status_code == 401, no_key.text

    malformed = api.post(b'{"type": "login", "event_id": ')
    assert malformed.status_code == 400, malformed.text
    assert (malformed.json()["code"], malformed.json()["field"]) == ("malformed_json", "body")

    single = api.post(event | {"amount": 5})
    assert single.status_code == 422 and single.json()["field"] == "amount", single.text

    none_valid = api.post([event | {"occurred_at": "yesterday"}])
    assert none_valid.status_code == 422, none_valid.text
    assert (none_valid.json()["code"], none_valid.json()["field"]) == ("no_valid_events", "events[0].occurred_at")

    assert stored(engine) == {}
    assert engine.online_features("cust-http")["customer_failed_logins_1h"] == 0.0


# ------------------------------------------------------------------------------------------------ CLI door


def test_cli_ingest_twice_then_a_bad_file(tmp_path: Path) -> None:
    db_file = tmp_path / "cli.db"
    runner = CliRunner()
    environment = {
        "FENGKONG_DATABASE_URL": f"sqlite:///{db_file}",
        "FENGKONG_SECRET_KEY": None,
        "FENGKONG_SECRET_FILE": None,
        "COLUMNS": "200",
    }

    def invoke(*args: str) -> Any:
        return runner.invoke(cli_app, list(args), env=environment, catch_exceptions=False)

    first = invoke("ingest", str(EXAMPLE_EVENTS_FILE), "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"accepted": 11, "duplicates": 0, "rejected": 0, "errors": []}

    second = invoke("ingest", str(EXAMPLE_EVENTS_FILE))
    assert second.exit_code == 0, second.output
    assert "accepted 0, duplicates 11" in second.stdout

    bad = tmp_path / "bad.jsonl"
    lines = [
        json.dumps(login("cli-1", "cust-cli", T)),
        "",
        "{not json",
        json.dumps(payment("cli-2", "cust-cli", T, -3)),
        json.dumps(login("cli-3", "cust-cli", T)),
    ]
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    third = invoke("ingest", str(bad), "--json")
    assert third.exit_code == 1, third.output
    report = json.loads(third.stdout)
    assert (report["accepted"], report["duplicates"], report["rejected"]) == (2, 0, 2)
    assert [(e["line"], e["code"], e["field"]) for e in report["errors"]] == [
        (3, "malformed_json", None),
        (4, "invalid_field", "amount"),
    ]
    fourth = invoke("ingest", str(bad))
    assert fourth.exit_code == 1
    assert "line 3: malformed_json" in fourth.output and "line 4: invalid_field amount" in fourth.output

    with Engine(f"sqlite:///{db_file}") as check:
        ids = set(stored(check))
        assert ids == {e["event_id"] for e in EXAMPLE_EVENTS} | {"cli-1", "cli-3"}
        assert check.online_features("cust-cli", as_of=T)["customer_failed_logins_1h"] == 2.0


def test_remembered_keyed_hashes_are_the_keyed_hashes_and_the_memory_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hashlib
    import hmac

    import fengkong.pii as pii

    monkeypatch.setattr(pii, "RECENT_HASHES", 3)
    vault = pii.PiiVault(TEST_SECRET.encode())
    other = pii.PiiVault(b"another-deployment-secret-0123456789abcdef")
    digests = [sha256_hex(f"dev-{i}") for i in range(10)]
    first = [vault.keyed_hash("device", d) for d in digests]
    again = [vault.keyed_hash("device", d) for d in reversed(digests)][::-1]  # from memory, or after a reset
    assert first == again and len(set(first)) == 10
    assert len(vault._recent) <= 3  # never more than the bound
    # the remembered value is exactly HMAC-SHA256 under the deployment's derived key, per kind and secret
    key = hmac.new(TEST_SECRET.encode(), b"fengkong/pii-hash/v1", hashlib.sha256).digest()
    assert first[0] == hmac.new(key, f"device:{digests[0]}".encode(), hashlib.sha256).hexdigest()
    assert vault.keyed_hash("ip", digests[0]) != first[0] != other.keyed_hash("device", digests[0])


def test_the_lean_sqlite_write_stores_exactly_what_sqlalchemys_types_store(tmp_path: Path) -> None:
    from sqlalchemy.dialects import sqlite

    from fengkong.events.store import store_new
    from fengkong.store.db import create_db_engine, migrate

    db = create_db_engine(f"sqlite:///{tmp_path / 'lean.db'}")
    migrate(db)
    moments = [
        dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC),  # no microseconds
    ]
    payload = {"amount": 12.5, "note": '退款 "quoted"', "device_id_key": "ab" * 32, "nested": {"a": [1, None]}}

    def row(event_id: str, moment: dt.datetime) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "type": "payment",
            "customer_id": "c-1",
            "occurred_at": moment,
            "received_at": moment,
            "payload": payload,
        }

    assert store_new(db, [row(f"lean-{i}", m) for i, m in enumerate(moments)]) == set()
    with db.begin() as conn:
        conn.execute(sqlite.insert(events), [row(f"typed-{i}", m) for i, m in enumerate(moments)])
    # an id stored meanwhile by another writer is reported, not written twice; the others are written
    assert store_new(db, [row("lean-0", moments[0]), row("lean-2", moments[0])]) == {"lean-0"}
    with db.connect() as conn:
        raw = {
            r.event_id: r[1:]
            for r in conn.execute(sa.text("SELECT event_id, occurred_at, received_at, payload FROM events"))
        }
        # the stored text is the same, so time-range queries (compared as text in SQLite) see both alike
        assert raw["lean-0"] == raw["typed-0"] and raw["lean-1"] == raw["typed-1"] and "lean-2" in raw
        edge = moments[1]
        found = conn.execute(sa.select(events.c.event_id).where(events.c.occurred_at >= edge)).scalars().all()
        assert sorted(found) == ["lean-1", "typed-1"]
        back = conn.execute(sa.select(events).where(events.c.event_id == "lean-1")).one()
    assert back.payload == payload and back.occurred_at.replace(tzinfo=dt.UTC) == moments[1]
    # a moment in another zone is stored as its UTC time (the engine hands over UTC; typed SQLite drops zones)
    beijing = moments[1].astimezone(dt.timezone(dt.timedelta(hours=8)))
    store_new(db, [row("lean-cst", beijing)])
    with db.connect() as conn:
        stored = conn.execute(sa.text("SELECT occurred_at FROM events WHERE event_id = 'lean-cst'")).scalar_one()
    assert stored == raw["typed-1"][0] == "2026-11-23 02:00:00.000000"
    db.dispose()


def test_a_batch_the_database_refuses_is_counted_nowhere(sqlite_engine: Engine) -> None:
    engine = sqlite_engine

    def login(event_id: str, minute: int) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "type": "login",
            "customer_id": "cust-w",
            "occurred_at": f"2026-11-23T10:{minute:02d}:00+08:00",
            "device_id": f"dev-w{minute}",
            "success": False,
        }

    engine.ingest([login("w-0", 0)])
    as_of = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC)
    before = engine.online_features("cust-w", as_of=as_of)
    assert before["customer_failed_logins_1h"] == 1.0
    with engine.db.begin() as conn:  # the database itself refuses one event of the next batch
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.event_id = 'w-boom' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"
        )
    with pytest.raises((sa.exc.DatabaseError, sqlite3.DatabaseError)):
        engine.ingest([login("w-1", 1), login("w-2", 2), login("w-boom", 3)])
    # nothing of that batch is stored, and the online state (updated while the batch was written) is back to
    # what the store holds
    with engine.db.connect() as conn:
        stored = conn.execute(sa.select(events.c.event_id).where(events.c.customer_id == "cust-w")).scalars().all()
    assert stored == ["w-0"]
    assert engine.online_features("cust-w", as_of=as_of) == before
    with engine.db.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse")
    assert len(engine.ingest([login("w-1", 1), login("w-boom", 3)]).accepted) == 2
    assert engine.online_features("cust-w", as_of=as_of)["customer_failed_logins_1h"] == 3.0


def test_the_same_batch_sent_twice_at_once_is_stored_and_counted_once(engine: Engine) -> None:
    import threading

    batch = [
        {
            "event_id": f"twice-{i}",
            "type": "login",
            "customer_id": f"cust-t{i % 7}",
            "occurred_at": "2026-11-23T10:00:00+08:00",
            "device_id": "dev-shared-t",
            "success": False,
        }
        for i in range(400)
    ]
    results: list[Any] = []
    start = threading.Barrier(3)

    def send() -> None:
        start.wait()
        results.append(engine.ingest([dict(e) for e in batch]))

    senders = [threading.Thread(target=send) for _ in range(3)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(60)
    assert len(results) == 3
    accepted = [e for r in results for e in r.accepted]
    assert sorted(accepted) == sorted(e["event_id"] for e in batch)  # each event accepted by exactly one sender
    for r in results:
        assert set(r.accepted).isdisjoint(r.duplicates) and len(r.accepted) + len(r.duplicates) == len(batch)
    with engine.db.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    assert stored == len(batch)
    as_of = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC)
    assert engine.online_features("cust-t0", as_of=as_of)["customer_failed_logins_1h"] == 58.0  # 400 / 7, once
