"""``engine.cases``: the one queue where people decide what the machine would not decide alone.

    case = engine.cases.open("fraud_alert", "cust-1", alert_id="alr_...", actor="system")   # idempotent per source
    engine.cases.list(status="open", overdue=True)
    engine.cases.claim(case["case_id"], "key:0a1b2c3d4e5f")
    engine.cases.resolve(case_id, "key:0a1b2c3d4e5f", "confirmed_fraud", note="same device as ring X; called bank")
    engine.cases.approve(case_id, "key:9f8e7d6c5b4a", note="checked the evidence; agree")     # four eyes

Every step is one transaction that changes the case only if nobody changed it meanwhile (a compare-and-set on
its action counter), records the step with its note, and appends it to the audit chain. A resolution's effects
inside the store (an override decision, a new line, list entries, the alert closed) are written in that same
transaction; effects owned by other services (restoring a line, protecting a victim) run right after it, and a
failure there is recorded on the case as a follow-up for a person, never lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fengkong.cases.model import (
    DEFAULT_PRIORITY,
    DEFAULT_SLA_HOURS,
    MAX_EVIDENCE_BYTES,
    MAX_MESSAGE,
    OUTCOMES,
    PRIORITIES,
    CaseStatus,
    CaseType,
    case_status,
    case_type,
    check_actor,
    check_note,
    check_outcome,
    check_priority,
    mask_text,
)
from fengkong.domain import Language, Outcome, new_id
from fengkong.errors import FengkongError, not_found
from fengkong.features.online import IDENTITY_ENTITIES
from fengkong.lines.state import HUMAN_ACTORS, LineAction, check_limit_change
from fengkong.reasons import Category, is_known, reason
from fengkong.store import audit
from fengkong.store.tables import alerts, case_actions, cases, decisions, events, protected_customers, risk_lists

if TYPE_CHECKING:
    from fengkong.service import Decision, Engine

log = logging.getLogger("fengkong.cases")

Subscriber = Callable[[dict[str, Any]], None]

#: Audit-chain entry kinds of case steps; each entry's subject is the step (a ``cac_`` id), so that ``verify``
#: can recompute what it vouches for: an edited note or outcome is found.
AUDIT_KINDS = {
    "opened": "case_opened",
    "claimed": "case_claimed",
    "released": "case_released",
    "proposed": "case_proposed",
    "resolved": "case_resolved",
    "approved": "case_approved",
    "returned": "case_returned",
    "follow_up": "case_follow_up",
}
#: Identifier kinds a confirmed fraud lists. Never the IP address: an office or campus network is not a ring.
LISTED_KINDS = ("id_number", "phone", "bank_card", "device")
MAX_LIMIT = 10_000_000.0
_COMPARED = ("outcome", "reasons", "limit", "apr")  # what a replay must give again for a decision to reproduce


#: What a request to open a case may hold (the keyword parameters of ``CaseDesk.open`` but the actor).
_REQUEST_FIELDS = frozenset(
    {
        "type", "customer_id", "decision_id", "alert_id", "line_id", "line_action_id", "event_id", "evidence",
        "priority", "message", "language", "note", "source",
    }
)  # fmt: skip


@dataclass(slots=True)
class _NewCase:
    """A case checked and ready to insert, with what its opening step records."""

    record: dict[str, Any]
    note: str | None
    sla_hours: float


@dataclass(slots=True)
class _Plan:
    """What a resolution will do, worked out (and checked) before anything is written."""

    outcome: str
    params: dict[str, Any]
    four_eyes: str | None = None  # why a second analyst must approve; None: one is enough
    override: dict[str, Any] | None = None  # a human decision replacing an automated one
    open_line: bool = False
    line_fix: dict[str, Any] | None = None  # restore (or raise back) a restricted line, after commit
    blacklist: bool = False
    watchlist: bool = False
    protect: bool = False
    close_alert: bool = False
    notes: list[str] = field(default_factory=list)
    pay_drawdown: Any = None  # the drawdown decision a person decided to pay: paid in the resolution's transaction


class CaseDesk:
    """The case queue, reached as ``engine.cases``. Methods return plain dicts (JSON-ready, timestamps as text)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._subscribers: dict[CaseType, list[Subscriber]] = {}
        for kind in AUDIT_KINDS.values():
            engine.audit_hashers[kind] = _action_hashes

    # ------------------------------------------------------------------------------------------ opening

    def open(
        self,
        type: str,
        customer_id: str,
        *,
        decision_id: str | None = None,
        alert_id: str | None = None,
        line_id: str | None = None,
        line_action_id: str | None = None,
        event_id: str | None = None,
        evidence: Mapping[str, Any] | None = None,
        priority: int | None = None,
        message: str | None = None,
        language: str = "zh",
        note: str | None = None,
        source: str | None = None,
        actor: str = "python",
    ) -> dict[str, Any]:
        """Open a case, or return the one its source already opened (``created`` says which).

        The source is what opened the case: by default the first of decision, alert, line action or event named
        (``"review:decision:dec_..."``), so the same alert or decision never opens two cases of a type; a case
        with none of them is a manual one and always new. ``message`` (a customer's own words) is stored
        encrypted. The due time is now plus the SLA of the type in the active policy (``cases.sla_hours``).
        """
        request = {k: v for k, v in locals().items() if k not in ("self", "actor")}  # exactly the parameters above
        return self.open_many([request], actor)[0]

    def open_many(
        self, requests: Sequence[Mapping[str, Any]], actor: str = "python", conn: sa.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Open many cases in one transaction (an ingested batch's alerts and complaints): each request holds
        the keyword arguments of :meth:`open`, and the answers come back in the same order. A source already
        open, or named twice, gives its one case; if another writer opens one of these sources meanwhile, the
        batch is read again and answers with that writer's case. Given ``conn``, all of it happens in the caller's
        transaction, and such a race fails it instead (the caller decides what to do)."""
        prepared = [self._prepare(r, actor) for r in requests]
        if not prepared:
            return []
        with self.engine.db.connect() if conn is None else contextlib.nullcontext(conn) as reader:
            self._check_subjects_many(reader, prepared)
            sources = list(dict.fromkeys(p.record["source"] for p in prepared))
            known = {row.source: row for row in reader.execute(sa.select(cases).where(cases.c.source.in_(sources)))}
        fresh: dict[str, _NewCase] = {}
        for p in prepared:
            source = p.record["source"]
            if source not in known and source not in fresh:
                fresh[source] = p
        if fresh and conn is not None:
            self._insert(conn, list(fresh.values()))
        elif fresh:
            try:
                with self.engine.db.begin() as writer:
                    self._insert(writer, list(fresh.values()))
            except sa.exc.IntegrityError:  # another writer opened one of these sources meanwhile: read them again
                return self.open_many(requests, actor)
        answers = []
        for p in prepared:
            source = p.record["source"]
            mine = fresh.get(source)
            if mine is p:
                answers.append({**self._summary(SimpleNamespace(**mine.record)), "created": True})
            elif mine is not None:  # the same source twice in the batch: the first opened it
                answers.append({**self._summary(SimpleNamespace(**mine.record)), "created": False})
            else:
                answers.append(self._existing(known[source], p.record["customer_id"]))
        log.info("%d cases opened in one batch", len(fresh))
        return answers

    def _prepare(self, request: Mapping[str, Any], actor: str) -> _NewCase:
        """A checked case row, ready to insert: every bad argument is refused here, before anything is read."""
        unknown = sorted(set(request) - _REQUEST_FIELDS)
        if unknown:
            raise FengkongError("unknown_field", f"{unknown[0]}: is not a field of a case", unknown[0], 422)
        get = request.get
        kind = case_type(request.get("type", ""))
        customer_id = _check_ref(get("customer_id"), "customer_id")
        priority, message, note, source = get("priority"), get("message"), get("note"), get("source")
        language = get("language") or "zh"
        decision_id, alert_id, event_id = get("decision_id"), get("alert_id"), get("event_id")
        line_id, line_action_id, evidence = get("line_id"), get("line_action_id"), get("evidence")
        prio = DEFAULT_PRIORITY[kind] if priority is None else check_priority(priority)
        lang = _language(language)
        refs = {
            "decision": _check_ref(decision_id, "decision_id", optional=True),
            "alert": _check_ref(alert_id, "alert_id", optional=True),
            "line_action": _check_ref(line_action_id, "line_action_id", optional=True),
            "event": _check_ref(event_id, "event_id", optional=True),
        }
        line_id = _check_ref(line_id, "line_id", optional=True)
        evidence_json = _check_evidence(evidence)
        if message is not None:
            message = _check_message(message)
        if note is not None:
            note = check_note(note)
        actor = check_actor(actor, "actor")
        case_id = new_id("cas")
        if source is None:
            named = next(((k, v) for k, v in refs.items() if v is not None), None)
            source = f"{kind.value}:{named[0]}:{named[1]}" if named else f"{kind.value}:manual:{case_id}"
        elif not isinstance(source, str) or not 1 <= len(source) <= 128:
            raise FengkongError("invalid_field", "source: 1 to 128 characters", "source", 422)
        now = _now()
        hours = self._sla_hours(kind)
        record = {
            "id": case_id,
            "type": kind.value,
            "status": CaseStatus.OPEN.value,
            "priority": prio,
            "customer_id": customer_id,
            "source": source,
            "decision_id": refs["decision"],
            "alert_id": refs["alert"],
            "line_id": line_id,
            "line_action_id": refs["line_action"],
            "event_id": refs["event"],
            "evidence": evidence_json,
            "message_encrypted": self.engine.vault.encrypt({"message": message}) if message else None,
            "language": lang.value,
            "assignee": None,
            "opened_by": actor,
            "created_at": now,
            "due_at": now + dt.timedelta(hours=hours),
            "updated_at": now,
            "resolved_at": None,
            "outcome": None,
            "proposal": None,
            "result": None,
            "seq": 1,
        }
        return _NewCase(record, note, hours)

    def _insert(self, conn: sa.Connection, new: Sequence[_NewCase]) -> None:
        conn.execute(sa.insert(cases), [n.record for n in new])
        for n in new:
            r = n.record
            details = {"source": r["source"], "sla_hours": n.sla_hours}
            self._record(conn, r["id"], 1, r["opened_by"], "opened", None, n.note, details, r["created_at"])

    def _existing(self, row: Any, customer_id: str) -> dict[str, Any]:
        if row.customer_id != customer_id:
            raise FengkongError(
                "case_source_conflict",
                f"{row.source} already opened case {row.id} for another customer",
                "customer_id",
                409,
            )
        return {**self._summary(row), "created": False}

    def _check_subjects_many(self, conn: sa.Connection, prepared: Sequence[_NewCase]) -> None:
        """A named decision or alert must exist and belong to the case's customer (one query per table)."""
        wanted = {
            (table, name): {p.record[name]: p.record["customer_id"] for p in prepared if p.record[name] is not None}
            for table, name in ((decisions, "decision_id"), (alerts, "alert_id"))
        }
        for (table, name), asked in wanted.items():
            if not asked:
                continue
            query = sa.select(table.c.id, table.c.customer_id).where(table.c.id.in_(list(asked)))
            owners = {ref: owner for ref, owner in conn.execute(query)}
            for ref, customer in asked.items():
                if ref not in owners:
                    raise not_found(name.removesuffix("_id"), ref, name)
                if owners[ref] != customer:
                    what = name.removesuffix("_id")
                    raise FengkongError(
                        f"{what}_customer_mismatch",
                        f"{what} {ref} belongs to another customer, not {customer!r}",
                        name,
                        422,
                    )

    def _sla_hours(self, kind: CaseType) -> float:
        try:
            configured = self.engine.policy().spec.cases.sla_hours
        except (FengkongError, AttributeError):
            configured = {}
        return float(configured.get(kind.value, DEFAULT_SLA_HOURS[kind]))

    # ------------------------------------------------------------------------------------------ sources

    def open_for_decision(self, decision: Decision, actor: str = "python") -> str:
        """The review case of a REVIEW decision (called by ``Engine.decide`` once the decision is stored)."""
        fraudish = any(_category(c) is Category.FRAUD for c in decision.reasons)
        case = self.open(
            CaseType.REVIEW,
            decision.customer_id,
            decision_id=decision.decision_id,
            evidence={
                "reasons": list(decision.reasons),
                "score": decision.score,
                "offer": {"limit": decision.limit, "apr": decision.apr, "currency": decision.currency},
                "policy_version": decision.policy_version,
            },
            priority=2 if fraudish else None,
            language=decision.language.value,
            actor=_actor(actor),
        )
        return str(case["case_id"])

    def on_alerts(self, rows: Iterable[Mapping[str, Any]], actor: str = "python") -> list[str]:
        """Cases for stored alerts: action ``open_case`` opens a fraud_alert case, ``early_warning`` an
        early_warning case; other actions (alert, freeze_line) open none. Idempotent per alert."""
        return [str(case["case_id"]) for case in self.open_many(self.alert_requests(rows), _actor(actor))]

    def on_complaints(self, complaints: Iterable[Any], actor: str = "python") -> list[str]:
        """A complaint case per complaint event (objects or dicts with event_id, customer_id, category)."""
        return [str(case["case_id"]) for case in self.open_many(self.complaint_requests(complaints), _actor(actor))]

    def open_for_batch(
        self, conn: sa.Connection, alert_rows: Iterable[Mapping[str, Any]], complaints: Iterable[Any], actor: str
    ) -> list[dict[str, Any]]:
        """Inside the caller's transaction: the cases of an ingested batch's alerts and complaint events."""
        requests = self.alert_requests(alert_rows) + self.complaint_requests(complaints)
        return self.open_many(requests, _actor(actor), conn=conn)

    @staticmethod
    def alert_requests(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """What :meth:`open_many` needs to open the cases of these alerts (see :meth:`on_alerts`)."""
        requests = []
        for row in rows:
            kind = {"open_case": CaseType.FRAUD_ALERT, "early_warning": CaseType.EARLY_WARNING}.get(row["action"])
            if kind is None:
                continue
            requests.append(
                {
                    "type": kind,
                    "customer_id": row["customer_id"],
                    "alert_id": row["id"],
                    "evidence": {
                        "trigger_id": row["trigger_id"],
                        "reason": row["reason"],
                        "event_id": row["event_id"],
                        "policy_version": row["policy_version"],
                        "features": row.get("features") or {},
                    },
                }
            )
        return requests

    @staticmethod
    def complaint_requests(complaints: Iterable[Any]) -> list[dict[str, Any]]:
        """What :meth:`open_many` needs to open the cases of these complaint events."""
        requests = []
        for item in complaints:
            fields = ("event_id", "customer_id", "category", "occurred_at")
            got = dict(item) if isinstance(item, Mapping) else {k: getattr(item, k, None) for k in fields}
            category = got.get("category") or "other"
            occurred = got.get("occurred_at")
            requests.append(
                {
                    "type": CaseType.COMPLAINT,
                    "customer_id": str(got["customer_id"]),
                    "event_id": str(got["event_id"]),
                    "evidence": {
                        "category": category,
                        "occurred_at": occurred.isoformat() if isinstance(occurred, dt.datetime) else occurred,
                    },
                    # a customer reporting fraud or a scam may be losing money now; a collector complaint pauses
                    # contact
                    "priority": {"fraud": 1, "scam": 1, "unauthorised": 1, "collector": 2}.get(category, 3),
                }
            )
        return requests

    def sweep(self, actor: str = "sweep", limit: int = 1000) -> dict[str, int]:
        """Open the cases a source should have opened but did not (a crash between a decision and its case, alerts
        stored by another service): REVIEW decisions, open_case and early_warning alerts, complaint events."""
        with self.engine.db.connect() as conn:
            reviews = conn.execute(
                sa.select(decisions.c.id)
                .where(
                    (decisions.c.kind == "application")
                    & (decisions.c.outcome == Outcome.REVIEW.value)
                    & decisions.c.id.not_in(
                        sa.select(cases.c.decision_id).where(
                            (cases.c.type == CaseType.REVIEW.value) & cases.c.decision_id.is_not(None)
                        )
                    )
                )
                .limit(limit)
            ).scalars()
            review_ids = list(reviews)
            alert_rows = (
                conn.execute(
                    sa.select(alerts)
                    .where(
                        alerts.c.action.in_(("open_case", "early_warning"))
                        & alerts.c.id.not_in(sa.select(cases.c.alert_id).where(cases.c.alert_id.is_not(None)))
                    )
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            complaint_rows = conn.execute(
                sa.select(events.c.event_id, events.c.customer_id, events.c.occurred_at, events.c.payload)
                .where(
                    (events.c.type == "complaint")
                    & events.c.event_id.not_in(
                        sa.select(cases.c.event_id).where(
                            (cases.c.type == CaseType.COMPLAINT.value) & cases.c.event_id.is_not(None)
                        )
                    )
                )
                .limit(limit)
            ).all()
        for decision_id in review_ids:
            self.open_for_decision(self.engine.get_decision(decision_id), actor)
        self.on_alerts([dict(r) for r in alert_rows], actor)
        self.on_complaints(
            [
                {
                    "event_id": r.event_id,
                    "customer_id": r.customer_id,
                    "occurred_at": r.occurred_at,
                    "category": (r.payload or {}).get("category"),
                }
                for r in complaint_rows
            ],
            actor,
        )
        return {"review": len(review_ids), "alerts": len(alert_rows), "complaints": len(complaint_rows)}

    def case_id_for_decision(self, decision_id: str) -> str | None:
        """The review case a REVIEW decision opened (the ``case_id`` of its response), if any."""
        with self.engine.db.connect() as conn:
            found: str | None = conn.execute(
                sa.select(cases.c.id).where(
                    (cases.c.decision_id == decision_id) & (cases.c.type == CaseType.REVIEW.value)
                )
            ).scalar_one_or_none()
        return found

    # ------------------------------------------------------------------------------------------ reading

    def counts(self) -> dict[str, Any]:
        """How many cases per status and type, and how many unresolved ones are overdue (for a queue header)."""
        now = _now()
        with self.engine.db.connect() as conn:
            by = conn.execute(
                sa.select(cases.c.status, cases.c.type, sa.func.count()).group_by(cases.c.status, cases.c.type)
            ).all()
            late = conn.execute(
                sa.select(sa.func.count()).where((cases.c.status != CaseStatus.RESOLVED.value) & (cases.c.due_at < now))
            ).scalar_one()
        per_status: dict[str, int] = {s.value: 0 for s in CaseStatus}
        per_type: dict[str, int] = {t.value: 0 for t in CaseType}
        for status, kind, n in by:
            per_status[status] = per_status.get(status, 0) + n
            if status != CaseStatus.RESOLVED.value:
                per_type[kind] = per_type.get(kind, 0) + n
        return {"by_status": per_status, "unresolved_by_type": per_type, "overdue": int(late)}

    def get(self, case_id: str, *, reveal_pii: bool = False) -> dict[str, Any]:
        """Everything needed to decide the case: the case and its steps, the decision with the analyst
        explanation and its replay, the alert, the line, the customer's other decisions, cases and alerts.

        Identifiers are masked, and so is anything in the customer's message that looks like one, unless
        ``reveal_pii`` (the door checks the caller may see personal data)."""
        row = self._row(case_id)
        now = _now()
        out = self._summary(row, now)
        with self.engine.db.connect() as conn:
            steps = conn.execute(
                sa.select(case_actions).where(case_actions.c.case_id == case_id).order_by(case_actions.c.seq)
            ).all()
            other_decisions = conn.execute(
                sa.select(
                    decisions.c.id,
                    decisions.c.kind,
                    decisions.c.created_at,
                    decisions.c.outcome,
                    decisions.c.limit_amount,
                    decisions.c.apr,
                    decisions.c.reasons,
                    decisions.c.policy_version,
                )
                .where((decisions.c.customer_id == row.customer_id) & (decisions.c.kind != "shadow"))
                .order_by(decisions.c.created_at.desc())
                .limit(50)
            ).all()
            other_cases = conn.execute(
                sa.select(cases)
                .where((cases.c.customer_id == row.customer_id) & (cases.c.id != case_id))
                .order_by(cases.c.created_at.desc())
                .limit(50)
            ).all()
            alert = (
                conn.execute(sa.select(alerts).where(alerts.c.id == row.alert_id)).mappings().one_or_none()
                if row.alert_id
                else None
            )
            protected = (
                conn.execute(
                    sa.select(protected_customers.c.customer_id).where(
                        protected_customers.c.customer_id == row.customer_id
                    )
                ).first()
                is not None
            )
        out["steps"] = [_step(s) for s in steps]
        out["allowed_outcomes"] = OUTCOMES[CaseType(row.type)] if row.status != CaseStatus.RESOLVED.value else {}
        out["four_eyes_limit"] = self._four_eyes_limit()
        message = None
        if row.message_encrypted:
            text = self.engine.vault.decrypt(row.message_encrypted).get("message", "")
            message = text if reveal_pii else mask_text(text)
        out["message"] = message
        kind = self._root_kind(self.engine._row(row.decision_id)) if row.decision_id else None
        out["decision_kind"] = kind
        out["decision"] = self.engine.explain(row.decision_id, reveal_pii=reveal_pii) if row.decision_id else None
        out["replay"] = self.replay(row.decision_id) if kind in ("application", "drawdown") else None
        out["alert"] = _alert_view(dict(alert)) if alert is not None else None
        out["line"] = self._line(row.line_id)
        out["line_action"] = self._line_action(row.line_action_id) if row.line_action_id else None
        out["customer"] = {
            "customer_id": row.customer_id,
            "protected": protected,
            "decisions": [
                {
                    "decision_id": d.id,
                    "kind": d.kind,
                    "created_at": audit.timestamp_text(d.created_at),
                    "outcome": d.outcome,
                    "limit": d.limit_amount,
                    "apr": d.apr,
                    "reasons": list(d.reasons),
                    "policy_version": d.policy_version,
                }
                for d in other_decisions
            ],
            "cases": [self._summary(c, now) for c in other_cases],
            "alerts": self.engine.list_alerts(row.customer_id, None, 50),
            "lines": self._customer_lines(row.customer_id),
        }
        return out

    def replay(self, decision_id: str, policy_version: str | None = None) -> dict[str, Any]:
        """Decide a stored decision again from its stored features: under the policy version in force when it
        was made (does the record reproduce?), and under ``policy_version`` or else the active policy (what
        would be decided today?).

        An application decision is decided again by its policy's rules and scorecard; a drawdown decision by the
        drawdown rules of its version, through the one drawdown replay (``fengkong.lines.drawdown_explain``).
        ``reproduced`` is true or false, or null with ``why``: a person's decision (the replay shows what the
        policy said instead) or a record that cannot be decided again."""
        row = self.engine._row(decision_id)
        root = self._root_kind(row)
        if root not in ("application", "drawdown"):
            raise FengkongError(
                "not_replayable",
                f"decision {decision_id} is a {root} decision: only application and drawdown decisions are decided "
                "again",
                "decision_id",
                422,
            )
        try:
            other = self.engine.policy_or_404(policy_version) if policy_version else self.engine.policy()
        except FengkongError as exc:
            raise FengkongError(exc.code, exc.message, "policy_version", exc.status) from None
        human = row.kind == "override"
        if root == "drawdown":
            return self._replay_drawdown(row, other.version, human)
        stored = {
            "outcome": row.outcome,
            "reasons": list(row.reasons),
            "limit": row.limit_amount,
            "apr": row.apr,
            "score": row.score,
        }
        replayed = _application_run(self.engine, row.policy_version, row.features)
        differences = (
            [f"{k} {replayed[k]!r}, stored {stored[k]!r}" for k in _COMPARED if stored[k] != replayed[k]]
            if replayed["replayable"] and not human
            else []
        )
        if human:  # a human override is not the policy's answer: the replay shows what the policy said instead
            reproduced = None
            why = (
                f"a person made this decision (case {row.inputs.get('case_id')}); the replay shows what policy "
                f"{row.policy_version} said instead"
            )
        elif not replayed["replayable"]:
            reproduced, why = None, replayed["why"]
        elif differences:
            reproduced = False
            why = f"policy {row.policy_version} gives a different result ({'; '.join(differences)}): investigate"
        else:
            reproduced = True
            why = f"policy {row.policy_version} gives the same outcome, reasons, limit and APR"
        out: dict[str, Any] = {
            "decision_id": decision_id,
            "kind": row.kind,
            "decision_kind": root,
            "stored": stored,
            "policy_version": row.policy_version,
            "model_version": row.model_version,
            "in_force": replayed,
            "reproduced": reproduced,
            "why": why,
            "differences": differences,
            "compared_with": None,
        }
        if other.version != row.policy_version:
            out["compared_with"] = {
                "policy_version": other.version,
                **_application_run(self.engine, other.version, row.features),
            }
        return out

    def _replay_drawdown(self, row: Any, other_version: str, human: bool) -> dict[str, Any]:
        """:meth:`replay` of a drawdown decision (or of a person's decision in place of one): the drawdown rules
        run again by ``fengkong.lines.drawdown_explain.replay``, in the shape of an application's replay."""
        from fengkong.lines.drawdown_explain import drawdown_root
        from fengkong.lines.drawdown_explain import replay as replay_drawdown

        original = drawdown_root(self.engine, row)
        if original is None:
            raise FengkongError("not_replayable", f"decision {row.id} names no drawdown decision", "decision_id", 422)
        inputs = original.inputs or {}
        stored = {
            "outcome": row.outcome,
            "reasons": list(row.reasons),
            "rule_hits": list(row.rule_hits),
            "amount": float(inputs.get("amount") or 0) or None,
            "term": inputs.get("term"),
            "apr": row.apr,
            "score": None,  # drawdowns are not scored: the drawdown rules alone decide
        }
        ran = replay_drawdown(self.engine, original)
        in_force = _drawdown_run(ran)
        if human:
            reproduced = None
            why = (
                f"a person made this decision (case {row.inputs.get('case_id')}) in place of the drawdown rules' "
                f"{original.outcome} ({original.id}); the replay shows what the drawdown rules of policy "
                f"{original.policy_version} said"
            )
        elif not ran["replayable"]:
            reproduced, why = None, f"not replayable: {ran['why']}"
        elif ran["reproduced"]:
            reproduced = True
            why = (
                f"the drawdown rules of policy {original.policy_version}, run again over the stored features, give "
                "the same outcome, reasons and rules"
            )
        else:
            reproduced = False
            why = (
                f"the drawdown rules of policy {original.policy_version}, run again over the stored features, give "
                f"a different result ({'; '.join(ran['differences'])}): investigate"
            )
        out: dict[str, Any] = {
            "decision_id": row.id,
            "kind": row.kind,
            "decision_kind": "drawdown",
            "stored": stored,
            "policy_version": original.policy_version,
            "model_version": row.model_version,
            "in_force": in_force,
            "reproduced": reproduced,
            "why": why,
            "differences": [] if human else list(ran["differences"]),
            "compared_with": None,
        }
        if other_version != original.policy_version:
            today = replay_drawdown(self.engine, original, other_version)
            out["compared_with"] = {"policy_version": other_version, **_drawdown_run(today)}
        return out

    # ------------------------------------------------------------------------------------------ working

    def claim(self, case_id: str, analyst: str) -> dict[str, Any]:
        """Take a case from the queue. Claiming one's own case again changes nothing."""
        analyst = check_actor(analyst)
        row = self._row(case_id)
        if row.status == CaseStatus.CLAIMED.value and row.assignee == analyst:
            return self._summary(row)
        self._refuse_unless(row, CaseStatus.OPEN, analyst, "claim")
        self._check_independent(row, analyst)
        now = _now()
        with self.engine.db.begin() as conn:
            self._step(conn, row, analyst, "claimed", {"status": CaseStatus.CLAIMED.value, "assignee": analyst}, now)
        return self._summary(self._row(case_id))

    def release(self, case_id: str, analyst: str, note: str | None = None) -> dict[str, Any]:
        """Put a claimed case back in the queue (only its assignee may)."""
        analyst = check_actor(analyst)
        if note is not None:
            note = check_note(note)
        row = self._row(case_id)
        self._refuse_unless(row, CaseStatus.CLAIMED, analyst, "release")
        now = _now()
        with self.engine.db.begin() as conn:
            self._step(
                conn, row, analyst, "released", {"status": CaseStatus.OPEN.value, "assignee": None}, now, note=note
            )
        return self._summary(self._row(case_id))

    def resolve(
        self,
        case_id: str,
        analyst: str,
        outcome: str,
        note: str,
        *,
        limit: float | None = None,
        apr: float | None = None,
        reasons: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Resolve a case one has claimed, with an outcome of its type and a mandatory note.

        ``limit``/``apr`` set the offer of an approval (default: the decision's own); ``reasons`` the reason codes
        of a human decline (default: the decision's). When the resolution overrides an automated decline or
        grants a limit above the policy's ``cases.four_eyes_limit``, it does not take effect: the case waits in
        ``pending_second_approval`` for a second, different analyst (``approve``).
        """
        analyst = check_actor(analyst)
        note = check_note(note)
        row = self._row(case_id)
        outcome = check_outcome(CaseType(row.type), outcome)
        self._refuse_unless(row, CaseStatus.CLAIMED, analyst, "resolve")
        self._check_independent(row, analyst)
        plan = self._plan(row, outcome, limit, apr, reasons)
        now = _now()
        if plan.four_eyes is not None:
            proposal = {"outcome": outcome, "by": analyst, "note": note, "params": plan.params, "why": plan.four_eyes}
            with self.engine.db.begin() as conn:
                self._step(
                    conn,
                    row,
                    analyst,
                    "proposed",
                    {"status": CaseStatus.PENDING_SECOND_APPROVAL.value, "proposal": proposal},
                    now,
                    outcome=outcome,
                    note=note,
                    details={"params": plan.params, "four_eyes": plan.four_eyes},
                )
            return self._summary(self._row(case_id))
        return self._finish(row, plan, [analyst], analyst, "resolved", note, now)

    def approve(self, case_id: str, analyst: str, note: str, *, approve: bool = True) -> dict[str, Any]:
        """The second pair of eyes: a different analyst approves the proposed resolution (it takes effect now),
        or with ``approve=False`` sends it back to the first analyst (nothing takes effect)."""
        analyst = check_actor(analyst)
        note = check_note(note)
        row = self._row(case_id)
        if row.status != CaseStatus.PENDING_SECOND_APPROVAL.value:
            if row.status == CaseStatus.RESOLVED.value:
                raise _already_resolved(row)
            raise FengkongError(
                "case_not_pending_approval",
                f"case {case_id} is {row.status}: only a resolution waiting for a second analyst can be approved",
                "case_id",
                409,
            )
        proposal = dict(row.proposal or {})
        first = proposal.get("by")
        if first == analyst:
            raise FengkongError(
                "four_eyes_same_analyst",
                f"{analyst} proposed this resolution; a second, different analyst must approve it",
                "analyst",
                409,
            )
        self._check_independent(row, analyst)
        if approve:  # sending it back stays possible: that is how another analyst comes to resolve it
            self._check_independent(row, str(first), "case_id", proposed=True)
        now = _now()
        if not approve:
            with self.engine.db.begin() as conn:
                self._step(
                    conn,
                    row,
                    analyst,
                    "returned",
                    {"status": CaseStatus.CLAIMED.value, "assignee": first, "proposal": None},
                    now,
                    outcome=proposal.get("outcome"),
                    note=note,
                )
            return self._summary(self._row(case_id))
        params = proposal.get("params") or {}
        plan = self._plan(row, str(proposal["outcome"]), params.get("limit"), params.get("apr"), params.get("reasons"))
        return self._finish(row, plan, [str(first), analyst], analyst, "approved", note, now)

    # ------------------------------------------------------------------------------------------ appeals

    def appeal(
        self,
        customer_id: str,
        *,
        decision_id: str | None = None,
        line_action_id: str | None = None,
        message: str,
        language: str = "zh",
        actor: str = "python",
    ) -> dict[str, Any]:
        """A customer asks a person to review a decision or a line action (see ``fengkong.cases.appeals``)."""
        from fengkong.cases.appeals import file_appeal

        return file_appeal(
            self,
            customer_id,
            decision_id=decision_id,
            line_action_id=line_action_id,
            message=message,
            language=language,
            actor=actor,
        )

    def appeal_status(self, case_id: str, customer_id: str, language: str = "zh") -> dict[str, Any]:
        """What the customer may be told about their appeal: received, in review, or answered and how."""
        from fengkong.cases.appeals import appeal_status

        return appeal_status(self, case_id, customer_id, language)

    def customer_view(self, decision_id: str, customer_id: str, language: str = "zh") -> dict[str, Any]:
        """The decision as its customer sees it: what was decided (after any human review), the principal
        reasons in plain words, what they can do, and how to appeal or how their appeal stands."""
        from fengkong.cases.appeals import customer_view

        return customer_view(self, decision_id, customer_id, language)

    def line_action_view(self, line_action_id: str, customer_id: str, language: str = "zh") -> dict[str, Any]:
        """A change to a credit line (decrease, freeze, closure...) as its customer sees it: what was done, the
        principal reasons in plain words, what they can do, and how to appeal or how their appeal stands."""
        from fengkong.cases.appeals import line_action_view

        return line_action_view(self, line_action_id, customer_id, language)

    # ------------------------------------------------------------------------------------------ extension

    def subscribe(self, type: str, callback: Subscriber) -> None:
        """Call ``callback(case)`` after each case of this type is finally resolved (e.g. the drawdown service
        releases or refuses a held drawdown; collections resumes contact after a complaint). A failing callback
        is recorded on the case as a follow-up; it never undoes the resolution."""
        self._subscribers.setdefault(case_type(type), []).append(callback)

    # ------------------------------------------------------------------------------------------ internals

    def _row(self, case_id: str) -> Any:
        with self.engine.db.connect() as conn:
            row = conn.execute(sa.select(cases).where(cases.c.id == case_id)).one_or_none()
        if row is None:
            raise not_found("case", case_id, "case_id")
        return row

    def _root_kind(self, row: Any) -> str:
        """What a decision decided: ``application`` or ``drawdown`` (a person's override: what it replaced)."""
        if row.kind == "override":
            return str(self.engine._row(row.inputs["override_of"]).kind)
        return str(row.kind)

    def _check_independent(self, row: Any, analyst: str, field: str = "analyst", proposed: bool = False) -> None:
        """Four eyes mean two people who took no part in what is appealed: an analyst who made a person's decision
        on the appealed decision (declined a held drawdown, decided a review, either of two who approved one) or
        the person's line change appealed may not claim, resolve or approve the appeal. Nothing is changed."""
        if row.type != CaseType.APPEAL.value:
            return
        for who, what in self._deciders(row):
            if who != analyst:
                continue
            if proposed:  # they proposed the resolution before (or while) taking part in the decision appealed
                raise FengkongError(
                    "analyst_not_independent",
                    f"{analyst} proposed this resolution but {what}; the appeal must be decided by two analysts who "
                    "took no part in it: send it back so that another analyst resolves it",
                    field,
                    409,
                )
            raise FengkongError(
                "analyst_not_independent",
                f"analyst: {analyst} {what}; an appeal is decided by analysts who took no part in the decision "
                "appealed: another analyst must take it",
                field,
                409,
            )

    def _deciders(self, row: Any) -> list[tuple[str, str]]:
        """Who made a person's decision on what the appeal case is about, and what they did."""
        found: list[tuple[str, str]] = []
        with self.engine.db.connect() as conn:
            if row.decision_id:
                for made in conn.execute(
                    sa.select(decisions.c.id, decisions.c.outcome, decisions.c.inputs).where(
                        (decisions.c.kind == "override")
                        & (decisions.c.inputs["override_of"].as_string() == row.decision_id)
                    )
                ):
                    inputs = made.inputs or {}
                    what = (
                        f"made the person's decision {made.id} ({made.outcome}) on decision {row.decision_id} "
                        f"(case {inputs.get('case_id')})"
                    )
                    found.extend((str(who), what) for who in inputs.get("decided_by") or [])
            if row.line_action_id:
                from fengkong.store.tables import line_actions

                action = conn.execute(
                    sa.select(line_actions.c.action, line_actions.c.actor, line_actions.c.actor_kind).where(
                        line_actions.c.id == row.line_action_id
                    )
                ).first()
                if action is not None and action.actor_kind in HUMAN_ACTORS:
                    found.append((action.actor, f"made the line {action.action} {row.line_action_id} appealed"))
        return found

    def _by_source(self, source: str) -> Any:
        with self.engine.db.connect() as conn:
            return conn.execute(sa.select(cases).where(cases.c.source == source)).one_or_none()

    def _four_eyes_limit(self) -> float:
        try:
            return float(self.engine.policy().spec.cases.four_eyes_limit)
        except (FengkongError, AttributeError):
            return 50_000.0

    def _refuse_unless(self, row: Any, wanted: CaseStatus, analyst: str, verb: str) -> None:
        """The one place that says why a step is refused, naming who holds the case."""
        status = row.status
        if status == CaseStatus.RESOLVED.value:
            raise _already_resolved(row)
        if status == CaseStatus.PENDING_SECOND_APPROVAL.value:
            by = (row.proposal or {}).get("by")
            raise FengkongError(
                "case_pending_approval",
                f"case {row.id} was resolved by {by} and waits for a second analyst's approval; approve it or "
                "send it back instead",
                "case_id",
                409,
            )
        if wanted is CaseStatus.OPEN and status == CaseStatus.CLAIMED.value:
            raise FengkongError(
                "case_claimed_by_other",
                f"case {row.id} is already claimed by {row.assignee}; ask them to release it",
                "case_id",
                409,
            )
        if wanted is CaseStatus.CLAIMED:
            if status == CaseStatus.OPEN.value:
                raise FengkongError("case_not_claimed", f"claim case {row.id} before you {verb} it", "case_id", 409)
            if row.assignee != analyst:
                raise FengkongError(
                    "case_claimed_by_other",
                    f"case {row.id} is claimed by {row.assignee}; only they can {verb} it",
                    "analyst",
                    409,
                )

    def _step(
        self,
        conn: sa.Connection,
        row: Any,
        actor: str,
        action: str,
        values: dict[str, Any],
        now: dt.datetime,
        *,
        outcome: str | None = None,
        note: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> int:
        """Change the case if nobody changed it since ``row`` was read; record and audit the step."""
        seq = int(row.seq) + 1
        done = conn.execute(
            sa.update(cases)
            .where((cases.c.id == row.id) & (cases.c.seq == row.seq))
            .values(seq=seq, updated_at=now, **values)
        ).rowcount
        if done != 1:
            raise FengkongError(
                "case_changed",
                f"case {row.id} was changed by someone else while you worked on it; reload it and try again",
                "case_id",
                409,
            )
        self._record(conn, row.id, seq, actor, action, outcome, note, details or {}, now)
        return seq

    def _record(
        self,
        conn: sa.Connection,
        case_id: str,
        seq: int,
        actor: str,
        action: str,
        outcome: str | None,
        note: str | None,
        details: dict[str, Any],
        now: dt.datetime,
    ) -> None:
        step: dict[str, Any] = {
            "id": new_id("cac"),
            "case_id": case_id,
            "seq": seq,
            "created_at": now,
            "actor": actor,
            "action": action,
            "outcome": outcome,
            "note": note,
            "details": details,
        }
        conn.execute(sa.insert(case_actions).values(**step))
        audit.append(conn, AUDIT_KINDS[action], step["id"], actor, _action_hash(step), now)

    # ---------------------------------------------------------------------------------- resolution planning

    def _plan(
        self,
        row: Any,
        outcome: str,
        limit: float | None,
        apr: float | None,
        reasons: Sequence[str] | None,
    ) -> _Plan:
        kind = CaseType(row.type)
        limit = _check_amount(limit, "limit", MAX_LIMIT)
        apr = _check_amount(apr, "apr", 1.0)
        codes = _check_reasons(reasons)
        params = {"limit": limit, "apr": apr, "reasons": codes}
        plan = _Plan(outcome, {k: v for k, v in params.items() if v is not None})
        threshold = self._four_eyes_limit()
        if kind is CaseType.REVIEW:
            decision = self.engine._row(row.decision_id) if row.decision_id else None
            if decision is None:
                if outcome == "approve":
                    raise FengkongError("invalid_field", "this review case has no decision to approve", "outcome", 422)
                return plan
            if outcome == "approve":
                plan.override = self._offer(decision, limit, apr)
                plan.open_line = decision.kind == "application"
            else:
                plan.override = self._human_decline(decision, codes)
        elif kind is CaseType.APPEAL and outcome == "upheld":
            if row.line_action_id:
                if limit is not None or apr is not None or codes is not None:
                    raise FengkongError(
                        "invalid_field",
                        "limit: an upheld appeal of a line change restores the line as it was before the change; "
                        "limit, apr and reasons do not apply",
                        "limit" if limit is not None else ("apr" if apr is not None else "reasons"),
                        422,
                    )
                plan.line_fix = self._line_fix(row)
                plan.four_eyes = _line_fix_four_eyes(plan.line_fix, threshold)
            elif row.decision_id:
                decision = self.engine._row(row.decision_id)
                if decision.kind == "drawdown":
                    self._plan_payment(plan, decision, limit, apr, "an upheld appeal of a drawdown")
                    plan.four_eyes = (
                        "it overrides an automated decline"
                        if decision.outcome == Outcome.DECLINE.value
                        else "it overrides a person's decline of a held drawdown"
                    )
                else:
                    plan.override = self._offer(decision, limit, apr)
                    if decision.outcome == Outcome.APPROVE.value:
                        plan.line_fix = self._raise_for_approval(decision, plan.override, limit, apr)
                    else:
                        plan.open_line = True
                    if decision.outcome == Outcome.DECLINE.value:
                        plan.four_eyes = "it overrides an automated decline"
        elif kind is CaseType.HELD_DRAWDOWN and row.decision_id:
            decision = self.engine._row(row.decision_id)
            if outcome == "decline":
                # a person's decline, stored with the notice the customer is sent (what, why, how to appeal)
                plan.override = self._human_decline(decision, codes)
            else:
                if decision.kind == "drawdown" and decision.outcome != Outcome.REVIEW.value:
                    raise FengkongError(
                        "drawdown_not_held",
                        f"drawdown {decision.id} was not held for a person (the rules said {decision.outcome}): "
                        "only a held drawdown is released; a declined one is paid only on an upheld appeal",
                        "outcome",
                        409,
                    )
                # a person's approval, paid in the resolution's own transaction (four eyes above the threshold)
                self._plan_payment(plan, decision, limit, apr, "releasing a held drawdown")
        elif kind is CaseType.FRAUD_ALERT:
            plan.close_alert = True
            if outcome == "confirmed_fraud":
                if self.engine._is_protected(row.customer_id):
                    raise FengkongError(
                        "protected_customer",
                        f"customer {row.customer_id} is a protected victim and is never listed as a fraudster; "
                        "resolve the case as victim, or lift the protection first",
                        "outcome",
                        409,
                    )
                plan.blacklist = True
            elif outcome == "victim":
                plan.protect = True
        elif kind is CaseType.EARLY_WARNING:
            plan.close_alert = True
            if outcome == "watchlist":
                if self.engine._is_protected(row.customer_id):
                    raise FengkongError(
                        "protected_customer",
                        f"customer {row.customer_id} is a protected victim and is never listed",
                        "outcome",
                        409,
                    )
                plan.watchlist = True
        _no_extras(outcome, plan.override, limit, apr, codes)
        if plan.override is None and (limit is not None or apr is not None or codes is not None):
            raise FengkongError(
                "invalid_field",
                f"limit, apr and reasons apply only when the resolution decides an application, not to {outcome!r}",
                "limit" if limit is not None else ("apr" if apr is not None else "reasons"),
                422,
            )
        if plan.override is not None and plan.override["outcome"] == Outcome.APPROVE.value:
            granted = float(plan.override["limit_amount"])
            if granted > threshold and plan.four_eyes is None:
                what = "pays out a drawdown" if plan.pay_drawdown is not None else "grants a limit"
                plan.four_eyes = f"it {what} of {granted:,.0f}, above the four-eyes limit of {threshold:,.0f}"
        return plan

    def _plan_payment(self, plan: _Plan, decision: Any, limit: float | None, apr: float | None, what: str) -> None:
        """A person's decision to pay a drawdown (a held one released, a declined one upheld on appeal): a human
        approval of the amount asked for, written with the notice the customer is sent and paid in the
        resolution's own transaction through the drawdowns' one pay-out path. Checked now, with nothing written:
        refused if the line is no longer active or lacks the amount (it is checked again, atomically, as the
        money moves)."""
        from fengkong.lines.drawdown import check_payable

        if limit is not None or apr is not None:
            raise FengkongError(
                "invalid_field",
                f"limit: {what} pays it out as the customer asked for it; limit and apr do not apply",
                "limit" if limit is not None else "apr",
                422,
            )
        check_payable(self.engine, decision, "outcome")
        plan.pay_drawdown = decision
        plan.override = {
            "outcome": Outcome.APPROVE.value,
            "limit_amount": float(decision.inputs["amount"]),
            "apr": decision.apr,
            "reasons": [],
        }

    def _offer(self, decision: Any, limit: float | None, apr: float | None) -> dict[str, Any]:
        """The approval a person grants on a decision: its own offer unless they set another."""
        granted = limit if limit is not None else decision.limit_amount
        if granted is None or not granted > 0:
            raise FengkongError(
                "missing_field",
                f"limit: decision {decision.id} was a {decision.outcome} and carries no offer; give the limit to grant",
                "limit",
                422,
            )
        spec = self.engine.policy().spec
        guardrails = getattr(getattr(spec, "lines", None), "guardrails", None)
        ceiling = getattr(guardrails, "max_limit", None)
        if ceiling is not None and granted > ceiling:
            raise FengkongError(
                "invalid_field",
                f"limit: {granted:,.0f} is above the policy's largest line ({ceiling:,.0f}); no one may grant more",
                "limit",
                422,
            )
        rate = apr if apr is not None else decision.apr
        if rate is None:
            pricing = self.engine.policy(decision.policy_version).spec.pricing
            score = decision.score if decision.score is not None else 0.0
            rate = pricing.apr[bisect_right(pricing.score_edges, score)]
        return {"outcome": Outcome.APPROVE.value, "limit_amount": float(granted), "apr": float(rate), "reasons": []}

    def _human_decline(self, decision: Any, codes: list[str] | None) -> dict[str, Any]:
        chosen = codes if codes is not None else list(decision.reasons)
        if not chosen:
            raise FengkongError(
                "missing_field",
                "reasons: a decline needs at least one reason code for the customer's notice",
                "reasons",
                422,
            )
        return {"outcome": Outcome.DECLINE.value, "limit_amount": None, "apr": None, "reasons": chosen}

    def _line_fix(self, row: Any) -> dict[str, Any]:
        """What upholding an appeal of a line action does: a frozen or closed line is restored, a decrease is
        reversed (given back, or withdrawn while under notice). Checked now so that a resolution never promises
        what cannot be done."""
        action = self._line_action(row.line_action_id)
        if action is None:
            raise not_found("line_action", row.line_action_id, "line_action_id")
        line = self._line(action["line_id"])
        if line is None:
            raise FengkongError(
                "lines_unavailable", "the lines service is not available to restore the line", "outcome", 503
            )
        automated = action["actor_kind"] not in HUMAN_ACTORS
        if action["action"] in ("freeze", "close"):
            if line["status"] == "active":
                raise FengkongError(
                    "line_already_active",
                    f"line {line['line_id']} is active again already: nothing to restore; resolve the appeal as "
                    "rejected and say so in the note",
                    "outcome",
                    409,
                )
            return {
                "line_id": action["line_id"],
                "do": "restore",
                "action": action["action"],
                "automated": automated,
                "new_limit": float(line["limit"]),
            }
        if action["action"] == "decrease":
            before = float(action["limit_before"])
            if line["status"] != "active":
                raise FengkongError(
                    "line_not_active",
                    f"line {line['line_id']} is {line['status']} now: its limit cannot be raised back; resolve "
                    "the appeal of that later change instead, or resolve this one as rejected and say why",
                    "outcome",
                    409,
                )
            try:  # the lines service's reversal: exempt from the increase guardrails, it undoes the decrease
                undo = self.engine.lines.reversal(str(action["line_action_id"]))
            except FengkongError as exc:  # given back already, or nothing left to give back
                raise FengkongError(
                    "line_already_restored" if exc.code in ("nothing_to_reverse", "already_reversed") else exc.code,
                    f"line {line['line_id']} (limit {before:,.0f} before the decrease): {exc.message}; resolve the "
                    "appeal as rejected and say so in the note",
                    "outcome",
                    exc.status,
                ) from None
            return {
                "line_id": action["line_id"],
                "do": "reverse",
                "action": "decrease",
                "automated": automated,
                "new_limit": float(undo["limit_after"]),
                "reverses": action["line_action_id"],
            }
        raise FengkongError("invalid_field", f"a line {action['action']} cannot be appealed", "line_action_id", 422)

    def _raise_for_approval(
        self, decision: Any, offer: dict[str, Any], limit: float | None, apr: float | None
    ) -> dict[str, Any] | None:
        """An upheld appeal of an approval (the customer asks for more): the line that approval opened is raised
        to the limit granted, so the human decision and the line never disagree."""
        if apr is not None:
            raise FengkongError(
                "invalid_field",
                "apr: the APR of a live line is not changed by an appeal; only its limit can be raised",
                "apr",
                422,
            )
        line_id = self.engine.lines.line_id_for_decision(decision.id)
        line = self._line(line_id)
        if line is None:
            return None  # no line was opened (e.g. a drawdown approval): the human decision says it all
        current = float(line["limit"])
        if limit is None or float(offer["limit_amount"]) <= current:
            raise FengkongError(
                "missing_field" if limit is None else "invalid_field",
                f"limit: decision {decision.id} approved already and its line {line['line_id']} has a limit of "
                f"{current:,.0f}; to uphold the appeal give a higher limit, or resolve it as rejected",
                "limit",
                422,
            )
        if line["status"] != "active":
            raise FengkongError(
                "line_not_active",
                f"line {line['line_id']} is {line['status']}: its limit cannot be raised; deal with that first",
                "outcome",
                409,
            )
        self._check_raise(line["line_id"], float(offer["limit_amount"]))
        return {
            "line_id": line["line_id"],
            "do": "increase",
            "action": "approval",
            "automated": False,
            "new_limit": float(offer["limit_amount"]),
        }

    def _check_raise(self, line_id: str, new_limit: float) -> None:
        """The line guardrails an increase must pass, checked before a person's resolution promises it (the
        lines service checks them again when it raises the line)."""
        from fengkong.store.tables import credit_lines

        with self.engine.db.connect() as conn:
            line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one()
        guardrails = self.engine.policy().spec.lines.guardrails
        try:
            check_limit_change(
                LineAction.INCREASE,
                float(line.limit_amount),
                new_limit,
                float(line.outstanding),
                line.last_increase_on,
                0,
                guardrails,
                _now().date(),
            )
        except FengkongError as exc:
            message = f"limit: line {line_id} cannot be raised to {new_limit:,.0f}: {exc.message}"
            raise FengkongError(exc.code, message, "limit", exc.status) from None

    # ---------------------------------------------------------------------------------- resolution effects

    def _finish(
        self,
        row: Any,
        plan: _Plan,
        analysts: list[str],
        actor: str,
        action: str,
        note: str,
        now: dt.datetime,
    ) -> dict[str, Any]:
        """Write the resolution and its in-store effects in one transaction, then the effects owned elsewhere."""
        result: dict[str, Any] = {"decided_by": analysts}
        listed: list[str] = []
        paid = None
        with self.engine.db.begin() as conn:
            if plan.override is not None:
                override_id, line_id = self._write_override(conn, row, plan, analysts, now, actor)
                result["override_decision_id"] = override_id
                if line_id is not None:
                    result["line_id"] = line_id
            if plan.pay_drawdown is not None:
                from fengkong.lines.drawdown import pay_in

                paid = pay_in(self.engine, conn, plan.pay_drawdown, f"case:{row.id}", self.engine.loans.clock())
                result["loan_id"] = paid.loan_id
            if plan.blacklist:
                listed = self._list_identifiers(conn, row, now, actor)
                result["listed"] = len(listed)
            if plan.watchlist:
                self._insert_list(conn, "watchlist", "customer", row.customer_id, "early_warning", row.id, now, actor)
                result["watchlisted"] = True
            if plan.close_alert and row.alert_id:
                conn.execute(sa.update(alerts).where(alerts.c.id == row.alert_id).values(status="closed"))
            values: dict[str, Any] = {
                "status": CaseStatus.RESOLVED.value,
                "outcome": plan.outcome,
                "resolved_at": now,
                "proposal": None,
                "result": result,
            }
            if row.line_id is None and result.get("line_id"):
                values["line_id"] = result["line_id"]
            self._step(
                conn,
                row,
                actor,
                action,
                values,
                now,
                outcome=plan.outcome,
                note=note,
                details={"params": plan.params, "result": result},
            )
        if paid is not None:
            paid.observe(self.engine)
        follow_ups = self._after(row, plan, result, actor, note, bool(listed))
        case = self._summary(self._row(row.id))
        if follow_ups:
            case["follow_ups"] = follow_ups
        for callback in self._subscribers.get(CaseType(row.type), []):
            try:
                callback(case)
            except Exception as exc:  # a subscriber's failure must not undo a resolution that is already final
                log.error("case %s: subscriber failed: %s", row.id, type(exc).__name__)
                self._follow_up(row.id, "subscriber", exc)
        return case

    def _write_override(
        self, conn: sa.Connection, row: Any, plan: _Plan, analysts: list[str], now: dt.datetime, actor: str
    ) -> tuple[str, str | None]:
        """A human decision, stored beside the automated one it replaces (never editing it: it is hash-chained)."""
        from fengkong.service import decision_content_hash

        assert plan.override is not None
        original = self.engine._row(row.decision_id)
        inputs = {k: v for k, v in dict(original.inputs).items() if k != "application_id"}
        inputs.update({"override_of": original.id, "case_id": row.id, "decided_by": analysts})
        decision_id = new_id("dec")
        record: dict[str, Any] = {
            "id": decision_id,
            "kind": "override",
            "application_id": None,
            "customer_id": original.customer_id,
            "created_at": now,
            "outcome": plan.override["outcome"],
            "limit_amount": plan.override["limit_amount"],
            "apr": plan.override["apr"],
            "score": original.score,
            "reasons": list(plan.override["reasons"]),
            "rule_hits": [],
            "inputs": inputs,
            "features": original.features,
            "policy_version": original.policy_version,
            "model_version": original.model_version,
            "identity_encrypted": None,  # the automated decision holds the identifiers; no second copy
            "request_hash": audit.content_hash({"override_of": original.id, "case_id": row.id}),
            "assignment": "human",
            "shadow_of": None,
        }
        if original.kind == "drawdown":  # what the customer is sent, stored with the decision (and hashed with it)
            from fengkong.lines.drawdown_explain import person_notice

            currency = self.engine.policy(original.policy_version).spec.currency
            inputs["notice"] = person_notice(original, record["outcome"], record["reasons"], currency)
        record["content_hash"] = decision_content_hash(record)
        conn.execute(sa.insert(decisions).values(**record))
        audit.append(conn, "decision", decision_id, actor, record["content_hash"], now)
        line_id = None
        if plan.open_line and record["outcome"] == Outcome.APPROVE.value:
            currency = self.engine.policy(original.policy_version).spec.currency
            line_id = self.engine.lines.open_in(conn, {**record, "currency": currency}, now, actor, actor_kind="case")
        return decision_id, line_id

    def _list_identifiers(self, conn: sa.Connection, row: Any, now: dt.datetime, actor: str) -> list[str]:
        """Blacklist a confirmed fraudster: the customer id and the identifiers of their applications, except any
        identifier a protected victim also used (a stolen phone or ID must not list its real owner)."""
        mine = _identity_keys(conn, [row.customer_id])
        victims = list(conn.execute(sa.select(protected_customers.c.customer_id)).scalars())
        spared = set(_identity_keys(conn, victims)) if victims else set()
        live = set(
            conn.execute(
                sa.select(risk_lists.c.key_hash).where(
                    (risk_lists.c.list == "blacklist") & risk_lists.c.removed_at.is_(None)
                )
            ).scalars()
        )
        ids = []
        for key, kind in sorted(mine.items()):
            if key in spared or key in live:
                continue
            ids.append(self._insert_list(conn, "blacklist", kind, key, "confirmed_fraud", row.id, now, actor))
        if row.customer_id not in live:
            ids.append(
                self._insert_list(conn, "blacklist", "customer", row.customer_id, "confirmed_fraud", row.id, now, actor)
            )
        return ids

    def _insert_list(
        self,
        conn: sa.Connection,
        list_name: str,
        kind: str,
        key: str,
        why: str,
        case_id: str,
        now: dt.datetime,
        actor: str,
    ) -> str:
        entry_id = new_id("lst")
        conn.execute(
            sa.insert(risk_lists).values(
                id=entry_id,
                list=list_name,
                kind=kind,
                key_hash=key,
                reason=why,
                source=f"case:{case_id}",
                created_at=now,
                expires_at=None,
            )
        )
        # the same entry as Engine.add_to_list writes, so the audit view reads every listing alike
        payload = audit.content_hash({"list": list_name, "kind": kind, "key": key, "reason": why})
        audit.append(conn, "list_added", entry_id, actor, payload, now)
        return entry_id

    def _after(
        self, row: Any, plan: _Plan, result: dict[str, Any], actor: str, note: str, listed: bool
    ) -> list[dict[str, Any]]:
        """Effects owned by other services, after the resolution is stored; each failure becomes a follow-up."""
        follow_ups = [self._follow_up_note(row.id, n) for n in plan.notes]
        if listed:
            self.engine.online.graph.mark(row.customer_id, blacklisted=True)
        if plan.override is not None and plan.override["outcome"] == Outcome.APPROVE.value:
            # an overturned decline stops counting against everyone linked to the customer at once
            self.engine.online.graph.mark(row.customer_id, declined=False)
        if plan.protect:
            try:
                self.engine.protect_customer(row.customer_id, "scam_victim", actor=actor)
            except Exception as exc:  # recorded for a person to finish; the resolution stands
                follow_ups.append(self._follow_up(row.id, "protect_customer", exc))
        if plan.line_fix is not None:
            lines = self.engine.lines
            try:
                if plan.line_fix["do"] == "restore":
                    lines.restore(plan.line_fix["line_id"], actor, ("LINE_APPEAL_UPHELD",), note, case_id=row.id)
                elif plan.line_fix["do"] == "reverse":  # an upheld appeal of a decrease: undo it, no guardrail
                    lines.reverse(
                        plan.line_fix["line_id"],
                        plan.line_fix["reverses"],
                        actor=actor,
                        actor_kind="case",
                        reasons=("LINE_APPEAL_UPHELD",),
                        note=note,
                        case_id=row.id,
                    )
                else:
                    lines.act(
                        plan.line_fix["line_id"],
                        "increase",
                        actor=actor,
                        actor_kind="case",
                        reasons=("LINE_APPEAL_UPHELD",),
                        new_limit=plan.line_fix["new_limit"],
                        note=note,
                        evidence={"case_id": row.id},
                    )
            except Exception as exc:  # e.g. a guardrail refuses the increase: a person must decide what to do
                follow_ups.append(self._follow_up(row.id, f"line_{plan.line_fix['do']}", exc))
        return follow_ups

    def _follow_up_note(self, case_id: str, message: str) -> dict[str, Any]:
        """Something a person must still do by hand after the resolution, recorded on the case (and audited)."""
        detail = {"effect": "note", "code": "to_do", "message": message}
        row = self._row(case_id)
        with self.engine.db.begin() as conn:
            self._step(conn, row, "system", "follow_up", {}, _now(), details=detail)
        return detail

    def _follow_up(self, case_id: str, effect: str, exc: BaseException) -> dict[str, Any]:
        detail = {
            "effect": effect,
            "code": exc.code if isinstance(exc, FengkongError) else "internal_error",
            "message": exc.message if isinstance(exc, FengkongError) else type(exc).__name__,
        }
        log.error("case %s: %s failed: %s", case_id, effect, detail["code"])
        try:
            row = self._row(case_id)
            with self.engine.db.begin() as conn:
                self._step(conn, row, "system", "follow_up", {}, _now(), details=detail)
        except FengkongError:
            log.error("case %s: could not record the follow-up", case_id)
        return detail

    # ---------------------------------------------------------------------------------- views

    def _summary(self, row: Any, now: dt.datetime | None = None) -> dict[str, Any]:
        now = now or _now()
        due = _aware(row.due_at)
        return {
            "case_id": row.id,
            "type": row.type,
            "status": row.status,
            "priority": row.priority,
            "priority_name": PRIORITIES.get(row.priority, str(row.priority)),
            "customer_id": row.customer_id,
            "decision_id": row.decision_id,
            "alert_id": row.alert_id,
            "line_id": row.line_id,
            "line_action_id": row.line_action_id,
            "event_id": row.event_id,
            "source": row.source,
            "assignee": row.assignee,
            "opened_by": row.opened_by,
            "language": row.language,
            "created_at": audit.timestamp_text(row.created_at),
            "due_at": audit.timestamp_text(row.due_at),
            "updated_at": audit.timestamp_text(row.updated_at),
            "resolved_at": audit.timestamp_text(row.resolved_at) if row.resolved_at is not None else None,
            "overdue": row.status != CaseStatus.RESOLVED.value and due < now,
            "outcome": row.outcome,
            "proposal": row.proposal,
            "result": row.result,
            "evidence": row.evidence,
            "has_message": row.message_encrypted is not None,
        }

    def _line(self, line_id: str | None) -> dict[str, Any] | None:
        if line_id is None:
            return None
        try:
            found: dict[str, Any] = self.engine.lines.get(line_id)
        except FengkongError:
            return None
        return found

    def _customer_lines(self, customer_id: str) -> list[dict[str, Any]]:
        return self.engine.lines.for_customer(customer_id)

    def _line_action(self, line_action_id: str | None) -> dict[str, Any] | None:
        """A line action with the customer it concerns, read from the lines service's tables (or None)."""
        if line_action_id is None:
            return None
        from fengkong.store.tables import credit_lines, line_actions

        with self.engine.db.connect() as conn:
            found = conn.execute(
                sa.select(line_actions, credit_lines.c.customer_id)
                .select_from(line_actions.join(credit_lines, credit_lines.c.id == line_actions.c.line_id))
                .where(line_actions.c.id == line_action_id)
            ).one_or_none()
        if found is None:
            return None
        return {
            "line_action_id": found.id,
            "line_id": found.line_id,
            "customer_id": found.customer_id,
            "action": found.action,
            "created_at": audit.timestamp_text(found.created_at),
            "limit_before": found.limit_before,
            "limit_after": found.limit_after,
            "reasons": list(found.reasons),
            "actor_kind": found.actor_kind,
            "notice": found.notice,
        }

    # ------------------------------------------------------------------------------------------ the queue
    # (last in the class: a method named ``list`` would hide the builtin from the annotations after it)

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        type: str | Sequence[str] | None = None,
        assignee: str | None = None,
        overdue: bool | None = None,
        customer_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """The queue, most urgent first (priority, then due time). ``status`` and ``type`` take one value or
        several; ``overdue=True`` keeps unresolved cases past their due time, ``False`` the others."""
        if not 1 <= limit <= 1000:
            raise FengkongError("invalid_field", "limit: between 1 and 1000", "limit", 422)
        if offset < 0:
            raise FengkongError("invalid_field", "offset: 0 or more", "offset", 422)
        query = sa.select(cases)
        statuses = [case_status(s).value for s in _many(status)]
        if statuses:
            query = query.where(cases.c.status.in_(statuses))
        types = [case_type(t).value for t in _many(type)]
        if types:
            query = query.where(cases.c.type.in_(types))
        if assignee is not None:
            query = query.where(cases.c.assignee == assignee)
        if customer_id is not None:
            query = query.where(cases.c.customer_id == customer_id)
        now = _now()
        late = (cases.c.status != CaseStatus.RESOLVED.value) & (cases.c.due_at < now)
        if overdue is True:
            query = query.where(late)
        elif overdue is False:
            query = query.where(~late)
        query = query.order_by(cases.c.priority, cases.c.due_at, cases.c.id).limit(limit).offset(offset)
        with self.engine.db.connect() as conn:
            rows = conn.execute(query).all()
        return [self._summary(r, now) for r in rows]


# ------------------------------------------------------------------------------------------ helpers


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _actor(actor: str) -> str:
    """An actor name as the audit chain takes it (the decision and event doors pass e.g. ``key:<id>``)."""
    return actor if isinstance(actor, str) and 1 <= len(actor) <= 64 else "system"


def _many(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _language(value: Any) -> Language:
    try:
        return Language(value)
    except ValueError:
        raise FengkongError("invalid_field", "language: zh or en", "language", 422) from None


def _check_ref(value: Any, field: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= 64 or value != value.strip():
        raise FengkongError("invalid_field", f"{field}: an id of 1 to 64 characters", field, 422)
    return value


def _check_message(message: Any) -> str:
    if not isinstance(message, str) or not message.strip():
        raise FengkongError(
            "missing_field", "message: say in a few words what the customer disagrees with", "message", 422
        )
    text: str = message.strip()
    if len(text) > MAX_MESSAGE:
        raise FengkongError(
            "invalid_field", f"message: at most {MAX_MESSAGE} characters (got {len(text)})", "message", 422
        )
    return text


def _check_evidence(evidence: Mapping[str, Any] | None) -> dict[str, Any]:
    if evidence is None:
        return {}
    if not isinstance(evidence, Mapping):
        raise FengkongError("invalid_field", "evidence: must be an object", "evidence", 422)
    try:
        text = audit.canonical_json(dict(evidence))
    except (TypeError, ValueError):
        raise FengkongError(
            "invalid_field", "evidence: must be plain JSON (no NaN, no objects)", "evidence", 422
        ) from None
    if len(text.encode()) > MAX_EVIDENCE_BYTES:
        raise FengkongError("invalid_field", f"evidence: at most {MAX_EVIDENCE_BYTES} bytes of JSON", "evidence", 422)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _check_amount(value: Any, field: str, most: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < float(value) <= most:
        raise FengkongError("invalid_field", f"{field}: a number above 0 and at most {most:,.2f}", field, 422)
    return float(value)


def _check_reasons(codes: Sequence[str] | None) -> list[str] | None:
    if codes is None:
        return None
    if isinstance(codes, str) or not all(isinstance(c, str) for c in codes):
        raise FengkongError("invalid_field", "reasons: a list of reason codes", "reasons", 422)
    unknown = [c for c in codes if not is_known(c)]
    if unknown:
        raise FengkongError("invalid_field", f"reasons: unknown reason code {unknown[0]!r}", "reasons", 422)
    return list(dict.fromkeys(codes))


def _no_extras(
    outcome: str, override: dict[str, Any] | None, limit: float | None, apr: float | None, codes: list[str] | None
) -> None:
    if override is None:
        return
    if override["outcome"] == Outcome.DECLINE.value and (limit is not None or apr is not None):
        raise FengkongError("invalid_field", f"limit and apr apply to an approval, not to {outcome!r}", "limit", 422)
    if override["outcome"] == Outcome.APPROVE.value and codes:
        raise FengkongError("invalid_field", "reasons apply to a decline, not to an approval", "reasons", 422)


def _line_fix_four_eyes(fix: Mapping[str, Any], threshold: float) -> str | None:
    """Why restoring a line on appeal needs a second analyst: it overrides what the machine decided (an
    automated freeze, closure or decrease is the line's decline), or it gives back a limit above the threshold."""
    what = {"freeze": "freeze", "close": "closure", "decrease": "decrease"}.get(str(fix["action"]))
    if fix["automated"] and what is not None:
        return f"it overrides an automated line {what}"
    if float(fix["new_limit"]) > threshold:
        return f"it gives back a limit of {float(fix['new_limit']):,.0f}, above the four-eyes limit of {threshold:,.0f}"
    return None


def _category(code: str) -> Category | None:
    return reason(code).category if is_known(code) else None


def _already_resolved(row: Any) -> FengkongError:
    return FengkongError(
        "case_resolved",
        f"case {row.id} is already resolved ({row.outcome}); a resolved case cannot be changed — open a new case "
        "if something new has come up",
        "case_id",
        409,
    )


def _application_run(engine: Engine, version: str, features: Mapping[str, Any]) -> dict[str, Any]:
    """Stored application features decided again by one policy version; a version that cannot decide them (a
    feature it reads is missing, the version cannot be loaded) is said to be not replayable, with why."""
    try:
        result = engine.policy(version).decide_row(features)
    except (FengkongError, KeyError, TypeError, ValueError) as exc:
        why = f"policy {version} cannot decide the stored features again: {type(exc).__name__}"
        return {"replayable": False, "why": why, "outcome": None, "reasons": [], "limit": None, "apr": None,
                "score": None, "rule_hits": []}  # fmt: skip
    return {
        "replayable": True,
        "why": None,
        "outcome": result.outcome.value,
        "reasons": list(result.reasons),
        "limit": result.limit,
        "apr": result.apr,
        "score": result.score,
        "rule_hits": [h.id for h in result.rule_hits],
    }


def _drawdown_run(ran: Mapping[str, Any]) -> dict[str, Any]:
    """One run of the drawdown rules (``drawdown_explain.replay``) as a replay reports it."""
    return {
        "replayable": ran["replayable"],
        "why": ran["why"],
        "outcome": ran["outcome"],
        "reasons": list(ran["reasons"]),
        "rule_hits": list(ran["rule_hits"]),
    }


def _identity_keys(conn: sa.Connection, customer_ids: Sequence[str]) -> dict[str, str]:
    """keyed hash → identifier kind, over the applications of these customers (the listable kinds only)."""
    found: dict[str, str] = {}
    for inputs in conn.execute(
        sa.select(decisions.c.inputs).where(
            decisions.c.customer_id.in_(list(customer_ids)) & (decisions.c.kind == "application")
        )
    ).scalars():
        for fld, value in ((inputs or {}).get("identity") or {}).items():
            kind = IDENTITY_ENTITIES.get(fld)
            if kind in LISTED_KINDS and isinstance(value, str):
                found[value] = kind
    return found


def _alert_view(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {**alert, "created_at": audit.timestamp_text(alert["created_at"])}


def _step(s: Any) -> dict[str, Any]:
    return {
        "step_id": s.id,
        "seq": s.seq,
        "at": audit.timestamp_text(s.created_at),
        "actor": s.actor,
        "action": s.action,
        "outcome": s.outcome,
        "note": s.note,
        "details": s.details,
    }


def _action_hash(step: Mapping[str, Any]) -> str:
    return audit.content_hash(
        {
            "case_id": step["case_id"],
            "seq": step["seq"],
            "created_at": audit.timestamp_text(step["created_at"]),
            "actor": step["actor"],
            "action": step["action"],
            "outcome": step["outcome"],
            "note": step["note"],
            "details": step["details"],
        }
    )


def _action_hashes(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    rows = conn.execute(sa.select(case_actions).where(case_actions.c.id.in_(ids))).mappings().all()
    return {r["id"]: _action_hash(dict(r)) for r in rows}
