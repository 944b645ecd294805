"""The synthetic lending world (fengkong.simulate): reproducible, valid against the request and event schemas,
in the configured proportions, and carrying the signature of each typology in its data, beside the honest
noise (families sharing a phone, offices sharing an IP) that must not look like fraud."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fengkong import Engine
from fengkong.applications import ApplicationIn
from fengkong.events.schema import EVENT_ADAPTER, EVENT_TYPES
from fengkong.pii import id_number_check_digit, inspect_id_number, normalize
from fengkong.simulate import FRAUD_TYPOLOGIES, TYPOLOGIES, World, WorldConfig, generate
from fengkong.simulate.cli import simulate

SEED = 20261123
CUSTOMERS = 4000
FILES = ("applications.jsonl", "events.jsonl", "truth.csv", "application_times.csv", "world.json")


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def world() -> World:
    return generate(WorldConfig(customers=CUSTOMERS, seed=SEED))


@pytest.fixture(scope="module")
def truth(world: World) -> dict[str, str]:
    return dict(world.truth)


@pytest.fixture(scope="module")
def by_customer(world: World) -> dict[str, list[dict[str, Any]]]:
    """Each customer's events in time order, with a parsed ``_ts``."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in world.events:
        out[e["customer_id"]].append({**e, "_ts": ts(e["occurred_at"])})
    return out


@pytest.fixture(scope="module")
def apps(world: World) -> dict[str, dict[str, Any]]:
    """Each customer's application, with its time as ``_ts``."""
    return {
        a["customer_id"]: {**a, "_ts": ts(t)} for a, t in zip(world.applications, world.application_times, strict=True)
    }


def of(truth: dict[str, str], typology: str) -> list[str]:
    return [c for c, t in truth.items() if t == typology]


def read_files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


# ------------------------------------------------------------------------------------------ reproducibility


def test_same_seed_gives_identical_files_even_in_another_process(tmp_path: Path) -> None:
    config = WorldConfig(customers=600, seed=5)
    generate(config).write(tmp_path / "a")
    generate(config).write(tmp_path / "b")
    assert read_files(tmp_path / "a") == read_files(tmp_path / "b")
    # another interpreter with another string-hash seed: nothing may depend on set or hash order
    code = (
        "import sys; from pathlib import Path; from fengkong.simulate import WorldConfig, generate; "
        "generate(WorldConfig(customers=600, seed=5)).write(Path(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], check=True, env=env, timeout=60)
    assert read_files(tmp_path / "a") == read_files(tmp_path / "c")


def test_different_seeds_give_different_worlds() -> None:
    a = generate(WorldConfig(customers=300, seed=1))
    b = generate(WorldConfig(customers=300, seed=2))
    assert a.applications != b.applications
    assert a.events != b.events
    assert {x["identity"]["id_number"] for x in a.applications}.isdisjoint(
        {x["identity"]["id_number"] for x in b.applications}
    )
    assert {c for c, _ in a.truth}.isdisjoint({c for c, _ in b.truth})  # two worlds can share one database


def test_time_comes_from_the_config_not_the_clock(world: World) -> None:
    end = ts(world.config.end)
    start = end - world.config.days * 86_400
    assert all(start <= ts(t) < end for t in world.application_times)
    assert all(start <= ts(e["occurred_at"]) < end for e in world.events)
    shorter = generate(WorldConfig(customers=300, seed=3, days=14, end="2025-03-01T00:00:00+08:00"))
    times = [ts(e["occurred_at"]) for e in shorter.events] + [ts(t) for t in shorter.application_times]
    assert min(times) >= ts("2025-02-15T00:00:00+08:00")
    assert max(times) < ts("2025-03-01T00:00:00+08:00")


# ------------------------------------------------------------------------------------------ proportions


def test_proportions_follow_the_config(world: World) -> None:
    counts = world.typology_counts()
    assert sum(counts.values()) == CUSTOMERS == len(world.applications)
    assert counts == world.config.counts()
    for typology in FRAUD_TYPOLOGIES:
        assert abs(counts[typology] / CUSTOMERS - getattr(world.config, typology)) <= 0.001, typology
    assert abs(counts["honest"] / CUSTOMERS - 0.90) <= 0.002

    other = WorldConfig(customers=1000, seed=9, ring=0.10, multi_head=0.0, cash_out=0.05, takeover=0.02, scam_victim=0)
    got = generate(other).typology_counts()
    assert got == {"honest": 830, "ring": 100, "multi_head": 0, "cash_out": 50, "takeover": 20, "scam_victim": 0}


@pytest.mark.parametrize(
    "bad",
    [
        {"ring": 0.6, "multi_head": 0.6},
        {"ring": -0.1},
        {"takeover": 1.5},
        {"customers": 0},
        {"seed": -1},
        {"days": 3},
        {"end": "2026-11-30T00:00:00"},
        {"end": "yesterday"},
    ],
)
def test_impossible_configs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WorldConfig(**bad)


# ------------------------------------------------------------------------------------------ schemas


def test_every_application_is_a_valid_request(world: World) -> None:
    ids: set[str] = set()
    for body in world.applications:
        app = ApplicationIn.model_validate(body)  # strict: ints are ints, no unknown fields
        raw = app.identity.id_number
        assert raw is not None
        assert id_number_check_digit(raw[:17]) == raw[17]
        assert inspect_id_number(raw, dt.date(2026, 11, 30)).valid
        ids.add(raw)
        card = normalize("bank_card", body["identity"]["bank_card"])
        digits = [int(d) for d in reversed(card)]
        assert (sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])) % 10 == 0, card
    assert len(ids) == len(world.applications)  # one person, one ID number
    assert len({a["customer_id"] for a in world.applications}) == len(world.applications)
    assert len({a["application_id"] for a in world.applications}) == len(world.applications)
    assert {a["customer_id"] for a in world.applications} == {c for c, _ in world.truth}
    times = [ts(t) for t in world.application_times]
    assert times == sorted(times) and len(times) == len(world.applications)


def test_every_event_is_valid_and_in_time_order(world: World) -> None:
    parsed = [EVENT_ADAPTER.validate_python(e) for e in world.events]
    assert [p.ts for p in parsed] == sorted(p.ts for p in parsed)
    assert len({e["event_id"] for e in world.events}) == len(world.events)
    assert {e["customer_id"] for e in world.events} <= {c for c, _ in world.truth}
    # every type a lender sends is there (the application event is recorded by the decision path itself)
    assert {e["type"] for e in world.events} == set(EVENT_TYPES) - {"application"}


def test_written_files(tmp_path: Path, world: World) -> None:
    paths = world.write(tmp_path / "out")
    assert {p.name for p in paths.values()} == set(FILES)
    lines = (tmp_path / "out" / "applications.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == world.applications
    events = (tmp_path / "out" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(events) == len(world.events) and json.loads(events[-1]) == world.events[-1]
    with (tmp_path / "out" / "truth.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["customer_id", "typology"]
    assert [tuple(r) for r in rows[1:]] == world.truth
    assert {r[1] for r in rows[1:]} == set(TYPOLOGIES)
    with (tmp_path / "out" / "application_times.csv").open(encoding="utf-8", newline="") as fh:
        times = list(csv.DictReader(fh))
    assert [t["occurred_at"] for t in times] == world.application_times
    manifest = json.loads((tmp_path / "out" / "world.json").read_text(encoding="utf-8"))
    assert manifest["customers"] == world.typology_counts() and manifest["config"]["seed"] == SEED


# ------------------------------------------------------------------------------------------ typologies


def test_rings_share_devices_and_phones_and_apply_within_hours(
    world: World, truth: dict[str, str], apps: dict[str, dict[str, Any]]
) -> None:
    ring = of(truth, "ring")
    device_users: dict[str, list[str]] = defaultdict(list)
    phone_users: dict[str, set[str]] = defaultdict(set)
    for a in world.applications:
        if "device_id" in a["identity"]:
            device_users[a["identity"]["device_id"]].append(a["customer_id"])
        phone_users[normalize("phone", a["identity"]["phone"])].add(a["customer_id"])
    for customer in ring:
        device = apps[customer]["identity"]["device_id"]
        users = device_users[device]
        assert len(users) >= 2, "every ring member shares a device with another member"
        assert {truth[u] for u in users} == {"ring"}, "a ring device is not an honest customer's device"
        spread = max(apps[u]["_ts"] for u in users) - min(apps[u]["_ts"] for u in users)
        assert spread <= 6 * 3600, "ring members apply within hours"
    shared_phone = [c for c in ring if len(phone_users[normalize("phone", apps[c]["identity"]["phone"])]) >= 2]
    assert len(shared_phone) >= 0.9 * len(ring)
    # thin or fabricated profiles: many with no bureau file, incomes in round thousands
    assert sum("bureau" not in apps[c] for c in ring) >= 0.3 * len(ring)
    assert all(apps[c]["applicant"]["monthly_income"] % 1000 == 0 for c in ring)
    # many name one emergency contact
    contact_of = {a["customer_id"]: c for a, c in zip(world.applications, world.emergency_contacts, strict=True)}
    contacts = Counter(normalize("phone", contact_of[c]) for c in ring)
    assert sum(n for n in contacts.values() if n >= 2) >= 0.6 * len(ring)
    honest_contacts = Counter(normalize("phone", contact_of[c]) for c in of(truth, "honest"))
    assert max(honest_contacts.values()) == 1


def test_multi_head_inquiries_rise_fast(
    truth: dict[str, str], by_customer: dict[str, list[dict[str, Any]]], apps: dict[str, dict[str, Any]]
) -> None:
    for customer in of(truth, "multi_head"):
        app = apps[customer]
        before = [e for e in by_customer[customer] if e["type"] == "bureau_update" and e["_ts"] < app["_ts"]]
        assert len(before) >= 2
        series = [e["inquiries_90d"] for e in before] + [app["bureau"]["inquiries_90d"]]
        assert all(a < b for a, b in itertools.pairwise(series)), series
        assert app["bureau"]["inquiries_30d"] >= before[-1]["inquiries_30d"]
        assert app["bureau"]["inquiries_7d"] >= 3
    median = sorted(apps[c]["bureau"]["inquiries_30d"] for c in of(truth, "multi_head"))
    honest = sorted(apps[c]["bureau"]["inquiries_30d"] for c in of(truth, "honest") if "bureau" in apps[c])
    assert median[len(median) // 2] >= 10 > 2 >= honest[len(honest) // 2]


def _cash_out_loops(
    customer: str,
    by_customer: dict[str, list[dict[str, Any]]],
    apps: dict[str, dict[str, Any]],
    payers: dict[str, set[str]],
    device_users: dict[str, set[str]],
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(payment, payout) pairs: a round payment near the limit to a merchant with few payers, and money from that
    merchant back to the payer or to a customer sharing the payer's device within 24 hours."""
    app = apps[customer]
    linked = {customer} | device_users.get(app["identity"].get("device_id", ""), set())
    loops = []
    for pay in by_customer[customer]:
        if pay["type"] != "payment" or pay["amount"] % 100 or pay["amount"] < 0.9 * app["requested_amount"]:
            continue
        if len(payers[pay["merchant_id"]]) > 3:
            continue
        for who in linked:
            for back in by_customer[who]:
                if (
                    back["type"] == "merchant_payout"
                    and back["merchant_id"] == pay["merchant_id"]
                    and 0 < back["_ts"] - pay["_ts"] <= 86_400
                ):
                    loops.append((pay, back))
    return loops


@pytest.fixture(scope="module")
def device_users(world: World) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for a in world.applications:
        if "device_id" in a["identity"]:
            out[a["identity"]["device_id"]].add(a["customer_id"])
    return out


@pytest.fixture(scope="module")
def payers(world: World) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for e in world.events:
        if e["type"] == "payment":
            out[e["merchant_id"]].add(e["customer_id"])
    return out


def test_cash_out_money_returns_from_the_merchant_within_a_day(
    truth: dict[str, str],
    by_customer: dict[str, list[dict[str, Any]]],
    apps: dict[str, dict[str, Any]],
    payers: dict[str, set[str]],
    device_users: dict[str, set[str]],
) -> None:
    cash_out = of(truth, "cash_out")
    same_customer = 0
    for customer in cash_out:
        loops = _cash_out_loops(customer, by_customer, apps, payers, device_users)
        assert loops, f"{customer} has no cash-out loop"
        same_customer += any(back["customer_id"] == customer for _, back in loops)
        for pay, back in loops:
            assert 0.95 * pay["amount"] <= back["amount"] < pay["amount"]  # less the merchant's fee
    assert same_customer >= 0.7 * len(cash_out)
    # honest customers may get refunds, but never this loop
    honest = of(truth, "honest")
    assert not [c for c in honest if _cash_out_loops(c, by_customer, apps, payers, device_users)]
    refunds = sum(e["type"] == "merchant_payout" for c in honest for e in by_customer[c])
    assert refunds > 0, "honest refunds are the noise cash-out detection must see through"


def _takeover_bursts(events: list[dict[str, Any]], within: float = 30 * 60) -> list[dict[str, Any]]:
    """device_bound events followed by a password change and a drawdown or transfer out within ``within``."""
    hits = []
    for bound in (e for e in events if e["type"] == "device_bound"):
        window = [e for e in events if 0 <= e["_ts"] - bound["_ts"] <= within]
        if any(e["type"] == "password_changed" for e in window) and any(
            e["type"] in ("drawdown", "transfer_out") for e in window
        ):
            hits.append(bound)
    return hits


def test_takeover_new_device_password_change_and_money_out_within_minutes(
    truth: dict[str, str], by_customer: dict[str, list[dict[str, Any]]], apps: dict[str, dict[str, Any]]
) -> None:
    takeover = of(truth, "takeover")
    after_failed_logins = 0
    for customer in takeover:
        events = by_customer[customer]
        bursts = _takeover_bursts(events)
        assert bursts, f"{customer} shows no takeover burst"
        bound = bursts[0]
        assert bound["device_id"] != apps[customer]["identity"]["device_id"], "the attacker's device is new"
        assert bound["ip"] != apps[customer]["identity"]["ip"]
        after_failed_logins += any(
            e["type"] == "login" and not e["success"] and 0 < bound["_ts"] - e["_ts"] <= 3600 for e in events
        )
    assert 0.5 * len(takeover) <= after_failed_logins < len(takeover)  # often, not always
    # honest customers change phones (and sometimes passwords) too, but never with money leaving at once
    honest = of(truth, "honest")
    changers = [c for c in honest if sum(e["type"] == "device_bound" for e in by_customer[c]) >= 2]
    assert len(changers) >= 0.03 * len(honest)
    assert any(e["type"] == "password_changed" for c in changers for e in by_customer[c])
    assert not [c for c in honest if _takeover_bursts(by_customer[c])]


def _scam_transfers(
    events: list[dict[str, Any]], within: float = 3 * 3600
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(drawdown, transfer) pairs: ≥ 70 % of a drawdown sent shortly after to a payee the customer never paid."""
    out = []
    for i, dd in enumerate(events):
        if dd["type"] != "drawdown":
            continue
        earlier = {e["payee"] for e in events[:i] if e["type"] == "transfer_out"}
        for tr in events[i + 1 :]:
            if tr["_ts"] - dd["_ts"] > within:
                break
            if tr["type"] == "transfer_out" and tr["payee"] not in earlier and tr["amount"] >= 0.7 * dd["amount"]:
                out.append((dd, tr))
    return out


def test_scam_victims_send_most_of_a_new_loan_to_a_first_time_payee(
    truth: dict[str, str], by_customer: dict[str, list[dict[str, Any]]], apps: dict[str, dict[str, Any]]
) -> None:
    victims = of(truth, "scam_victim")
    for customer in victims:
        events = by_customer[customer]
        pairs = _scam_transfers(events)
        assert pairs, f"{customer} shows no scam transfer"
        dd, tr = pairs[0]
        # from their own device, with no takeover signs: they are the genuine customer, acting under pressure
        assert dd["device_id"] == tr["device_id"] == apps[customer]["identity"]["device_id"]
        assert not [
            e for e in events if e["type"] in ("device_bound", "password_changed") and 0 <= dd["_ts"] - e["_ts"] <= 3600
        ]
    honest = of(truth, "honest")
    assert sum(bool(_scam_transfers(by_customer[c])) for c in honest) <= 0.002 * len(honest)


def test_honest_noise_offices_and_families_share_identifiers(world: World, truth: dict[str, str]) -> None:
    honest = set(of(truth, "honest"))
    ip_users: dict[str, set[str]] = defaultdict(set)
    phone_users: dict[str, set[str]] = defaultdict(set)
    phone_texts: dict[str, set[str]] = defaultdict(set)
    for a in world.applications:
        ip_users[a["identity"]["ip"]].add(a["customer_id"])
        phone = normalize("phone", a["identity"]["phone"])
        phone_users[phone].add(a["customer_id"])
        phone_texts[phone].add(a["identity"]["phone"])
    offices = [users for users in ip_users.values() if len(users) >= 15]
    assert len(offices) >= 5
    assert all(users <= honest for users in offices), "offices are honest"
    families = [users for users in phone_users.values() if users <= honest and len(users) >= 2]
    assert len(families) >= 0.02 * len(honest)
    assert {len(users) for users in families} == {2, 3}, "a family phone is shared by 2 or 3 people"
    assert any(len(phone_texts[normalize("phone", a["identity"]["phone"])]) > 1 for a in world.applications), (
        "the same phone written in different formats"
    )
    apps = {a["customer_id"]: a for a in world.applications}
    dpd = [apps[c]["bureau"]["worst_delinquency_days"] for c in honest if "bureau" in apps[c]]
    late = sum(0 < d < 30 for d in dpd) / len(dpd)
    assert 0.03 <= late <= 0.25, "occasional late payments, not a delinquent population"
    assert sum(d == 0 for d in dpd) / len(dpd) >= 0.7


# ------------------------------------------------------------------------------------------ end to end


def test_the_engine_replays_the_start_of_the_world_plausibly(
    tmp_path: Path, world: World, truth: dict[str, str]
) -> None:
    """The first 300 applications decided at their own times, with the events before each one ingested first:
    nothing is refused as invalid, and the outcomes look like a lender's (mostly approvals, some declines)."""
    engine = Engine(f"sqlite:///{tmp_path}/w.db", secret_key="x" * 40)
    outcomes: Counter[tuple[str, str]] = Counter()
    ingested = 0
    try:
        pending = iter(world.events)
        event = next(pending, None)
        for body, when in list(zip(world.applications, world.application_times, strict=True))[:300]:
            batch = []
            while event is not None and ts(event["occurred_at"]) <= ts(when):
                batch.append(event)
                event = next(pending, None)
            if batch:
                result = engine.ingest(batch)
                assert not result.rejected, result.rejected[:3]
                ingested += len(result.accepted)
            decision = engine.decide(body, as_of=dt.datetime.fromisoformat(when))  # invalid input would raise
            outcomes[(truth[body["customer_id"]], decision.outcome.value)] += 1
    finally:
        engine.close()
    assert ingested > 300
    total = Counter[str]()
    for (_, outcome), n in outcomes.items():
        total[outcome] += n
    assert sum(total.values()) == 300
    assert total["approve"] >= 150 and total["decline"] >= 5, total
    honest = sum(n for (t, _), n in outcomes.items() if t == "honest")
    assert outcomes[("honest", "approve")] >= 0.7 * honest, outcomes


# ------------------------------------------------------------------------------------------ command line


def test_cli_writes_the_world_and_summarises_it(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(simulate)
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["--customers", "400", "--seed", "3", "--out", str(out), "--ring", "0.05"])
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert (out / name).exists(), name
    for typology in TYPOLOGIES:
        assert typology in result.output
    assert "events.jsonl" in result.output
    direct = tmp_path / "direct"
    generate(WorldConfig(customers=400, seed=3, ring=0.05)).write(direct)
    assert read_files(out) == read_files(direct)

    as_json = runner.invoke(app, ["--customers", "200", "--seed", "3", "--out", str(tmp_path / "j"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.output)
    assert summary["customers"]["ring"] == 6 and summary["applications"] == 200

    bad = runner.invoke(app, ["--customers", "100", "--ring", "0.7", "--takeover", "0.7", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
    assert "more than 1" in bad.output
    assert not (tmp_path / "x").exists()
