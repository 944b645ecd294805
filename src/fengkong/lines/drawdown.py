"""A drawdown on a live line, decided in real time: approve (the loan is booked), decline, or hold for a person.

The line's status and available amount are checked first (a refusal there is an error that changes nothing);
then the policy's drawdown rules run over takeover and scam signals (a new device and password, a new payee for
most of the line, a call in progress, repeated drawdowns) and the lists. An approval takes the amount from the
line, books the loan with its schedule, stores the decision and the drawdown event, all in one transaction.
A hold stores the decision, opens a ``held_drawdown`` case and tells the customer plainly what happens next.

Money leaves by one path (``_book``): an approval, a hold a person released, and a declined drawdown a person
approved on appeal (both ``pay_in``, in the case resolution's transaction, with the person's decision) all take
the amount from the line with the same atomic check (line active, amount available), book the loan
``loan-<decision id>`` and record the drawdown event; a drawdown is paid at most once. How a drawdown decision
is explained and replayed: ``fengkong.lines.drawdown_explain``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from fengkong.domain import Language, Outcome, new_id
from fengkong.errors import FengkongError, from_validation_error, not_found
from fengkong.events.ingest import keys_from_payload, observation
from fengkong.pii import normalize, sha256_hex
from fengkong.policy import expressions as ex
from fengkong.policy.compiler import compile_row, normalize_row
from fengkong.reasons import reason
from fengkong.store import audit
from fengkong.store.tables import credit_lines, decisions, events
from fengkong.validation import rule_text

if TYPE_CHECKING:
    from fengkong.policy.compiler import CompiledPolicy
    from fengkong.service import Engine

_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
# identifiers: a refusal states the rule in words and never echoes the value (errors.from_validation_error)
AccountText = Annotated[
    str,
    *rule_text(
        r"^[0-9A-Za-z][0-9A-Za-z \-]{3,63}$",
        "must be 4 to 64 letters (A-Z, a-z), digits, spaces or '-', starting with a letter or digit",
    ),
]
DeviceText = Annotated[
    str,
    *rule_text(
        r"^[\x21-\x7e][\x20-\x7e]{0,127}$",
        "must be 1 to 128 printable ASCII characters (letters, digits, punctuation, spaces), not starting with a space",
    ),
]


class DrawdownIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drawdown_id: str | None = Field(None, pattern=_REF, description="your id: a retry returns the same decision")
    amount: float = Field(ge=1, le=100_000_000, description="at least 1.00, at most two decimals")
    term: int = Field(ge=1, le=360, description="months; must be one the policy offers")
    method: Literal["equal_instalment", "equal_principal", "interest_only"] = "equal_instalment"
    destination_account: AccountText = Field(description="where the money goes: an account number")
    device_id: DeviceText | None = Field(None, description="printable ASCII")
    call_in_progress: StrictBool = Field(False, description="the app sees a phone call in progress")
    language: Literal["zh", "en"] = "zh"

    @field_validator("amount")
    @classmethod
    def _cents(cls, value: float) -> float:
        if round(value, 2) != value:
            raise ValueError("must have at most two decimals")
        return value


_NEXT = {
    "approve": (
        "借款已批准，资金将转入您指定的账户。",
        "Your drawdown is approved; the money is on its way to the account you named.",
    ),
    "review": (
        "为保护您的资金安全，这笔借款需要人工确认。我们会在2小时内通过App或官方电话（不会索要验证码）与您联系；"
        "在此之前不会放款，也不会产生利息。如果有人正在电话中指导您借款或转账，请立即挂断。",
        "To protect your money, a person will confirm this drawdown with you. We will contact you in the app or from "
        "our official number within 2 hours (we never ask for codes); nothing is paid out and no interest runs until "
        "then. If someone on the phone is telling you to borrow or move money, hang up now.",
    ),
    "decline": (
        "很抱歉，这笔借款暂时无法办理。如有异议，可在App内申请人工复核。",
        "We are sorry, we cannot make this drawdown now. If you disagree, you can ask for a human review in the app.",
    ),
}


@dataclass(frozen=True)
class DrawdownDecision:
    decision_id: str
    drawdown_id: str | None
    line_id: str
    outcome: Outcome
    reasons: tuple[str, ...]
    loan_id: str | None
    case_id: str | None
    policy_version: str
    created_at: dt.datetime
    language: Language
    replayed: bool = False

    def response(self) -> dict[str, Any]:
        zh, en = _NEXT[self.outcome.value]
        return {
            "decision_id": self.decision_id,
            "drawdown_id": self.drawdown_id,
            "line_id": self.line_id,
            "outcome": self.outcome.value,
            "reasons": [
                {"code": c, "category": reason(c).category.value, "text": reason(c).customer_text(self.language)}
                for c in self.reasons
            ],
            "next_steps": zh if self.language is Language.ZH else en,
            "loan_id": self.loan_id,
            "case_id": self.case_id,
            "policy_version": self.policy_version,
            "created_at": audit.timestamp_text(self.created_at),
            "replayed": self.replayed,
        }


@dataclass(frozen=True)
class DrawdownRule:
    """One drawdown rule of a policy version, compiled once: what it says and the features it reads."""

    id: str
    action: str
    reason: str
    when: str
    description: str | None
    names: frozenset[str]
    test: Any


_RULES: dict[str, tuple[DrawdownRule, ...]] = {}


def drawdown_rules(policy: CompiledPolicy) -> tuple[DrawdownRule, ...]:
    """The drawdown rules of a policy version, compiled (cached per policy content, like the policy itself)."""
    key = policy.content_hash
    found = _RULES.get(key)
    if found is None:
        found = tuple(
            DrawdownRule(
                r.id,
                r.action,
                r.reason,
                r.when,
                r.description,
                frozenset(ex.references(ex.parse(r.when))),
                compile_row(ex.parse(r.when)),
            )
            for r in policy.spec.lines.drawdowns.rules
        )
        _RULES[key] = found
    return found


def run_rules(
    rules: tuple[DrawdownRule, ...], features: dict[str, Any], policy: CompiledPolicy
) -> tuple[Outcome, tuple[str, ...], list[DrawdownRule]]:
    """The one place a drawdown's outcome comes from its features: a decline rule that fires declines, any other
    rule that fires holds it for a person, none approves. Used to decide and to replay."""
    row = normalize_row(features, policy.features)
    hits = [rule for rule in rules if rule.test(row) is True]
    if any(rule.action == "decline" for rule in hits):
        outcome = Outcome.DECLINE
    elif hits:
        outcome = Outcome.REVIEW
    else:
        outcome = Outcome.APPROVE
    chosen = [rule.reason for rule in hits if outcome is Outcome.REVIEW or rule.action == "decline"]
    return outcome, tuple(dict.fromkeys(chosen)), hits


class DrawdownDesk:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def decide(self, line_id: str, body: Any, actor: str = "python") -> DrawdownDecision:
        engine = self.engine
        with engine.db.connect() as conn:  # an unknown line is a 404 whatever the body says
            if conn.execute(sa.select(credit_lines.c.id).where(credit_lines.c.id == line_id)).first() is None:
                raise not_found("line", line_id, "line_id")
        try:
            req = body if isinstance(body, DrawdownIn) else DrawdownIn.model_validate(body)
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        engine = self.engine
        policy = engine.policy()
        spec = policy.spec.lines.drawdowns
        if req.term not in spec.terms:
            offered = ", ".join(str(t) for t in spec.terms)
            raise FengkongError("term_not_offered", f"term {req.term} is not offered (offered: {offered})", "term", 422)
        if req.method not in spec.methods:
            raise FengkongError("invalid_value", f"repayment method {req.method} is not offered", "method", 422)
        if req.amount < spec.min_amount:
            raise FengkongError("invalid_value", f"the smallest drawdown is {spec.min_amount:,.2f}", "amount", 422)
        payee_key = engine.vault.keyed_hash("payee", sha256_hex(normalize("payee", req.destination_account)))
        device_key = (
            engine.vault.keyed_hash("device", sha256_hex(normalize("device", req.device_id))) if req.device_id else None
        )
        inputs = {
            "line_id": line_id,
            "amount": req.amount,
            "term": req.term,
            "method": req.method,
            "destination_account_key": payee_key,
            "device_id_key": device_key,
            "call_in_progress": req.call_in_progress,
            "language": req.language,
        }
        request_hash = audit.content_hash({"drawdown": inputs})
        if req.drawdown_id is not None:
            stored = self._existing(req.drawdown_id, request_hash)
            if stored is not None:
                return stored
        with engine.db.connect() as conn:
            line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == line_id)).one_or_none()
        if line is None:
            raise not_found("line", line_id, "line_id")
        if line.status != "active":
            raise FengkongError("line_not_active", f"the line is {line.status}: no new drawdowns", "line_id", 409)
        available = max(float(line.limit_amount) - float(line.outstanding), 0.0)
        if req.amount > available:
            raise FengkongError(
                "insufficient_available",
                f"amount {req.amount:.2f} is above the available {available:.2f} on the line",
                "amount",
                409,
            )
        now = engine.loans.clock()  # the wall clock, unless a simulation or a test moved it
        customer = line.customer_id
        keys = {"customer": customer, "payee": payee_key, "customer_payee": f"{customer}|{payee_key}"}
        if device_key:
            keys["device"] = device_key
        features: dict[str, Any] = engine.online.features(keys, now.timestamp())
        features.update(engine._list_features(customer, keys, now))
        opened = line.opened_at.date()
        features.update(
            {
                "drawdown_amount": req.amount,
                "drawdown_share_of_available": req.amount / available if available else None,
                "drawdown_new_payee": not features.get("pair_transfers_90d"),
                "drawdown_call_in_progress": req.call_in_progress,
                "drawdown_new_device": device_key is not None and not self._device_seen(customer, device_key),
                "drawdown_line_months_on_book": float(
                    max((now.year - opened.year) * 12 + now.month - opened.month - (now.day < opened.day), 0)
                ),
            }
        )
        rules = drawdown_rules(policy)
        for name in set().union(*(rule.names for rule in rules)):
            features.setdefault(name, None)  # stored as missing, so that a replay knows the rule saw nothing
        outcome, reasons, fired = run_rules(rules, features, policy)
        decision_id = new_id("dec")
        record: dict[str, Any] = {
            "id": decision_id,
            "kind": "drawdown",
            "application_id": req.drawdown_id,
            "customer_id": customer,
            "created_at": now,
            "outcome": outcome.value,
            "limit_amount": req.amount,
            "apr": line.apr,
            "score": None,
            "reasons": list(reasons),
            "rule_hits": [rule.id for rule in fired],
            "inputs": inputs,
            "features": {k: v for k, v in features.items() if v is None or isinstance(v, bool | int | float | str)},
            "policy_version": policy.version,
            "model_version": policy.model_version,
            "identity_encrypted": None,
            "request_hash": request_hash,
            "assignment": "champion",
            "shadow_of": None,
        }
        from fengkong.service import decision_content_hash

        record["content_hash"] = decision_content_hash(record)
        loan_id = None
        payload = {"amount": req.amount, "line_id": line_id, "payee_key": payee_key, "decision_id": decision_id}
        if device_key:
            payload["device_id_key"] = device_key
        try:
            with engine.db.begin() as conn:
                conn.execute(sa.insert(decisions), record)
                audit.append(conn, "decision", decision_id, actor, record["content_hash"], now)
                if outcome is Outcome.APPROVE:
                    loan_id = _book(
                        engine, conn, customer, line, req.amount, req.term, req.method, decision_id, payload, now, actor
                    )
        except sa.exc.IntegrityError:
            if req.drawdown_id is not None:
                stored = self._existing(req.drawdown_id, request_hash)
                if stored is not None:
                    return stored
            raise
        if outcome is Outcome.APPROVE:
            engine.online.observe(
                observation("drawdown", decision_id, now, keys_from_payload(customer, payload), payload)
            )
        case_id = None
        if outcome is Outcome.REVIEW:
            case_id = engine.cases.open(
                "held_drawdown",
                customer,
                decision_id=decision_id,
                line_id=line_id,
                evidence={"rule_hits": record["rule_hits"], "amount": req.amount},
                source=f"held_drawdown:drawdown:{decision_id}",
                actor=actor,
            )["case_id"]
        return DrawdownDecision(
            decision_id,
            req.drawdown_id,
            line_id,
            outcome,
            reasons,
            loan_id,
            case_id,
            policy.version,
            now,
            Language(req.language),
        )

    def _device_seen(self, customer: str, device_key: str) -> bool:
        """Whether any stored event of the customer (application, login, device binding, payment, drawdown...)
        came from this device."""
        with self.engine.db.connect() as conn:
            found = conn.execute(
                sa.select(events.c.event_id)
                .where(
                    (events.c.customer_id == customer) & (events.c.payload["device_id_key"].as_string() == device_key)
                )
                .limit(1)
            ).first()
        return found is not None

    def _existing(self, drawdown_id: str, request_hash: str) -> DrawdownDecision | None:
        with self.engine.db.connect() as conn:
            row = conn.execute(sa.select(decisions).where(decisions.c.application_id == drawdown_id)).one_or_none()
        if row is None:
            return None
        if row.kind != "drawdown" or row.request_hash != request_hash:
            raise FengkongError("conflict", "drawdown_id was already used for a different request", "drawdown_id", 409)
        case_id = None
        if row.outcome == "review":
            case_id = self.engine.cases.open(
                "held_drawdown",
                row.customer_id,
                decision_id=row.id,
                line_id=row.inputs["line_id"],
                source=f"held_drawdown:drawdown:{row.id}",
                actor="replay",
            )["case_id"]
        loan_id = None
        if row.outcome == "approve":
            loan_id = f"loan-{row.id}"
        return DrawdownDecision(
            row.id,
            drawdown_id,
            row.inputs["line_id"],
            Outcome(row.outcome),
            tuple(row.reasons),
            loan_id,
            case_id,
            row.policy_version,
            row.created_at,
            Language(row.inputs.get("language", "zh")),
            replayed=True,
        )


# ------------------------------------------------------------------------------------------ paying out


def _book(
    engine: Engine,
    conn: sa.Connection,
    customer: str,
    line: Any,
    amount: float,
    term: int,
    method: str,
    decision_id: str,
    payload: dict[str, Any],
    now: dt.datetime,
    actor: str,
    event_id: str | None = None,
) -> str:
    """The one pay-out path, in the caller's transaction: take the amount from the line (refused unless the line
    is active and has it available, atomically), book the loan, record the drawdown event."""
    engine.lines.on_drawdown(conn, line.id, amount, now)
    loan_id: str = engine.loans.open_loan_in(
        conn,
        customer,
        f"{amount:.2f}",
        f"{line.apr:.6f}" if line.apr is not None else "0",
        term,
        method,
        line_id=line.id,
        loan_id=f"loan-{decision_id}",
        actor=actor,
    )
    conn.execute(
        sa.insert(events).values(
            event_id=event_id or decision_id,
            type="drawdown",
            customer_id=customer,
            occurred_at=now,
            received_at=now,
            payload=payload,
        )
    )
    return loan_id


@dataclass(frozen=True)
class Paid:
    """A drawdown paid out on a person's decision inside a transaction; ``observe`` once that has committed, so
    that velocity counts it (a rolled-back payment is never counted)."""

    decision_id: str
    loan_id: str
    customer_id: str
    payload: dict[str, Any] | None  # None: it had been paid out already, nothing new happened
    at: dt.datetime

    def observe(self, engine: Engine) -> None:
        if self.payload is not None:
            keys = keys_from_payload(self.customer_id, self.payload)
            engine.online.observe(observation("drawdown", f"release-{self.decision_id}", self.at, keys, self.payload))


def paid_out(conn: sa.Connection, decision_id: str) -> bool:
    """Whether the drawdown of this decision has been paid (approved at once, or later on a person's decision)."""
    found = conn.execute(
        sa.select(events.c.event_id).where(events.c.event_id.in_([decision_id, f"release-{decision_id}"])).limit(1)
    ).first()
    return found is not None


def person_decision(conn: sa.Connection, decision_id: str) -> Any:
    """The newest decision a person made in place of this one (a held drawdown declined, an appeal upheld)."""
    return conn.execute(
        sa.select(decisions)
        .where((decisions.c.kind == "override") & (decisions.c.inputs["override_of"].as_string() == decision_id))
        .order_by(decisions.c.created_at.desc(), decisions.c.id.desc())
        .limit(1)
    ).first()


def check_payable(engine: Engine, row: Any, field: str = "decision_id") -> None:
    """Refuse, before a person's decision to pay a drawdown is written, what the payment would refuse: a decision
    that is not an unpaid drawdown, a line no longer active, an amount no longer available. Nothing is changed;
    the payment checks the line again, atomically, when the money moves."""
    if row.kind != "drawdown":
        raise FengkongError("invalid_value", f"decision {row.id} is not a drawdown decision", field, 409)
    with engine.db.connect() as conn:
        if paid_out(conn, row.id):
            raise FengkongError(
                "drawdown_paid",
                f"drawdown {row.id} was paid out already (loan loan-{row.id}): there is nothing to pay",
                field,
                409,
            )
        line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == row.inputs["line_id"])).one_or_none()
    amount = float(row.inputs["amount"])
    if line is None:
        raise not_found("line", row.inputs["line_id"], field)
    if line.status != "active":
        raise FengkongError(
            "line_not_active",
            f"drawdown {row.id} cannot be paid out now: line {line.id} is {line.status}; nothing was changed",
            field,
            409,
        )
    available = engine.lines.available(line.id)
    if amount > available:
        raise FengkongError(
            "insufficient_available",
            f"drawdown {row.id} cannot be paid out now: {amount:,.2f} is above the {available:,.2f} available on "
            f"line {line.id}; nothing was changed",
            field,
            409,
        )


def pay_in(
    engine: Engine, conn: sa.Connection, row: Any, actor: str, now: dt.datetime, field: str = "decision_id"
) -> Paid:
    """Pay out, in the caller's transaction, a drawdown a person decided to pay: the person's approval (a held
    drawdown released, a declined one upheld on appeal) is written first, in the same transaction, so money never
    moves without a person's recorded decision and a decision to pay is never stored without the payment. Through
    the same pay-out as an approval; refused, with nothing changed, when the line is no longer active or the
    amount no longer available. Paid once: paying again returns the same loan."""
    if row.kind != "drawdown":
        raise FengkongError("invalid_value", f"decision {row.id} is not a drawdown decision", field, 409)
    loan_id = f"loan-{row.id}"
    if paid_out(conn, row.id):
        return Paid(row.id, loan_id, row.customer_id, None, now)
    person = person_decision(conn, row.id)
    if person is None or person.outcome != Outcome.APPROVE.value:
        if person is not None:
            why = f"was declined by a person (decision {person.id})"
        elif row.outcome == Outcome.REVIEW.value:
            why = "is held and no person has approved it yet"
        else:
            why = "was declined by the policy"
        raise FengkongError(
            "drawdown_not_approved",
            f"drawdown {row.id} {why}: it is paid out only with a person's approval, recorded when they resolve its "
            "case (a released hold or an upheld appeal)",
            field,
            409,
        )
    inputs = row.inputs
    line = conn.execute(sa.select(credit_lines).where(credit_lines.c.id == inputs["line_id"])).one_or_none()
    if line is None:
        raise not_found("line", inputs["line_id"], field)
    payload = {"amount": inputs["amount"], "line_id": line.id, "payee_key": inputs["destination_account_key"]}
    if inputs.get("device_id_key"):
        payload["device_id_key"] = inputs["device_id_key"]
    try:
        _book(
            engine,
            conn,
            row.customer_id,
            line,
            float(inputs["amount"]),
            inputs["term"],
            inputs["method"],
            row.id,
            payload,
            now,
            actor[:64],
            event_id=f"release-{row.id}",
        )
    except FengkongError as exc:
        if exc.code not in ("line_not_active", "insufficient_available"):
            raise
        message = f"drawdown {row.id} cannot be paid out now: {exc.message}; nothing was changed"
        raise FengkongError(exc.code, message, field, exc.status) from None
    audit.append(conn, "drawdown_released", row.id, actor[:64], audit.content_hash(payload), now)
    return Paid(row.id, loan_id, row.customer_id, payload, now)
