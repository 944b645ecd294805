"""``engine.lines``: open, read, act on and review live credit lines, every change audited with its reasons.

Every change goes through ``_write``: one place that checks the line has not moved under us (a compare-and-set
on the line's action counter), records the action with its reasons, evidence and notice, updates the line and
appends to the audit chain, all in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa

from fengkong.domain import Language, new_id
from fengkong.errors import FengkongError, not_found
from fengkong.lines.drawdown import DrawdownDecision, DrawdownDesk
from fengkong.lines.notices import build_notice
from fengkong.lines.review import ReviewReport, summarise
from fengkong.lines.state import ACTOR_KINDS, LineAction, LineStatus, check_limit_change, money, next_status
from fengkong.lines.strategy import LINE_COLUMNS, line_strategy
from fengkong.reasons import is_known, reason
from fengkong.store import audit
from fengkong.store.tables import alerts, credit_lines, events, line_actions, line_review_runs

if TYPE_CHECKING:
    from fengkong.policy.compiler import CompiledPolicy
    from fengkong.service import Engine

ChunkCallback = Callable[[int, int], None]


@dataclass
class ReviewRun:
    """What ``review`` did: the report, and for ``apply`` the run id and how many lines it changed."""

    report: ReviewReport
    run_id: str | None = None
    applied: int = 0
    skipped: int = 0  # planned actions not applied because the line moved meanwhile (the next review sees them)
    resumed: bool = False
    table: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)


@dataclass(frozen=True)
class Reversal:
    """What undoing a decrease does to its line: the limit it took given back (never above the limit before it,
    never below what is owed), or, while it is still under notice, the announced decrease withdrawn."""

    line_id: str
    reverses: str  # the decrease undone
    status: str
    limit_now: float
    limit_after: float
    given_back: float  # limit restored; 0 when a notice is withdrawn
    cancels_notice: bool
    effective_on: dt.date | None  # the day a withdrawn decrease would have taken effect

    def as_dict(self) -> dict[str, Any]:
        return {
            "line_id": self.line_id,
            "reverses": self.reverses,
            "status": self.status,
            "limit_now": self.limit_now,
            "limit_after": self.limit_after,
            "given_back": self.given_back,
            "cancels_notice": self.cancels_notice,
            "effective_on": self.effective_on.isoformat() if self.effective_on else None,
        }


class LineDesk:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.audit_hashers["line_action"] = _action_hashes
        self._drawdowns = DrawdownDesk(engine)

    def drawdown(self, line_id: str, request: Any, actor: str = "python") -> DrawdownDecision:
        """Decide a drawdown on a live line: approve (the loan is booked), decline, or hold for a person."""
        return self._drawdowns.decide(line_id, request, actor)

    # ------------------------------------------------------------------------------------------ opening

    def open_in(
        self,
        conn: sa.Connection,
        decision: Mapping[str, Any],
        now: dt.datetime,
        actor: str,
        note: str | None = None,
        actor_kind: str = "decision",
    ) -> str:
        """Open the line an approved decision grants, inside the decision's own transaction."""
        features = decision.get("features") or {}
        line_id = new_id("line")
        opening = {
            "bureau_inquiries_30d": features.get("bureau_inquiries_30d"),
            "monthly_income": features.get("monthly_income"),
        }
        conn.execute(
            sa.insert(credit_lines).values(
                id=line_id,
                customer_id=decision["customer_id"],
                decision_id=decision["id"],
                status=LineStatus.ACTIVE.value,
                limit_amount=0.0,
                outstanding=0.0,
                apr=decision.get("apr"),
                currency=decision.get("currency", "CNY"),
                opened_at=now,
                updated_at=now,
                ever_restricted=False,
                policy_version=decision["policy_version"],
                opening=opening,
                seq=0,
            )
        )
        line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one()
        self._write(
            conn,
            line,
            LineAction.OPEN,
            to_status=LineStatus.ACTIVE,
            limit_after=float(decision["limit_amount"]),
            actor_kind=actor_kind,
            actor=actor,
            reasons=[],
            evidence={"decision_id": decision["id"]},
            now=now,
            policy_version=decision["policy_version"],
            note=note,
        )
        return line_id

    def open_from_decision(
        self, decision_id: str, actor: str, *, limit: float | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """Open the line a person granted on review (a REVIEW outcome approved, a decline overridden)."""
        row = self.engine._row(decision_id)
        if row.kind not in ("application", "override"):
            raise FengkongError(
                "invalid_value",
                f"decision {decision_id} is a {row.kind} decision, not an application",
                "decision_id",
                422,
            )
        amount = limit if limit is not None else row.limit_amount
        if amount is None or not amount > 0:
            raise FengkongError("invalid_value", "the decision carries no offer: give a limit above 0", "limit", 422)
        now = _now()
        with self.engine.db.begin() as conn:
            existing = conn.execute(
                sa.select(credit_lines.c.id).where(credit_lines.c.decision_id == decision_id)
            ).scalar_one_or_none()
            if existing is not None:
                raise FengkongError(
                    "conflict", f"decision {decision_id} already opened line {existing}", "decision_id", 409
                )
            record = {
                "id": decision_id,
                "customer_id": row.customer_id,
                "features": row.features,
                "apr": row.apr,
                "limit_amount": float(amount),
                "policy_version": row.policy_version,
                "currency": self.engine.policy(row.policy_version).spec.currency,
            }
            line_id = self.open_in(conn, record, now, actor, note=note, actor_kind="analyst")
        return self.get(line_id)

    # ------------------------------------------------------------------------------------------ reads

    def get(self, line_id: str, language: Language = Language.ZH) -> dict[str, Any]:
        self.settle_pending(line_id=line_id)
        with self.engine.db.connect() as conn:
            line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one_or_none()
            if line is None:
                raise not_found("line", line_id, "line_id")
            history = conn.execute(
                sa.select(line_actions).where(line_actions.c.line_id == line_id).order_by(line_actions.c.seq)
            ).all()
        return _line_view(line, history, language)

    def line_id_for_decision(self, decision_id: str) -> str | None:
        with self.engine.db.connect() as conn:
            found: str | None = conn.execute(
                sa.select(credit_lines.c.id).where(credit_lines.c.decision_id == decision_id)
            ).scalar_one_or_none()
        return found

    def for_customer(self, customer_id: str) -> list[dict[str, Any]]:
        with self.engine.db.connect() as conn:
            ids = conn.execute(
                sa.select(credit_lines.c.id)
                .where(credit_lines.c.customer_id == customer_id)
                .order_by(credit_lines.c.opened_at)
            ).scalars()
            found = list(ids)
        return [self.get(i) for i in found]

    # ------------------------------------------------------------------------------------------ actions

    def act(
        self,
        line_id: str,
        action: LineAction | str,
        *,
        actor: str,
        actor_kind: str = "analyst",
        reasons: Sequence[str] = (),
        new_limit: float | None = None,
        note: str | None = None,
        evidence: Mapping[str, Any] | None = None,
        review_days: int | None = None,
        reverses: str | None = None,
    ) -> dict[str, Any]:
        """One action on one line, by a person or a rule, within the policy's guardrails.

        ``reverse`` (a person only, naming the decrease in ``reverses``) undoes a decrease and is exempt from the
        increase guardrails: it gives back a limit the line had, it grants no new credit (see ``_plan_reversal``).
        """
        try:
            kind = LineAction(action)
        except ValueError:
            allowed = ", ".join(
                a.value for a in LineAction if a not in (LineAction.OPEN, LineAction.DECREASE_EFFECTIVE)
            )
            raise FengkongError(
                "invalid_value", f"unknown action {action!r} (allowed: {allowed})", "action", 422
            ) from None
        if kind in (LineAction.OPEN, LineAction.DECREASE_EFFECTIVE):
            raise FengkongError("invalid_value", f"{kind.value} is not an action to ask for", "action", 422)
        if actor_kind not in ACTOR_KINDS:
            raise FengkongError("invalid_value", f"unknown actor kind {actor_kind!r}", "actor_kind", 422)
        if not reasons and actor_kind not in ("analyst", "case"):
            raise FengkongError("missing_field", "an automated action must give its reason codes", "reasons", 422)
        codes = list(reasons) or ["LINE_ANALYST_DECISION"]
        for code in codes:
            if not is_known(code):
                raise FengkongError("invalid_value", f"unknown reason code {code!r}", "reasons", 422)
        if actor_kind in ("analyst", "case") and not (note and note.strip()):
            raise FengkongError("missing_field", "a person acting on a line must leave a note", "note", 422)
        if (new_limit is None) == (kind in (LineAction.INCREASE, LineAction.DECREASE)):
            what = "needs" if new_limit is None else "takes no"
            raise FengkongError("invalid_value", f"{kind.value} {what} new_limit", "new_limit", 422)
        if review_days is not None and not 1 <= review_days <= 365:
            raise FengkongError("invalid_value", "review_days must be between 1 and 365", "review_days", 422)
        if (reverses is None) == (kind is LineAction.REVERSE):
            what = "needs the id of the decrease to undo in" if reverses is None else "takes no"
            raise FengkongError("invalid_value", f"{kind.value} {what} reverses", "reverses", 422)
        policy = self.engine.policy()
        g = policy.spec.lines.guardrails
        now = _now()
        today = now.date()
        with self.engine.db.begin() as conn:
            line = self._line_for_update(conn, line_id)
            if kind is LineAction.REVERSE and _notice_ended(line, today):
                # a decrease whose day has come is in effect: settle it here, then give back what it took (not
                # cancel it); in this transaction, so a refused reversal leaves it as it was
                self._settle(conn, line, now)
                line = self._line_for_update(conn, line_id)
            status = LineStatus(line.status)
            to_status = next_status(status, kind, actor_kind)
            limit_after = float(line.limit_amount)
            effective_on = None
            review_due = None
            notice = None
            reversal = None
            details = dict(evidence or {})
            if kind is LineAction.REVERSE:
                assert reverses is not None
                reversal = self._plan_reversal(conn, line, reverses)
                limit_after = reversal.limit_after
                review_due = line.review_due_on  # a frozen line stays frozen, reviewed on the same date
                details.update(
                    reverses=reversal.reverses, given_back=reversal.given_back, cancels_notice=reversal.cancels_notice
                )
                if reversal.cancels_notice:
                    notice = build_notice(
                        "reverse_notice", codes, limit=limit_after, effective_on=reversal.effective_on
                    )
            if kind in (LineAction.INCREASE, LineAction.DECREASE):
                assert new_limit is not None
                check_limit_change(
                    kind,
                    float(line.limit_amount),
                    float(new_limit),
                    float(line.outstanding),
                    line.last_increase_on,
                    self._decreases_in_window(conn, line_id, today, g.decrease_window_days),
                    g,
                    today,
                )
                limit_after = float(new_limit)
                if kind is LineAction.DECREASE:
                    effective_on = today + dt.timedelta(days=g.decrease_notice_days)
            if kind is LineAction.FREEZE:
                review_due = today + dt.timedelta(days=review_days or g.freeze_review_days)
            self._write(
                conn,
                line,
                kind,
                to_status=to_status,
                limit_after=limit_after,
                actor_kind=actor_kind,
                actor=actor,
                reasons=codes,
                evidence=details,
                now=now,
                policy_version=policy.version,
                note=note,
                review_due_on=review_due,
                effective_on=effective_on,
                notice=notice,
                cancel_notice=reversal is not None and reversal.cancels_notice,
            )
        return self.get(line_id)

    def restore(
        self,
        line_id: str,
        actor: str,
        reasons: Sequence[str] = ("LINE_APPEAL_UPHELD",),
        note: str | None = None,
        *,
        case_id: str | None = None,
    ) -> dict[str, Any]:
        """Make a frozen or closed line active again on human review (an upheld appeal), with its limit."""
        return self.act(
            line_id,
            LineAction.RESTORE,
            actor=actor,
            actor_kind="case",
            reasons=reasons,
            note=note or "appeal upheld",
            evidence={"case_id": case_id} if case_id else None,
        )

    def reverse(
        self,
        line_id: str,
        action_id: str,
        *,
        actor: str,
        actor_kind: str = "analyst",
        reasons: Sequence[str] = (),
        note: str | None = None,
        case_id: str | None = None,
    ) -> dict[str, Any]:
        """A person undoes decrease ``action_id``: the limit it took is given back, or, still under notice, the
        decrease is withdrawn. Recorded with who, the case (an upheld appeal), reasons and a zh/en notice."""
        return self.act(
            line_id,
            LineAction.REVERSE,
            actor=actor,
            actor_kind=actor_kind,
            reasons=reasons,
            note=note,
            reverses=action_id,
            evidence={"case_id": case_id} if case_id else None,
        )

    def reversal(self, action_id: str) -> dict[str, Any]:
        """What reversing decrease ``action_id`` would do now, refused as ``reverse`` would be; writes nothing, not
        even a decrease whose notice has ended (planned as if settled, as ``reverse`` settles it first): a case
        checks it before a person's resolution promises the line back."""
        with self.engine.db.connect() as conn:
            line_id = conn.execute(
                sa.select(line_actions.c.line_id).where(line_actions.c.id == action_id)
            ).scalar_one_or_none()
            if line_id is None:
                raise not_found("line_action", action_id, "reverses")
            line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one()
            next_status(LineStatus(line.status), LineAction.REVERSE, "case")
            line, settled = _as_settled(line, _now().date())
            return self._plan_reversal(conn, line, action_id, settled).as_dict()

    def freeze_for_alert(self, conn: sa.Connection, alert: Mapping[str, Any], actor: str) -> list[str]:
        """A trigger with action ``freeze_line``: freeze the customer's active lines, in the alert's transaction."""
        policy = self.engine.policy(alert["policy_version"])
        now = alert["created_at"]
        frozen = []
        query = sa.select(credit_lines).where(
            (credit_lines.c.customer_id == alert["customer_id"]) & (credit_lines.c.status == LineStatus.ACTIVE.value)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()  # a concurrent action waits, so the freeze is never lost to a conflict
        rows = conn.execute(query).all()
        for line in rows:
            self._write(
                conn,
                line,
                LineAction.FREEZE,
                to_status=LineStatus.FROZEN,
                limit_after=float(line.limit_amount),
                actor_kind="trigger",
                actor=f"{alert['trigger_id']}",
                reasons=[alert["reason"]],
                evidence={"alert_id": alert["id"], "event_id": alert["event_id"], "features": alert["features"]},
                now=now,
                policy_version=policy.version,
                review_due_on=now.date() + dt.timedelta(days=policy.spec.lines.guardrails.freeze_review_days),
            )
            frozen.append(line.id)
        return frozen

    # ------------------------------------------------------------------------------------------ money

    def available(self, line_id: str) -> float:
        with self.engine.db.connect() as conn:
            line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one_or_none()
        if line is None:
            raise not_found("line", line_id, "line_id")
        return _available(line)

    def on_drawdown(self, conn: sa.Connection, line_id: str, amount: float, at: dt.datetime) -> None:
        """Take ``amount`` from the line in the caller's transaction; refuse if it is not active or too little is left.

        One conditional UPDATE: two drawdowns racing for the last of a line cannot both succeed.
        """
        if not amount > 0:
            raise FengkongError("invalid_value", "amount must be above 0", "amount", 422)
        c = credit_lines.c
        # a decrease whose notice period has ended binds even before anyone has settled it
        due = c.pending_limit.is_not(None) & (c.pending_effective_on <= at.date())
        limit_now = sa.case((due & (c.pending_limit < c.limit_amount), c.pending_limit), else_=c.limit_amount)
        done = conn.execute(
            sa.update(credit_lines)
            .where(
                (credit_lines.c.id == line_id)
                & (credit_lines.c.status == LineStatus.ACTIVE.value)
                & (limit_now - credit_lines.c.outstanding >= amount)
            )
            .values(outstanding=credit_lines.c.outstanding + amount, updated_at=at)
        ).rowcount
        if done != 1:
            line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one_or_none()
            if line is None:
                raise not_found("line", line_id, "line_id")
            if line.status != LineStatus.ACTIVE.value:
                raise FengkongError("line_not_active", f"the line is {line.status}: no new drawdowns", "line_id", 409)
            raise FengkongError(
                "insufficient_available",
                f"amount {money(amount)} is above the available {money(_available(line, at.date()))}",
                "amount",
                409,
            )

    def on_principal_repaid(self, conn: sa.Connection, line_id: str, amount: float, at: dt.datetime) -> None:
        """Principal repaid on a loan of the line: the same amount is available again."""
        conn.execute(
            sa.update(credit_lines)
            .where(credit_lines.c.id == line_id)
            .values(
                outstanding=sa.case(
                    (credit_lines.c.outstanding - amount < 0, 0.0), else_=credit_lines.c.outstanding - amount
                ),
                updated_at=at,
            )
        )

    # ------------------------------------------------------------------------------------------ review

    def settle_pending(self, today: dt.date | None = None, line_id: str | None = None) -> int:
        """Decreases given with notice whose day has come take effect (never below the outstanding balance)."""
        today = today or _now().date()
        now = _now()
        settled = 0
        query = sa.select(credit_lines).where(
            credit_lines.c.pending_limit.is_not(None) & (credit_lines.c.pending_effective_on <= today)
        )
        if line_id is not None:
            query = query.where(credit_lines.c.id == line_id)
        with self.engine.db.begin() as conn:
            due = conn.execute(query).all()
            for line in due:
                settled += self._settle(conn, line, now)
        return settled

    def _settle(self, conn: sa.Connection, line: Any, now: dt.datetime) -> bool:
        """Make ``line``'s decrease under notice take effect, in the caller's transaction (a closed line only drops
        it); whether an action was recorded. ``_as_settled`` plans the same without writing."""
        if line.status == LineStatus.CLOSED.value:
            conn.execute(
                sa.update(credit_lines)
                .where(credit_lines.c.id == line.id)
                .values(pending_limit=None, pending_effective_on=None)
            )
            return False
        last = conn.execute(
            sa.select(line_actions.c.reasons, line_actions.c.policy_version)
            .where((line_actions.c.line_id == line.id) & (line_actions.c.action == "decrease"))
            .order_by(line_actions.c.seq.desc())
            .limit(1)
        ).one()
        self._write(
            conn,
            line,
            LineAction.DECREASE_EFFECTIVE,
            to_status=LineStatus(line.status),
            limit_after=_settled_limit(line),
            actor_kind="system",
            actor="notice_period",
            reasons=list(last.reasons),
            evidence={},
            now=now,
            policy_version=last.policy_version,
        )
        return True

    def review_table(self, as_of: dt.date, policy: CompiledPolicy | None = None) -> pl.DataFrame:
        """Every line as one row: the line columns and behaviour features a line review reads, as of ``as_of``.

        Read column by column (the JSON fields the growth features start from are extracted by the database),
        and put together with polars: a million stored lines are a few plain queries and joins, not a Python
        loop.
        """
        policy = policy or self.engine.policy()
        g = policy.spec.lines.guardrails
        end = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)  # nothing after the review day
        window_start = dt.datetime.combine(as_of - dt.timedelta(days=g.decrease_window_days), dt.time(), dt.UTC)
        risk_start = dt.datetime.combine(as_of - dt.timedelta(days=30), dt.time(), dt.UTC)
        c, e = credit_lines.c, events.c
        with self.engine.db.connect() as conn:
            lines = conn.execute(
                sa.select(
                    c.id,
                    c.customer_id,
                    c.status,
                    c.limit_amount,
                    c.outstanding,
                    c.review_due_on,
                    c.last_increase_on,
                    c.ever_restricted,
                    c.seq,
                    c.opened_at,
                    c.opening["bureau_inquiries_30d"].as_float(),
                    c.opening["monthly_income"].as_float(),
                ).order_by(c.id)
            ).all()
            decreases = conn.execute(
                sa.select(line_actions.c.line_id, sa.func.count())
                .where(
                    (line_actions.c.action == "decrease")
                    & (line_actions.c.created_at >= window_start)
                    & (line_actions.c.created_at < end)
                )
                .group_by(line_actions.c.line_id)
            ).all()
            risk = conn.execute(
                sa.select(alerts.c.customer_id, sa.func.count())
                .where((alerts.c.created_at >= risk_start) & (alerts.c.created_at < end))
                .group_by(alerts.c.customer_id)
            ).all()
            bureau = conn.execute(
                sa.select(e.customer_id, e.payload["inquiries_30d"].as_float(), e.payload["monthly_income"].as_float())
                .where((e.type == "bureau_update") & (e.occurred_at < end))
                .order_by(e.occurred_at, e.event_id)
            ).all()
        frame = pl.DataFrame(
            lines,
            schema={
                "line_id": pl.String,
                "customer_id": pl.String,
                "status": pl.String,
                "limit": pl.Float64,
                "outstanding": pl.Float64,
                "review_due_on": pl.Date,
                "last_increase_on": pl.Date,
                "ever_restricted": pl.Boolean,
                "seq": pl.Int64,
                "_opened": pl.Datetime("us"),
                "_base_inq": pl.Float64,
                "_base_income": pl.Float64,
            },
            orient="row",
        )
        counts = {"line_id": pl.String, "decreases_in_window": pl.Int64}
        risks = {"customer_id": pl.String, "line_risk_events_30d": pl.Float64}
        latest = pl.DataFrame(
            bureau, schema={"customer_id": pl.String, "_now_inq": pl.Float64, "_now_income": pl.Float64}, orient="row"
        ).unique("customer_id", keep="last", maintain_order=True)  # the latest bureau report per customer
        frame = (
            frame.join(pl.DataFrame(decreases, schema=counts, orient="row"), on="line_id", how="left")
            .join(pl.DataFrame(risk, schema=risks, orient="row"), on="customer_id", how="left")
            .join(latest, on="customer_id", how="left")
            .join(self._delinquency(as_of), on="line_id", how="left")
        )
        opened = pl.col("_opened").dt.date()
        months = (
            (as_of.year - opened.dt.year().cast(pl.Int64)) * 12
            + (as_of.month - opened.dt.month().cast(pl.Int64))
            - (opened.dt.day().cast(pl.Int64) > as_of.day).cast(pl.Int64)
        )
        income = pl.col("_now_income") / pl.col("_base_income") - 1
        known_income = (pl.col("_now_income").fill_null(0) != 0) & (pl.col("_base_income").fill_null(0) != 0)
        frame = frame.with_columns(
            pl.col("decreases_in_window").fill_null(0),
            pl.col("ever_restricted").fill_null(False),
            months.clip(lower_bound=0).cast(pl.Float64).alias("line_months_on_book"),
            *(
                pl.col(name).fill_null(0).cast(pl.Float64).alias(name)
                for name in ("line_days_past_due", "line_max_dpd_12m", "line_missed_payments_12m")
            ),
            (pl.col("_now_inq") - pl.col("_base_inq")).alias("line_inquiries_growth"),
            pl.when(known_income).then(income).otherwise(None).alias("line_income_change"),
            pl.col("line_risk_events_30d").fill_null(0.0),
        )
        return frame.select(
            *LINE_COLUMNS,
            "seq",
            "line_months_on_book",
            "line_days_past_due",
            "line_max_dpd_12m",
            "line_missed_payments_12m",
            "line_inquiries_growth",
            "line_income_change",
            "line_risk_events_30d",
        )

    def _delinquency(self, as_of: dt.date) -> pl.DataFrame:
        """Days past due per line from the loan book (line_id and the three ``line_*`` delinquency columns)."""
        frame: pl.DataFrame = self.engine.loans.line_delinquency(as_of)
        wanted = ("line_days_past_due", "line_max_dpd_12m", "line_missed_payments_12m")
        return frame.select("line_id", *(pl.col(n).cast(pl.Float64) for n in wanted))

    def due_for_review(self, as_of: dt.date | None = None) -> int:
        """How many frozen lines have reached their review date (or carry none): what a due review acts on."""
        day = as_of or _now().date()
        c = credit_lines.c
        with self.engine.db.connect() as conn:
            count: int = conn.execute(
                sa.select(sa.func.count()).where(
                    (c.status == LineStatus.FROZEN.value) & (c.review_due_on.is_(None) | (c.review_due_on <= day))
                )
            ).scalar_one()
        return count

    def get_run(self, run_id: str) -> dict[str, Any]:
        """A review run: its status, date, policy, how many lines it planned for and acted on, and its report."""
        with self.engine.db.connect() as conn:
            row = conn.execute(sa.select(line_review_runs).where(line_review_runs.c.id == run_id)).one_or_none()
        if row is None:
            raise not_found("review_run", run_id, "run_id")
        return _run_view(row)

    def unfinished_run(self) -> dict[str, Any] | None:
        """The applied review run that was interrupted or is still running, if any (at most one at a time)."""
        with self.engine.db.connect() as conn:
            row = conn.execute(
                sa.select(line_review_runs).where(line_review_runs.c.status == "running").limit(1)
            ).one_or_none()
        return None if row is None else _run_view(row)

    def review(
        self,
        as_of: dt.date | None = None,
        *,
        apply: bool = False,
        actor: str = "python",
        chunk_size: int = 1000,
        resume: str | None = None,
        on_chunk: ChunkCallback | None = None,
        policy_version: str | None = None,
        policy: CompiledPolicy | None = None,
        due_only: bool = False,
    ) -> ReviewRun:
        """Review every line under the policy's line strategy; dry-run unless ``apply``.

        ``apply`` writes actions in one transaction per chunk, tagged with the run id; a database constraint
        holds each line to one action per run, so ``resume=RUN_ID`` after an interruption acts only on the
        lines the run has not reached, and never on a line twice. ``due_only`` reviews only the frozen lines
        whose review date has come (the daily job of ``LineScheduler``). ``policy`` dry-runs a candidate policy
        that is not published (it cannot be applied: actions are taken under published policies only).
        """
        if chunk_size < 1:
            raise FengkongError("invalid_value", "chunk_size must be at least 1", "chunk_size", 422)
        if policy is not None and (apply or resume is not None or policy_version is not None):
            raise FengkongError(
                "invalid_value",
                "a review under an unpublished policy is a dry run only: publish and activate it to apply",
                "policy",
                422,
            )
        run_row = None
        if resume is not None:
            with self.engine.db.connect() as conn:
                run_row = conn.execute(sa.select(line_review_runs).where(line_review_runs.c.id == resume)).one_or_none()
            if run_row is None:
                raise not_found("review_run", resume, "resume")
            if run_row.status == "completed":
                raise FengkongError("conflict", f"line review run {resume} is already complete", "resume", 409)
            apply, as_of, policy_version = True, run_row.as_of, run_row.policy_version
            due_only = (run_row.summary or {}).get("scope") == "due"
        today = _now().date()
        if apply and run_row is None and as_of is not None and as_of > today:
            raise FengkongError(
                "invalid_value",
                f"a review cannot be applied as of a future date (today is {today.isoformat()}); "
                "future dates are for dry runs only",
                "as_of",
                422,
            )
        as_of = as_of or today
        policy = policy or self.engine.policy(policy_version)
        strategy = line_strategy(policy)
        if apply:
            self.settle_pending(as_of)
        table = self.review_table(as_of, policy)
        if due_only:
            due = pl.col("review_due_on")
            table = table.filter((pl.col("status") == "frozen") & (due.is_null() | (due <= as_of)))
        if run_row is not None:
            with self.engine.db.connect() as conn:
                done = set(
                    conn.execute(
                        sa.select(line_actions.c.line_id).where(line_actions.c.review_run_id == run_row.id)
                    ).scalars()
                )
            table = table.filter(~pl.col("line_id").is_in(list(done)))
        result = strategy.review_frame(table, as_of)
        report = summarise(result, policy.version, as_of)
        report.scope = "due" if due_only else "all"
        run = ReviewRun(report, table=result)
        if not apply:
            return run
        if run_row is None:
            run_id = new_id("rev")
            with self.engine.db.begin() as conn:
                # the audit append locks the chain's head row first: two runs starting together queue here, and
                # the second sees the first as unfinished
                audit.append(conn, "line_review_started", run_id, actor, audit.content_hash(report.as_dict()), _now())
                unfinished = conn.execute(
                    sa.select(line_review_runs.c.id).where(line_review_runs.c.status == "running").limit(1)
                ).scalar_one_or_none()
                if unfinished is not None:
                    raise FengkongError(
                        "conflict",
                        f"line review run {unfinished} was interrupted or is running: resume it "
                        f"(--resume {unfinished}) first",
                        "resume",
                        409,
                    )
                conn.execute(
                    sa.insert(line_review_runs).values(
                        id=run_id,
                        created_at=_now(),
                        as_of=as_of,
                        policy_version=policy.version,
                        actor=actor,
                        status="running",
                        lines_total=result.height,
                        lines_acted=0,
                        summary=report.as_dict(),
                    )
                )
        else:
            run_id = run_row.id
            run.resumed = True
        acting = result.filter(~pl.col("action").is_in(["keep", "skip"]))
        evidence_cols = [c for c in strategy.inputs if c in table.columns]
        evidence = table.select("line_id", "seq", *evidence_cols)
        acting = acting.join(evidence, on="line_id", how="left")
        total = acting.height
        for start in range(0, total, chunk_size):
            chunk = acting.slice(start, chunk_size).to_dicts()
            try:
                with self.engine.db.begin() as conn:
                    applied_now = sum(
                        self._apply_review_row(conn, row, evidence_cols, run_id, policy.version, as_of) for row in chunk
                    )
                    conn.execute(
                        sa.update(line_review_runs)
                        .where(line_review_runs.c.id == run_id)
                        .values(lines_acted=line_review_runs.c.lines_acted + applied_now)
                    )
            except Exception as exc:  # the chunk's transaction is rolled back whole: no line is half-changed
                cause = getattr(exc, "orig", None) or exc  # the driver's message, not the statement and its values
                raise FengkongError(
                    "review_interrupted",
                    f"line review run {run_id} stopped after {run.applied} of {total} planned action(s) "
                    f"({type(cause).__name__}: {str(cause)[:200]}); nothing of the failed chunk was written: "
                    f"finish it with --resume {run_id}",
                    "resume",
                    503,
                ) from exc
            run.applied += applied_now
            run.skipped += len(chunk) - applied_now
            if on_chunk is not None:
                on_chunk(min(start + chunk_size, total), total)
        with self.engine.db.begin() as conn:
            conn.execute(
                sa.update(line_review_runs)
                .where(line_review_runs.c.id == run_id)
                .values(status="completed", completed_at=_now())
            )
            audit.append(
                conn, "line_review_completed", run_id, actor, audit.content_hash({"applied": run.applied}), _now()
            )
        run.run_id = run_id
        return run

    def _apply_review_row(
        self,
        conn: sa.Connection,
        row: Mapping[str, Any],
        evidence_cols: Sequence[str],
        run_id: str,
        policy_version: str,
        as_of: dt.date,
    ) -> bool:
        """Apply one planned action; False (and nothing written) when the line moved since the plan."""
        line = self._line_for_update(conn, row["line_id"])
        action = LineAction(row["action"])
        if line.seq != row["seq"] or line.status != row["status"] or float(line.limit_amount) != row["limit"]:
            return False  # acted on since the plan was made: the next review sees it afresh
        new_limit = float(row["new_limit"])
        if action is LineAction.DECREASE:
            new_limit = max(new_limit, float(line.outstanding))  # drawn since the plan: never below what is owed
            if new_limit >= float(line.limit_amount):
                return False
        to_status = next_status(LineStatus(line.status), action, "review")
        evidence = {c: row[c] for c in evidence_cols}
        evidence["behaviour_score"] = row["behaviour_score"]
        evidence["segment"] = row["segment"]
        try:
            self._write(
                conn,
                line,
                action,
                to_status=to_status,
                limit_after=new_limit,
                actor_kind="review",
                actor=run_id,
                reasons=list(row["reasons"]),
                evidence=evidence,
                now=_now(),
                policy_version=policy_version,
                review_due_on=row["review_due_on"] if action is LineAction.FREEZE else None,
                effective_on=row["effective_on"],
                review_run_id=run_id,
                today=as_of,
            )
        except FengkongError as exc:
            if exc.code != "conflict":
                raise
            return False  # another writer moved the line between our read and our write: nothing was written
        return True

    # ------------------------------------------------------------------------------------------ the one writer

    def _line_for_update(self, conn: sa.Connection, line_id: str) -> Any:
        query = sa.select(credit_lines).where(credit_lines.c.id == line_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        line = conn.execute(query).one_or_none()
        if line is None:
            raise not_found("line", line_id, "line_id")
        return line

    @staticmethod
    def _decreases_in_window(conn: sa.Connection, line_id: str, today: dt.date, days: int) -> int:
        start = dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), dt.UTC)
        count: int = conn.execute(
            sa.select(sa.func.count()).where(
                (line_actions.c.line_id == line_id)
                & (line_actions.c.action == "decrease")
                & (line_actions.c.created_at >= start)
            )
        ).scalar_one()
        return count

    @staticmethod
    def _plan_reversal(conn: sa.Connection, line: Any, action_id: str, unwritten: Sequence[Any] = ()) -> Reversal:
        """What undoing decrease ``action_id`` does to ``line`` (settled up to today), or why it cannot be undone.

        Why a reversal is exempt from the increase guardrails (maximum limit, largest single increase, cooling-off)
        and is not an increase: it undoes a decision, it grants no new credit. It gives back only what that
        decrease took (a later decrease stays taken), never more than the line had before it (counting earlier
        decreases undone since), never less than is owed; it starts no cooling-off period, and the decrease still
        counts in the decrease window (undoing a cut never makes room for another). Only a person may reverse.
        ``unwritten``: actions planned but not stored (a preview's settling, ``_as_settled``), after the history.
        """
        history = [
            *conn.execute(
                sa.select(line_actions).where(line_actions.c.line_id == line.id).order_by(line_actions.c.seq)
            ).all(),
            *unwritten,
        ]
        target = next((h for h in history if h.id == action_id), None)
        if target is None:
            other = conn.execute(
                sa.select(line_actions.c.line_id).where(line_actions.c.id == action_id)
            ).scalar_one_or_none()
            if other is None:
                raise not_found("line_action", action_id, "reverses")
            raise FengkongError(
                "invalid_value", f"line action {action_id} is on line {other}, not on line {line.id}", "reverses", 422
            )
        if target.action != LineAction.DECREASE.value:
            hint = "; a freeze or closure is undone with restore" if target.action in ("freeze", "close") else ""
            raise FengkongError(
                "invalid_value",
                f"only a decrease can be reversed; {action_id} is a{'n' if target.action[0] in 'aeiou' else ''} "
                f"{target.action}{hint}",
                "reverses",
                422,
            )
        done = next(
            (h for h in history if h.action == "reverse" and (h.evidence or {}).get("reverses") == action_id), None
        )
        if done is not None:
            raise FengkongError(
                "already_reversed",
                f"decrease {action_id} was reversed already ({done.id}, {audit.timestamp_text(done.created_at)})",
                "reverses",
                409,
            )

        def nothing(why: str) -> FengkongError:
            return FengkongError("nothing_to_reverse", f"decrease {action_id}: {why}; nothing to undo", "reverses", 409)

        later = [h for h in history if h.seq > target.seq]
        before, cut_to = float(target.limit_before), float(target.limit_after)
        # the limit before it, had the earlier decreases undone since never been made: undoing two decreases
        # gives back both, in either order
        earlier = {h.id for h in history if h.seq < target.seq and h.action == LineAction.DECREASE.value}
        before += sum(
            float((h.evidence or {}).get("given_back") or 0.0)
            for h in later
            if h.action == "reverse" and (h.evidence or {}).get("reverses") in earlier
        )
        limit_now = float(line.limit_amount)
        # the limit the line had right after the decrease: lower at once, or unchanged while under notice
        right_after = float(later[0].limit_before) if later else limit_now
        given, cancels, effective_on = 0.0, False, None
        if right_after == cut_to:
            given = before - cut_to
        else:
            for h in later:
                if h.action == LineAction.DECREASE_EFFECTIVE.value:  # its notice ended: this is what it took
                    given = float(h.limit_before) - float(h.limit_after)
                    break
                if h.action in ("decrease", "close", "restore", "increase"):  # these end a notice: it never bound
                    raise nothing(f"it never took effect (its notice was ended by {h.action} {h.id})")
            else:
                cancels = line.pending_limit is not None
                effective_on = line.pending_effective_on
        if cancels:
            limit_after = limit_now
        else:
            limit_after = max(min(before, limit_now + given), float(line.outstanding))
            if limit_after <= limit_now:
                raise nothing(
                    f"line {line.id} has a limit of {money(limit_now)}, and the decrease took it from {money(before)}"
                )
        return Reversal(
            line_id=line.id,
            reverses=action_id,
            status=line.status,
            limit_now=limit_now,
            limit_after=limit_after,
            given_back=limit_after - limit_now,
            cancels_notice=cancels,
            effective_on=effective_on,
        )

    def _write(
        self,
        conn: sa.Connection,
        line: Any,
        action: LineAction,
        *,
        to_status: LineStatus,
        limit_after: float,
        actor_kind: str,
        actor: str,
        reasons: list[str],
        evidence: dict[str, Any],
        now: dt.datetime,
        policy_version: str | None,
        note: str | None = None,
        review_due_on: dt.date | None = None,
        effective_on: dt.date | None = None,
        review_run_id: str | None = None,
        today: dt.date | None = None,
        notice: dict[str, str] | None = None,
        cancel_notice: bool = False,
    ) -> str:
        today = today or now.date()
        limit_before = None if action is LineAction.OPEN else float(line.limit_amount)
        pending = action is LineAction.DECREASE and effective_on is not None and effective_on > today
        notice = notice or build_notice(
            action.value,
            reasons,
            limit=limit_after,
            before=limit_before,
            review_due_on=review_due_on,
            effective_on=effective_on,
            today=today,
        )
        action_id = new_id("lact")
        seq = int(line.seq) + 1
        record = {
            "id": action_id,
            "line_id": line.id,
            "seq": seq,
            "created_at": now,
            "effective_on": effective_on,
            "action": action.value,
            "from_status": None if action is LineAction.OPEN else line.status,
            "to_status": to_status.value,
            "limit_before": limit_before,
            "limit_after": limit_after,
            "actor_kind": actor_kind,
            "actor": actor[:64],
            "reasons": reasons,
            "evidence": _jsonable(evidence),
            "notice": notice,
            "note": note,
            "policy_version": policy_version,
            "review_run_id": review_run_id,
        }
        record["content_hash"] = action_content_hash(record)
        values: dict[str, Any] = {"status": to_status.value, "updated_at": now, "seq": seq}
        if pending:
            values.update(pending_limit=limit_after, pending_effective_on=effective_on)
        else:
            values["limit_amount"] = limit_after
        if action is LineAction.DECREASE_EFFECTIVE:
            values.update(pending_limit=None, pending_effective_on=None)
        if action is LineAction.INCREASE:
            values["last_increase_on"] = today
        if action in (LineAction.DECREASE, LineAction.FREEZE, LineAction.CLOSE):
            values["ever_restricted"] = True
        if to_status is LineStatus.FROZEN:
            values["review_due_on"] = review_due_on
        elif action is not LineAction.DECREASE_EFFECTIVE:
            values["review_due_on"] = None
        if action in (LineAction.CLOSE, LineAction.RESTORE, LineAction.INCREASE) or cancel_notice:
            values.update(pending_limit=None, pending_effective_on=None)  # a newer decision supersedes the notice
        moved = conn.execute(
            sa.update(credit_lines)
            .where((credit_lines.c.id == line.id) & (credit_lines.c.seq == line.seq))
            .values(values)
        ).rowcount
        if moved != 1:
            raise FengkongError(
                "conflict", f"line {line.id} changed while this action was made: try again", "line_id", 409
            )
        conn.execute(sa.insert(line_actions).values(record))
        audit.append(conn, "line_action", action_id, actor[:64], record["content_hash"], now)
        return action_id


_HASHED = (
    "id",
    "line_id",
    "seq",
    "action",
    "from_status",
    "to_status",
    "limit_before",
    "limit_after",
    "actor_kind",
    "actor",
    "reasons",
    "evidence",
    "notice",
    "note",
    "policy_version",
    "review_run_id",
)


def action_content_hash(record: Mapping[str, Any]) -> str:
    payload = {k: record[k] for k in _HASHED}
    payload["effective_on"] = record["effective_on"].isoformat() if record["effective_on"] else None
    return audit.content_hash(payload)


def _action_hashes(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    rows = conn.execute(sa.select(line_actions).where(line_actions.c.id.in_(ids))).mappings().all()
    return {r["id"]: action_content_hash(dict(r)) for r in rows}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        return None
    return value


def _notice_ended(line: Any, today: dt.date) -> bool:
    """A decrease under notice whose day has come (``settle_pending`` makes it take effect)."""
    due = line.pending_effective_on
    return bool(line.pending_limit is not None and due is not None and due <= today)


def _settled_limit(line: Any) -> float:
    """The limit a decrease under notice leaves when it takes effect: never below what is owed."""
    return max(float(line.pending_limit), float(line.outstanding))


def _as_settled(line: Any, today: dt.date) -> tuple[Any, list[Any]]:
    """``line`` as ``_settle`` would leave it were its notice ended, and the action it would record; nothing
    written (a preview must not change the line it previews)."""
    if not _notice_ended(line, today):
        return line, []
    view = SimpleNamespace(**line._asdict())
    view.pending_limit = view.pending_effective_on = None
    if line.status == LineStatus.CLOSED.value:
        return view, []
    view.limit_amount, view.seq = _settled_limit(line), int(line.seq) + 1
    effect = SimpleNamespace(
        id=None,
        line_id=line.id,
        seq=view.seq,
        action=LineAction.DECREASE_EFFECTIVE.value,
        limit_before=float(line.limit_amount),
        limit_after=view.limit_amount,
        evidence={},
        created_at=None,
    )
    return view, [effect]


def _available(line: Any, today: dt.date | None = None) -> float:
    """Limit − outstanding on an active line, 0 otherwise; a decrease whose notice has ended counts already."""
    if line.status != LineStatus.ACTIVE.value:
        return 0.0
    limit = float(line.limit_amount)
    day = today or _now().date()
    if line.pending_limit is not None and line.pending_effective_on is not None and line.pending_effective_on <= day:
        limit = min(limit, float(line.pending_limit))
    return max(limit - float(line.outstanding), 0.0)


#: What a drawdown may take from a stored line now (for other doors reading ``credit_lines`` themselves).
available_amount = _available


def _run_view(row: Any) -> dict[str, Any]:
    summary = dict(row.summary or {})
    return {
        "run_id": row.id,
        "status": row.status,
        "scope": summary.get("scope", "all"),
        "as_of": row.as_of.isoformat(),
        "policy_version": row.policy_version,
        "actor": row.actor,
        "created_at": audit.timestamp_text(row.created_at),
        "completed_at": audit.timestamp_text(row.completed_at) if row.completed_at else None,
        "lines_total": row.lines_total,
        "lines_acted": row.lines_acted,
        "report": summary,
    }


def _line_view(line: Any, history: Sequence[Any], language: Language) -> dict[str, Any]:
    # the reasons the line is as it is: a reversal undoes a decrease, it is not why a frozen line is frozen
    skip = ("open",) if line.status == LineStatus.ACTIVE.value else ("open", "reverse")
    last_adverse = next((h for h in reversed(history) if h.action not in skip), None)
    current = list(last_adverse.reasons) if last_adverse is not None and line.status != "active" else []
    if last_adverse is not None and last_adverse.action in ("decrease", "decrease_effective"):
        current = list(last_adverse.reasons)
    return {
        "line_id": line.id,
        "customer_id": line.customer_id,
        "decision_id": line.decision_id,
        "status": line.status,
        "limit": float(line.limit_amount),
        "available": _available(line),
        "outstanding": float(line.outstanding),
        "apr": line.apr,
        "currency": line.currency,
        "opened_at": audit.timestamp_text(line.opened_at),
        "review_due_on": line.review_due_on.isoformat() if line.review_due_on else None,
        "pending_limit": line.pending_limit,
        "pending_effective_on": line.pending_effective_on.isoformat() if line.pending_effective_on else None,
        "policy_version": line.policy_version,
        "reasons": [
            {"code": c, "category": reason(c).category.value, "text": reason(c).customer_text(language)}
            for c in current
        ],
        "history": [
            {
                "action_id": h.id,
                "seq": h.seq,
                "at": audit.timestamp_text(h.created_at),
                "action": h.action,
                "from_status": h.from_status,
                "to_status": h.to_status,
                "limit_before": h.limit_before,
                "limit_after": h.limit_after,
                "effective_on": h.effective_on.isoformat() if h.effective_on else None,
                "actor_kind": h.actor_kind,
                "actor": h.actor,
                "reasons": list(h.reasons),
                "evidence": h.evidence,
                "notice": h.notice,
                "note": h.note,
                "policy_version": h.policy_version,
                "review_run_id": h.review_run_id,
            }
            for h in history
        ],
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
