"""Event triggers: checked at policy load, fired on the customer's features including the event, stored as
audited alerts, and readable by analysts (HTTP, CLI). Plus the CLI doors for roles, activation, lists and
the community job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fengkong import Engine
from fengkong.api import create_app
from fengkong.cli import app
from fengkong.policy.errors import PolicyError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text

SECRET = "test-secret-key-0123456789abcdef-0123456789"
T = "2026-11-23T10:{:02d}:00Z"


def policy_with(triggers: list[dict[str, Any]], version: str = "trig-test") -> str:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["version"] = version
    data["triggers"] = triggers
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"events": ["loginn"], "when": "customer_failed_logins_1h >= 5"}, "unknown event type"),
        ({"events": ["login"], "when": "customer_failed_logins_1hh >= 5"}, "did you mean"),
        ({"events": ["login"], "when": "customer_failed_logins_1h >= 'x'"}, "cannot compare"),
        ({"events": ["login"], "when": "customer_failed_logins_1h >= 5", "reason": "NOPE"}, "unknown reason"),
        (
            {"events": ["login"], "when": "customer_failed_logins_1h", "reason": "ACCOUNT_TAKEOVER_SUSPECTED"},
            "true or false",
        ),
    ],
)
def test_bad_triggers_are_refused_at_load(trigger: dict[str, Any], message: str) -> None:
    spec = {"id": "T1", "action": "alert", "reason": "ACCOUNT_TAKEOVER_SUSPECTED", **trigger}
    with pytest.raises(PolicyError) as err:
        load_policy_text(policy_with([spec]), source="t.yaml")
    assert message in str(err.value)
    assert any(p.where.startswith("triggers[0]") for p in err.value.problems)


def test_takeover_trigger_fires_once_with_evidence_and_is_audited(tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 't.db'}", secret_key=SECRET)
    base = {"customer_id": "v1"}
    quiet = engine.ingest([{**base, "type": "drawdown", "event_id": "d0", "occurred_at": T.format(0), "amount": 900}])
    assert quiet.alerts == []  # a drawdown alone is not a takeover
    events = [
        {**base, "type": "device_bound", "event_id": "e1", "occurred_at": T.format(1), "device_id": "new"},
        {**base, "type": "password_changed", "event_id": "e2", "occurred_at": T.format(2)},
        {**base, "type": "drawdown", "event_id": "e3", "occurred_at": T.format(3), "amount": 9000},
    ]
    result = engine.ingest(events)
    assert len(result.alerts) == 1
    again = engine.ingest(events)  # a retried batch is all duplicates: no second alert
    assert again.alerts == [] and len(again.duplicates) == 3
    (alert,) = engine.list_alerts(customer_id="v1")
    assert (alert["trigger_id"], alert["action"], alert["reason"], alert["event_id"]) == (
        "TAKEOVER",
        "freeze_line",
        "ACCOUNT_TAKEOVER_SUSPECTED",
        "e3",
    )
    assert alert["features"]["customer_new_devices_24h"] == 1.0
    assert alert["features"]["customer_password_changes_24h"] == 1.0
    assert engine.verify_audit().ok

    client = TestClient(create_app(engine))
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    listed = client.get("/v1/alerts", params={"customer_id": "v1"}, headers=analyst)
    assert listed.status_code == 200 and [a["id"] for a in listed.json()] == [alert["id"]]
    assert client.get("/v1/alerts").status_code == 401
    assert client.get("/v1/alerts", params={"limit": 0}, headers=analyst).status_code == 422
    assert client.get("/v1/alerts", params={"custmer_id": "v1"}, headers=analyst).json()["code"] == "unknown_field"


def test_cli_roles_activation_lists_communities_and_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FENGKONG_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    monkeypatch.setenv("FENGKONG_SECRET_KEY", SECRET)
    runner = CliRunner()
    candidate = tmp_path / "cand.yaml"
    candidate.write_text(policy_with([], version="cand-9"), encoding="utf-8")
    assert runner.invoke(app, ["policy", "publish", str(candidate)]).exit_code == 0

    bad = runner.invoke(app, ["policy", "role", "cand-9"])
    assert bad.exit_code == 1 and "exactly one of" in bad.output
    assert runner.invoke(app, ["policy", "role", "cand-9", "--challenger", "1.5"]).exit_code == 1
    ok = runner.invoke(app, ["policy", "role", "cand-9", "--challenger", "0.25"])
    assert ok.exit_code == 0 and "25%" in ok.output
    assert runner.invoke(app, ["policy", "compare", "--json"]).exit_code == 0

    assert runner.invoke(app, ["policy", "activate", "nope"]).exit_code == 1
    promoted = runner.invoke(app, ["policy", "activate", "cand-9"])
    assert promoted.exit_code == 0
    engine = Engine(secret_key=SECRET)
    assert engine.active_policy_version() == "cand-9" and engine._read_roles() == {}

    listed = runner.invoke(
        app,
        ["lists", "add", "--list", "blacklist", "--kind", "device", "--value", "d-1", "--reason", "confirmed_fraud"],
    )
    assert listed.exit_code == 0
    refused = runner.invoke(
        app, ["lists", "add", "--list", "greylist", "--kind", "device", "--value", "d-1", "--reason", "x"]
    )
    assert refused.exit_code == 1 and "blacklist or watchlist" in refused.output
    assert runner.invoke(app, ["lists", "protect", "victim-1"]).exit_code == 0
    victim = runner.invoke(
        app, ["lists", "add", "--list", "blacklist", "--kind", "customer", "--value", "victim-1", "--reason", "x"]
    )
    assert victim.exit_code == 1 and "protected" in victim.output

    communities = runner.invoke(app, ["graph", "communities", "--json"])
    assert communities.exit_code == 0 and '"groups"' in communities.output
    alerts = runner.invoke(app, ["alerts", "--json"])
    assert alerts.exit_code == 0 and alerts.output.strip().startswith("[")


def test_policy_role_and_activation_over_http_need_admin(tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path / 'h.db'}", secret_key=SECRET)
    engine.publish_policy(load_policy_text(policy_with([], version="cand-h")), actor="test")
    original = engine.active_policy_version()
    client = TestClient(create_app(engine))
    admin = {"X-API-Key": engine.create_api_key("admin")}
    analyst = {"X-API-Key": engine.create_api_key("analyst")}
    body = {"role": "challenger", "share": 0.2}
    assert client.post("/v1/policies/cand-h/role", json=body, headers=analyst).status_code == 403
    assert client.post("/v1/policies/cand-h/role", json=body, headers=admin).status_code == 200
    assert client.post("/v1/policies/nope/role", json=body, headers=admin).status_code == 404
    no_share = client.post("/v1/policies/cand-h/role", json={"role": "challenger"}, headers=admin)
    assert no_share.status_code == 422 and no_share.json()["field"] == "share"
    groups = client.get("/v1/policies/compare", headers=analyst).json()["groups"]
    assert isinstance(groups, list)
    assert client.post("/v1/policies/cand-h/activate", headers=analyst).status_code == 403
    assert client.post("/v1/policies/cand-h/activate", headers=admin).json()["active"] is True
    assert client.post(f"/v1/policies/{original}/activate", headers=admin).status_code == 200  # roll back
    assert engine.active_policy_version() == original
    assert engine.verify_audit().ok


def test_a_trigger_id_used_twice_is_refused_at_load() -> None:
    from fengkong.policy.errors import PolicyError
    from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text

    text = DEFAULT_POLICY_PATH.read_text()
    twice = text.replace("  - id: FAILED_LOGIN_BURST", "  - id: TAKEOVER", 1)
    with pytest.raises(PolicyError) as err:
        load_policy_text(twice)
    assert "trigger id 'TAKEOVER' is used twice" in str(err.value)
