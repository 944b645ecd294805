"""Policy versions (issue 8): immutable once published on every door, publishing, promoting, rolling back and
giving roles are admin-only and audited, and every decision and every line action names the policy version that
made it — the champion's, the challenger's, or the one in force when a person or a review acted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fengkong import Engine
from fengkong.api import create_app
from fengkong.cli import app
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text
from fengkong.service import assignment_bucket
from fengkong.store.tables import audit_log, credit_lines, decisions, line_actions, policies
from test_champion_challenger import person

SECRET = "test-secret-key-0123456789abcdef-0123456789"
DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
DEFAULT_VERSION = yaml.safe_load(DEFAULT_TEXT)["version"]
NON_ADMIN = ("system", "analyst", "supervisor", "auditor")


def policy_text(version: str, decline_below: float | None = None) -> str:
    data = yaml.safe_load(DEFAULT_TEXT)
    data["version"] = version
    if decline_below is not None:
        data["score"]["decline_below"] = decline_below
        data["score"]["review_below"] = max(decline_below, data["score"]["review_below"])
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def state(engine: Engine) -> dict[str, Any]:
    """Everything a policy door could change: the policies as stored and the audit chain."""
    with engine.db.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.select(policies).order_by(policies.c.version))]
        audit = [tuple(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq))]
    return {"policies": rows, "audit": audit}


def audit_entries(engine: Engine, kind: str) -> list[Any]:
    with engine.db.connect() as conn:
        return list(conn.execute(sa.select(audit_log).where(audit_log.c.kind == kind).order_by(audit_log.c.seq)))


# ------------------------------------------------------------------------------------------------ immutability


def test_a_re_publish_with_other_content_is_refused_on_the_cli_and_nothing_changes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    env = {"FENGKONG_DATABASE_URL": url, "FENGKONG_SECRET_KEY": SECRET}
    runner = CliRunner()
    first = tmp_path / "v1.yaml"
    first.write_text(policy_text("2027.1.0"), encoding="utf-8")
    assert runner.invoke(app, ["policy", "publish", str(first)], env=env).exit_code == 0
    with Engine(url, secret_key=SECRET) as engine:
        before = state(engine)
    changed = tmp_path / "v1-changed.yaml"
    changed.write_text(policy_text("2027.1.0", decline_below=600), encoding="utf-8")
    for extra in ([], ["--activate"]):
        r = runner.invoke(app, ["policy", "publish", str(changed), *extra], env=env)
        assert r.exit_code == 1, r.output
        assert "error policy_version_exists: policy version '2027.1.0' is already published" in r.stderr
        assert "immutable" in r.stderr
    # the very same content again is harmless, and changes nothing either
    assert runner.invoke(app, ["policy", "publish", str(first)], env=env).exit_code == 0
    with Engine(url, secret_key=SECRET) as engine:
        assert state(engine) == before
        assert engine.policy("2027.1.0").spec.score.decline_below == 560  # the stored content, not the new one
        assert engine.active_policy_version() == DEFAULT_VERSION


# ------------------------------------------------------------------------------------------------ roles on doors


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Engine, TestClient, dict[str, dict[str, str]]]]:
    engine = Engine(f"sqlite:///{tmp_path / 'a.db'}", secret_key=SECRET)
    engine.publish_policy(load_policy_text(policy_text("cand-1", 580)), actor="test")
    keys = {role: {"X-API-Key": engine.create_api_key(role)} for role in (*NON_ADMIN, "admin")}
    yield engine, TestClient(create_app(engine)), keys
    engine.close()


def test_publish_promote_roll_back_and_roles_need_the_admin_role(
    api: tuple[Engine, TestClient, dict[str, dict[str, str]]],
) -> None:
    engine, client, keys = api
    doors = [
        ("/v1/policies", {"content": policy_text("cand-2")}),  # publish
        ("/v1/policies", {"content": policy_text("cand-3"), "activate": True}),  # publish and promote
        ("/v1/policies/cand-1/activate", None),  # promote
        (f"/v1/policies/{DEFAULT_VERSION}/activate", None),  # roll back
        ("/v1/policies/cand-1/role", {"role": "challenger", "share": 0.2}),
        ("/v1/policies/cand-1/role", {"role": "shadow"}),
        ("/v1/policies/cand-1/role", {"role": None}),
    ]
    before = state(engine)
    for role in NON_ADMIN:
        for path, body in doors:
            r = client.post(path, json=body, headers=keys[role])
            assert r.status_code == 403, (role, path, r.text)
            assert r.json()["code"] == "forbidden"
    assert client.post("/v1/policies", json={"content": policy_text("cand-2")}).status_code == 401  # no key
    assert state(engine) == before  # nothing published, promoted, given a role or audited
    # every role that reads policies may still read them (unchanged); only the admin changes them
    for role in ("analyst", "supervisor", "auditor"):
        listed = client.get("/v1/policies", headers=keys[role])
        assert listed.status_code == 200
        assert {(p["version"], p["active"]) for p in listed.json()} == {(DEFAULT_VERSION, True), ("cand-1", False)}


def test_admin_changes_are_audited_with_the_key_that_made_them(
    api: tuple[Engine, TestClient, dict[str, dict[str, str]]],
) -> None:
    engine, client, keys = api
    admin = keys["admin"]
    key_id = admin["X-API-Key"].split("_")[1]
    published = len(audit_entries(engine, "policy_published"))
    r = client.post("/v1/policies", json={"content": policy_text("cand-2")}, headers=admin)
    assert r.status_code == 200 and r.json()["created_by"] == f"key:{key_id}"
    assert client.post("/v1/policies/cand-2/activate", headers=admin).json()["active"] is True
    assert client.post(f"/v1/policies/{DEFAULT_VERSION}/activate", headers=admin).status_code == 200  # roll back
    assert client.post("/v1/policies/cand-1/role", json={"role": "shadow"}, headers=admin).status_code == 200
    assert engine.active_policy_version() == DEFAULT_VERSION
    listed = {p["version"]: (p["role"], p["share"]) for p in client.get("/v1/policies", headers=admin).json()}
    assert listed == {DEFAULT_VERSION: ("champion", None), "cand-1": ("shadow", None), "cand-2": (None, None)}
    client.post("/v1/policies/cand-2/role", json={"role": "challenger", "share": 0.25}, headers=admin)
    listed = {p["version"]: (p["role"], p["share"]) for p in client.get("/v1/policies", headers=admin).json()}
    assert listed["cand-2"] == ("challenger", 0.25)

    pub = audit_entries(engine, "policy_published")
    assert len(pub) == published + 1 and (pub[-1].subject_id, pub[-1].actor) == ("cand-2", f"key:{key_id}")
    activations = [(e.subject_id, e.actor) for e in audit_entries(engine, "policy_activated")][-2:]
    assert activations == [("cand-2", f"key:{key_id}"), (DEFAULT_VERSION, f"key:{key_id}")]
    roles = [(e.subject_id, e.actor) for e in audit_entries(engine, "policy_role_set")]
    assert roles == [("cand-1", f"key:{key_id}"), ("cand-2", f"key:{key_id}")]
    assert engine.verify_audit().ok


# ------------------------------------------------------------------------------------------------ named versions


def test_every_decision_and_every_line_action_names_the_policy_version(
    sqlite_engine: Engine, application: dict[str, Any]
) -> None:
    engine = sqlite_engine
    champion = engine.active_policy_version()
    engine.publish_policy(load_policy_text(policy_text("chal-1")), actor="test")  # same terms, another version
    engine.set_policy_role("chal-1", "challenger", share=0.5)
    made = [engine.decide(person(application, i, "pv")) for i in range(16)]
    expected = {d.customer_id: ("chal-1" if assignment_bucket(d.customer_id) < 0.5 else champion) for d in made}
    assert {d.customer_id: d.policy_version for d in made} == expected
    assert set(expected.values()) == {champion, "chal-1"}  # both policies decided someone
    lines = [d for d in made if d.line_id]
    assert len(lines) == len(made)  # all approved: every line's opening names its decision's version

    person_line = lines[0].line_id
    assert person_line is not None
    engine.lines.act(person_line, "freeze", actor="analyst-1", note="customer called about a lost phone")
    engine.activate_policy("chal-1")  # promote: what acts from now on is chal-1
    engine.lines.act(person_line, "restore", actor="analyst-1", actor_kind="case", note="phone recovered")
    engine.lines.review(dt.date.today(), apply=True, actor="test")

    with engine.db.connect() as conn:
        opened = {
            r.customer_id: (r.policy_version, r.action_version)
            for r in conn.execute(
                sa.select(
                    credit_lines.c.customer_id,
                    credit_lines.c.policy_version,
                    line_actions.c.policy_version.label("action_version"),
                )
                .join(line_actions, line_actions.c.line_id == credit_lines.c.id)
                .where(line_actions.c.action == "open")
            )
        }
        manual = conn.execute(
            sa.select(line_actions.c.action, line_actions.c.policy_version)
            .where(line_actions.c.line_id == person_line)
            .order_by(line_actions.c.seq)
        ).all()
        unnamed_actions = conn.execute(
            sa.select(sa.func.count()).select_from(line_actions).where(line_actions.c.policy_version.is_(None))
        ).scalar_one()
        unnamed_decisions = conn.execute(
            sa.select(sa.func.count()).select_from(decisions).where(decisions.c.policy_version.is_(None))
        ).scalar_one()
        total_actions = conn.execute(sa.select(sa.func.count()).select_from(line_actions)).scalar_one()
    assert opened == {c: (v, v) for c, v in expected.items()}
    assert [tuple(m) for m in manual[:3]] == [
        ("open", expected[lines[0].customer_id]),
        ("freeze", champion),  # the policy in force when the analyst acted
        ("restore", "chal-1"),  # after the promotion
    ]
    assert total_actions >= len(made) + 2 and unnamed_actions == 0 and unnamed_decisions == 0
    for d in made:  # and the decision's own record names it, replayed under it
        assert engine.explain(d.decision_id)["policy_version"] == expected[d.customer_id]
