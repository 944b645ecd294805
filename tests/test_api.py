"""The HTTP door, driven through FastAPI's TestClient: the contract the README documents.

Most tests run on SQLite (`sqlite_engine`); the ones marked "both stores" take the `engine` fixture and so also
run against PostgreSQL. Every refused request is followed by a check that nothing was stored: the number of
decisions and the head of the audit chain are the same as before it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from fengkong import __version__
from fengkong.api import create_app
from fengkong.domain import Language
from fengkong.policy.loader import load_default_policy
from fengkong.reasons import reason
from fengkong.store import audit
from fengkong.store.tables import api_keys, decisions, policies

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = json.loads((ROOT / "examples" / "application.json").read_text(encoding="utf-8"))
DEFAULT_POLICY_TEXT = (ROOT / "src" / "fengkong" / "policies" / "default.yaml").read_text(encoding="utf-8")
DEFAULT_VERSION = load_default_policy().version  # whatever the bundled policy says
ROLES = ("system", "analyst", "auditor", "admin")

# Raw identifiers of examples/application.json, in the forms they could leak in (as sent, digits only).
RAW_IDENTIFIERS = (
    "110101199003074514",
    "+86 138 0013 8000",
    "13800138000",
    "6222 0212 3456 7890 128",
    "62220212345678901" + "28",
    "a3f9c2e1-7d4b-4c8e-9f10-2b6d8e4a1c77",
    "203.0.113.42",
)


# ------------------------------------------------------------------------------------------------ helpers


class Api:
    """A TestClient on create_app(engine) with one key per role."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.client = TestClient(create_app(engine), raise_server_exceptions=False)
        self.keys = {role: engine.create_api_key(role, name=f"test-{role}") for role in ROLES}

    def h(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"X-API-Key": self.keys[role]}

    def decide(self, body: Any, role: str = "system", **kwargs: Any) -> Any:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **self.h(role), **kwargs.pop("headers", {})}
        return self.client.post("/v1/applications", content=content, headers=headers, **kwargs)

    def state(self) -> tuple[int, int, str, int]:
        """(decisions stored, audit head seq, audit head hash, policies stored)."""
        with self.engine.db.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one()
            n_policies = conn.execute(sa.select(sa.func.count()).select_from(policies)).scalar_one()
            seq, digest = audit.head(conn)
        return int(count), seq, digest, int(n_policies)


@pytest.fixture
def api(sqlite_engine: Any) -> Api:
    return Api(sqlite_engine)


@pytest.fixture
def api_both(engine: Any) -> Api:
    """The same on SQLite and on PostgreSQL."""
    return Api(engine)


def example(**changes: Any) -> dict[str, Any]:
    """examples/application.json with top-level keys replaced (None removes a key)."""
    data = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def _hashed_id_without_age() -> dict[str, Any]:
    """The age may be left out only when it can be read from a raw ID number."""
    import hashlib

    data = example(application_id="app-bad-1")
    raw = data["identity"].pop("id_number")
    data["identity"]["id_number_hash"] = hashlib.sha256(raw.encode()).hexdigest()
    data["applicant"].pop("age", None)
    return data


def with_applicant(**changes: Any) -> dict[str, Any]:
    data = example(application_id="app-bad-1")
    for key, value in changes.items():
        if value is None:
            data["applicant"].pop(key, None)
        else:
            data["applicant"][key] = value
    return data


def assert_error(response: Any, status: int, code: str, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body["field"] == field, body
    assert isinstance(body["message"], str) and body["message"], body
    return body


def policy_text(version: str) -> str:
    text = DEFAULT_POLICY_TEXT.replace(f'version: "{DEFAULT_VERSION}"', f'version: "{version}"')
    assert text != DEFAULT_POLICY_TEXT
    return text


def has_cjk(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


# ------------------------------------------------------------------------------------------------ decide


def test_decide_read_back_and_verify_on_both_stores(api_both: Api) -> None:
    api = api_both
    before = api.state()
    r = api.decide(EXAMPLE)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["outcome"] == "approve"
    assert d["limit"] == 35000.0
    assert d["apr"] == pytest.approx(0.108)
    assert d["currency"] == "CNY"
    assert d["reasons"] == []
    assert d["policy_version"] == DEFAULT_VERSION
    assert d["model_version"] == "starter@1"
    assert d["application_id"] == EXAMPLE["application_id"]
    assert d["replayed"] is False
    assert d["case_id"] is None
    assert re.fullmatch(r"dec_[0-9A-HJKMNP-TV-Z]{26}", d["decision_id"]), d["decision_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", d["created_at"])
    after = api.state()
    assert after[0] == before[0] + 1, "one decision stored"
    assert d["outcome"] == "approve" and d["line_id"] is not None, "an approval opens a credit line"
    assert after[1] == before[1] + 2, "two audit entries appended: the decision and the line it opened"

    # A retry of the same application answers with the stored decision and stores nothing.
    again = api.decide(EXAMPLE)
    assert again.status_code == 200, again.text
    assert again.json() | {"replayed": False} == d
    assert again.json()["replayed"] is True
    assert api.state() == after

    # Read back by an analyst: identifiers masked, explanations for analyst and customer.
    g = api.client.get(f"/v1/decisions/{d['decision_id']}", headers=api.h("analyst"))
    assert g.status_code == 200, g.text
    detail = g.json()
    for key in ("decision_id", "outcome", "limit", "apr", "policy_version", "model_version", "reasons"):
        assert detail[key] == d[key], key
    assert detail["reproduced"] is True
    assert detail["customer_id"] == EXAMPLE["customer_id"]
    assert set(detail["identity"]) == {"id_number", "phone", "bank_card", "device_id", "ip"}
    assert detail["identity"]["id_number"] == "110101********4514"
    assert "*" in detail["identity"]["phone"] and detail["identity"]["phone"].endswith("8000")
    for raw in RAW_IDENTIFIERS:
        assert raw not in g.text, f"raw identifier {raw!r} shown to an analyst"
    # stored inputs carry keyed hashes, never the identifiers
    assert set(detail["inputs"]["identity"]) == {
        "id_number_key",
        "phone_key",
        "bank_card_key",
        "device_id_key",
        "ip_key",
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in detail["inputs"]["identity"].values())
    assert detail["inputs"]["applicant"] == EXAMPLE["applicant"]
    assert detail["features"]["monthly_income"] == 18000

    analyst = detail["explanation"]["analyst"]
    assert "APPROVE" in analyst["summary"] and DEFAULT_VERSION in analyst["summary"]
    assert analyst["score"]["value"] == detail["score"]
    assert analyst["score"]["characteristics"], "the score is explained by characteristic"
    assert all({"name", "points", "points_lost"} <= set(c) for c in analyst["score"]["characteristics"])
    customer = detail["explanation"]["customer"]
    assert set(customer) == {"zh", "en"}
    assert has_cjk(customer["zh"]["headline"]) and "35,000" in customer["zh"]["headline"]
    assert customer["en"]["headline"].isascii() and "35,000" in customer["en"]["headline"]
    assert d["decision_id"] in customer["zh"]["appeal"] and d["decision_id"] in customer["en"]["appeal"]

    # The auditor finds the chain intact and counting every entry.
    v = api.client.get("/v1/audit/verify", headers=api.h("auditor"))
    assert v.status_code == 200, v.text
    report = v.json()
    assert report["ok"] is True and report["findings"] == [] and report["first_bad_seq"] is None
    assert report["entries"] == report["head_seq"] == after[1]
    assert report["head_hash"] == after[2]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_reasons_are_in_the_application_language(api: Api, language: str) -> None:
    body = with_applicant(monthly_income=1500)  # below the policy's minimum income
    body["language"] = language
    r = api.decide(body)
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["outcome"] == "decline"
    assert d["limit"] is None and d["apr"] is None
    assert d["reasons"], "a decline carries its principal reasons"
    assert d["reasons"][0]["code"] == "INCOME_TOO_LOW"
    for item in d["reasons"]:
        assert set(item) == {"code", "category", "text"}
        assert item["category"] == reason(item["code"]).category.value
        assert item["text"] == reason(item["code"]).customer_text(Language(language))
        if language == "zh":
            assert has_cjk(item["text"]), item
        else:
            assert item["text"].isascii() and not has_cjk(item["text"]), item

    detail = api.client.get(f"/v1/decisions/{d['decision_id']}", headers=api.h("auditor")).json()
    assert detail["reasons"] == d["reasons"], "read back in the language it was decided in"
    hits = {h["id"]: h for h in detail["explanation"]["analyst"]["rule_hits"]}
    assert hits["ELIG_INCOME"]["values"] == {"monthly_income": 1500}
    assert hits["ELIG_INCOME"]["reason"] == "INCOME_TOO_LOW"
    for lang in ("zh", "en"):
        view = detail["explanation"]["customer"][lang]
        assert [x["code"] for x in view["reasons"]] == [x["code"] for x in d["reasons"]]
        texts = [view["headline"], *(x["text"] for x in view["reasons"])]
        assert all(has_cjk(t) for t in texts) if lang == "zh" else all(t.isascii() for t in texts), texts
        assert view["next_steps"], "a declined customer is told what they can do"


def test_reveal_pii_only_for_admin(api: Api) -> None:
    decision_id = api.decide(EXAMPLE).json()["decision_id"]
    before = api.state()
    for role in ("system", "analyst", "auditor"):
        r = api.client.get(f"/v1/decisions/{decision_id}", params={"reveal_pii": "true"}, headers=api.h(role))
        body = assert_error(r, 403, "forbidden", "reveal_pii")
        for raw in RAW_IDENTIFIERS:
            assert raw not in r.text
        assert "identity" not in body
    r = api.client.get(f"/v1/decisions/{decision_id}", params={"reveal_pii": "true"}, headers=api.h("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["identity"] == EXAMPLE["identity"]
    masked = api.client.get(f"/v1/decisions/{decision_id}", headers=api.h("admin")).json()["identity"]
    assert masked["id_number"] != EXAMPLE["identity"]["id_number"], "admin sees masked values unless asking"
    assert api.state() == before


def test_unknown_decision_is_404(api: Api) -> None:
    r = api.client.get("/v1/decisions/dec_00000000000000000000000000", headers=api.h("analyst"))
    assert_error(r, 404, "decision_not_found", "decision_id")


# ------------------------------------------------------------------------------------------------ auth

# README's role table, written out here rather than imported so that a change to the code shows up as a failure.
# name → (method, path, allowed roles)
ROUTES: dict[str, tuple[str, str, frozenset[str]]] = {
    "decide": ("POST", "/v1/applications", frozenset({"system", "admin"})),
    "read_decision": ("GET", "/v1/decisions/{id}", frozenset({"system", "analyst", "auditor", "admin"})),
    "reveal_pii": ("GET", "/v1/decisions/{id}?reveal_pii=true", frozenset({"admin"})),
    "list_policies": ("GET", "/v1/policies", frozenset({"analyst", "auditor", "admin"})),
    "publish_policy": ("POST", "/v1/policies", frozenset({"admin"})),
    "verify_audit": ("GET", "/v1/audit/verify", frozenset({"auditor", "admin"})),
}


@pytest.fixture
def authz(api: Api) -> tuple[Api, str]:
    """An app holding one decision (to read back)."""
    return api, api.decide(example(application_id="app-authz-0")).json()["decision_id"]


def call(api: Api, route: str, decision_id: str, headers: dict[str, str]) -> Any:
    method, path, _ = ROUTES[route]
    path = path.replace("{id}", decision_id)
    if route == "decide":
        body = json.dumps(example(application_id=None)).encode()
        return api.client.post(path, content=body, headers={"Content-Type": "application/json", **headers})
    if route == "publish_policy":
        return api.client.post(path, json={"content": policy_text("2026.11.1-authz")}, headers=headers)
    return api.client.request(method, path, headers=headers)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", list(ROUTES))
def test_roles_per_route(authz: tuple[Api, str], route: str, role: str) -> None:
    api, decision_id = authz
    before = api.state()
    r = call(api, route, decision_id, api.h(role))
    if role in ROUTES[route][2]:
        assert r.status_code == 200, f"{role} may {route}: {r.text}"
    else:
        assert_error(r, 403, "forbidden", "reveal_pii" if route == "reveal_pii" else None)
        assert role in r.json()["message"]
        assert api.state() == before, "a forbidden request stored nothing"


@pytest.mark.parametrize("route", list(ROUTES))
def test_missing_bad_and_revoked_keys(authz: tuple[Api, str], route: str) -> None:
    api, decision_id = authz
    before = api.state()
    assert_error(call(api, route, decision_id, {}), 401, "missing_api_key", "X-API-Key")
    assert_error(call(api, route, decision_id, {"X-API-Key": ""}), 401, "missing_api_key", "X-API-Key")
    admin = api.keys["admin"]
    wrong_secret = admin[:-4] + ("AAAA" if not admin.endswith("AAAA") else "BBBB")  # a real key id, a wrong secret
    for bad in ("nonsense", "fk_000000000000_" + "x" * 43, wrong_secret):
        assert_error(call(api, route, decision_id, {"X-API-Key": bad}), 401, "invalid_api_key", "X-API-Key")
    # revoke an admin key (allowed everywhere) after it has been used and cached: it stops working at once
    key = api.engine.create_api_key("admin")
    assert call(api, route, decision_id, {"X-API-Key": key}).status_code == 200
    api.engine.revoke_api_key(key.split("_")[1])
    after_revoke = api.state()
    # deciding an approval also opens a line (its own audit entry)
    assert after_revoke[1] == before[1] + 2 + {"decide": 2, "publish_policy": 1}.get(route, 0)
    r = call(api, route, decision_id, {"X-API-Key": key})
    assert_error(r, 401, "invalid_api_key", "X-API-Key")
    assert api.state() == after_revoke


def test_revoked_key_on_both_stores(api_both: Api) -> None:
    api = api_both
    key_id = api.keys["system"].split("_")[1]
    assert api.decide(example(application_id="app-rev-1")).status_code == 200
    api.engine.revoke_api_key(key_id)
    with api.engine.db.connect() as conn:
        assert conn.execute(sa.select(api_keys.c.revoked_at).where(api_keys.c.id == key_id)).scalar_one() is not None
    before = api.state()
    assert_error(api.decide(example(application_id="app-rev-2")), 401, "invalid_api_key", "X-API-Key")
    assert api.state() == before


# ------------------------------------------------------------------------------------------------ bad input

BIG = json.dumps(example(application_id="app-big", padding="x" * (256 * 1024))).encode()

# name → (body, status, code, field)
BAD_REQUESTS: dict[str, tuple[bytes | dict[str, Any], int, str, str | None]] = {
    "malformed_json": (b'{"customer_id": "cust-1", ', 400, "malformed_json", "body"),
    "not_utf8": (b"\xff\xfe{}", 400, "malformed_json", "body"),
    "empty_body": (b"", 400, "malformed_json", "body"),
    "json_array": (json.dumps([example(application_id="app-arr")]).encode(), 422, "invalid_body", "body"),
    "json_string": (b'"an application"', 422, "invalid_body", "body"),
    "missing_applicant": (example(application_id="app-bad-1", applicant=None), 422, "missing_field", "applicant"),
    "missing_customer_id": (example(application_id="app-bad-1", customer_id=None), 422, "missing_field", "customer_id"),
    "missing_income": (with_applicant(monthly_income=None), 422, "missing_field", "applicant.monthly_income"),
    "missing_age_with_hashed_id": (_hashed_id_without_age(), 422, "missing_field", "applicant.age"),
    "age_as_string": (with_applicant(age="32"), 422, "invalid_field", "applicant.age"),
    "age_300": (with_applicant(age=300), 422, "invalid_field", "applicant.age"),
    "age_negative": (with_applicant(age=-1), 422, "invalid_field", "applicant.age"),
    "income_negative": (with_applicant(monthly_income=-5000), 422, "invalid_field", "applicant.monthly_income"),
    "income_as_string": (with_applicant(monthly_income="18000"), 422, "invalid_field", "applicant.monthly_income"),
    "employment_unknown": (with_applicant(employment="astronaut"), 422, "invalid_field", "applicant.employment"),
    "unknown_field": (example(application_id="app-bad-1", nickname="Ming"), 422, "unknown_field", "nickname"),
    "unknown_nested_field": (with_applicant(salary=1), 422, "unknown_field", "applicant.salary"),
    "bad_language": (example(application_id="app-bad-1", language="fr"), 422, "invalid_field", "language"),
    "unknown_policy_version": (
        example(application_id="app-bad-1", policy_version="1999.1.0"),
        422,
        "unknown_policy_version",
        "policy_version",
    ),
    "body_too_large": (BIG, 413, "body_too_large", "body"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_refused_and_changes_nothing(api: Api, case: str) -> None:
    assert api.decide(example(application_id="app-good-0")).status_code == 200  # something already stored
    before = api.state()
    body, status, code, field = BAD_REQUESTS[case]
    r = api.decide(body)
    err = assert_error(r, status, code, field)
    if status == 422 and code in ("missing_field", "unknown_field", "invalid_field"):
        assert {"field": field, "code": code} in [{"field": e["field"], "code": e["code"]} for e in err["errors"]]
    assert api.state() == before, "a refused request stored nothing and appended nothing to the audit chain"


def test_several_problems_are_all_listed(api: Api) -> None:
    before = api.state()
    body = with_applicant(age=300, monthly_income=-1)
    body["bureau"]["inquiries_7d"] = "3"
    body["colour"] = "blue"
    r = api.decide(body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert (err["field"], err["code"]) == (err["errors"][0]["field"], err["errors"][0]["code"])
    listed = {(e["field"], e["code"]) for e in err["errors"]}
    assert listed == {
        ("colour", "unknown_field"),
        ("applicant.age", "invalid_field"),
        ("applicant.monthly_income", "invalid_field"),
        ("bureau.inquiries_7d", "invalid_field"),
    }
    assert "3 more" in err["message"]
    assert api.state() == before


def test_refusals_never_echo_identifiers(api: Api) -> None:
    before = api.state()
    body = example(application_id="app-bad-id")
    body["identity"] = {**body["identity"], "id_number": "11010119900307451Z"}  # wrong shape
    err = assert_error(api.decide(body), 422, "invalid_field", "identity.id_number")
    assert "11010119900307451" not in json.dumps(err)
    assert api.state() == before


def test_large_body_without_content_length_is_refused(api: Api) -> None:
    before = api.state()

    def chunks() -> Iterator[bytes]:  # streamed: no Content-Length header to trust
        for i in range(0, len(BIG), 64 * 1024):
            yield BIG[i : i + 64 * 1024]

    r = api.client.post("/v1/applications", content=chunks(), headers=api.h("system"))
    assert_error(r, 413, "body_too_large", "body")
    # a lying Content-Length is caught too
    lying = api.decide(example(application_id="app-x"), headers={"Content-Length": "999999"})
    assert_error(lying, 413, "body_too_large", "body")
    assert api.state() == before


def test_application_id_reused_with_other_data_on_both_stores(api_both: Api) -> None:
    api = api_both
    first = api.decide(EXAMPLE)
    assert first.status_code == 200, first.text
    before = api.state()
    changed = copy.deepcopy(EXAMPLE)
    changed["applicant"]["monthly_income"] = 1500
    assert_error(api.decide(changed), 409, "application_id_conflict", "application_id")
    assert api.state() == before
    # the stored decision is the first one, untouched
    detail = api.client.get(f"/v1/decisions/{first.json()['decision_id']}", headers=api.h("analyst")).json()
    assert detail["outcome"] == "approve" and detail["inputs"]["applicant"]["monthly_income"] == 18000
    # and bad input on PostgreSQL changes nothing either
    assert_error(api.decide(with_applicant(age="32")), 422, "invalid_field", "applicant.age")
    assert_error(api.decide(b"{nope"), 400, "malformed_json", "body")
    assert api.state() == before


# ------------------------------------------------------------------------------------------------ audit


def test_audit_verify_reports_an_edited_decision(api_both: Api) -> None:
    api = api_both
    decision_id = api.decide(EXAMPLE).json()["decision_id"]
    assert api.client.get("/v1/audit/verify", headers=api.h("admin")).json()["ok"] is True
    with api.engine.db.begin() as conn:
        conn.execute(sa.update(decisions).where(decisions.c.id == decision_id).values(limit_amount=99000.0))
    r = api.client.get("/v1/audit/verify", headers=api.h("auditor"))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] is False
    assert [f["subject_id"] for f in report["findings"]] == [decision_id]
    assert report["first_bad_seq"] == report["findings"][0]["seq"] is not None


# ------------------------------------------------------------------------------------------------ policies


def test_publish_and_list_policies(api: Api) -> None:
    listed = api.client.get("/v1/policies", headers=api.h("analyst"))
    assert listed.status_code == 200, listed.text
    assert [(p["version"], p["active"]) for p in listed.json()] == [(DEFAULT_VERSION, True)]

    before = api.state()
    r = api.client.post("/v1/policies", json={"content": policy_text("2026.12.0")}, headers=api.h("admin"))
    assert r.status_code == 200, r.text
    published = r.json()
    assert published["version"] == "2026.12.0"
    assert published["active"] is False
    assert published["name"] == "default"
    assert published["model_version"] == "starter@1"
    assert published["created_by"] == f"key:{api.keys['admin'].split('_')[1]}"
    assert re.fullmatch(r"[0-9a-f]{64}", published["content_hash"])
    after = api.state()
    assert after[3] == before[3] + 1 and after[1] == before[1] + 1, "stored and audited"

    versions = {p["version"]: p for p in api.client.get("/v1/policies", headers=api.h("auditor")).json()}
    assert set(versions) == {DEFAULT_VERSION, "2026.12.0"}
    assert versions[DEFAULT_VERSION]["active"] and not versions["2026.12.0"]["active"]

    # publishing the same text again is harmless; new decisions still use the active policy
    again = api.client.post("/v1/policies", json={"content": policy_text("2026.12.0")}, headers=api.h("admin"))
    assert again.status_code == 200 and api.state() == after
    assert api.decide(example(application_id=None)).json()["policy_version"] == DEFAULT_VERSION
    # an explicit policy_version decides under that version
    pinned = api.decide(example(application_id=None, policy_version="2026.12.0"))
    assert pinned.status_code == 200 and pinned.json()["policy_version"] == "2026.12.0"

    # activate: new decisions use it
    act = api.client.post(
        "/v1/policies", json={"content": policy_text("2027.1.0"), "activate": True}, headers=api.h("admin")
    )
    assert act.status_code == 200 and act.json()["active"] is True
    assert api.decide(example(application_id=None)).json()["policy_version"] == "2027.1.0"
    assert api.client.get("/healthz").json()["policy_version"] == "2027.1.0"


def test_published_version_is_immutable(api: Api) -> None:
    before = api.state()
    changed = DEFAULT_POLICY_TEXT.replace("decline_below: 560", "decline_below: 580")
    assert changed != DEFAULT_POLICY_TEXT
    r = api.client.post("/v1/policies", json={"content": changed}, headers=api.h("admin"))
    assert_error(r, 409, "policy_version_exists", "version")
    assert api.state() == before


def test_invalid_policy_lists_every_problem_with_its_position(api: Api) -> None:
    text = policy_text("2026.12.1")
    text = text.replace("when: age < 18 or age > 65", "when: agee < 18 or age > 65")
    text = text.replace("reason: INCOME_TOO_LOW", "reason: NO_SUCH_REASON")
    lines = text.splitlines()
    age_line = next(i for i, line in enumerate(lines, 1) if "agee" in line)
    age_col = lines[age_line - 1].index("agee") + 1
    reason_line = next(i for i, line in enumerate(lines, 1) if "NO_SUCH_REASON" in line)

    before = api.state()
    r = api.client.post("/v1/policies", json={"content": text, "activate": True}, headers=api.h("admin"))
    err = assert_error(r, 422, "invalid_policy", "rules[0].when")
    messages = [e["message"] for e in err["errors"]]
    assert len(messages) == 2, messages
    assert all(e["code"] == "invalid_policy" for e in err["errors"])
    assert [e["field"] for e in err["errors"]] == ["rules[0].when", "rules[2].reason"]
    assert f":{age_line}:{age_col}:" in messages[0] and "'ELIG_AGE'" in messages[0] and "agee" in messages[0]
    assert re.search(rf":{reason_line}:\d+:", messages[1]) and "'ELIG_INCOME'" in messages[1]
    assert "NO_SUCH_REASON" in messages[1]
    assert api.state() == before, "nothing published"
    assert [p["version"] for p in api.client.get("/v1/policies", headers=api.h("admin")).json()] == [DEFAULT_VERSION]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (b'{"content": ', 400, "malformed_json", "body"),
        (b"{}", 422, "missing_field", "content"),
        (b'{"content": 5}', 422, "invalid_field", "content"),
        (json.dumps({"content": DEFAULT_POLICY_TEXT, "activte": True}).encode(), 422, "unknown_field", "activte"),
        (b'{"content": "policy: [unclosed"}', 422, "invalid_policy", "yaml"),
    ],
    ids=["malformed_json", "missing_content", "content_not_text", "misspelt_activate", "bad_yaml"],
)
def test_bad_policy_requests(api: Api, body: bytes, status: int, code: str, field: str) -> None:
    before = api.state()
    r = api.client.post("/v1/policies", content=body, headers={"Content-Type": "application/json", **api.h("admin")})
    assert_error(r, status, code, field)
    assert api.state() == before


# ------------------------------------------------------------------------------------------------ operations


def test_healthz(api_both: Api) -> None:
    r = api_both.client.get("/healthz")  # no key needed
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "database": "ok", "policy_version": DEFAULT_VERSION, "version": __version__}


def test_healthz_reports_an_unreachable_database(api: Api, tmp_path: Path) -> None:
    working = api.engine.db
    api.engine.db = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    try:
        r = api.client.get("/healthz")
    finally:
        api.engine.db.dispose()
        api.engine.db = working
    assert r.status_code == 503, r.text
    assert r.json()["status"] == "unavailable" and r.json()["database"] == "unreachable"


def _decisions_total(text: str, outcome: str, version: str) -> float:
    pattern = r"^fengkong_decisions_total\{([^}]*)\} (\S+)$"
    for match in re.finditer(pattern, text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels == {"kind": "application", "outcome": outcome, "policy_version": version}:
            return float(match.group(2))
    return 0.0


def test_metrics_count_decisions_without_identifiers(api: Api) -> None:
    before = _decisions_total(api.client.get("/metrics").text, "approve", DEFAULT_VERSION)
    assert api.decide(EXAMPLE).status_code == 200
    assert api.decide(EXAMPLE).json()["replayed"] is True  # a replay is not a new decision
    bad = example(application_id="app-metrics-bad")
    bad["applicant"]["age"] = 300
    assert api.decide(bad).status_code == 422
    r = api.client.get("/metrics")  # no key needed
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "fengkong_decisions_total" in r.text
    assert "fengkong_rejected_requests_total" in r.text
    assert _decisions_total(r.text, "approve", DEFAULT_VERSION) == before + 1
    for raw in (*RAW_IDENTIFIERS, EXAMPLE["customer_id"], EXAMPLE["application_id"], "app-metrics-bad"):
        assert raw not in r.text, f"{raw!r} leaked into /metrics"


def test_openapi_document(api: Api) -> None:
    r = api.client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    expected = {
        "/v1/applications": {"post"},
        "/v1/decisions/{decision_id}": {"get"},
        "/v1/policies": {"get", "post"},
        "/v1/audit/verify": {"get"},
        "/healthz": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert path in doc["paths"], path
        assert methods <= set(doc["paths"][path]), (path, set(doc["paths"][path]))

    post = doc["paths"]["/v1/applications"]["post"]
    assert post["requestBody"]["required"] is True
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApplicationIn"
    }
    schemas = doc["components"]["schemas"]
    app_schema = schemas["ApplicationIn"]
    assert set(EXAMPLE) <= set(app_schema["properties"]), "every field of the example is in the schema"
    assert {"customer_id", "identity", "applicant"} <= set(app_schema["required"])
    assert app_schema.get("additionalProperties") is False
    for status in ("400", "401", "403", "413", "422"):
        assert status in post["responses"], status
    ok = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/DecisionOut"}
    assert {"decision_id", "outcome", "limit", "apr", "reasons", "policy_version"} <= set(
        schemas["DecisionOut"]["properties"]
    )
    # the key header is declared, and every $ref in the document resolves
    schemes = doc["components"]["securitySchemes"].values()
    assert any(s.get("in") == "header" and s.get("name") == "X-API-Key" for s in schemes)

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in set(refs(doc)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, f"unresolved {ref}"
