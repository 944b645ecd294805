"""The engine facade end to end, on SQLite and on a real PostgreSQL: decide, store, explain, idempotency, bad
input (refused with a code and a field, nothing stored), policy publishing and activation, API keys."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import TEST_SECRET
from fengkong.domain import Language, Outcome, Role
from fengkong.errors import FengkongError
from fengkong.pii import id_number_check_digit, inspect_id_number
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy, load_policy_text
from fengkong.reasons import reason
from fengkong.security import ROLE_PERMISSIONS, Permission, parse_key_id
from fengkong.service import Engine
from fengkong.store import audit
from fengkong.store.tables import api_keys, audit_log, decisions, policies

DEFAULT_VERSION = load_default_policy().version  # whatever the bundled policy says
CJK = re.compile(r"[\u4e00-\u9fff]")


# ------------------------------------------------------------------------------------------ helpers


def state(eng: Engine) -> dict[str, Any]:
    """Everything a refused request must leave alone: row counts, the chain's head, the stored decisions."""
    with eng.db.connect() as conn:
        out: dict[str, Any] = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (decisions, audit_log, policies, api_keys)
        }
        out["head"] = audit.head(conn)
        out["decision_rows"] = sorted(
            (r.id, r.content_hash) for r in conn.execute(sa.select(decisions.c.id, decisions.c.content_hash))
        )
        out["active"] = conn.execute(sa.select(policies.c.version).where(policies.c.active)).scalars().all()
        out["policy_rows"] = [tuple(r) for r in conn.execute(sa.select(policies).order_by(policies.c.version))]
        out["key_rows"] = [tuple(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.id))]
    return out


def id_age(raw_id: str) -> int:
    facts = inspect_id_number(raw_id, dt.date.today())
    assert facts.valid and facts.birth_date is not None
    age = facts.age_on(dt.date.today())
    assert age is not None
    return age


def with_check_digit(first17: str) -> str:
    return first17 + id_number_check_digit(first17)


def id_ending_in_x() -> str:
    """A valid ID number (same birth date as the example's) whose check digit is X."""
    for n in range(1000):
        first17 = f"11010119900307{n:03d}"
        if id_number_check_digit(first17) == "X":
            return first17 + "X"
    raise AssertionError("no X check digit found")


def v2_policy(declare_over: int = 30, version: str = "2026.12.0") -> Any:
    """The default policy under a new version that declines applicants older than ``declare_over``."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    assert f'version: "{DEFAULT_VERSION}"' in text and "age < 18 or age > 65" in text
    text = text.replace(f'version: "{DEFAULT_VERSION}"', f'version: "{version}"')
    text = text.replace("age < 18 or age > 65", f"age < 18 or age > {declare_over}")
    return load_policy_text(text, source="v2")


@pytest.fixture
def app(application: dict[str, Any]) -> dict[str, Any]:
    """The example application with its declared age matching its ID number today, so no test here depends on
    the calendar (the example declares 36 for a 1990-03-07 birth date, which stops matching in 2028)."""
    application["applicant"]["age"] = id_age(application["identity"]["id_number"])
    return application


def variant(app: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``app`` with dotted-path changes, e.g. variant(app, **{"bureau.inquiries_7d": 4})."""
    out = copy.deepcopy(app)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out


# ------------------------------------------------------------------------------------------ outcomes


def test_example_application_is_approved_with_the_default_policy_terms(engine: Engine, app: dict[str, Any]) -> None:
    d = engine.decide(app)
    assert d.outcome is Outcome.APPROVE
    assert d.reasons == ()
    # starter scorecard: 400 base + 440 points = 840 (top band, ≥ 780); income 18,000 is in the 10k-20k column
    # → limit 35,000 (under the 5 × income cap), APR 10.80 % (score ≥ 780)
    assert d.score == 840
    assert d.limit == 35000
    assert d.apr == pytest.approx(0.108)
    assert (d.policy_version, d.model_version, d.currency) == (DEFAULT_VERSION, "starter@1", "CNY")
    assert d.language is Language.EN and d.replayed is False
    assert d.decision_id.startswith("dec_")
    body = d.response()
    assert body["outcome"] == "approve" and body["limit"] == 35000 and body["reasons"] == []
    assert body["created_at"].endswith("Z")


def test_example_as_shipped_is_approved(sqlite_engine: Engine, application: dict[str, Any]) -> None:
    """examples/application.json itself (declared age 36 for a 1990-03-07 birth date) is an approve."""
    assert sqlite_engine.decide(application).outcome is Outcome.APPROVE


# changes to the example → outcome and reasons under the default policy
OUTCOMES: list[tuple[str, dict[str, Any], Outcome, tuple[str, ...]]] = [
    ("dpd 120", {"bureau.worst_delinquency_days": 120}, Outcome.DECLINE, ("BUREAU_SERIOUS_DELINQUENCY",)),
    ("dpd 45", {"bureau.worst_delinquency_days": 45}, Outcome.REVIEW, ("BUREAU_RECENT_DELINQUENCY",)),
    (
        "4 inquiries in 7 days",
        {"bureau.inquiries_7d": 4, "bureau.inquiries_30d": 4, "bureau.inquiries_90d": 4},
        Outcome.REVIEW,
        ("MULTI_HEAD_RECENT_INQUIRIES",),
    ),
    (
        "6 inquiries in 7 days",
        {"bureau.inquiries_7d": 6, "bureau.inquiries_30d": 6, "bureau.inquiries_90d": 6},
        Outcome.DECLINE,
        ("MULTI_HEAD_RECENT_INQUIRIES",),
    ),
    ("11 active loans", {"bureau.active_loans": 11}, Outcome.DECLINE, ("TOO_MANY_ACTIVE_LOANS",)),
    # age 17 also contradicts the ID number's birth date (a review rule): a decline shows decline reasons only
    ("age 17", {"applicant.age": 17}, Outcome.DECLINE, ("AGE_OUT_OF_RANGE",)),
    ("age 66", {"applicant.age": 66}, Outcome.DECLINE, ("AGE_OUT_OF_RANGE",)),
    ("student", {"applicant.employment": "student"}, Outcome.DECLINE, ("EMPLOYMENT_NOT_ELIGIBLE",)),
    ("income 1,500", {"applicant.monthly_income": 1500}, Outcome.DECLINE, ("INCOME_TOO_LOW",)),
    # the example's check digit is 4
    ("bad check digit", {"identity.id_number": "110101199003074515"}, Outcome.DECLINE, ("ID_NUMBER_INVALID",)),
    (
        "impossible birth date",
        {"identity.id_number": with_check_digit("11010119901307451")},
        Outcome.DECLINE,
        ("ID_NUMBER_INVALID",),
    ),
    ("no device id", {"identity.device_id": None}, Outcome.REVIEW, ("DEVICE_NOT_VERIFIED",)),
]


def forget_history(engine: Engine) -> None:
    """Empty the online state, so that deciding many variants of one applicant in a row is not itself an
    application burst (velocity and link rules are tested in test_online.py)."""
    from fengkong.features.graph import EntityGraph

    engine.online.velocity.state.clear()
    engine.online.graph = EntityGraph()


def test_policy_outcomes(engine: Engine, app: dict[str, Any]) -> None:
    wrong = []
    for name, changes, outcome, reasons in OUTCOMES:
        forget_history(engine)
        d = engine.decide(variant(app, **changes))
        if (d.outcome, d.reasons) != (outcome, reasons):
            wrong.append(f"{name}: got {d.outcome} {d.reasons}, want {outcome} {reasons}")
        if outcome is Outcome.DECLINE and (d.limit, d.apr) != (None, None):
            wrong.append(f"{name}: a decline with limit {d.limit} and APR {d.apr}")
    assert not wrong, "\n".join(wrong)

    forget_history(engine)
    both = engine.decide(variant(app, **{"applicant.age": 17, "bureau.worst_delinquency_days": 45}))
    assert (both.outcome, both.reasons) == (Outcome.DECLINE, ("AGE_OUT_OF_RANGE",))
    assert {"ELIG_AGE", "ID_AGE_GAP", "BUREAU_DPD_30"} <= set(engine.explain(both.decision_id)["rule_hits"])

    forget_history(engine)
    older = engine.decide(variant(app, **{"applicant.age": app["applicant"]["age"] + 5}))
    assert (older.outcome, older.reasons[0]) == (Outcome.REVIEW, "ID_AGE_MISMATCH")
    assert engine.explain(older.decision_id)["features"]["id_age_gap"] == 5.0


def test_no_bureau_report_is_decided_on_a_thin_file_score(engine: Engine, app: dict[str, Any]) -> None:
    """The default policy has no rule for a missing bureau report: missing values fire no rule and the
    scorecard gives its 'missing' points (a thin file: 690), which approves a smaller line at a higher price."""
    no_bureau = copy.deepcopy(app)
    del no_bureau["bureau"]
    d = engine.decide(no_bureau)
    assert d.outcome is Outcome.APPROVE
    assert d.score == 690
    assert d.limit == 15000  # 660-719 band, 10k-20k income
    assert d.apr == pytest.approx(0.18)
    x = engine.explain(d.decision_id)
    assert x["features"]["bureau_hit"] is False
    assert x["features"]["bureau_worst_dpd"] is None and x["features"]["debt_to_income"] is None
    assert x["rule_hits"] == []
    bins = {c["name"]: c["bin"] for c in x["explanation"]["analyst"]["score"]["characteristics"]}
    assert bins["worst_delinquency"] == "missing" and bins["recent_inquiries"] == "missing"
    assert x["reproduced"] is True


# ------------------------------------------------------------------------------------------ stored decisions


def test_explain_a_decline(engine: Engine, app: dict[str, Any]) -> None:
    d = engine.decide(variant(app, application_id="ex-1", **{"bureau.worst_delinquency_days": 120}))
    x = engine.explain(d.decision_id)

    assert x["decision_id"] == d.decision_id and x["outcome"] == "decline"
    assert x["reproduced"] is True
    assert x["policy_version"] == DEFAULT_VERSION and x["model_version"] == "starter@1"

    # inputs: the request as sent, identifiers replaced by keyed hashes
    inputs = x["inputs"]
    assert inputs["application_id"] == "ex-1"
    assert inputs["applicant"] == app["applicant"]
    assert inputs["bureau"]["worst_delinquency_days"] == 120
    assert sorted(inputs["identity"]) == ["bank_card_key", "device_id_key", "id_number_key", "ip_key", "phone_key"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in inputs["identity"].values())

    # features the policy saw
    f = x["features"]
    assert f["bureau_worst_dpd"] == 120.0 and f["id_number_valid"] is True and f["has_device_id"] is True
    assert f["age"] == float(app["applicant"]["age"]) and f["debt_to_income"] == pytest.approx(12000 / (12 * 18000))

    analyst = x["explanation"]["analyst"]
    assert x["rule_hits"] == ["BUREAU_SEVERE_DPD"]
    assert analyst["rule_hits"] == [
        {
            "id": "BUREAU_SEVERE_DPD",
            "action": "decline",
            "reason": "BUREAU_SERIOUS_DELINQUENCY",
            "condition": "bureau_worst_dpd >= 90",
            "description": analyst["rule_hits"][0]["description"],
            "values": {"bureau_worst_dpd": 120.0},
        }
    ]
    assert analyst["reasons"] == [
        {
            "code": "BUREAU_SERIOUS_DELINQUENCY",
            "category": reason("BUREAU_SERIOUS_DELINQUENCY").category.value,
            "text": reason("BUREAU_SERIOUS_DELINQUENCY").analyst,
        }
    ]
    assert "DECLINE" in analyst["summary"] and "BUREAU_SEVERE_DPD" in analyst["summary"]

    # the score by characteristic adds up, and points lost are what each could still have given
    score = analyst["score"]
    assert score["value"] == d.score == x["score"]
    chars = {c["name"]: c for c in score["characteristics"]}
    base = engine.policy(DEFAULT_VERSION).scorecard.spec.base_points
    assert base + sum(c["points"] for c in chars.values()) == d.score
    assert all(c["points_lost"] == c["max_points"] - c["points"] for c in chars.values())
    assert chars["worst_delinquency"]["value"] == 120.0 and chars["worst_delinquency"]["points"] == 0
    assert chars["worst_delinquency"]["points_lost"] == chars["worst_delinquency"]["max_points"] > 0

    # the customer: plain words in both languages, the reason's own customer text, an appeal with the reference
    customer = x["explanation"]["customer"]
    for lang in Language:
        view = customer[lang.value]
        assert [r["code"] for r in view["reasons"]] == ["BUREAU_SERIOUS_DELINQUENCY"]
        assert view["reasons"][0]["text"] == reason("BUREAU_SERIOUS_DELINQUENCY").customer_text(lang)
        assert view["next_steps"] and d.decision_id in view["appeal"]
    assert CJK.search(customer["zh"]["headline"]) and CJK.search(customer["zh"]["reasons"][0]["text"])
    assert not CJK.search(customer["en"]["headline"] + customer["en"]["reasons"][0]["text"])
    assert customer["en"]["headline"].startswith("We are sorry")
    # the customer never sees rule ids, conditions or feature values
    shown = json.dumps(customer, ensure_ascii=False).replace(d.decision_id, "REF")  # a random id may hold "120"
    assert "BUREAU_SEVERE_DPD" not in shown and "bureau_worst_dpd" not in shown and "120" not in shown

    # the replay is real: a decision whose stored features no longer give its outcome is not "reproduced"
    with engine.db.begin() as conn:
        features = conn.execute(sa.select(decisions.c.features).where(decisions.c.id == d.decision_id)).scalar_one()
        features["bureau_worst_dpd"] = 0.0
        conn.execute(sa.update(decisions).where(decisions.c.id == d.decision_id).values(features=features))
    assert engine.explain(d.decision_id)["reproduced"] is False


def test_get_and_explain_an_approval_and_a_review(engine: Engine, app: dict[str, Any]) -> None:
    made = engine.decide(variant(app, application_id="rt-1"))
    got = engine.get_decision(made.decision_id)
    assert got.response() == made.response()
    assert (got.customer_id, got.score, got.language) == (made.customer_id, made.score, made.language)
    assert got.replayed is False
    with pytest.raises(FengkongError) as err:
        engine.get_decision("dec_NOSUCHDECISION0000000000000")
    assert (err.value.code, err.value.field, err.value.status) == ("decision_not_found", "decision_id", 404)
    with pytest.raises(FengkongError) as err:
        engine.explain("dec_NOSUCHDECISION0000000000000")
    assert err.value.code == "decision_not_found"

    ok = engine.explain(made.decision_id)
    assert {k: ok[k] for k in made.response()} == made.response()
    assert ok["reproduced"] is True and ok["rule_hits"] == []
    assert ok["explanation"]["customer"]["en"]["headline"] == (
        "Your application is approved: a credit line of CNY 35,000 at an APR of 10.80%."
    )
    assert "35,000" in ok["explanation"]["customer"]["zh"]["headline"]

    review = engine.decide(
        variant(app, **{"bureau.inquiries_7d": 4, "bureau.inquiries_30d": 4, "bureau.inquiries_90d": 4})
    )
    x = engine.explain(review.decision_id)
    assert x["outcome"] == "review" and x["reproduced"] is True
    hit = next(h for h in x["explanation"]["analyst"]["rule_hits"] if h["id"] == "MULTI_HEAD_WATCH")
    assert hit["values"] == {"bureau_inquiries_7d": 4.0}
    assert "review" in x["explanation"]["customer"]["en"]["headline"]


# ------------------------------------------------------------------------------------------ idempotency


def test_idempotency_on_application_id(engine: Engine, app: dict[str, Any]) -> None:
    first = engine.decide(variant(app, application_id="idem-1"))
    before = state(engine)
    again = engine.decide(variant(app, application_id="idem-1"))
    assert again.replayed is True and first.replayed is False
    assert again.decision_id == first.decision_id
    assert {**again.response(), "replayed": False} == first.response()
    assert state(engine) == before  # no second decision, no second audit entry
    # JSON door, same answer
    assert engine.decide_json(json.dumps(variant(app, application_id="idem-1"))).decision_id == first.decision_id
    assert state(engine) == before

    # the same id with other data is a conflict, and nothing is stored
    for changes in (
        {"applicant.monthly_income": 18001},
        {"identity.phone": "13900139000"},
        {"language": "zh"},
        {"bureau": None},
    ):
        with pytest.raises(FengkongError) as err:
            engine.decide(variant(app, application_id="idem-1", **changes))
        assert (err.value.code, err.value.field, err.value.status) == ("application_id_conflict", "application_id", 409)
        assert state(engine) == before, changes
    assert engine.get_decision(first.decision_id).response() == first.response()
    assert engine.verify_audit().ok


def test_concurrent_retries_of_one_application_store_one_decision(engine: Engine, app: dict[str, Any]) -> None:
    before = state(engine)
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def retry() -> None:
        barrier.wait()
        try:
            results.append(engine.decide(variant(app, application_id="race-1")))
        except Exception as exc:  # collected and reported below
            results.append(exc)

    threads = [threading.Thread(target=retry) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not isinstance(r, Exception) for r in results), results
    assert len(results) == 4 and len({r.decision_id for r in results}) == 1
    assert sum(not r.replayed for r in results) <= 1
    after = state(engine)
    # one decision, and an approval opens exactly one line (its own audited action)
    opened = 1 if results[0].line_id is not None else 0
    assert after["decisions"] == before["decisions"] + 1
    assert after["audit_log"] == before["audit_log"] + 1 + opened
    assert len({r.line_id for r in results}) == 1
    assert engine.verify_audit().ok


# ------------------------------------------------------------------------------------------ identifiers


def test_raw_and_sha256_identifiers_give_the_same_keyed_hash(engine: Engine, app: dict[str, Any]) -> None:
    raw = app["identity"]["id_number"]
    ident_sha = hashlib.sha256(raw.encode()).hexdigest()
    by_raw = engine.explain(engine.decide(app).decision_id)["inputs"]["identity"]

    hashed = copy.deepcopy(app)
    hashed["identity"] = {
        "id_number_hash": ident_sha,
        "phone_hash": hashlib.sha256(b"13800138000").hexdigest(),  # normalised: no +86, no spaces
        "bank_card_hash": hashlib.sha256(b"6222021234567890128").hexdigest(),
        "device_id": app["identity"]["device_id"],
        "ip": app["identity"]["ip"],
    }
    by_hash = engine.explain(engine.decide(hashed).decision_id)["inputs"]["identity"]
    assert by_hash == by_raw
    # keyed: not the bare SHA-256 a dictionary of all ID numbers would reverse
    assert by_raw["id_number_key"] != ident_sha

    # other spellings of the same phone and card normalise to the same key; another person's does not
    respelled = variant(app, **{"identity.phone": "138-0013-8000", "identity.bank_card": "6222021234567890128"})
    by_respelled = engine.explain(engine.decide(respelled).decision_id)["inputs"]["identity"]
    assert by_respelled == by_raw
    other = variant(app, **{"identity.phone": "13900139000"})
    assert engine.explain(engine.decide(other).decision_id)["inputs"]["identity"]["phone_key"] != by_raw["phone_key"]

    # an ID number whose check digit is X, sent with a lower-case x, matches the SHA-256 of its upper-case form
    with_x = id_ending_in_x()
    lower = variant(app, **{"identity.id_number": with_x.lower()})
    forget_history(engine)  # five applications from one device in a row would be a burst
    d = engine.decide(lower)
    assert d.outcome is Outcome.APPROVE  # a valid ID: lower-case x is the same check digit
    key = engine.explain(d.decision_id)["inputs"]["identity"]["id_number_key"]
    hashed = copy.deepcopy(app)
    del hashed["identity"]["id_number"]
    hashed["identity"]["id_number_hash"] = hashlib.sha256(with_x.upper().encode()).hexdigest()
    assert engine.explain(engine.decide(hashed).decision_id)["inputs"]["identity"]["id_number_key"] == key


def test_a_different_secret_gives_different_keys(sqlite_url: str, app: dict[str, Any]) -> None:
    keys = []
    for secret in (TEST_SECRET, TEST_SECRET[::-1]):
        with Engine(sqlite_url, secret_key=secret) as eng:
            keys.append(eng.explain(eng.decide(app).decision_id)["inputs"]["identity"]["id_number_key"])
    assert keys[0] != keys[1]


# ------------------------------------------------------------------------------------------ bad input


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def f(a: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = a
        for p in parents:
            node = node[p]
        del node[leaf]

    return f


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def f(a: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = a
        for p in parents:
            node = node[p]
        node[leaf] = value

    return f


def _hash_only(value: str) -> Callable[[dict[str, Any]], None]:
    def f(a: dict[str, Any]) -> None:
        del a["identity"]["id_number"]
        a["identity"]["id_number_hash"] = value

    return f


BAD_INPUT: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("missing customer_id", _drop("customer_id"), "missing_field", "customer_id"),
    ("missing applicant", _drop("applicant"), "missing_field", "applicant"),
    ("missing income", _drop("applicant.monthly_income"), "missing_field", "applicant.monthly_income"),
    ("missing bureau field", _drop("bureau.inquiries_90d"), "missing_field", "bureau.inquiries_90d"),
    ("no id number at all", _drop("identity.id_number"), "invalid_field", "identity"),
    ("age as text", _set("applicant.age", "32"), "invalid_field", "applicant.age"),
    ("age as bool", _set("applicant.age", True), "invalid_field", "applicant.age"),
    ("age with a fraction", _set("applicant.age", 32.5), "invalid_field", "applicant.age"),
    ("income as text", _set("applicant.monthly_income", "18000"), "invalid_field", "applicant.monthly_income"),
    ("identity as a list", _set("identity", ["x"]), "invalid_field", "identity"),
    ("age 300", _set("applicant.age", 300), "invalid_field", "applicant.age"),
    ("negative age", _set("applicant.age", -1), "invalid_field", "applicant.age"),
    ("negative income", _set("applicant.monthly_income", -1), "invalid_field", "applicant.monthly_income"),
    ("NaN income", _set("applicant.monthly_income", float("nan")), "invalid_field", "applicant.monthly_income"),
    ("negative debt", _set("bureau.total_debt", -5), "invalid_field", "bureau.total_debt"),
    ("zero requested amount", _set("requested_amount", 0), "invalid_field", "requested_amount"),
    ("unknown employment", _set("applicant.employment", "pirate"), "invalid_field", "applicant.employment"),
    ("unknown language", _set("language", "fr"), "invalid_field", "language"),
    ("inquiries_7d > inquiries_30d", _set("bureau.inquiries_7d", 5), "invalid_field", "bureau"),
    ("short id number", _set("identity.id_number", "11010119900307451"), "invalid_field", "identity.id_number"),
    ("bad ip", _set("identity.ip", "999.1.1.1"), "invalid_field", "identity.ip"),
    ("id_number_hash not hex", _hash_only("Z" * 64), "invalid_field", "identity.id_number_hash"),
    ("both id forms", _set("identity.id_number_hash", "0" * 64), "invalid_field", "identity"),
    ("unknown top-level field", _set("loan_purpose", "car"), "unknown_field", "loan_purpose"),
    ("unknown identity field", _set("identity.email", "a@b.cn"), "unknown_field", "identity.email"),
    ("bad application_id", _set("application_id", "has space"), "invalid_field", "application_id"),
    ("unknown policy version", _set("policy_version", "1999.1.0"), "unknown_policy_version", "policy_version"),
]


def test_bad_input_is_refused_with_code_and_field_and_changes_nothing(engine: Engine, app: dict[str, Any]) -> None:
    engine.decide(variant(app, application_id="kept-1"))  # something already stored, which must stay as it is
    before = state(engine)
    wrong: list[str] = []
    for i, (name, mutate, code, field) in enumerate(BAD_INPUT):
        bad = variant(app, application_id=f"bad-{i}")
        mutate(bad)
        try:
            engine.decide(bad)
        except FengkongError as exc:
            if (exc.code, exc.field) != (code, field) or exc.status != 422:
                wrong.append(f"{name}: got {exc.code} [{exc.field}] {exc.status}, want {code} [{field}]")
            if exc.code != "unknown_policy_version" and not any(p.field == field for p in exc.problems):
                wrong.append(f"{name}: {field} not among the listed problems {exc.problems}")
        else:
            wrong.append(f"{name}: accepted")
    for body, code in ((b"{", "malformed_json"), (b"\xff\xfe", "malformed_json"), (b"[1, 2]", "invalid_body")):
        try:
            engine.decide_json(body)
        except FengkongError as exc:
            if (exc.code, exc.field) != (code, "body"):
                wrong.append(f"{body!r}: got {exc.code} [{exc.field}], want {code} [body]")
        else:
            wrong.append(f"{body!r}: accepted")
    assert not wrong, "\n".join(wrong)

    # a request with several problems lists them all
    with pytest.raises(FengkongError) as err:
        engine.decide(variant(app, **{"applicant.age": "32", "applicant.monthly_income": -1, "colour": "red"}))
    assert {p.field for p in err.value.problems} == {"applicant.age", "applicant.monthly_income", "colour"}
    assert "2 more problems" in err.value.message

    assert state(engine) == before
    assert engine.verify_audit().ok


# ------------------------------------------------------------------------------------------ policies


def test_published_policy_versions_are_immutable(engine: Engine, app: dict[str, Any]) -> None:
    with engine.db.connect() as conn:
        stored = conn.execute(sa.select(policies).where(policies.c.version == DEFAULT_VERSION)).one()
    before = state(engine)
    changed = v2_policy(version=DEFAULT_VERSION)
    assert changed.content_hash != stored.content_hash
    for activate in (False, True):
        with pytest.raises(FengkongError) as err:
            engine.publish_policy(changed, actor="test", activate=activate)
        assert (err.value.code, err.value.field, err.value.status) == ("policy_version_exists", "version", 409)
    assert state(engine) == before
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(policies).where(policies.c.version == DEFAULT_VERSION)).one() == stored
    # the engine still decides under the stored content, also after a restart
    assert engine.decide(app).outcome is Outcome.APPROVE
    with Engine(engine.database_url, secret_key=TEST_SECRET) as again:
        assert again.policy().content_hash == stored.content_hash
        assert again.decide(app).outcome is Outcome.APPROVE
    # publishing the very same content again is a no-op
    same = load_policy_text(stored.content)
    mid = state(engine)
    assert engine.publish_policy(same, actor="test", activate=True) == DEFAULT_VERSION
    assert state(engine) == mid


def test_publish_activate_and_decide_under_an_older_version(engine: Engine, app: dict[str, Any]) -> None:
    assert engine.active_policy_version() == DEFAULT_VERSION
    before = state(engine)
    assert engine.publish_policy(v2_policy(), actor="test") == "2026.12.0"
    after_publish = state(engine)
    assert after_publish["policies"] == 2 and after_publish["audit_log"] == before["audit_log"] + 1
    assert after_publish["active"] == [DEFAULT_VERSION]  # published, not active

    assert engine.decide(app).policy_version == DEFAULT_VERSION
    pinned = engine.decide(variant(app, policy_version="2026.12.0"))
    assert (pinned.policy_version, pinned.outcome) == ("2026.12.0", Outcome.DECLINE)
    assert pinned.reasons == ("AGE_OUT_OF_RANGE",)

    engine.publish_policy(v2_policy(), actor="test", activate=True)
    assert state(engine)["active"] == ["2026.12.0"]
    # two decisions (the approval also opened a line), one activation
    assert state(engine)["audit_log"] == after_publish["audit_log"] + 4
    new = engine.decide(app)
    assert (new.policy_version, new.outcome) == ("2026.12.0", Outcome.DECLINE)
    old = engine.decide(variant(app, policy_version=DEFAULT_VERSION))
    assert (old.policy_version, old.outcome) == (DEFAULT_VERSION, Outcome.APPROVE)
    # every decision is explained and replayed under the version that made it
    for d in (pinned, new, old):
        x = engine.explain(d.decision_id)
        assert x["policy_version"] == d.policy_version and x["reproduced"] is True
    # and switching back works
    engine.publish_policy(load_policy_text(DEFAULT_POLICY_PATH.read_text()), actor="test", activate=True)
    assert engine.decide(app).policy_version == DEFAULT_VERSION
    listed = {p["version"]: p["active"] for p in engine.list_policies()}
    assert listed == {DEFAULT_VERSION: True, "2026.12.0": False}
    assert engine.verify_audit().ok


def test_activation_by_another_process_reaches_a_running_engine(engine: Engine, app: dict[str, Any]) -> None:
    """`fengkong policy publish --activate` (or another API replica) changes the policy a running engine uses."""
    assert engine.decide(app).policy_version == DEFAULT_VERSION
    engine.active_policy_refresh_seconds = 0.05
    with Engine(engine.database_url, secret_key=TEST_SECRET) as other:
        other.publish_policy(v2_policy(), actor="cli", activate=True)
    time.sleep(0.1)
    d = engine.decide(app)
    assert (d.policy_version, d.outcome) == ("2026.12.0", Outcome.DECLINE)
    # a restarted engine keeps it, and publishes nothing of its own
    before = state(engine)
    with Engine(engine.database_url, secret_key=TEST_SECRET) as again:
        assert again.active_policy_version() == "2026.12.0"
        assert again.decide(app).policy_version == "2026.12.0"
    after = state(engine)
    assert after["policies"] == before["policies"] == 2 and after["audit_log"] == before["audit_log"] + 1


# ------------------------------------------------------------------------------------------ API keys


def test_api_keys_create_authenticate_revoke(engine: Engine) -> None:
    keys = {role: engine.create_api_key(role, name=f"{role.value}-key", actor="test") for role in Role}
    for role, key in keys.items():
        principal = engine.authenticate(key)
        assert principal is not None, role
        assert (principal.role, principal.name, principal.key_id) == (role, f"{role.value}-key", parse_key_id(key))
        # each principal can do what its role may, and nothing else
        assert {p for p in Permission if principal.can(p)} == set(ROLE_PERMISSIONS[role])
    # only a hash of the key is stored
    with engine.db.connect() as conn:
        stored = conn.execute(sa.select(api_keys)).all()
    assert len(stored) == len(Role)
    assert not any(key.split("_", 2)[2] in repr(stored) for key in keys.values())

    # wrong keys authenticate nobody
    prefix, key_id, secret = keys[Role.ADMIN].split("_", 2)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for wrong in (
        None,
        "",
        "nonsense",
        f"{prefix}_{key_id}_{flipped}",  # right id, wrong secret
        f"{prefix}_{key_id}_",
        f"{prefix}_{'0' * 12}_{secret}",  # unknown id, right secret
        f"xx_{key_id}_{secret}",
        keys[Role.ADMIN] + "x",
        keys[Role.ADMIN].upper(),
    ):
        assert engine.authenticate(wrong) is None, wrong

    # revocation: at once in this engine, and in another engine on the same store (another API replica)
    system = keys[Role.SYSTEM]
    system_id = parse_key_id(system)
    assert system_id is not None
    before = state(engine)
    engine.revoke_api_key(system_id, actor="test")
    assert engine.authenticate(system) is None
    assert engine.authenticate(keys[Role.ADMIN]) is not None  # the others still work
    assert state(engine)["audit_log"] == before["audit_log"] + 1
    for again in (system_id, "000000000000"):
        with pytest.raises(FengkongError) as err:
            engine.revoke_api_key(again)
        assert (err.value.code, err.value.field, err.value.status) == ("api_key_not_found", "key_id", 404)
    with Engine(engine.database_url, secret_key=TEST_SECRET) as other:
        assert other.authenticate(system) is None
        assert other.authenticate(keys[Role.AUDITOR]) is not None

    # an unknown role is refused and stores nothing
    before = state(engine)
    with pytest.raises(FengkongError) as err:
        engine.create_api_key("root")
    assert (err.value.code, err.value.field, err.value.status) == ("invalid_role", "role", 422)
    assert state(engine) == before
    assert engine.verify_audit().ok


def test_role_permissions() -> None:
    P = Permission
    expected = {
        Role.SYSTEM: {P.DECIDE, P.INGEST, P.READ_DECISION, P.READ_LINE, P.READ_LOAN, P.APPEAL},
        Role.ANALYST: {
            P.READ_DECISION,
            P.READ_POLICY,
            P.MANAGE_LISTS,
            P.READ_LINE,
            P.MANAGE_LINES,
            P.READ_MODEL,
            P.READ_LOAN,
            P.COLLECT,
            P.READ_CASES,
            P.WORK_CASES,
        },
        Role.SUPERVISOR: {
            P.READ_DECISION,
            P.VIEW_PII,
            P.READ_POLICY,
            P.MANAGE_LISTS,
            P.READ_LINE,
            P.MANAGE_LINES,
            P.READ_MODEL,
            P.READ_LOAN,
            P.COLLECT,
            P.READ_CASES,
            P.WORK_CASES,
        },
        Role.AUDITOR: {
            P.READ_DECISION,
            P.READ_POLICY,
            P.VERIFY_AUDIT,
            P.READ_LINE,
            P.READ_MODEL,
            P.READ_LOAN,
            P.READ_CASES,
        },
        Role.ADMIN: set(P),
    }
    assert {r: set(ps) for r, ps in ROLE_PERMISSIONS.items()} == expected
    # the sensitive permissions belong to admin alone; unmasked PII also to the supervisor (an analyst who may see it)
    for perm in (P.MANAGE_POLICY, P.MANAGE_KEYS):
        assert [r for r in Role if perm in ROLE_PERMISSIONS[r]] == [Role.ADMIN]
    assert [r for r in Role if P.VIEW_PII in ROLE_PERMISSIONS[r]] == [Role.SUPERVISOR, Role.ADMIN]
    # a supervisor is an analyst who may see unmasked personal data: nothing else more
    assert ROLE_PERMISSIONS[Role.SUPERVISOR] == ROLE_PERMISSIONS[Role.ANALYST] | {P.VIEW_PII}


def test_age_is_read_from_a_raw_id_number_when_not_declared(engine: Engine, application: dict[str, Any]) -> None:
    import datetime as dt

    from fengkong.pii import inspect_id_number

    application["applicant"].pop("age", None)
    decision = engine.decide(application)
    detail = engine.explain(decision.decision_id)
    born = inspect_id_number(application["identity"]["id_number"]).birth_date
    assert born is not None
    today = dt.date.today()
    expected = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    assert detail["features"]["age"] == expected
    assert detail["features"]["id_age_gap"] is None  # nothing declared to compare with
    assert "age" not in detail["inputs"]["applicant"]  # the stored inputs are what the lender sent


def test_ids_made_in_one_millisecond_still_sort_in_the_order_they_were_made() -> None:
    from fengkong.domain import new_id

    ids = [new_id("cac") for _ in range(20_000)]  # many per millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == len("cac_") + 26 for i in ids)
