"""The audit chain: an append-only log in which each entry holds the hash of the one before.

Editing an entry changes its hash; deleting or reordering breaks the ``prev_hash`` links or the sequence;
cutting entries from the end disagrees with the head row. ``verify`` also recomputes the content hash of
every decision and policy the chain vouches for, so editing a stored decision is found too.
Publish ``head()`` somewhere outside the database (a ticket, a daily e-mail) to anchor the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from fengkong.store.tables import audit_head, audit_log

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def timestamp_text(moment: dt.datetime) -> str:
    """One text for a moment whatever the database gave back (SQLite drops the zone; PostgreSQL keeps it)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def entry_hash(
    seq: int, created_at: dt.datetime, kind: str, subject_id: str, actor: str, payload_hash: str, prev_hash: str
) -> str:
    return content_hash([seq, timestamp_text(created_at), kind, subject_id, actor, payload_hash, prev_hash])


# Built once: statements with bound parameters skip SQLAlchemy's per-call construction.
_BUMP_HEAD = sa.update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq + 1)
_READ_HEAD = sa.select(audit_head.c.seq, audit_head.c.entry_hash).where(audit_head.c.id == 1)
_INSERT_ENTRY = sa.insert(audit_log)
_SET_HEAD_HASH = sa.update(audit_head).where(audit_head.c.id == 1).values(entry_hash=sa.bindparam("new_hash"))


def append(
    conn: sa.Connection, kind: str, subject_id: str, actor: str, payload_hash: str, created_at: dt.datetime
) -> int:
    """Append an entry inside the caller's transaction; returns its sequence number.

    The head row is updated *first*: that takes the write lock (SQLite) or the row lock (PostgreSQL)
    before anything is read, so concurrent appenders queue instead of forking the chain.
    """
    conn.execute(_BUMP_HEAD)
    seq, prev = conn.execute(_READ_HEAD).one()
    digest = entry_hash(seq, created_at, kind, subject_id, actor, payload_hash, prev)
    conn.execute(
        _INSERT_ENTRY,
        {
            "seq": seq,
            "created_at": created_at,
            "kind": kind,
            "subject_id": subject_id,
            "actor": actor,
            "payload_hash": payload_hash,
            "prev_hash": prev,
            "entry_hash": digest,
        },
    )
    conn.execute(_SET_HEAD_HASH, {"new_hash": digest})
    return int(seq)


@dataclass(frozen=True, slots=True)
class AuditFinding:
    seq: int | None
    problem: str
    subject_id: str | None = None


@dataclass(slots=True)
class AuditReport:
    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    findings: list[AuditFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad_seq(self) -> int | None:
        return self.findings[0].seq if self.findings else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "findings": [{"seq": f.seq, "subject_id": f.subject_id, "problem": f.problem} for f in self.findings],
        }


# kind → function that, given subject ids, returns each subject's payload hash recomputed from stored content
PayloadHasher = Callable[[sa.Connection, list[str]], Mapping[str, str]]


def head(conn: sa.Connection) -> tuple[int, str]:
    seq, digest = conn.execute(sa.select(audit_head.c.seq, audit_head.c.entry_hash).where(audit_head.c.id == 1)).one()
    return int(seq), str(digest)


def verify(engine: sa.Engine, hashers: Mapping[str, PayloadHasher], chunk: int = 5000) -> AuditReport:
    report = AuditReport()
    with engine.connect() as conn:
        report.head_seq, report.head_hash = head(conn)
        expected_seq, prev = 1, GENESIS
        for rows in _chunks(conn, chunk):
            by_kind: dict[str, list[str]] = {}
            for r in rows:
                report.entries += 1
                if r.seq != expected_seq:
                    missing = "deleted" if r.seq > expected_seq else "out of order"
                    report.findings.append(
                        AuditFinding(expected_seq, f"entry {expected_seq} is {missing} (next entry found is {r.seq})")
                    )
                elif r.prev_hash != prev:
                    report.findings.append(
                        AuditFinding(
                            r.seq,
                            "prev_hash does not match the entry before: an entry was deleted, reordered or edited",
                            r.subject_id,
                        )
                    )
                recomputed = entry_hash(r.seq, r.created_at, r.kind, r.subject_id, r.actor, r.payload_hash, r.prev_hash)
                if recomputed != r.entry_hash:
                    report.findings.append(
                        AuditFinding(r.seq, "entry was edited: its hash does not match its content", r.subject_id)
                    )
                expected_seq, prev = r.seq + 1, r.entry_hash
                by_kind.setdefault(r.kind, []).append(r.subject_id)
            for kind, subjects in by_kind.items():
                hasher = hashers.get(kind)
                if hasher is None:
                    continue
                actual = hasher(conn, subjects)
                for r in rows:
                    if r.kind != kind:
                        continue
                    got = actual.get(r.subject_id)
                    if got is None:
                        report.findings.append(
                            AuditFinding(r.seq, f"the {kind} this entry records was deleted", r.subject_id)
                        )
                    elif got != r.payload_hash:
                        report.findings.append(
                            AuditFinding(
                                r.seq, f"the {kind} this entry records was edited after it was logged", r.subject_id
                            )
                        )
        last_seq = expected_seq - 1
        if last_seq != report.head_seq or (report.entries and prev != report.head_hash):
            report.findings.append(
                AuditFinding(
                    last_seq + 1 if last_seq < report.head_seq else last_seq,
                    f"the chain ends at entry {last_seq} but its head says "
                    f"{report.head_seq}: entries were cut from the end or the head edited",
                )
            )
    report.findings.sort(key=lambda f: (f.seq is None, f.seq or 0))
    return report


def _chunks(conn: sa.Connection, size: int) -> Iterator[list[Any]]:
    after = 0
    while True:
        rows = conn.execute(
            sa.select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq).limit(size)
        ).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1].seq
