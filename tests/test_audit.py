"""The audit hash chain on SQLite and on a real PostgreSQL: a fresh chain verifies; editing, deleting, reordering
or cutting entries, editing the decisions they vouch for, or slipping in a decision outside the engine is found,
and the report names the first bad entry. Concurrent deciders never fork the chain."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import functools
import itertools
import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa

from fengkong.domain import new_id
from fengkong.service import Engine, decision_content_hash
from fengkong.store import audit
from fengkong.store.tables import audit_head, audit_log, decisions, policies

ENTRY_COLUMNS = ("created_at", "kind", "subject_id", "actor", "payload_hash", "prev_hash", "entry_hash")


# ------------------------------------------------------------------------------------------ helpers


def verify(eng: Engine) -> audit.AuditReport:
    """verify_audit(), checked to give the same report when the chain is read in chunks of 2 entries."""
    report = eng.verify_audit()
    with mock.patch.object(audit, "verify", functools.partial(audit.verify, chunk=2)):
        chunked = eng.verify_audit()
    assert chunked.as_dict() == report.as_dict()
    return report


def entries(eng: Engine) -> list[Any]:
    with eng.db.connect() as conn:
        return conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).all()


def seq_of(eng: Engine, subject_id: str) -> int:
    with eng.db.connect() as conn:
        return int(conn.execute(sa.select(audit_log.c.seq).where(audit_log.c.subject_id == subject_id)).scalar_one())


def execute(eng: Engine, *statements: Any) -> None:
    """Tamper: plain SQL against the database, as someone with database access would."""
    with eng.db.begin() as conn:
        for statement in statements:
            conn.execute(statement)


@contextlib.contextmanager
def tampered(eng: Engine) -> Iterator[None]:
    """Put the audited tables back as they were after the block, so one chain serves several tamperings."""
    with eng.db.connect() as conn:
        saved = {t: [r._asdict() for r in conn.execute(sa.select(t))] for t in (audit_log, decisions, policies)}
        head = audit.head(conn)
    try:
        yield
    finally:
        with eng.db.begin() as conn:
            for table, rows in saved.items():
                conn.execute(sa.delete(table))
                conn.execute(sa.insert(table), rows)
            conn.execute(sa.update(audit_head).values(seq=head[0], entry_hash=head[1]))


def bad_seqs(report: audit.AuditReport) -> list[int | None]:
    return [f.seq for f in report.findings]


@pytest.fixture
def chain(engine: Engine, application: dict[str, Any]) -> list[str]:
    """Five decisions (two approvals, three declines) after the default policy's publish and activate entries."""
    ids = []
    for i in range(5):
        app = copy.deepcopy(application)
        app["application_id"] = f"chain-{i}"
        if i % 2 or i == 4:  # the fifth in a day would be a velocity REVIEW, which opens a case (another entry)
            app["bureau"]["worst_delinquency_days"] = 120
        ids.append(engine.decide(app).decision_id)
    return ids


# ------------------------------------------------------------------------------------------ intact


def test_fresh_chain_verifies(engine: Engine, chain: list[str]) -> None:
    report = verify(engine)
    assert report.ok and report.findings == [] and report.first_bad_seq is None
    rows = entries(engine)
    kinds = [r.kind for r in rows]
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert kinds[:2] == ["policy_published", "policy_activated"] and kinds.count("decision") == 5
    # every approval opened a line, audited right after its decision
    assert kinds[2:] == [k for k in kinds[2:] if k in ("decision", "line_action")]
    assert all(kinds[i - 1] == "decision" for i, k in enumerate(kinds) if k == "line_action")
    assert [r.subject_id for r in rows[2:] if r.kind == "decision"] == chain
    n = len(rows)
    assert (report.entries, report.head_seq, report.head_hash) == (n, n, rows[-1].entry_hash)
    # each entry holds the hash of the one before
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(rows))
    assert report.as_dict()["ok"] is True
    # other audited actions extend the same chain, which still verifies
    key = engine.create_api_key("auditor", actor="test")
    engine.revoke_api_key(key.split("_")[1], actor="test")
    report = verify(engine)
    assert report.ok and report.entries == report.head_seq == n + 2


# ------------------------------------------------------------------------------------------ tampering


def test_edited_entries_are_found(engine: Engine, chain: list[str]) -> None:
    seq = seq_of(engine, chain[2])
    with engine.db.connect() as conn:
        created = conn.execute(sa.select(audit_log.c.created_at).where(audit_log.c.seq == seq)).scalar_one()
    for change in (
        {"actor": "someone-else"},
        {"created_at": created - dt.timedelta(days=1)},
        {"payload_hash": "f" * 64},
        {"subject_id": chain[4]},
        {"kind": "policy_activated"},
    ):
        with tampered(engine):
            execute(engine, sa.update(audit_log).where(audit_log.c.seq == seq).values(change))
            report = verify(engine)
            assert not report.ok and report.first_bad_seq == seq, change
            assert report.findings[0] == audit.AuditFinding(
                seq, "entry was edited: its hash does not match its content", report.findings[0].subject_id
            )
            # the next entry still links to the edited one's stored hash, so only the edited entry is bad (plus,
            # when it now names another subject or kind, its decision has no entry: a finding without a seq)
            assert {s for s in bad_seqs(report) if s is not None} == {seq}, change
        assert verify(engine).ok

    # an editor who also recomputes the edited entry's own hash breaks the link from the next entry
    rows = {r.seq: r for r in entries(engine)}
    e = rows[seq]
    forged = audit.entry_hash(e.seq, e.created_at, e.kind, e.subject_id, "someone-else", e.payload_hash, e.prev_hash)
    with tampered(engine):
        execute(
            engine, sa.update(audit_log).where(audit_log.c.seq == seq).values(actor="someone-else", entry_hash=forged)
        )
        report = verify(engine)
        assert report.first_bad_seq == seq + 1
        assert report.findings == [
            audit.AuditFinding(
                seq + 1,
                "prev_hash does not match the entry before: an entry was deleted, reordered or edited",
                rows[seq + 1].subject_id,
            )
        ]
    # one who rewrites every later entry and the head too leaves a consistent chain with a different head:
    # only a head published outside the database (audit.head) tells, which is why it should be published
    with engine.db.connect() as conn:
        published = audit.head(conn)
    with tampered(engine):
        prev = rows[seq].prev_hash
        with engine.db.begin() as conn:
            for s in range(seq, max(rows) + 1):
                r = rows[s]
                actor = "someone-else" if s == seq else r.actor
                digest = audit.entry_hash(s, r.created_at, r.kind, r.subject_id, actor, r.payload_hash, prev)
                conn.execute(
                    sa.update(audit_log)
                    .where(audit_log.c.seq == s)
                    .values(actor=actor, prev_hash=prev, entry_hash=digest)
                )
                prev = digest
            conn.execute(sa.update(audit_head).values(entry_hash=prev))
        report = verify(engine)
        assert report.ok and (report.head_seq, report.head_hash) != published
    assert verify(engine).ok


def test_edited_decisions_and_policies_are_found_though_their_entries_are_intact(
    engine: Engine, chain: list[str]
) -> None:
    declined = chain[3]
    seq = seq_of(engine, declined)
    with engine.db.connect() as conn:
        original = conn.execute(sa.select(decisions).where(decisions.c.id == declined)).one()._asdict()
    assert original["outcome"] == "decline"
    edited = "the decision this entry records was edited after it was logged"
    income = {**original["inputs"]["applicant"], "monthly_income": 1.0}
    for change in (
        {"outcome": "approve"},
        {"outcome": "approve", "limit_amount": 50000.0, "apr": 0.108, "reasons": []},
        {"limit_amount": 1.0},
        {"customer_id": "cust-other"},
        {"policy_version": "2099.1.0"},
        {"inputs": {**original["inputs"], "applicant": income}},
        {"features": {**original["features"], "bureau_worst_dpd": 0.0}},
    ):
        with tampered(engine):
            execute(engine, sa.update(decisions).where(decisions.c.id == declined).values(change))
            report = verify(engine)
            assert report.first_bad_seq == seq, change
            assert report.findings == [audit.AuditFinding(seq, edited, declined)], change
        assert verify(engine).ok

    with tampered(engine):  # a decision deleted from under its entry
        execute(engine, sa.delete(decisions).where(decisions.c.id == declined))
        report = verify(engine)
        assert report.findings == [audit.AuditFinding(seq, "the decision this entry records was deleted", declined)]

    with tampered(engine):  # the published policy's content
        with engine.db.connect() as conn:
            content = conn.execute(sa.select(policies.c.content)).scalar_one()
        execute(engine, sa.update(policies).values(content=content.replace("age > 65", "age > 99")))
        report = verify(engine)
        assert report.first_bad_seq == 1
        assert report.findings[0].problem == "the policy_published this entry records was edited after it was logged"
    assert verify(engine).ok


def test_deleted_entries_are_found(engine: Engine, chain: list[str]) -> None:
    middle, last = seq_of(engine, chain[2]), seq_of(engine, chain[-1])

    with tampered(engine):
        execute(engine, sa.delete(audit_log).where(audit_log.c.seq == middle))
        report = verify(engine)
        assert report.first_bad_seq == middle
        assert "deleted" in report.findings[0].problem
        # and the decision it recorded is now a decision without an entry
        assert bad_seqs(report) == [middle, None] and report.findings[-1].subject_id == chain[2]

    with tampered(engine):
        execute(engine, sa.delete(audit_log).where(audit_log.c.seq == 1))
        assert verify(engine).first_bad_seq == 1

    with tampered(engine):  # the tail cut: the chain ends before its head says
        with engine.db.connect() as conn:
            assert audit.head(conn)[0] == last
        execute(engine, sa.delete(audit_log).where(audit_log.c.seq == last))
        report = verify(engine)
        assert report.first_bad_seq == last
        assert "cut from the end" in report.findings[0].problem
        assert bad_seqs(report) == [last, None]  # and the last decision has no entry

    with tampered(engine):  # the tail cut with its decision: the head alone tells
        execute(
            engine,
            sa.delete(audit_log).where(audit_log.c.seq == last),
            sa.delete(decisions).where(decisions.c.id == chain[-1]),
        )
        report = verify(engine)
        assert report.first_bad_seq == last and bad_seqs(report) == [last]

    with tampered(engine):  # the head edited
        execute(engine, sa.update(audit_head).values(entry_hash="0" * 64))
        report = verify(engine)
        assert not report.ok and report.first_bad_seq == last
    assert verify(engine).ok


def test_reordered_entries_are_found(engine: Engine, chain: list[str]) -> None:
    first, second = seq_of(engine, chain[1]), seq_of(engine, chain[2])
    assert second == first + 1
    rows = {r.seq: r for r in entries(engine)}

    with tampered(engine):  # contents swapped between two neighbours
        execute(
            engine,
            sa.update(audit_log)
            .where(audit_log.c.seq == first)
            .values({c: getattr(rows[second], c) for c in ENTRY_COLUMNS}),
            sa.update(audit_log)
            .where(audit_log.c.seq == second)
            .values({c: getattr(rows[first], c) for c in ENTRY_COLUMNS}),
        )
        report = verify(engine)
        assert report.first_bad_seq == first
        assert first in bad_seqs(report) and second in bad_seqs(report)
        assert None not in bad_seqs(report)  # every decision still has an entry

    a, b = seq_of(engine, chain[0]), seq_of(engine, chain[3])
    with tampered(engine):  # sequence numbers swapped between two entries, contents untouched
        execute(
            engine,
            sa.update(audit_log).where(audit_log.c.seq == a).values(seq=-1),
            sa.update(audit_log).where(audit_log.c.seq == b).values(seq=a),
            sa.update(audit_log).where(audit_log.c.seq == -1).values(seq=b),
        )
        assert verify(engine).first_bad_seq == a
    assert verify(engine).ok


def test_decision_inserted_outside_the_engine_is_found(engine: Engine, chain: list[str]) -> None:
    with engine.db.connect() as conn:
        row = conn.execute(sa.select(decisions).where(decisions.c.id == chain[1])).one()._asdict()
    forged = {**row, "id": new_id("dec"), "application_id": "forged-1", "outcome": "approve", "reasons": []}
    forged["content_hash"] = decision_content_hash(forged)  # self-consistent: only the chain can tell
    execute(engine, sa.insert(decisions).values(forged))
    report = verify(engine)
    assert not report.ok
    assert bad_seqs(report) == [None]  # no entry is bad: the decision has none
    assert report.findings[0].subject_id == forged["id"]
    assert "no audit entry" in report.findings[0].problem
    assert report.as_dict()["ok"] is False


# ------------------------------------------------------------------------------------------ concurrency


def test_concurrent_decisions_keep_one_chain(engine: Engine, application: dict[str, Any]) -> None:
    start = entries(engine)[-1].seq
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(w: int) -> None:
        barrier.wait()
        try:
            for i in range(25):
                app = copy.deepcopy(application)
                app["application_id"] = f"w{w}-{i}"
                app["customer_id"] = f"cust-{w}-{i}"
                if i % 3 == 0:
                    app["bureau"]["worst_delinquency_days"] = 120
                engine.decide(app, actor=f"worker-{w}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    rows = entries(engine)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))  # contiguous, no gaps, no duplicates
    assert sum(r.kind == "decision" for r in rows[start:]) == 100
    assert all(b.prev_hash == a.entry_hash for a, b in itertools.pairwise(rows))  # no fork
    with engine.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one() == 100
        ids = set(conn.execute(sa.select(decisions.c.id)).scalars())
    assert {r.subject_id for r in rows if r.kind == "decision"} == ids
    assert {r.actor for r in rows[start:]} == {f"worker-{w}" for w in range(4)}
    report = verify(engine)
    assert report.ok, report.findings
    assert report.entries == report.head_seq == len(rows)


def test_key_and_activation_tampering_is_found(engine: Engine, chain: list[str]) -> None:
    """Raising a key's role, un-revoking a key, minting a key or flipping the active policy in SQL is found."""
    from fengkong.store.tables import api_keys

    key = engine.create_api_key("system")
    key_id = key.split("_")[1]
    assert verify(engine).ok

    execute(engine, sa.update(api_keys).where(api_keys.c.id == key_id).values(role="admin"))
    report = verify(engine)
    assert [f.subject_id for f in report.findings] == [key_id]
    assert "edited" in report.findings[0].problem
    execute(engine, sa.update(api_keys).where(api_keys.c.id == key_id).values(role="system"))
    assert verify(engine).ok

    engine.revoke_api_key(key_id)
    assert verify(engine).ok
    execute(engine, sa.update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=None))
    report = verify(engine)
    assert [f.subject_id for f in report.findings] == [key_id]

    execute(
        engine,
        sa.insert(api_keys).values(
            id="aaaaaaaaaaaa", key_hash="0" * 64, role="admin", name="x", created_at=dt.datetime.now(dt.UTC)
        ),
    )
    assert "aaaaaaaaaaaa" in [f.subject_id for f in verify(engine).findings]
    execute(engine, sa.delete(api_keys).where(api_keys.c.id == "aaaaaaaaaaaa"))

    with tampered(engine):
        execute(engine, sa.update(policies).values(active=False))
        report = verify(engine)
        assert any("active flag was changed" in f.problem for f in report.findings)
