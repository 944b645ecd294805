"""What the console pages show, read from the engine and the store: plain data, no HTML (templates draw it).

Reads only; every change goes through the engine's subsystems (``engine.cases``, ``engine.lines``) so the
console changes nothing a test of the engine would not see.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from fengkong.errors import FengkongError
from fengkong.events.ingest import PROTECTED_FIELDS
from fengkong.features.graph import _DECLINED, _FRAUDISH
from fengkong.reasons import reason
from fengkong.security import Permission
from fengkong.store.tables import alerts, audit_log, decisions, events, line_actions
from fengkong.web import svg

if TYPE_CHECKING:
    from fengkong.service import Engine


@dataclass(frozen=True, slots=True)
class TimelineItem:
    at: dt.datetime
    kind: str  # application, drawdown, event, alert, line, loan, case
    title: str
    detail: str = ""
    link: str | None = None


def aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def reason_text(code: str) -> str:
    try:
        return reason(code).analyst
    except KeyError:
        return code


# ------------------------------------------------------------------------------------------ decisions


def recent_decisions(
    engine: Engine, outcome: str | None = None, customer_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Live decisions (not shadow ones), newest first."""
    query = (
        sa.select(
            decisions.c.id,
            decisions.c.kind,
            decisions.c.customer_id,
            decisions.c.created_at,
            decisions.c.outcome,
            decisions.c.limit_amount,
            decisions.c.apr,
            decisions.c.score,
            decisions.c.reasons,
            decisions.c.policy_version,
            decisions.c.assignment,
        )
        .where(decisions.c.shadow_of.is_(None))
        .order_by(decisions.c.created_at.desc())
        .limit(limit)
    )
    if outcome:
        query = query.where(decisions.c.outcome == outcome)
    if customer_id:
        query = query.where(decisions.c.customer_id == customer_id)
    with engine.db.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def replay(engine: Engine, decision_id: str) -> dict[str, Any]:
    """The decision as stored, replayed under the policy version that made it (reproduction) and under the
    active version (what the same inputs would get today): ``engine.cases.replay``, the one replay (an application
    by its policy, a drawdown by the drawdown rules of its version), laid out as rows for the page."""
    result = engine.cases.replay(decision_id)
    drawdown = result["decision_kind"] == "drawdown"
    stored = {**result["stored"], "policy_version": result["policy_version"]}
    # what must agree for a run to be "the same as stored"
    compared = ("outcome", "reasons", "rule_hits") if drawdown else ("outcome", "reasons", "limit", "apr")
    runs: list[dict[str, Any]] = []
    for role, run in (("version in force at the time", result["in_force"]), ("active now", result["compared_with"])):
        if run is None:
            continue
        version = result["policy_version"] if run is result["in_force"] else run["policy_version"]
        if not run["replayable"]:
            runs.append({"policy_version": version, "role": role, "error": f"cannot replay: {run['why']}"})
            continue
        runs.append(
            {
                **run,
                "policy_version": version,
                "role": role,
                "rules": run["rule_hits"],
                "error": None,
                "same": all(run.get(k) == stored.get(k) for k in compared),
            }
        )
    return {
        "decision_id": decision_id,
        "drawdown": drawdown,
        "human": result["kind"] == "override",
        "stored": stored,
        "runs": runs,
        "reproduced": result["reproduced"],
        "why": result["why"],
    }


# ------------------------------------------------------------------------------------------ customer


def customer_timeline(
    engine: Engine, customer_id: str, can: Callable[[Permission], bool], limit: int = 200
) -> list[TimelineItem]:
    """Applications, decisions, line actions, loans, cases, alerts and events of one customer, newest first;
    lines, loans and cases only for a user whose role may read them."""
    items: list[TimelineItem] = []
    with engine.db.connect() as conn:
        for d in conn.execute(
            sa.select(decisions)
            .where((decisions.c.customer_id == customer_id) & decisions.c.shadow_of.is_(None))
            .order_by(decisions.c.created_at.desc())
            .limit(limit)
        ):
            codes = ", ".join(d.reasons) if d.reasons else "no adverse reasons"
            amount = f", limit {d.limit_amount:,.0f}" if d.limit_amount else ""
            items.append(
                TimelineItem(
                    aware(d.created_at),
                    str(d.kind),
                    f"{d.kind} {d.outcome}{amount}",
                    f"{codes}; policy {d.policy_version}",
                    f"/console/decisions/{d.id}",
                )
            )
        for a in conn.execute(
            sa.select(alerts).where(alerts.c.customer_id == customer_id).order_by(alerts.c.created_at.desc()).limit(50)
        ):
            items.append(
                TimelineItem(
                    aware(a.created_at),
                    "alert",
                    f"alert {a.trigger_id}: {a.action}",
                    f"{a.reason} ({a.status})",
                    None,
                )
            )
        for e in conn.execute(
            sa.select(events.c.event_id, events.c.type, events.c.occurred_at, events.c.payload)
            .where((events.c.customer_id == customer_id) & (events.c.type != "application"))
            .order_by(events.c.occurred_at.desc())
            .limit(limit)
        ):
            items.append(TimelineItem(aware(e.occurred_at), "event", f"event {e.type}", _event_detail(e.payload)))
    if can(Permission.READ_LINE):
        for line in engine.lines.for_customer(customer_id):
            for h in line["history"]:
                change = (
                    f"limit {h['limit_before']:,.0f} → {h['limit_after']:,.0f}"
                    if h["limit_before"] is not None and h["limit_before"] != h["limit_after"]
                    else f"limit {h['limit_after']:,.0f}"
                )
                items.append(
                    TimelineItem(
                        _parse(h["at"]),
                        "line",
                        f"line {h['action']} ({h['from_status'] or '—'} → {h['to_status']})",
                        f"{change}; {', '.join(h['reasons']) or 'no reasons'}; by {h['actor_kind']}",
                        None,
                    )
                )
    for case in customer_cases(engine, customer_id) if can(Permission.READ_CASES) else []:
        items.append(
            TimelineItem(
                _parse(case["created_at"]),
                "case",
                f"case {case['type']} ({case['status']})",
                str(case.get("outcome") or ""),
                f"/console/cases/{case['case_id']}",
            )
        )
    if can(Permission.READ_LOAN):
        items.extend(_loan_items(engine, customer_id))
    items.sort(key=lambda i: i.at, reverse=True)
    return items


def customer_cases(engine: Engine, customer_id: str) -> list[dict[str, Any]]:
    return engine.cases.list(customer_id=customer_id, limit=100)


def customer_loans(engine: Engine, customer_id: str) -> list[dict[str, Any]]:
    try:
        return engine.loans.for_customer(customer_id)
    except FengkongError:  # not a valid customer reference for the loan book: no loans
        return []


def _loan_items(engine: Engine, customer_id: str) -> list[TimelineItem]:
    out = []
    for loan in customer_loans(engine, customer_id):
        start = dt.datetime.fromisoformat(loan["start_date"]).replace(tzinfo=dt.UTC)
        out.append(
            TimelineItem(
                start,
                "loan",
                f"loan {loan['loan_id']} ({loan['status']})",
                f"principal {loan['principal']:,.0f}, {loan['term']} × {loan['method']}; outstanding "
                f"{loan['principal_outstanding']:,.0f}; {loan['dpd']} days past due ({loan['bucket']})",
                None,
            )
        )
    return out


def _event_detail(payload: dict[str, Any]) -> str:
    """Event fields an analyst needs, never an identifier (those are keyed hashes anyway: shown as present)."""
    parts = []
    for key in ("amount", "merchant_id", "category", "success", "line_id", "loan_id"):
        if key in payload and payload[key] is not None:
            parts.append(f"{key} {payload[key]}")
    present = [name for name in PROTECTED_FIELDS if payload.get(f"{name}_key")]
    if present:
        parts.append("with " + ", ".join(present))
    return "; ".join(parts)


def _parse(text: str | dt.datetime) -> dt.datetime:
    if isinstance(text, dt.datetime):
        return aware(text)
    return aware(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def customer_identity(engine: Engine, customer_id: str, reveal: bool) -> dict[str, str]:
    """The identifiers of the customer's latest application: masked unless ``reveal``."""
    with engine.db.connect() as conn:
        decision_id = conn.execute(
            sa.select(decisions.c.id)
            .where(
                (decisions.c.customer_id == customer_id)
                & decisions.c.identity_encrypted.is_not(None)
                & decisions.c.shadow_of.is_(None)
            )
            .order_by(decisions.c.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
    if decision_id is None:
        return {}
    identity: dict[str, str] = engine.explain(decision_id, reveal_pii=reveal)["identity"]
    return identity


# ------------------------------------------------------------------------------------------ link graph


@dataclass(slots=True)
class LinkedGroup:
    nodes: list[svg.GraphNode] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    group_size: int = 0
    shown: int = 0
    linking: list[tuple[str, int]] = field(default_factory=list)  # (identifier kind, customers it links here)


_STRONG_EVENT_KINDS = {"device_id": "device", "phone": "phone", "id_number": "id_number", "bank_card": "bank_card"}


def linked_group(engine: Engine, customer_id: str, max_customers: int = 40) -> LinkedGroup:
    """The customer's linked group in the entity graph, for a picture: customers and the identifiers joining them.

    Membership and flags come from the online graph (the same one decisions read); which identifiers join whom
    comes from the stored events of the members, confirmed against the graph's own link lists (so a hub
    identifier, which joins no one, is not drawn). Identifiers are shown only by kind and a few characters of
    their keyed hash: the picture identifies no one outside the lender.
    """
    graph = engine.online.graph
    out = LinkedGroup()
    # EntityGraph keeps no public walk of a group yet; read its union-find under its lock, bounded by
    # max_customers, so a page never holds the lock for long.
    with graph._lock:
        start = graph._cindex.get(customer_id)
        if start is None:
            return out
        out.group_size = graph._size[graph._find(start)]
        seen = {start}
        queue = [start]
        while queue and len(seen) < max_customers:
            node = queue.pop(0)
            for ii, joined in graph._cids[node].items():
                members = graph._imembers[ii]
                if not joined or not members:
                    continue
                for m in members:
                    if m not in seen and len(seen) < max_customers:
                        seen.add(m)
                        queue.append(m)
        members_by_index = {graph._cname[c]: c for c in seen}
        flags = {graph._cname[c]: graph._flags[c] for c in seen}
    names = sorted(members_by_index)
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    with engine.db.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.customer_id, events.c.payload)
            .where(events.c.customer_id.in_(names))
            .order_by(events.c.occurred_at.desc())
            .limit(20_000)
        )
        for row in rows:
            for name, kind in _STRONG_EVENT_KINDS.items():
                key = row.payload.get(f"{name}_key")
                if key:
                    keys[(kind, key)].add(row.customer_id)
    with graph._lock:
        confirmed: list[tuple[str, str, list[str]]] = []
        for (kind, key), users in sorted(keys.items()):
            if len(users) < 2:
                continue
            index = graph._iindex[kind].get(key)
            members = graph._imembers[index] if index is not None else None
            if not members:
                continue
            linked = sorted(graph._cname[m] for m in members if graph._cname[m] in members_by_index)
            if len(linked) >= 2:
                confirmed.append((kind, key, linked))
    for name in names:
        bits = flags[name]
        role = (
            "self"
            if name == customer_id
            else ("fraud" if bits & _FRAUDISH else ("declined" if bits & _DECLINED else ""))
        )
        out.nodes.append(svg.GraphNode(f"c:{name}", name, "customer", role))
    kinds: Counter[str] = Counter()
    for kind, key, linked in confirmed:
        node_id = f"i:{kind}:{key}"
        out.nodes.append(svg.GraphNode(node_id, f"{kind} …{key[-4:]}", kind))
        out.edges.extend((node_id, f"c:{c}") for c in linked)
        kinds[kind] += len(linked)
    out.shown = len(names)
    out.linking = sorted(kinds.items())
    return out


# ------------------------------------------------------------------------------------------ portfolio


def _day(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.strftime("%Y-%m-%d", column)


def portfolio(engine: Engine, days: int = 30) -> dict[str, Any]:
    """Approval rate and outcomes per day, top reasons, line actions by reason, delinquency buckets."""
    since = now() - dt.timedelta(days=days)
    dialect = engine.db.dialect.name
    labels = [(since + dt.timedelta(days=i + 1)).strftime("%Y-%m-%d") for i in range(days)]
    day = _day(decisions.c.created_at, dialect)
    live = decisions.c.shadow_of.is_(None) & (decisions.c.created_at >= since)
    with engine.db.connect() as conn:
        per_day = conn.execute(
            sa.select(day.label("day"), decisions.c.outcome, sa.func.count().label("n"))
            .where(live & (decisions.c.kind == "application"))
            .group_by(day, decisions.c.outcome)
        ).all()
        reason_rows = conn.execute(_reason_counts(dialect), {"since": since}).all()
        line_rows = conn.execute(
            sa.select(line_actions.c.action, line_actions.c.reasons).where(line_actions.c.created_at >= since)
        ).all()
    outcomes = {o: [0.0] * len(labels) for o in ("approve", "review", "decline")}
    index = {label: i for i, label in enumerate(labels)}
    for row in per_day:
        i = index.get(str(row.day))
        if i is not None and row.outcome in outcomes:
            outcomes[row.outcome][i] += row.n
    totals = [sum(outcomes[o][i] for o in outcomes) for i in range(len(labels))]
    approval = [outcomes["approve"][i] / t if t else None for i, t in enumerate(totals)]
    all_decided = sum(totals)
    reasons_total: Counter[str] = Counter()
    reasons_by_day: dict[str, list[float]] = {}
    for row in reason_rows:
        reasons_total[str(row.code)] += int(row.n)
    top = [code for code, _ in reasons_total.most_common(5)]
    for code in top:
        reasons_by_day[code] = [0.0] * len(labels)
    for row in reason_rows:
        i = index.get(str(row.day))
        if i is not None and row.code in reasons_by_day:
            reasons_by_day[str(row.code)][i] += int(row.n)
    line_reasons: Counter[str] = Counter()
    for row in line_rows:
        if row.action == "open":
            continue
        for code in row.reasons or ["(no reason)"]:
            line_reasons[f"{row.action}: {code}"] += 1
    buckets = delinquency_buckets(engine)
    short = [label[5:] for label in labels]  # MM-DD on the axis
    return {
        "days": days,
        "decided": int(all_decided),
        "approved": int(sum(outcomes["approve"])),
        "approval_rate": (sum(outcomes["approve"]) / all_decided) if all_decided else None,
        "outcome_totals": {o: int(sum(v)) for o, v in outcomes.items()},
        "reasons": [(code, reasons_total[code], reason_text(code)) for code in top],
        "line_reasons": line_reasons.most_common(12),
        "buckets": buckets,
        "charts": {
            "approval": svg.line_chart(short, approval, "Approval rate per day", percent=True),
            "outcomes": svg.stacked_columns(short, outcomes, "Outcomes per day", svg.OUTCOME_COLOURS),
            "reasons": svg.stacked_columns(short, reasons_by_day, "Top reasons per day"),
            "line_actions": svg.bar_chart(line_reasons.most_common(12), "Line actions by reason", svg.PALETTE[4]),
            "delinquency": svg.bar_chart(buckets, "Loans on book by delinquency bucket", svg.PALETTE[2])
            if any(n for _, n in buckets)
            else svg.empty("Loans on book by delinquency bucket"),
        },
    }


def _reason_counts(dialect: str) -> sa.TextClause:
    """Reason codes per day, unnested in the database (JSON arrays: json_each on SQLite, json_array_elements_text
    on PostgreSQL) so a month of decisions is never pulled into Python."""
    if dialect == "postgresql":
        return sa.text(
            "SELECT to_char(timezone('UTC', d.created_at), 'YYYY-MM-DD') AS day, r.code AS code, count(*) AS n "
            "FROM decisions d, json_array_elements_text(d.reasons) AS r(code) "
            "WHERE d.shadow_of IS NULL AND d.kind = 'application' AND d.created_at >= :since GROUP BY 1, 2"
        )
    return sa.text(
        "SELECT strftime('%Y-%m-%d', d.created_at) AS day, j.value AS code, count(*) AS n "
        "FROM decisions d, json_each(d.reasons) AS j "
        "WHERE d.shadow_of IS NULL AND d.kind = 'application' AND d.created_at >= :since GROUP BY 1, 2"
    )


def delinquency_buckets(engine: Engine) -> list[tuple[str, float]]:
    """Loans on book per delinquency bucket (current, M1 ... M3+) today, from the loan book."""
    summary = engine.loans.delinquency()
    return [(str(b["bucket"]), float(b["loans"])) for b in summary["buckets"]]


# ------------------------------------------------------------------------------------------ audit


def audit_recent(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    with engine.db.connect() as conn:
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)).mappings().all()
    return [dict(r) for r in rows]
