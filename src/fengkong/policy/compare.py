"""Champion, challenger and shadow side by side, from the decisions they made live (`fengkong policy compare`,
``GET /v1/policies/compare``).

The same measures as a simulation on history (:mod:`fengkong.policy.simulate`), read from the decision log
instead of re-deciding: per policy and role (champion, challenger, shadow, pinned) the approval, review and
decline rates, the expected bad rate and expected loss of the approved (the policy's calibrated PD where its
model has one, else the simulation's placeholder scaling), the limit exposure, the realised bad rate from the
loan book (approvals whose line has loans; bad once a loan on the line reached ``REALISED_BAD_DPD`` days past
due within the last 12 months), decisions by reason, rule hits, the line actions taken on the lines each group's
approvals opened, by reason, and the figures per customer segment. For a shadow policy, decided beside live
decisions on the very same applications, the outcome migration and the swap-in and swap-out sets with their
outcomes, as in a simulation.

Only application decisions count (drawdowns and human overrides are other decisions). The challenger's share
of customers is chosen by a stable hash of the customer, so its customers and the champion's are comparable
random halves of the same traffic; a shadow sees exactly the champion's (and challenger's) applications.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from fengkong.policy.simulate import (
    _OUTCOMES,
    LGD,
    Table,
    _delta_pp,
    _figure,
    _int,
    _json_float,
    _label,
    _money,
    _pct,
    _rate,
    expected_pd,
    render_html,
    render_markdown,
    svg_outcome_bars,
)
from fengkong.store.tables import credit_lines, decisions, line_actions, policies

_APPROVE, _REVIEW, _DECLINE = _OUTCOMES
#: Segment columns used when none are named: a top-level field of the request or a feature of the decision.
DEFAULT_SEGMENTS = ("product", "employment")
MAX_SEGMENT_VALUES = 100
REALISED_BAD_DPD = 90  # as the engine's live realised bad rate: 90+ days past due


@dataclass
class Group:
    """The live decisions of one policy version in one role."""

    policy_version: str
    assignment: str  # champion | challenger | shadow | pinned
    decisions: int = 0
    approved: int = 0
    reviewed: int = 0
    declined: int = 0
    pd_sum: float = 0.0  # Σ expected PD over the approved
    expected_loss: float = 0.0  # Σ PD × limit × LGD over the approved
    limit_exposure: float = 0.0  # Σ limit over the approved
    review_exposure: float = 0.0  # Σ limit offered to the reviewed
    realised_observed: int = 0  # approvals whose line has loans
    realised_bad: int = 0
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)  # reason → outcome → decisions
    rule_hits: dict[str, int] = field(default_factory=dict)
    line_actions: dict[str, dict[str, int]] = field(default_factory=dict)  # action → reason → actions

    @property
    def label(self) -> str:
        return f"{self.assignment} {self.policy_version}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy_version": self.policy_version,
            "assignment": self.assignment,
            "decisions": self.decisions,
            "approve": self.approved,
            "review": self.reviewed,
            "decline": self.declined,
            "approval_rate": _rate(self.approved, self.decisions) or 0.0,
            "review_rate": _rate(self.reviewed, self.decisions) or 0.0,
            "decline_rate": _rate(self.declined, self.decisions) or 0.0,
            "expected_bad_rate": _json_float(_rate(self.pd_sum, self.approved)),
            "realised_bad_rate": _json_float(_rate(self.realised_bad, self.realised_observed)),
            "realised_observed": self.realised_observed,
            "realised_bad": self.realised_bad,
            "expected_loss": _json_float(self.expected_loss),
            "limit_granted": _json_float(self.limit_exposure),
            "average_limit": _json_float(_rate(self.limit_exposure, self.approved)),
            "review_exposure": _json_float(self.review_exposure),
            "reasons": {r: dict(by) for r, by in sorted(self.reasons.items())},
            "rule_hits": dict(sorted(self.rule_hits.items())),
            "line_actions": {a: dict(sorted(by.items())) for a, by in sorted(self.line_actions.items())},
        }


@dataclass
class ShadowFigures:
    """A shadow policy beside the live decisions it mirrored, on the same applications."""

    policy_version: str
    pairs: int = 0
    migration: dict[str, dict[str, int]] = field(default_factory=dict)  # live outcome → shadow outcome → n
    swap_in: dict[str, Any] = field(default_factory=dict)  # the shadow approves, live did not
    swap_out: dict[str, Any] = field(default_factory=dict)  # live approved, the shadow would not

    def as_dict(self) -> dict[str, Any]:
        def swap(s: dict[str, Any]) -> dict[str, Any]:
            return {
                "rows": s["rows"],
                "limit": _json_float(s["limit"]),
                "expected_bad_rate": _json_float(_rate(s["pd"], s["rows"])),
                "realised_observed": s["observed"],
                "realised_bad": s["bad"],
                "realised_bad_rate": _json_float(_rate(s["bad"], s["observed"])),
                "other_reasons": dict(sorted(s["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))),
            }

        return {
            "policy_version": self.policy_version,
            "pairs": self.pairs,
            "migration": {a: {b: self.migration.get(a, {}).get(b, 0) for b in _OUTCOMES} for a in _OUTCOMES},
            "swap_in": swap(self.swap_in),
            "swap_out": swap(self.swap_out),
        }


@dataclass
class LiveComparison:
    """The comparison report; ``as_dict`` keeps the keys earlier versions of ``compare_policies`` returned."""

    groups: list[Group]
    shadows: list[ShadowFigures]
    segments: dict[str, list[dict[str, Any]]]  # column → [{value, groups: {label: figures}}]
    roles: dict[str, Any]  # champion, challenger (version, share), shadow
    since: dt.datetime | None
    currency: str = "CNY"

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "roles": self.roles,
            "groups": [g.as_dict() for g in self.groups],
            "shadow_pairs": sum(s.pairs for s in self.shadows),
            "shadow_swap_in": sum(s.swap_in["rows"] for s in self.shadows),
            "shadow_swap_out": sum(s.swap_out["rows"] for s in self.shadows),
            "shadows": [s.as_dict() for s in self.shadows],
            "segments": self.segments,
            "assumptions": {
                "expected_pd": "the policy model's calibrated PD where it has one, else the simulation's placeholder",
                "lgd": LGD,
                "realised_bad_rate": f"approvals whose line has loans; bad once a loan reached {REALISED_BAD_DPD}+ "
                "days past due in the last 12 months",
            },
        }

    # ------------------------------------------------------------------------------------------ report

    def _title(self) -> str:
        return "Champion, challenger and shadow: live comparison"

    def _intro(self) -> str:
        r = self.roles
        parts = [f"champion {r.get('champion') or '–'}"]
        if r.get("challenger"):
            parts.append(f"challenger {r['challenger']['version']} ({r['challenger']['share']:.0%} of customers)")
        if r.get("shadow"):
            parts.append(f"shadow {r['shadow']}")
        since = f" since {self.since.isoformat()}" if self.since else ""
        return (
            f"Live application decisions{since}; now: {', '.join(parts)}. The challenger's customers are chosen by a "
            "stable hash of the customer id; a shadow decides the same applications as the live policy."
        )

    def tables(self) -> list[Table]:
        gs, money = self.groups, self.currency
        out: list[Table] = []
        if not gs:
            return [Table("Summary", ["measure"], [["no live decisions yet"]])]

        def row(label: str, values: Iterable[str]) -> list[str]:
            return [label, *values]

        summary = [
            row("decisions", (_int(g.decisions) for g in gs)),
            row("approved", (_int(g.approved) for g in gs)),
            row("approval rate", (_pct(_rate(g.approved, g.decisions)) for g in gs)),
            row("review rate", (_pct(_rate(g.reviewed, g.decisions)) for g in gs)),
            row("decline rate", (_pct(_rate(g.declined, g.decisions)) for g in gs)),
            row("expected bad rate of approved", (_pct(_rate(g.pd_sum, g.approved)) for g in gs)),
            row(
                "realised bad rate of approved (observed)",
                (f"{_pct(_rate(g.realised_bad, g.realised_observed))} ({_int(g.realised_observed)})" for g in gs),
            ),
            row(f"expected loss ({money}, LGD {LGD:g})", (_money(g.expected_loss) for g in gs)),
            row(f"limit exposure of approved ({money})", (_money(g.limit_exposure) for g in gs)),
            row(f"average limit of approved ({money})", (_money(_rate(g.limit_exposure, g.approved)) for g in gs)),
            row(f"limit offered to reviews ({money})", (_money(g.review_exposure) for g in gs)),
        ]
        labels = [g.label for g in gs]
        out.append(Table("Summary", ["measure", *labels], summary))

        reasons = sorted({r for g in gs for r in g.reasons}, key=lambda r: (-sum(_n(g.reasons.get(r)) for g in gs), r))
        out.append(
            Table(
                "Decisions by reason",
                ["reason", *(f"{g.label} {o}" for g in gs for o in (_DECLINE, _REVIEW))],
                [
                    [r, *(_int(g.reasons.get(r, {}).get(o, 0)) for g in gs for o in (_DECLINE, _REVIEW))]
                    for r in reasons
                ],
                "Decisions whose reasons include the code (a decision counts once per reason).",
            )
        )
        hits = sorted({h for g in gs for h in g.rule_hits}, key=lambda h: (-sum(g.rule_hits.get(h, 0) for g in gs), h))
        if hits:
            out.append(
                Table(
                    "Rule hits",
                    ["rule", *labels],
                    [[h, *(_int(g.rule_hits.get(h, 0)) for g in gs)] for h in hits],
                )
            )
        pairs = sorted({(a, r) for g in gs for a, by in g.line_actions.items() for r in by})
        if pairs:
            out.append(
                Table(
                    "Line actions by reason",
                    ["action", "reason", *labels],
                    [[a, r, *(_int(g.line_actions.get(a, {}).get(r, 0)) for g in gs)] for a, r in pairs],
                    "Actions taken so far on the lines each group's approvals opened (a line counts once per reason).",
                    text_columns=2,
                )
            )
        for s in self.shadows:
            d = s.as_dict()
            out.append(
                Table(
                    f"Shadow {s.policy_version}: outcome migration on {_int(s.pairs)} live applications",
                    ["", *(f"shadow {b}" for b in _OUTCOMES)],
                    [[f"live {a}", *(_int(d["migration"][a][b]) for b in _OUTCOMES)] for a in _OUTCOMES],
                )
            )
            out.append(
                Table(
                    f"Shadow {s.policy_version}: swap sets",
                    ["set", "rows", f"limit ({money})", "expected bad rate", "realised bad rate (observed)", "why"],
                    [
                        [
                            name,
                            _int(w["rows"]),
                            _money(w["limit"]),
                            _pct(w["expected_bad_rate"]),
                            f"{_pct(w['realised_bad_rate'])} ({_int(w['realised_observed'])})",
                            ", ".join(f"{k} {v:,}" for k, v in list(w["other_reasons"].items())[:5]) or "–",
                        ]
                        for name, w in (
                            ("swap-in (shadow only)", d["swap_in"]),
                            ("swap-out (live only)", d["swap_out"]),
                        )
                    ],
                    "Swap-in: the shadow would approve, the live policy did not (why: the live reasons); swap-out: the "
                    "live policy approved, the shadow would not (why: the shadow's reasons). Realised outcomes exist "
                    "only for what was really booked: the swap-out.",
                )
            )
        for column, values in self.segments.items():
            head = [column]
            for g in gs:
                head += [
                    f"{g.label} decisions",
                    f"{g.label} approval",
                    f"{g.label} expected bad",
                    f"{g.label} realised",
                ]
            rows = []
            for v in values:
                cells = [_label(v["value"])]
                for g in gs:
                    f = v["groups"].get(g.label)
                    if f is None:
                        cells += ["0", "–", "–", "–"]
                    else:
                        cells += [
                            _int(f["decisions"]),
                            _pct(f["approval_rate"]),
                            _pct(f["expected_bad_rate"]),
                            f"{_pct(f['realised_bad_rate'])} ({_int(f['realised_observed'])})",
                        ]
                rows.append(cells)
            out.append(Table(f"Segment: {column}", head, rows))
        if len(gs) >= 2:
            base = gs[0]
            out.append(
                Table(
                    f"Change against {base.label}",
                    ["group", "approval rate", "expected bad rate", "realised bad rate"],
                    [
                        [
                            g.label,
                            _delta_pp(_rate(base.approved, base.decisions), _rate(g.approved, g.decisions)),
                            _delta_pp(_rate(base.pd_sum, base.approved), _rate(g.pd_sum, g.approved)),
                            _delta_pp(
                                _rate(base.realised_bad, base.realised_observed),
                                _rate(g.realised_bad, g.realised_observed),
                            ),
                        ]
                        for g in gs[1:]
                    ],
                )
            )
        return out

    def markdown(self) -> str:
        return render_markdown(self._title(), self._intro(), self.tables())

    def html(self) -> str:
        return render_html(self._title(), self._intro(), [_figure("Outcome mix", _svg_mix(self.groups))], self.tables())


def _n(by: dict[str, int] | None) -> int:
    return sum(by.values()) if by else 0


def _svg_mix(groups: Sequence[Group]) -> str:
    rows = [(g.label, tuple(_rate(n, g.decisions) for n in (g.approved, g.reviewed, g.declined))) for g in groups]
    return svg_outcome_bars(rows, 560, 170, 370, "approval, review and decline rates of each group")


# ---------------------------------------------------------------------------------------------- reading


def live_comparison(
    engine: Any, since: dt.datetime | None = None, segments: Sequence[str] | None = None
) -> LiveComparison:
    """Read the decision log (and the loan book) and compare every policy version in each role it played."""
    from fengkong.errors import FengkongError

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)  # a time without a zone is UTC, as every stored time
    columns = list(DEFAULT_SEGMENTS if segments is None else dict.fromkeys(segments))
    pd_of = _pd_function(engine)
    realised = _realised(engine, since)  # live decision id → 1 bad / 0 good, for approvals whose line has loans
    groups: dict[tuple[str, str], Group] = {}
    shadows: dict[str, ShadowFigures] = {}
    seg: dict[str, dict[Any, dict[str, dict[str, float]]]] = {c: {} for c in columns}
    live_by_id: dict[str, tuple[str, float | None, float, list[str]]] = {}  # id → outcome, limit, pd, reasons
    shadow_rows: list[Any] = []
    wanted = [
        decisions.c.id,
        decisions.c.kind,
        decisions.c.policy_version,
        decisions.c.assignment,
        decisions.c.outcome,
        decisions.c.limit_amount,
        decisions.c.reasons,
        decisions.c.rule_hits,
        decisions.c.score,
        decisions.c.shadow_of,
    ]
    if columns:
        wanted += [decisions.c.features, decisions.c.inputs]
    query = sa.select(*wanted).where(decisions.c.kind.in_(("application", "shadow")))
    if since is not None:
        query = query.where(decisions.c.created_at >= since)
    with engine.db.connect() as conn:
        for row in conn.execute(query.order_by(decisions.c.created_at, decisions.c.id)):
            assignment = row.assignment or ("shadow" if row.kind == "shadow" else "champion")
            g = groups.setdefault((row.policy_version, assignment), Group(row.policy_version, assignment))
            pd = pd_of(row.policy_version, row.score)
            _count(g, row.outcome, row.limit_amount, pd, row.reasons, row.rule_hits)
            if row.kind == "shadow":
                shadow_rows.append((row, pd))
            else:
                live_by_id[row.id] = (row.outcome, row.limit_amount, pd, list(row.reasons))
                if row.outcome == _APPROVE and row.id in realised:
                    g.realised_observed += 1
                    g.realised_bad += realised[row.id]
            for column in columns:
                features = row.features or {}
                value = features.get(column, (row.inputs or {}).get(column))
                by_value = seg[column].setdefault(_hashable(value), {})
                if len(seg[column]) > MAX_SEGMENT_VALUES:
                    raise FengkongError(
                        "segment_too_wide",
                        f"segment {column!r} has more than {MAX_SEGMENT_VALUES} distinct values; name a banded one",
                        "segments",
                        422,
                    )
                f = by_value.setdefault(g.label, {"decisions": 0, "approved": 0, "pd": 0.0, "observed": 0, "bad": 0})
                f["decisions"] += 1
                if row.outcome == _APPROVE:
                    f["approved"] += 1
                    f["pd"] += pd
                    if row.kind != "shadow" and row.id in realised:
                        f["observed"] += 1
                        f["bad"] += realised[row.id]
        _line_actions(conn, groups, since)
        roles = _roles(conn)

    for row, pd in shadow_rows:
        live = live_by_id.get(row.shadow_of)
        if live is None:  # its live decision is outside the window
            continue
        s = shadows.setdefault(
            row.policy_version,
            ShadowFigures(row.policy_version, swap_in=_swap(), swap_out=_swap()),
        )
        s.pairs += 1
        live_outcome, live_limit, live_pd, live_reasons = live
        s.migration.setdefault(live_outcome, {}).setdefault(row.outcome, 0)
        s.migration[live_outcome][row.outcome] += 1
        if row.outcome == _APPROVE and live_outcome != _APPROVE:
            _add_swap(s.swap_in, row.limit_amount, pd, live_reasons, None)
        elif live_outcome == _APPROVE and row.outcome != _APPROVE:
            _add_swap(s.swap_out, live_limit, live_pd, list(row.reasons), realised.get(row.shadow_of))

    ordered = sorted(groups.values(), key=lambda g: (_ROLE_ORDER.get(g.assignment, 9), g.policy_version))
    segments_out = {
        column: [
            {
                "value": value,
                "groups": {
                    label: {
                        "decisions": int(f["decisions"]),
                        "approved": int(f["approved"]),
                        "approval_rate": _rate(f["approved"], f["decisions"]),
                        "expected_bad_rate": _json_float(_rate(f["pd"], f["approved"])),
                        "realised_observed": int(f["observed"]),
                        "realised_bad_rate": _json_float(_rate(f["bad"], f["observed"])),
                    }
                    for label, f in by_label.items()
                },
            }
            for value, by_label in sorted(values.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
        ]
        for column, values in seg.items()
    }
    currency = engine.policy().spec.currency if roles.get("champion") else "CNY"
    return LiveComparison(
        ordered, sorted(shadows.values(), key=lambda s: s.policy_version), segments_out, roles, since, currency
    )


_ROLE_ORDER = {"champion": 0, "challenger": 1, "shadow": 2, "pinned": 3}


def _count(g: Group, outcome: str, limit: float | None, pd: float, reasons: Sequence[str], hits: Sequence[str]) -> None:
    g.decisions += 1
    if outcome == _APPROVE:
        g.approved += 1
        g.pd_sum += pd
        g.limit_exposure += limit or 0.0
        g.expected_loss += pd * (limit or 0.0) * LGD
    elif outcome == _REVIEW:
        g.reviewed += 1
        g.review_exposure += limit or 0.0
    else:
        g.declined += 1
    for code in reasons:
        by = g.reasons.setdefault(code, {})
        by[outcome] = by.get(outcome, 0) + 1
    for hit in hits or ():
        g.rule_hits[hit] = g.rule_hits.get(hit, 0) + 1


def _swap() -> dict[str, Any]:
    return {"rows": 0, "limit": 0.0, "pd": 0.0, "observed": 0, "bad": 0, "reasons": {}}


def _add_swap(s: dict[str, Any], limit: float | None, pd: float, reasons: Sequence[str], bad: int | None) -> None:
    s["rows"] += 1
    s["limit"] += limit or 0.0
    s["pd"] += pd
    if bad is not None:
        s["observed"] += 1
        s["bad"] += bad
    for code in reasons:
        s["reasons"][code] = s["reasons"].get(code, 0) + 1


def _hashable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def _pd_function(engine: Any) -> Any:
    """version, score → expected PD: the policy model's calibrated PD when it has one, else the placeholder."""
    cache: dict[str, Any] = {}

    def pd(version: str, score: float | None) -> float:
        if score is None:
            return 0.0
        if version not in cache:
            try:
                model = engine.policy(version).scorecard
                calibrated = getattr(getattr(model, "spec", None), "calibration", None) is not None
                cache[version] = model if calibrated else None
            except Exception:  # a version that no longer loads still gets the placeholder
                cache[version] = None
        model = cache[version]
        if model is None:
            return expected_pd(score)
        import numpy as np

        return float(model.pd(np.array([score], dtype=float))[0])

    return pd


def _realised(engine: Any, since: dt.datetime | None) -> dict[str, int]:
    """Approval decision id → 1 if a loan on the line it opened went REALISED_BAD_DPD+ days past due (in the last
    12 months), else 0; only for approvals whose line has loans."""
    loans = getattr(engine, "loans", None)
    if loans is None:
        return {}
    query = sa.select(credit_lines.c.decision_id, credit_lines.c.id).where(credit_lines.c.decision_id.is_not(None))
    if since is not None:
        query = query.join(decisions, decisions.c.id == credit_lines.c.decision_id).where(
            decisions.c.created_at >= since
        )
    with engine.db.connect() as conn:
        line_of = dict(conn.execute(query).all())
    if not line_of:
        return {}
    frame = loans.line_delinquency(dt.datetime.now(dt.UTC).date())
    worst = {
        r["line_id"]: max(r["line_days_past_due"], r["line_max_dpd_12m"])
        for r in frame.select("line_id", "line_days_past_due", "line_max_dpd_12m").to_dicts()
    }
    return {d: int(worst[line] >= REALISED_BAD_DPD) for d, line in line_of.items() if line in worst}


def _line_actions(conn: sa.Connection, groups: dict[tuple[str, str], Group], since: dt.datetime | None) -> None:
    """The actions taken on the lines each group's approvals opened (not the opening itself), by reason."""
    query = (
        sa.select(decisions.c.policy_version, decisions.c.assignment, line_actions.c.action, line_actions.c.reasons)
        .select_from(
            line_actions.join(credit_lines, credit_lines.c.id == line_actions.c.line_id).join(
                decisions, decisions.c.id == credit_lines.c.decision_id
            )
        )
        .where((decisions.c.kind == "application") & (line_actions.c.action != "open"))
    )
    if since is not None:
        query = query.where(decisions.c.created_at >= since)
    for version, assignment, action, reasons in conn.execute(query):
        g = groups.get((version, assignment or "champion"))
        if g is None:
            continue
        by = g.line_actions.setdefault(action, {})
        for code in reasons or ["(none)"]:
            by[code] = by.get(code, 0) + 1


def _roles(conn: sa.Connection) -> dict[str, Any]:
    rows = conn.execute(sa.select(policies.c.version, policies.c.active, policies.c.role, policies.c.share)).all()
    out: dict[str, Any] = {"champion": None, "challenger": None, "shadow": None}
    for r in rows:
        if r.active:
            out["champion"] = r.version
        elif r.role == "challenger":
            out["challenger"] = {"version": r.version, "share": r.share}
        elif r.role == "shadow":
            out["shadow"] = r.version
    return out
