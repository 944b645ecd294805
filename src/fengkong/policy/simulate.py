"""Policy simulation on history: re-decide past applications under a candidate and the current policy and
report the difference side by side, before the candidate goes live.

``simulate(candidate, current, applications)`` takes a table of historical applications (one row each, holding
the feature columns the policies read, plus an optional realised-outcome column) and decides every row under
both policies with the columnar evaluator (``CompiledPolicy.decide_frame``), chunk by chunk so memory stays
flat and a progress callback can report. Each chunk is reduced to small sums at once; only the swap rows (the
applications whose approval changes) are kept as rows. The figures:

- rows, approval, review and decline rates, per policy;
- expected bad rate of the approved: the mean expected probability of default (PD) from each row's score under
  that policy (see :func:`expected_pd`);
- realised bad rate of the approved: went bad / matured, over approved rows whose outcome has matured (outcome
  1 or 0; null means not matured or never booked), with the count matured;
- expected loss: Σ PD × limit over the approved, with a loss given default of 1 (the whole limit is lost);
- limit exposure: Σ limit over the approved (and, apart, over the referred to review);
- the outcome migration matrix (current outcome × candidate outcome);
- swap-in (approved by the candidate, not by the current policy) and swap-out (the reverse) sets: their sizes,
  limits, realised bad rates and expected bad rates (from the score of the policy that approves them);
- decisions by reason (rows per reason code and outcome) and rule hits (rows per rule), per policy;
- score distributions by outcome, per policy;
- per segment value of each segment column: rows, approval rates, realised and expected bad rates, per policy.

``SimulationReport`` renders as a JSON-safe dict, Markdown, and a self-contained HTML page with inline SVG
charts (no scripts, no external assets).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from fengkong.domain import Outcome
from fengkong.errors import FengkongError
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.outcomes import outcome_values

# ---------------------------------------------------------------------------------------------- expected PD

PD_BASE_SCORE = 600.0
"""The score at which the odds of good to bad are ``PD_BASE_ODDS``."""
PD_BASE_ODDS = 20.0
"""Good:bad odds at ``PD_BASE_SCORE`` (20:1, a PD of 1/21 ≈ 4.76%)."""
PD_PDO = 40.0
"""Points to double the odds."""
LGD = 1.0
"""Loss given default used for expected loss: the whole limit is lost."""

DEFAULT_CHUNK_ROWS = 250_000
SCORE_BIN = 10.0
MAX_SEGMENT_VALUES = 100

_APPROVE, _REVIEW, _DECLINE = Outcome.APPROVE.value, Outcome.REVIEW.value, Outcome.DECLINE.value
_OUTCOMES = (_APPROVE, _REVIEW, _DECLINE)

Progress = Callable[[int, int], None]


def expected_pd(score: float) -> float:
    """The expected probability of default for a score, on the usual scorecard scaling.

    ``odds(good:bad) = PD_BASE_ODDS × 2 ** ((score − PD_BASE_SCORE) / PD_PDO)`` and ``PD = 1 / (1 + odds)``:
    a score of 600 is odds 20:1 (PD 4.76%), every 40 points more doubles the odds (640 → 40:1, PD 2.44%;
    560 → 10:1, PD 9.09%). Strictly decreasing in the score, between 0 and 1.

    This is a placeholder mapping, not a calibration: it assumes the scorecard is scaled that way. When a
    calibrated model (issue 4: train, validate, register) provides a PD per score, that replaces it.
    """
    return 1.0 / (1.0 + PD_BASE_ODDS * math.pow(2.0, (score - PD_BASE_SCORE) / PD_PDO))


def policy_pd_expr(policy: CompiledPolicy, score_column: str) -> pl.Expr:
    """The PD of a policy's scores: its model's calibrated PD when the model carries a calibration (a trained,
    registered model), else the placeholder mapping of :func:`expected_pd`."""
    model = policy.scorecard
    if getattr(getattr(model, "spec", None), "calibration", None) is None:
        return expected_pd_expr(pl.col(score_column))
    return pl.col(score_column).map_batches(
        lambda s: pl.Series(model.pd(s.cast(pl.Float64).fill_null(float("nan")).to_numpy()), dtype=pl.Float64),
        return_dtype=pl.Float64,
    )


def expected_pd_expr(score: pl.Expr) -> pl.Expr:
    """:func:`expected_pd` as a polars expression."""
    odds = PD_BASE_ODDS * pl.lit(2.0, dtype=pl.Float64).pow((score - PD_BASE_SCORE) / PD_PDO)
    return 1.0 / (1.0 + odds)


# ---------------------------------------------------------------------------------------------- errors


class SimulationInputError(FengkongError):
    """The applications table cannot be simulated as given (missing columns, bad outcome values...)."""


def _input_error(code: str, message: str, field_name: str = "applications") -> SimulationInputError:
    return SimulationInputError(code=code, message=message, field=field_name, status=422)


# ---------------------------------------------------------------------------------------------- report types


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class PolicyFigures:
    """What one policy does to the whole table."""

    name: str
    version: str
    model_version: str
    content_hash: str
    rows: int
    approved: int
    reviewed: int
    declined: int
    approved_pd_sum: float  # Σ expected PD over the approved
    matured: int  # approved rows whose outcome has matured
    bad: int  # of those, went bad
    expected_loss: float  # Σ PD × limit × LGD over the approved
    limit_exposure: float  # Σ limit over the approved
    review_exposure: float  # Σ limit offered to the rows referred to review
    reasons: dict[str, dict[str, int]]  # reason code → outcome → rows
    rule_hits: dict[str, int]  # rule id → rows on which it fired
    score_histogram: dict[float, dict[str, int]]  # score bin start → outcome → rows
    decline_below: float
    review_below: float

    @property
    def approval_rate(self) -> float | None:
        return _rate(self.approved, self.rows)

    @property
    def review_rate(self) -> float | None:
        return _rate(self.reviewed, self.rows)

    @property
    def decline_rate(self) -> float | None:
        return _rate(self.declined, self.rows)

    @property
    def expected_bad_rate(self) -> float | None:
        """Mean expected PD of the approved."""
        return _rate(self.approved_pd_sum, self.approved)

    @property
    def realised_bad_rate(self) -> float | None:
        """Went bad / matured among the approved whose outcome has matured."""
        return _rate(self.bad, self.matured)

    @property
    def average_limit(self) -> float | None:
        return _rate(self.limit_exposure, self.approved)

    def reason_rows(self, reason: str) -> int:
        return sum(self.reasons.get(reason, {}).values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "version": self.version,
            "model_version": self.model_version,
            "content_hash": self.content_hash,
            "rows": self.rows,
            "approved": self.approved,
            "reviewed": self.reviewed,
            "declined": self.declined,
            "approval_rate": _json_float(self.approval_rate),
            "review_rate": _json_float(self.review_rate),
            "decline_rate": _json_float(self.decline_rate),
            "expected_bad_rate": _json_float(self.expected_bad_rate),
            "realised_bad_rate": _json_float(self.realised_bad_rate),
            "matured": self.matured,
            "bad": self.bad,
            "expected_loss": _json_float(self.expected_loss),
            "limit_exposure": _json_float(self.limit_exposure),
            "average_limit": _json_float(self.average_limit),
            "review_exposure": _json_float(self.review_exposure),
            "cutoffs": {"decline_below": self.decline_below, "review_below": self.review_below},
            "reasons": {k: dict(v) for k, v in sorted(self.reasons.items())},
            "rule_hits": dict(sorted(self.rule_hits.items())),
            "score_histogram": [
                {"from": start, "to": start + SCORE_BIN, **{o: counts.get(o, 0) for o in _OUTCOMES}}
                for start, counts in sorted(self.score_histogram.items())
            ],
        }


@dataclass(frozen=True, slots=True)
class SwapSet:
    """Applications whose approval changes: ``in`` approved by the candidate only, ``out`` by the current only."""

    direction: str  # "in" or "out"
    rows: int
    limit: float  # Σ limit the approving policy grants them
    pd_sum: float  # Σ expected PD from the score of the approving policy
    matured: int
    bad: int
    # why the other policy does not approve them: its outcome → rows, and its reason codes → rows
    other_outcomes: dict[str, int] = field(default_factory=dict)
    other_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def expected_bad_rate(self) -> float | None:
        return _rate(self.pd_sum, self.rows)

    @property
    def realised_bad_rate(self) -> float | None:
        return _rate(self.bad, self.matured)

    def as_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "rows": self.rows,
            "limit": _json_float(self.limit),
            "expected_bad_rate": _json_float(self.expected_bad_rate),
            "realised_bad_rate": _json_float(self.realised_bad_rate),
            "matured": self.matured,
            "bad": self.bad,
            "other_policy": "current" if self.direction == "in" else "candidate",
            "other_outcomes": dict(self.other_outcomes),
            "other_reasons": dict(sorted(self.other_reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


@dataclass(frozen=True, slots=True)
class SegmentFigures:
    """One value of one segment column, under both policies."""

    column: str
    value: Any
    rows: int
    approved_current: int
    approved_candidate: int
    matured_current: int
    bad_current: int
    matured_candidate: int
    bad_candidate: int
    pd_sum_current: float
    pd_sum_candidate: float
    exposure_current: float = 0.0  # Σ limit over the approved
    exposure_candidate: float = 0.0
    expected_loss_current: float = 0.0  # Σ PD × limit × LGD over the approved
    expected_loss_candidate: float = 0.0
    swap_in: int = 0  # approved by the candidate only
    swap_out: int = 0  # approved by the current policy only

    @property
    def approval_rate_current(self) -> float | None:
        return _rate(self.approved_current, self.rows)

    @property
    def approval_rate_candidate(self) -> float | None:
        return _rate(self.approved_candidate, self.rows)

    @property
    def realised_bad_rate_current(self) -> float | None:
        return _rate(self.bad_current, self.matured_current)

    @property
    def realised_bad_rate_candidate(self) -> float | None:
        return _rate(self.bad_candidate, self.matured_candidate)

    @property
    def expected_bad_rate_current(self) -> float | None:
        return _rate(self.pd_sum_current, self.approved_current)

    @property
    def expected_bad_rate_candidate(self) -> float | None:
        return _rate(self.pd_sum_candidate, self.approved_candidate)

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": _json_value(self.value),
            "rows": self.rows,
            "current": {
                "approved": self.approved_current,
                "approval_rate": _json_float(self.approval_rate_current),
                "expected_bad_rate": _json_float(self.expected_bad_rate_current),
                "realised_bad_rate": _json_float(self.realised_bad_rate_current),
                "matured": self.matured_current,
                "bad": self.bad_current,
                "limit_exposure": _json_float(self.exposure_current),
                "expected_loss": _json_float(self.expected_loss_current),
            },
            "candidate": {
                "approved": self.approved_candidate,
                "approval_rate": _json_float(self.approval_rate_candidate),
                "expected_bad_rate": _json_float(self.expected_bad_rate_candidate),
                "realised_bad_rate": _json_float(self.realised_bad_rate_candidate),
                "matured": self.matured_candidate,
                "bad": self.bad_candidate,
                "limit_exposure": _json_float(self.exposure_candidate),
                "expected_loss": _json_float(self.expected_loss_candidate),
            },
            "swap_in": self.swap_in,
            "swap_out": self.swap_out,
        }


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """The candidate beside the current policy on the same historical applications."""

    rows: int
    current: PolicyFigures
    candidate: PolicyFigures
    swap_in: SwapSet
    swap_out: SwapSet
    migration: dict[str, dict[str, int]]  # current outcome → candidate outcome → rows
    segments: dict[str, list[SegmentFigures]]  # segment column → one entry per value
    outcome_column: str | None  # None: the table had no realised outcomes
    outcomes_known: int  # rows with a matured outcome, whatever the decision
    outcomes_bad: int
    chunks: int
    seconds: float
    currency: str = "CNY"
    swaps: pl.DataFrame | None = field(default=None, compare=False)
    """The swap rows themselves (``row`` is the 0-based row in the table), when kept."""
    lines: dict[str, Any] | None = None
    """Line review re-run under both policies over a table of live lines (``fengkong.lines.compare``), if given."""

    def as_dict(self) -> dict[str, Any]:
        """Everything but the swap rows, as JSON-safe values (no NaN or infinity; rates are null on 0 rows)."""
        return {
            "rows": self.rows,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "currency": self.currency,
            "outcome_column": self.outcome_column,
            "outcomes_known": self.outcomes_known,
            "outcomes_bad": self.outcomes_bad,
            "current": self.current.as_dict(),
            "candidate": self.candidate.as_dict(),
            "swap_in": self.swap_in.as_dict(),
            "swap_out": self.swap_out.as_dict(),
            "migration": {k: dict(v) for k, v in self.migration.items()},
            "segments": {col: [s.as_dict() for s in values] for col, values in self.segments.items()},
            "assumptions": {
                "expected_pd": (
                    "the calibrated PD of the policy's model where it carries a calibration (a trained, registered "
                    f"model); otherwise PD = 1 / (1 + {PD_BASE_ODDS:g} * 2 ** ((score - {PD_BASE_SCORE:g}) / "
                    f"{PD_PDO:g})), a placeholder for judgemental scorecards"
                ),
                "lgd": LGD,
                "exposure": "the limit of approved applications (reviews apart)",
                "realised_bad_rate": "bad / matured among approved rows with a realised outcome (1 or 0)",
            },
            **({"lines": self.lines} if self.lines is not None else {}),
        }

    # ------------------------------------------------------------------------------------------ tables

    def tables(self) -> list[Table]:
        """The report's tables, shared by :meth:`markdown` and :meth:`html`."""
        cur, cand = self.current, self.candidate
        money = self.currency
        out: list[Table] = []

        def row(label: str, a: Any, b: Any, fmt: Callable[[Any], str], delta: Callable[[Any, Any], str]) -> list[str]:
            return [label, fmt(a), fmt(b), delta(a, b)]

        matured_note = "" if self.outcome_column else " (no outcome column)"
        summary = [
            row("applications", cur.rows, cand.rows, _int, _delta_int),
            row("approved", cur.approved, cand.approved, _int, _delta_int),
            row("approval rate", cur.approval_rate, cand.approval_rate, _pct, _delta_pp),
            row("review rate", cur.review_rate, cand.review_rate, _pct, _delta_pp),
            row("decline rate", cur.decline_rate, cand.decline_rate, _pct, _delta_pp),
            row("expected bad rate of approved", cur.expected_bad_rate, cand.expected_bad_rate, _pct, _delta_pp),
            row(
                "realised bad rate of approved" + matured_note,
                cur.realised_bad_rate,
                cand.realised_bad_rate,
                _pct,
                _delta_pp,
            ),
            row("approved with a matured outcome", cur.matured, cand.matured, _int, _delta_int),
            row(f"expected loss ({money}, LGD {LGD:g})", cur.expected_loss, cand.expected_loss, _money, _delta_money),
            row(f"limit exposure of approved ({money})", cur.limit_exposure, cand.limit_exposure, _money, _delta_money),
            row(f"average limit of approved ({money})", cur.average_limit, cand.average_limit, _money, _delta_money),
            row(f"limit offered to reviews ({money})", cur.review_exposure, cand.review_exposure, _money, _delta_money),
        ]
        out.append(
            Table(
                "Summary",
                ["measure", f"current {cur.version}", f"candidate {cand.version}", "change"],
                summary,
                "Expected bad rate: mean expected PD from the score (placeholder scaling: 600 ↔ 20:1 odds, 40 points "
                f"double the odds). Realised: over approved rows whose outcome has matured "
                f"({_int(self.outcomes_known)} rows in the table have one).",
            )
        )
        mig_rows = [
            [f"current {a}", *(_int(self.migration.get(a, {}).get(b, 0)) for b in _OUTCOMES)] for a in _OUTCOMES
        ]
        out.append(Table("Outcome migration", ["", *(f"candidate {b}" for b in _OUTCOMES)], mig_rows))
        swap_rows = [
            [
                name,
                _int(s.rows),
                _pct(_rate(s.rows, self.rows)),
                _money(s.limit),
                _pct(s.expected_bad_rate),
                _pct(s.realised_bad_rate),
                _int(s.matured),
            ]
            for name, s in (("swap-in (candidate only)", self.swap_in), ("swap-out (current only)", self.swap_out))
        ]
        out.append(
            Table(
                "Swap sets",
                ["set", "rows", "share", f"limit ({money})", "expected bad rate", "realised bad rate", "matured"],
                swap_rows,
                "Swap-in: approved by the candidate and not by the current policy; swap-out: the reverse. Limits "
                "and expected bad rates are those of the policy that approves them.",
            )
        )
        swap_why = sorted(
            set(self.swap_in.other_reasons) | set(self.swap_out.other_reasons),
            key=lambda r: (-(self.swap_in.other_reasons.get(r, 0) + self.swap_out.other_reasons.get(r, 0)), r),
        )
        if swap_why or self.swap_in.rows or self.swap_out.rows:
            why_rows = [
                [
                    "(outcome)",
                    ", ".join(f"{o} {_int(n)}" for o, n in sorted(self.swap_out.other_outcomes.items())) or "–",
                    ", ".join(f"{o} {_int(n)}" for o, n in sorted(self.swap_in.other_outcomes.items())) or "–",
                ]
            ]
            why_rows += [
                [r, _int(self.swap_out.other_reasons.get(r, 0)), _int(self.swap_in.other_reasons.get(r, 0))]
                for r in swap_why
            ]
            out.append(
                Table(
                    "Why the swapped applications are not approved",
                    ["reason", "swap-out: candidate's reasons", "swap-in: current's reasons"],
                    why_rows,
                    "The outcome and reasons of the policy that does not approve them (a row counts once per reason).",
                )
            )
        reasons = sorted(
            set(cur.reasons) | set(cand.reasons),
            key=lambda r: (-(cur.reason_rows(r) + cand.reason_rows(r)), r),
        )
        out.append(
            Table(
                "Decisions by reason",
                [
                    "reason",
                    "current decline",
                    "current review",
                    "candidate decline",
                    "candidate review",
                    "change (rows)",
                ],
                [
                    [
                        r,
                        _int(cur.reasons.get(r, {}).get(_DECLINE, 0)),
                        _int(cur.reasons.get(r, {}).get(_REVIEW, 0)),
                        _int(cand.reasons.get(r, {}).get(_DECLINE, 0)),
                        _int(cand.reasons.get(r, {}).get(_REVIEW, 0)),
                        _delta_int(cur.reason_rows(r), cand.reason_rows(r)),
                    ]
                    for r in reasons
                ],
                "Rows whose decision carries the reason (a row counts once per reason it carries).",
            )
        )
        rules = sorted(
            set(cur.rule_hits) | set(cand.rule_hits),
            key=lambda r: (-(cur.rule_hits.get(r, 0) + cand.rule_hits.get(r, 0)), r),
        )
        out.append(
            Table(
                "Rule hits",
                ["rule", "current", "candidate", "change"],
                [
                    [
                        r,
                        _int(cur.rule_hits.get(r, 0)) if r in cur.rule_hits else "–",
                        _int(cand.rule_hits.get(r, 0)) if r in cand.rule_hits else "–",
                        _delta_int(cur.rule_hits.get(r, 0), cand.rule_hits.get(r, 0)),
                    ]
                    for r in rules
                ],
                "Rows on which each hard rule fired, whatever the final outcome (– : no such rule or never fired).",
            )
        )
        for column, values in self.segments.items():
            out.append(
                Table(
                    f"Segment: {column}",
                    [
                        column,
                        "rows",
                        "approval current",
                        "approval candidate",
                        "change",
                        "expected bad current",
                        "expected bad candidate",
                        "realised bad current",
                        "realised bad candidate",
                        f"exposure current ({money})",
                        f"exposure candidate ({money})",
                        "swap-in",
                        "swap-out",
                    ],
                    [
                        [
                            _label(s.value),
                            _int(s.rows),
                            _pct(s.approval_rate_current),
                            _pct(s.approval_rate_candidate),
                            _delta_pp(s.approval_rate_current, s.approval_rate_candidate),
                            _pct(s.expected_bad_rate_current),
                            _pct(s.expected_bad_rate_candidate),
                            _pct(s.realised_bad_rate_current) + f" ({_int(s.matured_current)})",
                            _pct(s.realised_bad_rate_candidate) + f" ({_int(s.matured_candidate)})",
                            _money(s.exposure_current),
                            _money(s.exposure_candidate),
                            _int(s.swap_in),
                            _int(s.swap_out),
                        ]
                        for s in values
                    ],
                    "Bad rates and exposure are of each policy's approved rows; realised rates show (matured rows).",
                )
            )
        if self.lines is not None:
            out += _line_tables(self.lines, money)
        return out

    def _title(self) -> str:
        cur, cand = self.current, self.candidate
        return f"Policy simulation: {cand.name} {cand.version} (candidate) against {cur.name} {cur.version} (current)"

    def _intro(self) -> str:
        return (
            f"{_int(self.rows)} historical applications re-decided under both policies with the columnar evaluator "
            f"in {self.chunks} chunk(s), {self.seconds:.1f} s."
        )

    def markdown(self) -> str:
        return render_markdown(self._title(), self._intro(), self.tables())

    def html(self) -> str:
        """A self-contained page: the same tables and inline SVG charts, no scripts, no external assets."""
        charts = [
            _figure("Outcome mix", _svg_outcome_mix(self)),
            _figure(
                f"Score distribution, current {self.current.version}",
                _svg_histogram(self.current),
            ),
            _figure(
                f"Score distribution, candidate {self.candidate.version}",
                _svg_histogram(self.candidate),
            ),
        ]
        charts += [
            _figure(f"Approval rate by {column}", _svg_segment_bars(values))
            for column, values in self.segments.items()
            if values
        ]
        if self.lines is not None:
            charts.append(_figure("Line review actions", _svg_line_actions(self.lines)))
        return render_html(self._title(), self._intro(), charts, self.tables())


def render_markdown(title: str, intro: str, tables: Sequence[Table]) -> str:
    """A report as Markdown: a title, an introduction and the tables, each with its note."""
    lines = [f"# {title}", "", intro, ""]
    for t in tables:
        lines += [f"## {t.title}", ""]
        lines.append("| " + " | ".join(_md_cell(h) for h in t.headers) + " |")
        lines.append("| " + " | ".join("---" if i < t.text_columns else "---:" for i in range(len(t.headers))) + " |")
        lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
        if t.note:
            lines += ["", t.note]
        lines.append("")
    return "\n".join(lines)


def render_html(title: str, intro: str, charts: Sequence[str], tables: Sequence[Table]) -> str:
    """A report as one self-contained HTML page: inline SVG charts and the tables; no scripts, no external assets."""
    body = [f"<h1>{_e(title)}</h1>", f"<p>{_e(intro)}</p>", '<div class="charts">', *charts, "</div>"]
    for t in tables:
        body.append(f"<h2>{_e(t.title)}</h2>")
        body.append("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in t.headers) + "</tr></thead>")
        body.append(
            "<tbody>"
            + "".join(
                "<tr>"
                + "".join(
                    f'<td style="text-align:left">{_e(c)}</td>' if 0 < i < t.text_columns else f"<td>{_e(c)}</td>"
                    for i, c in enumerate(r)
                )
                + "</tr>"
                for r in t.rows
            )
            + "</tbody></table>"
        )
        if t.note:
            body.append(f'<p class="note">{_e(t.note)}</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    text_columns: int = 1  # leading columns of text (left-aligned); the rest are figures


_LINE_ACTIONS = ("increase", "keep", "decrease", "freeze", "unfreeze", "close", "skip")


def _line_tables(lines: dict[str, Any], money: str) -> list[Table]:
    """The line review of both policies side by side: actions, exposure, over-restriction, actions by reason."""
    cur, cand = lines["current"], lines["candidate"]
    head = ["measure", f"current {cur['policy_version']}", f"candidate {cand['policy_version']}", "change"]
    rows = []
    for a in _LINE_ACTIONS:
        n_cur, n_cand = cur["actions"].get(a, 0), cand["actions"].get(a, 0)
        if n_cur or n_cand:
            rows.append([f"lines {a}", _int(n_cur), _int(n_cand), _delta_int(n_cur, n_cand)])
    for key, label in (("limit_before", "limit exposure before"), ("limit_after", "limit exposure after")):
        a, b = cur["exposure"][key], cand["exposure"][key]
        rows.append([f"{label} ({money})", _money(a), _money(b), _delta_money(a, b)])
    a, b = cur["first_time"]["lines"], cand["first_time"]["lines"]
    rows.append(["restricted for the first time", _int(a), _int(b), _delta_int(a, b)])
    if "outcomes" in cur and "outcomes" in cand:
        for key, label in (
            ("restricted_bad", "restricted, went bad"),
            ("restricted_good", "restricted, later performed well"),
        ):
            a, b = cur["outcomes"][key], cand["outcomes"][key]
            rows.append([label, _int(a), _int(b), _delta_int(a, b)])
        for key, label in (
            ("bad_caught_share", "share of bad lines restricted"),
            ("good_hurt_share", "share of good lines restricted"),
        ):
            a, b = cur["outcomes"][key], cand["outcomes"][key]
            rows.append([label, _pct(a), _pct(b), _delta_pp(a, b)])
    tables = [
        Table(
            f"Line review as of {lines['as_of']}",
            head,
            rows,
            f"{_int(cur['lines'])} live lines reviewed under both policies; "
            f"{_int(lines['lines_with_a_different_action'])} would get a different action.",
        )
    ]
    pairs = sorted(
        {(a, r) for side in (cur, cand) for a, by in side["reasons"].items() for r in by},
        key=lambda ar: (_LINE_ACTIONS.index(ar[0]) if ar[0] in _LINE_ACTIONS else 99, ar[1]),
    )
    tables.append(
        Table(
            "Line actions by reason",
            ["action", "reason", "current", "candidate", "change"],
            [
                [
                    a,
                    r,
                    _int(cur["reasons"].get(a, {}).get(r, 0)),
                    _int(cand["reasons"].get(a, {}).get(r, 0)),
                    _delta_int(cur["reasons"].get(a, {}).get(r, 0), cand["reasons"].get(a, {}).get(r, 0)),
                ]
                for a, r in pairs
            ],
            "Lines whose proposed action carries the reason (a line counts once per reason it carries).",
            text_columns=2,
        )
    )
    if lines["moves"]:
        tables.append(
            Table(
                "Line action changes",
                ["current action", "candidate action", "lines"],
                [[m["from"], m["to"], _int(m["lines"])] for m in lines["moves"]],
                text_columns=2,
            )
        )
    return tables


# ---------------------------------------------------------------------------------------------- simulate


def simulate(
    candidate: CompiledPolicy,
    current: CompiledPolicy,
    applications: pl.DataFrame | pl.LazyFrame,
    *,
    outcome_column: str | None = "bad",
    segment_columns: Sequence[str] = (),
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep_swaps: bool = True,
    max_segment_values: int = MAX_SEGMENT_VALUES,
    on_progress: Progress | None = None,
    lines: pl.DataFrame | pl.LazyFrame | None = None,
    as_of: dt.date | None = None,
) -> SimulationReport:
    """Re-decide every historical application under ``candidate`` and ``current`` and compare them.

    ``applications`` holds the feature columns both policies read (a column either policy reads and the table
    lacks is an error naming it; other columns are ignored), optionally ``outcome_column`` (1 went bad, 0 good,
    null not matured or never booked; booleans and NaN are read as 1/0 and null; a table without that column
    simply has no realised figures), the ``segment_columns`` to break the figures down by (each with at most
    ``max_segment_values`` distinct values: bin a continuous column first) and, with ``keep_swaps``, an
    ``id_column`` to carry into the swap rows.

    The table is decided ``chunk_rows`` rows at a time; ``on_progress(rows_done, rows_total)`` is called after
    each chunk. Every figure is a count or a sum, so the answer does not depend on the chunk size (sums of
    floats up to rounding in the last place). A ``LazyFrame`` is counted once and then collected one slice per
    chunk, which suits a scan of a file (``pl.scan_parquet``: only the needed columns and row groups are read);
    a lazy query with joins or sorts is re-run per chunk, so collect such a query first.

    ``report.swaps`` (unless ``keep_swaps`` is false) holds the swap rows: ``swap`` ("in" or "out"), ``row``
    (0-based position in the table), the id column, both policies' outcome, limit, score, reasons and expected
    PD, and the realised outcome ``bad``.

    ``lines``, a table of live lines (the columns of ``fengkong.lines.strategy.LINE_COLUMNS`` and the behaviour
    features both line strategies read, optionally a 0/1 ``bad`` or ``bad_next_12m`` outcome), re-runs the line
    review under both policies as of ``as_of`` (default today) and puts it in ``report.lines``: actions, actions
    by reason, exposure before and after, first-time restrictions and over-restriction.

    Raises :class:`SimulationInputError` (a ``FengkongError`` with a stable ``code`` and ``field``) when a
    column is missing, the outcome column holds anything but 1, 0 and null, or a segment column is too wide;
    every table is checked before any work starts.
    """
    started = time.perf_counter()
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    lf = applications.lazy()
    schema = lf.collect_schema()
    _check_columns(schema, candidate, current, outcome_column, segment_columns, id_column)
    if lines is not None:
        _check_line_columns(lines, candidate, current)
    has_outcome = outcome_column is not None and outcome_column in schema
    segs = list(dict.fromkeys(segment_columns))
    needed = sorted(
        set(candidate.inputs)
        | set(current.inputs)
        | set(segs)
        | ({outcome_column} if has_outcome and outcome_column else set())
        | ({id_column} if id_column else set())
    )
    lf = lf.select(needed)
    if segs:
        distinct = lf.select(pl.col(c).n_unique() for c in segs).collect().row(0)
        wide = [f"{c} ({n:,} values)" for c, n in zip(segs, distinct, strict=True) if n > max_segment_values]
        if wide:
            raise _input_error(
                "simulation_segment_too_wide",
                f"segment column(s) with more than {max_segment_values} distinct values: {', '.join(wide)}; "
                "bin them into bands first",
                "segment_columns",
            )
    total = applications.height if isinstance(applications, pl.DataFrame) else int(lf.select(pl.len()).collect()[0, 0])

    acc = _Accumulator(segs, policy_pd_expr(current, "s_k"), policy_pd_expr(candidate, "s_c"))
    chunks = 0
    for offset, chunk in _chunks(applications, lf, total, chunk_rows):
        bad = _outcome_series(chunk, outcome_column if has_outcome else None)
        cur_out, cand_out = pl.collect_all([current.decide_lazy(chunk.lazy()), candidate.decide_lazy(chunk.lazy())])
        acc.add(offset, chunk, cur_out, cand_out, bad, id_column if keep_swaps else None, keep_swaps)
        chunks += 1
        if on_progress is not None:
            on_progress(min(offset + chunk.height, total), total)

    line_comparison = None
    if lines is not None:
        from fengkong.lines.compare import compare_line_strategies

        table = lines.collect() if isinstance(lines, pl.LazyFrame) else lines
        line_comparison = compare_line_strategies(candidate, current, table, as_of or dt.date.today())
    report = acc.report(
        current,
        candidate,
        total,
        outcome_column if has_outcome else None,
        chunks,
        time.perf_counter() - started,
        keep_swaps,
    )
    return report if line_comparison is None else replace(report, lines=line_comparison)


def _check_line_columns(lines: pl.DataFrame | pl.LazyFrame, candidate: CompiledPolicy, current: CompiledPolicy) -> None:
    from fengkong.lines.strategy import DERIVED, LINE_COLUMNS, line_strategy

    schema = lines.lazy().collect_schema()
    missing: dict[str, list[str]] = {}
    for label, policy in (("current", current), ("candidate", candidate)):
        for name in (*LINE_COLUMNS, *(n for n in line_strategy(policy).inputs if n not in DERIVED)):
            if name not in schema:
                missing.setdefault(name, []).append(f"{label} {policy.version}")
    if missing:
        detail = "; ".join(f"{name} (read by {', '.join(who)})" for name, who in missing.items())
        raise _input_error(
            "simulation_missing_line_columns",
            f"the lines table lacks {len(missing)} column(s) the line review reads: {detail}",
            "lines",
        )
    from fengkong.lines.compare import OUTCOME_COLUMNS, outcomes_of

    outcome = next((c for c in OUTCOME_COLUMNS if c in schema), None)
    if outcome is not None:  # a bad outcome value is refused before any work starts, not after the applications
        outcomes_of(lines.lazy().select("line_id", outcome).collect())


def _check_columns(
    schema: pl.Schema,
    candidate: CompiledPolicy,
    current: CompiledPolicy,
    outcome_column: str | None,
    segment_columns: Sequence[str],
    id_column: str | None,
) -> None:
    missing: dict[str, list[str]] = {}
    for label, policy in (("current", current), ("candidate", candidate)):
        for name in policy.inputs:
            if name not in schema:
                missing.setdefault(name, []).append(f"{label} {policy.version}")
    if missing:
        detail = "; ".join(f"{name} (read by {', '.join(who)})" for name, who in sorted(missing.items()))
        raise _input_error(
            "simulation_missing_features",
            f"the applications table lacks {len(missing)} feature column(s) the policies read: {detail}",
        )
    absent = [c for c in segment_columns if c not in schema]
    if absent:
        raise _input_error(
            "simulation_missing_segments",
            f"the applications table has no segment column(s): {', '.join(absent)}",
            "segment_columns",
        )
    if id_column is not None and id_column in _SWAP_COLUMNS:
        raise _input_error(
            "simulation_bad_id",
            f"id column {id_column!r} clashes with a column of the swap rows; rename it",
            "id_column",
        )
    if id_column is not None and id_column not in schema:
        raise _input_error(
            "simulation_missing_id", f"the applications table has no id column {id_column!r}", "id_column"
        )
    if outcome_column is not None and outcome_column in schema:
        dtype = schema[outcome_column]
        if not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null):
            raise _input_error(
                "simulation_bad_outcome",
                f"outcome column {outcome_column!r} is {dtype}; it must hold 1 (went bad), 0 (good) or null "
                "(not matured)",
                "outcome_column",
            )


def _chunks(
    applications: pl.DataFrame | pl.LazyFrame, lf: pl.LazyFrame, total: int, size: int
) -> Iterator[tuple[int, pl.DataFrame]]:
    eager = applications.select(lf.collect_schema().names()) if isinstance(applications, pl.DataFrame) else None
    for offset in range(0, total, size):
        if eager is not None:
            yield offset, eager.slice(offset, size)
        else:
            yield offset, lf.slice(offset, size).collect()


def _outcome_series(chunk: pl.DataFrame, column: str | None) -> pl.Series:
    if column is None:
        return pl.Series("bad", [None] * chunk.height, dtype=pl.Int8)
    values, problem = outcome_values(chunk.get_column(column))
    if problem is not None:
        raise _input_error(
            "simulation_bad_outcome",
            f"outcome column {column!r} must hold 1 (went bad), 0 (good) or null (not matured); {problem}",
            "outcome_column",
        )
    return values.cast(pl.Int8).alias("bad")


# ---------------------------------------------------------------------------------------------- accumulation

_SWAP_COLUMNS = frozenset(
    (
        "swap",
        "row",
        "current_outcome",
        "candidate_outcome",
        "current_limit",
        "candidate_limit",
        "current_score",
        "candidate_score",
        "current_reasons",
        "candidate_reasons",
        "current_pd",
        "candidate_pd",
        "bad",
        "ap_k",
        "ap_c",
    )
)
_CELL_SUMS = ("n", "matured", "bad", "pd_k", "pd_c", "lim_k", "lim_c", "el_k", "el_c")
_SEG_SUMS = (
    "n",
    "ap_k",
    "ap_c",
    "mat_k",
    "bad_k",
    "mat_c",
    "bad_c",
    "pd_k",
    "pd_c",
    "lim_k",
    "lim_c",
    "el_k",
    "el_c",
    "in",
    "out",
)


def _add(into: dict[Any, list[float]], key: Any, values: Iterable[Any]) -> None:
    vals = [0 if v is None else v for v in values]
    have = into.get(key)
    if have is None:
        into[key] = list(vals)
    else:
        for i, v in enumerate(vals):
            have[i] += v


class _Accumulator:
    """Small running sums from each chunk: nothing grows with the table but the swap rows (when kept)."""

    def __init__(self, segments: Sequence[str], pd_current: pl.Expr, pd_candidate: pl.Expr) -> None:
        self.segments = list(segments)
        self.pd_current, self.pd_candidate = pd_current, pd_candidate
        self.cells: dict[tuple[str, str], list[float]] = {}
        self.reasons: tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]] = ({}, {})
        self.hits: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self.hist: tuple[dict[tuple[float, str], int], dict[tuple[float, str], int]] = ({}, {})
        self.segs: dict[str, dict[Any, list[float]]] = {c: {} for c in self.segments}
        self.known = 0
        self.known_bad = 0
        self.swaps: list[pl.DataFrame] = []
        # swap direction → the other policy's outcome → rows, and its reason codes → rows
        self.swap_outcomes: dict[str, dict[str, int]] = {"in": {}, "out": {}}
        self.swap_reasons: dict[str, dict[str, int]] = {"in": {}, "out": {}}

    def add(
        self,
        offset: int,
        chunk: pl.DataFrame,
        cur: pl.DataFrame,
        cand: pl.DataFrame,
        bad: pl.Series,
        id_column: str | None,
        keep_swaps: bool,
    ) -> None:
        w = pl.DataFrame(
            [
                cur["outcome"].alias("o_k"),
                cand["outcome"].alias("o_c"),
                cur["limit"].alias("l_k"),
                cand["limit"].alias("l_c"),
                cur["score"].alias("s_k"),
                cand["score"].alias("s_c"),
                bad,
                *(chunk.get_column(c).alias(f"__seg{i}") for i, c in enumerate(self.segments)),
            ]
        ).with_columns(
            self.pd_current.alias("pd_k"),
            self.pd_candidate.alias("pd_c"),
            (pl.col("o_k") == _APPROVE).alias("ap_k"),
            (pl.col("o_c") == _APPROVE).alias("ap_c"),
        )
        self.known += int(bad.is_not_null().sum())
        self.known_bad += int(bad.cast(pl.Int64).sum())

        cells = w.group_by("o_k", "o_c").agg(
            pl.len().alias("n"),
            pl.col("bad").is_not_null().sum().alias("matured"),
            pl.col("bad").cast(pl.Int64).sum().alias("bad"),
            pl.col("pd_k").sum(),
            pl.col("pd_c").sum(),
            pl.col("l_k").sum().alias("lim_k"),
            pl.col("l_c").sum().alias("lim_c"),
            (pl.col("pd_k") * pl.col("l_k") * LGD).sum().alias("el_k"),
            (pl.col("pd_c") * pl.col("l_c") * LGD).sum().alias("el_c"),
        )
        for r in cells.iter_rows(named=True):
            _add(self.cells, (r["o_k"], r["o_c"]), (r[k] for k in _CELL_SUMS))

        for i, out in enumerate((cur, cand)):
            reasons = (
                out.select("outcome", "reasons")
                .explode("reasons")
                .drop_nulls("reasons")
                .group_by("reasons", "outcome")
                .len()
            )
            for reason, outcome, n in reasons.iter_rows():
                self.reasons[i][(reason, outcome)] = self.reasons[i].get((reason, outcome), 0) + n
            hits = out.select(pl.col("rule_hits").explode().drop_nulls()).group_by("rule_hits").len()
            for rule, n in hits.iter_rows():
                self.hits[i][rule] = self.hits[i].get(rule, 0) + n
            hist = (
                out.select((pl.col("score") / SCORE_BIN).floor() * SCORE_BIN, "outcome")
                .group_by("score", "outcome")
                .len()
            )
            for start, outcome, n in hist.iter_rows():
                if start is not None and math.isfinite(start):
                    key = (float(start), outcome)
                    self.hist[i][key] = self.hist[i].get(key, 0) + n

        for i, column in enumerate(self.segments):
            matured = pl.col("bad").is_not_null()
            seg = w.group_by(f"__seg{i}").agg(
                pl.len().alias("n"),
                pl.col("ap_k").sum(),
                pl.col("ap_c").sum(),
                (pl.col("ap_k") & matured).sum().alias("mat_k"),
                pl.col("bad").filter(pl.col("ap_k")).cast(pl.Int64).sum().alias("bad_k"),
                (pl.col("ap_c") & matured).sum().alias("mat_c"),
                pl.col("bad").filter(pl.col("ap_c")).cast(pl.Int64).sum().alias("bad_c"),
                pl.col("pd_k").filter(pl.col("ap_k")).sum(),
                pl.col("pd_c").filter(pl.col("ap_c")).sum(),
                pl.col("l_k").filter(pl.col("ap_k")).sum().alias("lim_k"),
                pl.col("l_c").filter(pl.col("ap_c")).sum().alias("lim_c"),
                (pl.col("pd_k") * pl.col("l_k") * LGD).filter(pl.col("ap_k")).sum().alias("el_k"),
                (pl.col("pd_c") * pl.col("l_c") * LGD).filter(pl.col("ap_c")).sum().alias("el_c"),
                (pl.col("ap_c") & ~pl.col("ap_k")).sum().alias("in"),
                (pl.col("ap_k") & ~pl.col("ap_c")).sum().alias("out"),
            )
            for r in seg.iter_rows(named=True):
                _add(self.segs[column], r[f"__seg{i}"], (r[k] for k in _SEG_SUMS))

        for direction, other, mask in (("in", cur, w["ap_c"] & ~w["ap_k"]), ("out", cand, w["ap_k"] & ~w["ap_c"])):
            if not mask.any():
                continue
            picked = other.filter(mask)
            for outcome, n in picked.group_by("outcome").len().iter_rows():
                self.swap_outcomes[direction][outcome] = self.swap_outcomes[direction].get(outcome, 0) + n
            why = picked.select(pl.col("reasons").explode().drop_nulls()).group_by("reasons").len()
            for code, n in why.iter_rows():
                self.swap_reasons[direction][code] = self.swap_reasons[direction].get(code, 0) + n

        if keep_swaps:
            moved = pl.col("ap_k") != pl.col("ap_c")
            extra = [chunk.get_column(id_column)] if id_column else []
            detail = pl.DataFrame(
                [
                    pl.int_range(offset, offset + chunk.height, dtype=pl.Int64, eager=True).alias("row"),
                    *extra,
                    w["o_k"].alias("current_outcome"),
                    w["o_c"].alias("candidate_outcome"),
                    w["l_k"].alias("current_limit"),
                    w["l_c"].alias("candidate_limit"),
                    w["s_k"].alias("current_score"),
                    w["s_c"].alias("candidate_score"),
                    cur["reasons"].alias("current_reasons"),
                    cand["reasons"].alias("candidate_reasons"),
                    w["pd_k"].alias("current_pd"),
                    w["pd_c"].alias("candidate_pd"),
                    w["bad"],
                    w["ap_k"],
                    w["ap_c"],
                ]
            )
            detail = detail.filter(moved).with_columns(
                pl.when(pl.col("ap_c")).then(pl.lit("in")).otherwise(pl.lit("out")).alias("swap")
            )
            self.swaps.append(detail.drop("ap_k", "ap_c").select("swap", pl.exclude("swap")))

    def report(
        self,
        current: CompiledPolicy,
        candidate: CompiledPolicy,
        total: int,
        outcome_column: str | None,
        chunks: int,
        seconds: float,
        keep_swaps: bool,
    ) -> SimulationReport:
        cells = {k: dict(zip(_CELL_SUMS, v, strict=True)) for k, v in self.cells.items()}

        def figures(i: int, policy: CompiledPolicy) -> PolicyFigures:
            tag = "k" if i == 0 else "c"

            def total_of(what: str, outcome: str) -> float:
                return sum(v[what] for (ok, oc), v in cells.items() if (ok if i == 0 else oc) == outcome)

            reasons: dict[str, dict[str, int]] = {}
            for (reason, outcome), n in sorted(self.reasons[i].items()):
                reasons.setdefault(reason, {})[outcome] = n
            hist: dict[float, dict[str, int]] = {}
            for (start, outcome), n in sorted(self.hist[i].items()):
                hist.setdefault(start, {})[outcome] = n
            spec = policy.spec
            return PolicyFigures(
                name=policy.name,
                version=policy.version,
                model_version=policy.model_version,
                content_hash=policy.content_hash,
                rows=total,
                approved=int(total_of("n", _APPROVE)),
                reviewed=int(total_of("n", _REVIEW)),
                declined=int(total_of("n", _DECLINE)),
                approved_pd_sum=float(total_of(f"pd_{tag}", _APPROVE)),
                matured=int(total_of("matured", _APPROVE)),
                bad=int(total_of("bad", _APPROVE)),
                expected_loss=float(total_of(f"el_{tag}", _APPROVE)),
                limit_exposure=float(total_of(f"lim_{tag}", _APPROVE)),
                review_exposure=float(total_of(f"lim_{tag}", _REVIEW)),
                reasons=reasons,
                rule_hits=dict(sorted(self.hits[i].items())),
                score_histogram=hist,
                decline_below=spec.score.decline_below,
                review_below=spec.score.review_below,
            )

        def swap(direction: str) -> SwapSet:
            into = direction == "in"
            approving, other = (1, 0) if into else (0, 1)
            picked = [v for key, v in cells.items() if key[approving] == _APPROVE and key[other] != _APPROVE]
            tag = "c" if into else "k"
            return SwapSet(
                direction=direction,
                rows=int(sum(v["n"] for v in picked)),
                limit=float(sum(v[f"lim_{tag}"] for v in picked)),
                pd_sum=float(sum(v[f"pd_{tag}"] for v in picked)),
                matured=int(sum(v["matured"] for v in picked)),
                bad=int(sum(v["bad"] for v in picked)),
                other_outcomes=dict(sorted(self.swap_outcomes[direction].items())),
                other_reasons=dict(sorted(self.swap_reasons[direction].items())),
            )

        migration = {a: {b: int(cells.get((a, b), {}).get("n", 0)) for b in _OUTCOMES} for a in _OUTCOMES}
        segments = {
            column: [
                _segment(column, value, dict(zip(_SEG_SUMS, sums, strict=True)))
                for value, sums in sorted(values.items(), key=lambda kv: _sort_key(kv[0]))
            ]
            for column, values in self.segs.items()
        }
        swaps: pl.DataFrame | None = None
        if keep_swaps:
            swaps = pl.concat(self.swaps) if self.swaps else None
        return SimulationReport(
            rows=total,
            current=figures(0, current),
            candidate=figures(1, candidate),
            swap_in=swap("in"),
            swap_out=swap("out"),
            migration=migration,
            segments=segments,
            outcome_column=outcome_column,
            outcomes_known=self.known,
            outcomes_bad=self.known_bad,
            chunks=chunks,
            seconds=seconds,
            currency=candidate.spec.currency,
            swaps=swaps,
        )


def _segment(column: str, value: Any, sums: dict[str, float]) -> SegmentFigures:
    return SegmentFigures(
        column=column,
        value=value,
        rows=int(sums["n"]),
        approved_current=int(sums["ap_k"]),
        approved_candidate=int(sums["ap_c"]),
        matured_current=int(sums["mat_k"]),
        bad_current=int(sums["bad_k"]),
        matured_candidate=int(sums["mat_c"]),
        bad_candidate=int(sums["bad_c"]),
        pd_sum_current=float(sums["pd_k"]),
        pd_sum_candidate=float(sums["pd_c"]),
        exposure_current=float(sums["lim_k"]),
        exposure_candidate=float(sums["lim_c"]),
        expected_loss_current=float(sums["el_k"]),
        expected_loss_candidate=float(sums["el_c"]),
        swap_in=int(sums["in"]),
        swap_out=int(sums["out"]),
    )


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, int | float | bool):
        return (0, value)
    return (1, str(value))


# ---------------------------------------------------------------------------------------------- formatting


def _json_float(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _json_float(value)
    return str(value)


def _label(value: Any) -> str:
    return "(missing)" if value is None else str(value)


def _int(n: Any) -> str:
    return "–" if n is None else f"{int(n):,}"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.2f}%"


def _money(x: Any) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:,.0f}"


def _delta_int(a: Any, b: Any) -> str:
    return "–" if a is None or b is None else f"{int(b) - int(a):+,}"


def _delta_pp(a: Any, b: Any) -> str:
    return "–" if a is None or b is None else f"{100 * (b - a):+.2f} pp"


def _delta_money(a: Any, b: Any) -> str:
    return "–" if a is None or b is None or not math.isfinite(b - a) else f"{b - a:+,.0f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


# ---------------------------------------------------------------------------------------------- SVG charts

_COLOURS = {_APPROVE: "#2e7d32", _REVIEW: "#f9a825", _DECLINE: "#c62828"}
_CURRENT_COLOUR, _CANDIDATE_COLOUR = "#546e7a", "#ef6c00"
_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;"
    "padding:0 1em}table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.25em .6em;"
    "text-align:right}th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}"
    ".note{color:#555;font-size:.9em}.charts{display:flex;flex-wrap:wrap;gap:1.5em}"
    "figure{margin:0}figcaption{font-weight:600;margin-bottom:.3em}svg text{font-size:11px;fill:#333}"
)


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{_e(caption)}</figcaption>{svg}</figure>"


def _svg(width: int, height: int, parts: list[str], label: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(label)}">' + "".join(parts) + "</svg>"
    )


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    parts = []
    for k, (name, colour) in enumerate(items):
        dx = x + k * 95
        parts.append(f'<rect x="{dx:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{dx + 14:.1f}" y="{y:.1f}">{_e(name)}</text>')
    return parts


def _svg_outcome_mix(report: SimulationReport) -> str:
    rows = [
        (label, (fig.approval_rate, fig.review_rate, fig.decline_rate))
        for label, fig in (("current", report.current), ("candidate", report.candidate))
    ]
    return svg_outcome_bars(rows, 520, 90, 400, "approval, review and decline rates of both policies")


def svg_outcome_bars(
    rows: Sequence[tuple[str, Sequence[float | None]]], width: int, left: int, bar_w: int, label: str
) -> str:
    """One stacked bar per row: its approval, review and decline rates (the simulation's and the live
    comparison's outcome mix)."""
    height = 40 + 40 * max(len(rows), 1)
    parts = _legend(left, 14, [(o, _COLOURS[o]) for o in _OUTCOMES])
    for k, (name, rates) in enumerate(rows):
        y = 30 + k * 40
        parts.append(f'<text x="4" y="{y + 17}">{_e(name[:26])}</text>')
        x = float(left)
        for outcome, rate in zip(_OUTCOMES, rates, strict=True):
            w = bar_w * (rate or 0.0)
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="26" fill="{_COLOURS[outcome]}">'
                f"<title>{_e(f'{name} {outcome}: {_pct(rate)}')}</title></rect>"
            )
            if w > 38:
                parts.append(f'<text x="{x + 4:.1f}" y="{y + 17}" style="fill:#fff">{_pct(rate)}</text>')
            x += w
    return _svg(width, height, parts, label)


def _svg_histogram(fig: PolicyFigures) -> str:
    width, height, left, bottom, top = 520, 240, 50, 30, 24
    plot_w, plot_h = width - left - 24, height - bottom - top
    hist = fig.score_histogram
    if not hist:
        return _svg(width, height, [f'<text x="{left}" y="{height / 2}">no rows</text>'], "score distribution")
    starts = sorted(hist)
    step = SCORE_BIN
    while (starts[-1] - starts[0]) / step + 1 > 60:  # at most 60 bars: merge neighbouring bins
        step *= 2
    lo = math.floor(starts[0] / step) * step
    bins: dict[float, dict[str, int]] = {}
    for s in starts:
        b = lo + math.floor((s - lo) / step) * step
        for o, n in hist[s].items():
            bins.setdefault(b, {}).setdefault(o, 0)
            bins[b][o] += n
    hi = max(bins) + step
    peak = max(sum(v.values()) for v in bins.values()) or 1

    def x_of(score: float) -> float:
        return left + plot_w * (score - lo) / (hi - lo)

    parts = _legend(left, 14, [(o, _COLOURS[o]) for o in _OUTCOMES])
    bar_w = max(plot_w * step / (hi - lo) - 1, 1)
    for b, counts in sorted(bins.items()):
        y = float(top + plot_h)
        for o in _OUTCOMES:
            n = counts.get(o, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect x="{x_of(b):.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{_COLOURS[o]}">'
                f"<title>{_e(f'score {b:g}–{b + step:g}, {o}: {n:,}')}</title></rect>"
            )
    axis_y = top + plot_h
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="#666"/>')
    for s in range(int(lo), int(hi) + 1, int(step * max(1, round((hi - lo) / step / 8)))):
        parts.append(f'<text x="{x_of(s):.1f}" y="{axis_y + 14}" text-anchor="middle">{s}</text>')
    parts.append(f'<text x="4" y="{top + 8}">{peak:,}</text>')
    for cut, name in ((fig.decline_below, "decline below"), (fig.review_below, "review below")):
        if lo <= cut <= hi:
            parts.append(
                f'<line x1="{x_of(cut):.1f}" y1="{top}" x2="{x_of(cut):.1f}" y2="{axis_y}" stroke="#000" '
                f'stroke-dasharray="4 3"><title>{_e(f"{name} {cut:g}")}</title></line>'
            )
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 2}" text-anchor="middle">score</text>')
    return _svg(width, height, parts, f"score distribution by outcome, {fig.version}")


def _svg_segment_bars(values: Sequence[SegmentFigures]) -> str:
    rows = [
        (
            _label(s.value),
            (s.approval_rate_current, _pct(s.approval_rate_current)),
            (s.approval_rate_candidate, _pct(s.approval_rate_candidate)),
        )
        for s in list(values)[:30]
    ]
    return _svg_pairs(rows, 130, 70, "approval rate by segment, current and candidate")


def _svg_line_actions(lines: dict[str, Any]) -> str:
    """Lines per proposed action, current beside candidate."""
    cur, cand = lines["current"]["actions"], lines["candidate"]["actions"]
    shown = [a for a in _LINE_ACTIONS if cur.get(a, 0) or cand.get(a, 0)]
    peak = max([cur.get(a, 0) for a in shown] + [cand.get(a, 0) for a in shown] + [1])
    rows = [
        (a, (cur.get(a, 0) / peak, f"{cur.get(a, 0):,}"), (cand.get(a, 0) / peak, f"{cand.get(a, 0):,}")) for a in shown
    ]
    return _svg_pairs(rows, 90, 80, "line review actions, current and candidate")


def _svg_pairs(
    rows: Sequence[tuple[str, tuple[float | None, str], tuple[float | None, str]]], left: int, right: int, label: str
) -> str:
    """Two bars per row, current above candidate: (name, (share of the bar, text) for each)."""
    row_h, bar_w, top = 34, 330, 24
    width, height = left + bar_w + right, top + row_h * len(rows) + 8
    parts = _legend(left, 14, [("current", _CURRENT_COLOUR), ("candidate", _CANDIDATE_COLOUR)])
    for k, (name, *bars) in enumerate(rows):
        y = top + k * row_h
        parts.append(f'<text x="4" y="{y + 19}">{_e(name[:20])}</text>')
        for j, ((share, text), colour) in enumerate(zip(bars, (_CURRENT_COLOUR, _CANDIDATE_COLOUR), strict=True)):
            w = bar_w * (share or 0.0)
            by = y + 2 + j * 14
            parts.append(
                f'<rect x="{left}" y="{by}" width="{w:.1f}" height="12" fill="{colour}">'
                f"<title>{_e(f'{name}: {text}')}</title></rect>"
            )
            parts.append(f'<text x="{left + w + 4:.1f}" y="{by + 10}">{text}</text>')
    return _svg(width, height, parts, label)
