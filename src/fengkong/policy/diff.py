"""What changed between two policies, rule by rule and table by table (`fengkong policy diff A B`).

Every section of a policy is compared: top-level fields, hard rules, event triggers, the score and its
cut-offs, the limit and price tables, the line strategy (segments, behaviour scorecard, guardrails), drawdowns
(terms, methods, minimum, rules) and the case queue (SLA hours, four-eyes limit).

Rules, triggers, line segments and drawdown rules are matched by id. A rule that is in both policies but whose
place in the order changed relative to the other common rules is *moved*: the order matters, because the
reasons a customer sees follow the policy order (and the first matching line segment wins). Positions are
1-based places in each policy's list.

Limit and price tables are compared by what they decide, not by row and column index: when the band edges
differ, both tables are read on the finer grid made of the edges of both, so every reported cell is a region
of (score, income) where a customer gets a different limit or APR. Score band labels follow the policy file's
convention: ``600–659`` is 600 ≤ score < 660; income bands ``5k–10k`` are 5,000 ≤ income < 10,000.

Conditions are compared by their parsed expression, so re-spacing a condition is not a change.
An empty diff (``identical``) means the two policies are equivalent; ``equivalent`` is also true when only
descriptive fields differ (policy name, version, descriptions), which never change a decision.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fengkong.policy import expressions as ex
from fengkong.policy.errors import ExpressionError
from fengkong.policy.schema import PolicySpec, RuleSpec, SegmentSpec, TriggerSpec

#: fields that describe a policy without changing any decision or action
DESCRIPTIVE_FIELDS = frozenset({"policy", "version", "description"})

Kind = Literal["section", "+", "-", "~", "detail", "note"]


# ----------------------------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class ItemEntry:
    """A rule or trigger present in only one of the two policies, as it is there."""

    id: str
    position: int
    action: str
    reason: str
    when: str
    description: str
    events: tuple[str, ...] | None = None  # triggers only
    change: float | None = None  # line segments that increase or decrease only

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "position": self.position,
            "when": self.when,
            "action": self.action,
            "reason": self.reason,
            "description": self.description,
        }
        if self.events is not None:
            out["events"] = list(self.events)
        if self.change is not None:
            out["change"] = self.change
        return out


@dataclass(frozen=True)
class ItemChange:
    """A rule or trigger in both policies whose fields differ."""

    id: str
    old_position: int
    new_position: int
    fields: tuple[FieldChange, ...]

    @property
    def material(self) -> bool:
        return any(f.field != "description" for f in self.fields)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "old_position": self.old_position,
            "new_position": self.new_position,
            "fields": [f.as_dict() for f in self.fields],
        }


@dataclass(frozen=True)
class ItemMove:
    """A rule or trigger whose order relative to the other common ones changed."""

    id: str
    old_position: int
    new_position: int
    direction: Literal["up", "down"]
    after: str | None  # the id it now follows in B, None when it is first
    passed: tuple[str, ...]  # the common ids it changed order with, in B's order

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "old_position": self.old_position,
            "new_position": self.new_position,
            "direction": self.direction,
            "after": self.after,
            "passed": list(self.passed),
        }


@dataclass(frozen=True)
class ListDiff:
    added: tuple[ItemEntry, ...] = ()
    removed: tuple[ItemEntry, ...] = ()
    changed: tuple[ItemChange, ...] = ()
    moved: tuple[ItemMove, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved)

    @property
    def material(self) -> bool:
        return bool(self.added or self.removed or self.moved or any(c.material for c in self.changed))

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": [e.as_dict() for e in self.added],
            "removed": [e.as_dict() for e in self.removed],
            "changed": [c.as_dict() for c in self.changed],
            "moved": [m.as_dict() for m in self.moved],
        }


@dataclass(frozen=True)
class Band:
    """low ≤ value < high; None for an open end."""

    label: str
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class CellChange:
    score_band: Band
    income_band: Band
    old: float
    new: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "score_band": self.score_band.as_dict(),
            "income_band": self.income_band.as_dict(),
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True)
class AprChange:
    score_band: Band
    old: float
    new: float

    def as_dict(self) -> dict[str, Any]:
        return {"score_band": self.score_band.as_dict(), "old": self.old, "new": self.new}


@dataclass(frozen=True)
class PolicyDiff:
    """The difference from policy A (old) to policy B (new)."""

    a_policy: str
    a_version: str
    b_policy: str
    b_version: str
    policy: tuple[FieldChange, ...] = ()  # top-level fields: policy, version, description, currency, max_reasons
    rules: ListDiff = field(default_factory=ListDiff)
    triggers: ListDiff = field(default_factory=ListDiff)
    score: tuple[FieldChange, ...] = ()
    limits: tuple[FieldChange, ...] = ()  # edges, income_multiple_cap, min_limit, rounding
    limit_cells: tuple[CellChange, ...] = ()
    pricing: tuple[FieldChange, ...] = ()  # score_edges, max_apr
    apr: tuple[AprChange, ...] = ()
    segments: ListDiff = field(default_factory=ListDiff)  # the line strategy's segments (first match wins)
    line_fields: tuple[FieldChange, ...] = ()  # behaviour_scorecard, guardrails.*, drawdowns.{terms,methods,min_amount}
    drawdown_rules: ListDiff = field(default_factory=ListDiff)
    cases: tuple[FieldChange, ...] = ()  # sla_hours.<case type>, four_eyes_limit

    @property
    def identical(self) -> bool:
        """Nothing differs: the two policies are equivalent."""
        return self.count == 0

    @property
    def equivalent(self) -> bool:
        """No difference that can change a decision or a line action (only names, versions, descriptions)."""
        return (
            all(c.field in DESCRIPTIVE_FIELDS for c in self.policy)
            and not any(d.material for d in (self.rules, self.triggers, self.segments, self.drawdown_rules))
            and not (self.score or self.limits or self.limit_cells or self.pricing or self.apr)
            and not (self.line_fields or self.cases)
        )

    @property
    def count(self) -> int:
        """How many differences (each added, removed, changed, moved item, field and cell counts one)."""
        lists = sum(
            len(d.added) + len(d.removed) + len(d.changed) + len(d.moved)
            for d in (self.rules, self.triggers, self.segments, self.drawdown_rules)
        )
        fields = sum(len(f) for f in (self.policy, self.score, self.limits, self.pricing, self.line_fields, self.cases))
        return lists + fields + len(self.limit_cells) + len(self.apr)

    def __bool__(self) -> bool:
        return not self.identical

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": {"policy": self.a_policy, "version": self.a_version},
            "b": {"policy": self.b_policy, "version": self.b_version},
            "identical": self.identical,
            "equivalent": self.equivalent,
            "changes": self.count,
            "policy": [c.as_dict() for c in self.policy],
            "rules": self.rules.as_dict(),
            "triggers": self.triggers.as_dict(),
            "score": [c.as_dict() for c in self.score],
            "limits": {"fields": [c.as_dict() for c in self.limits], "cells": [c.as_dict() for c in self.limit_cells]},
            "pricing": {"fields": [c.as_dict() for c in self.pricing], "apr": [c.as_dict() for c in self.apr]},
            "lines": {
                "segments": self.segments.as_dict(),
                "fields": [c.as_dict() for c in self.line_fields],
                "drawdown_rules": self.drawdown_rules.as_dict(),
            },
            "cases": [c.as_dict() for c in self.cases],
        }

    # ------------------------------------------------------------------------------------------ rendering

    def lines(self) -> list[tuple[Kind, str]]:
        """The diff as (kind, text) lines, grouped by section: what the text, Markdown and CLI views show."""
        out: list[tuple[Kind, str]] = []
        if self.identical:
            return [("note", "No differences: the two policies are equivalent.")]

        def section(title: str, body: list[tuple[Kind, str]]) -> None:
            if body:
                out.append(("section", title))
                out.extend(body)

        section("Policy", [("~", _field_line(c)) for c in self.policy])
        section(_list_title("Rules", self.rules), _list_lines(self.rules, "rule"))
        section(_list_title("Triggers", self.triggers), _list_lines(self.triggers, "trigger"))
        section("Score", [("~", _field_line(c)) for c in self.score])
        limits: list[tuple[Kind, str]] = [("~", _field_line(c)) for c in self.limits]
        limits += [
            ("~", f"limit {c.score_band.label} × {c.income_band.label}: {_amount(c.old)} → {_amount(c.new)}")
            for c in self.limit_cells
        ]
        section("Limits (score band × income band)" if self.limit_cells else "Limits", limits)
        pricing: list[tuple[Kind, str]] = [("~", _field_line(c)) for c in self.pricing]
        pricing += [("~", f"APR {c.score_band.label}: {_pct(c.old)} → {_pct(c.new)}") for c in self.apr]
        section("Pricing", pricing)
        section(_list_title("Line segments", self.segments), _list_lines(self.segments, "segment"))
        section("Lines", [("~", _field_line(c)) for c in self.line_fields])
        section(_list_title("Drawdown rules", self.drawdown_rules), _list_lines(self.drawdown_rules, "rule"))
        section("Cases", [("~", _field_line(c)) for c in self.cases])
        if self.equivalent:
            out.append(("note", "Decisions unchanged: only names, versions or descriptions differ."))
        return out

    def headline(self) -> str:
        a, b = f"{self.a_policy} {self.a_version}", f"{self.b_policy} {self.b_version}"
        if self.identical:
            return f"{a} → {b}: no differences"
        n = self.count
        return f"{a} → {b}: {n} difference{'s' if n != 1 else ''}"

    def text(self) -> str:
        """Plain text, one line per change, sections separated by a blank line."""
        rendered = [self.headline()]
        for kind, line in self.lines():
            if kind in ("section", "note"):
                rendered += ["", line]
            elif kind == "detail":
                rendered.append(f"      {line}")
            else:
                rendered.append(f"  {kind} {line}")
        return "\n".join(rendered) + "\n"

    def markdown(self) -> str:
        """Markdown for a change request or a simulation report."""
        rendered = [f"## Policy diff: {_md(self.headline())}"]
        for kind, line in self.lines():
            if kind == "section":
                rendered += ["", f"### {line}", ""]
            elif kind == "note":
                rendered += ["", f"*{_md(line)}*"]
            elif kind == "detail":
                rendered.append(f"    - {_md(line)}")
            else:
                rendered.append(f"- `{kind}` {_md(line)}")
        return "\n".join(rendered) + "\n"


# ----------------------------------------------------------------------------------------------- comparing


def diff_policies(a: PolicySpec, b: PolicySpec, *, scorecard_hashes: tuple[str, str] | None = None) -> PolicyDiff:
    """The changes from policy ``a`` to policy ``b``.

    ``scorecard_hashes``: the content hashes of the scorecards the two policies resolve to, when known (a
    compiled policy has them); a different content under the same reference is then reported too.
    """
    top = _fields(a, b, ("policy", "version", "description", "currency", "max_reasons"))
    score = list(_fields(a.score, b.score, ("scorecard", "sha256", "decline_below", "review_below", "max_reasons")))
    same_ref = a.score.scorecard == b.score.scorecard and a.score.sha256 == b.score.sha256
    if scorecard_hashes is not None and scorecard_hashes[0] != scorecard_hashes[1] and same_ref:
        score.append(FieldChange("scorecard content", scorecard_hashes[0], scorecard_hashes[1]))
    limits = _fields(
        a.limits, b.limits, ("score_edges", "income_edges", "income_multiple_cap", "min_limit", "rounding")
    )
    pricing = _fields(a.pricing, b.pricing, ("score_edges", "max_apr"))
    la, lb = a.lines, b.lines
    line_fields = (
        *_fields(la, lb, ("behaviour_scorecard",)),
        *_fields(la.guardrails, lb.guardrails, tuple(type(la.guardrails).model_fields), prefix="guardrails."),
        *_fields(la.drawdowns, lb.drawdowns, ("terms", "methods", "min_amount"), prefix="drawdowns."),
    )
    sla_a, sla_b = a.cases.sla_hours, b.cases.sla_hours
    cases = (
        *(
            FieldChange(f"sla_hours.{k}", _plain(sla_a.get(k)), _plain(sla_b.get(k)))
            for k in sorted(set(sla_a) | set(sla_b))
            if sla_a.get(k) != sla_b.get(k)
        ),
        *_fields(a.cases, b.cases, ("four_eyes_limit",)),
    )
    return PolicyDiff(
        a_policy=a.policy,
        a_version=a.version,
        b_policy=b.policy,
        b_version=b.version,
        policy=top,
        rules=_diff_items(a.rules, b.rules),
        triggers=_diff_items(a.triggers, b.triggers),
        score=tuple(score),
        limits=limits,
        limit_cells=_diff_limit_table(a, b),
        pricing=pricing,
        apr=_diff_apr(a, b),
        segments=_diff_items(la.segments, lb.segments),
        line_fields=line_fields,
        drawdown_rules=_diff_items(la.drawdowns.rules, lb.drawdowns.rules),
        cases=cases,
    )


def _fields(a: Any, b: Any, names: Sequence[str], prefix: str = "") -> tuple[FieldChange, ...]:
    out = []
    for name in names:
        old, new = getattr(a, name), getattr(b, name)
        if old != new:
            out.append(FieldChange(prefix + name, _plain(old), _plain(new)))
    return tuple(out)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


Item = RuleSpec | TriggerSpec | SegmentSpec


def _diff_items(old: Sequence[Item], new: Sequence[Item]) -> ListDiff:
    old_pos = {item.id: i for i, item in enumerate(old)}
    new_pos = {item.id: i for i, item in enumerate(new)}
    added = tuple(_entry(item, new_pos[item.id]) for item in new if item.id not in old_pos)
    removed = tuple(_entry(item, old_pos[item.id]) for item in old if item.id not in new_pos)

    changed = []
    for item in new:
        if item.id not in old_pos:
            continue
        before = old[old_pos[item.id]]
        fields = []
        for name in ("events", "when", "action", "change", "reason", "description"):
            if not hasattr(item, name):
                continue
            was, now = getattr(before, name), getattr(item, name)
            same = _same_condition(was, now) if name == "when" else was == now
            if not same:
                fields.append(FieldChange(name, _plain(was), _plain(now)))
        if fields:
            changed.append(ItemChange(item.id, old_pos[item.id] + 1, new_pos[item.id] + 1, tuple(fields)))

    # moved: the common items outside a longest common subsequence of the two orders
    common_old = [item.id for item in old if item.id in new_pos]
    common_new = [item.id for item in new if item.id in old_pos]
    kept = set(_lcs(common_old, common_new))
    rank_old = {id_: i for i, id_ in enumerate(common_old)}
    moved = []
    for rank_new, id_ in enumerate(common_new):
        if id_ in kept:
            continue
        j = new_pos[id_]
        # the common items on the other side of it now than before
        passed = tuple(
            other
            for r, other in enumerate(common_new)
            if other != id_ and (r < rank_new) != (rank_old[other] < rank_old[id_])
        )
        up = len([p for p in passed if new_pos[p] > j]) > len(passed) / 2
        moved.append(
            ItemMove(id_, old_pos[id_] + 1, j + 1, "up" if up else "down", new[j - 1].id if j > 0 else None, passed)
        )
    return ListDiff(added, removed, tuple(changed), tuple(moved))


def _entry(item: Item, index: int) -> ItemEntry:
    events = tuple(item.events) if isinstance(item, TriggerSpec) else None
    change = item.change if isinstance(item, SegmentSpec) else None
    return ItemEntry(item.id, index + 1, item.action, item.reason, item.when, item.description, events, change)


def _same_condition(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return bool(_shape(ex.parse(a)) == _shape(ex.parse(b)))
    except ExpressionError:
        return False


def _shape(node: Any) -> Any:
    """An expression tree without source positions, comparable with ==."""
    if isinstance(node, ex.Node):
        parts = (_shape(getattr(node, f.name)) for f in dataclasses.fields(node) if f.name != "pos")
        return (type(node).__name__, *parts)
    if isinstance(node, tuple | list):
        return tuple(_shape(v) for v in node)
    return node


def _lcs(a: Sequence[str], b: Sequence[str]) -> list[str]:
    """A longest common subsequence (items are distinct ids); O(len(a) × len(b)), fine for policy sizes."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    out, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            out.append(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def _grid(edges_a: Sequence[float], edges_b: Sequence[float], label: Any) -> list[tuple[Band, int, int]]:
    """The bands of the finer grid made of both policies' edges, each with its band index in A and in B."""
    union = sorted(set(edges_a) | set(edges_b))
    bounds: list[float | None] = [None, *union]
    out = []
    for k, low in enumerate(bounds):
        high = union[k] if k < len(union) else None
        # a value at the band's lower edge (or below every edge) lies in the same band as the whole band
        ia = 0 if low is None else bisect_right(edges_a, low)
        ib = 0 if low is None else bisect_right(edges_b, low)
        out.append((Band(label(low, high), low, high), ia, ib))
    return out


def _diff_limit_table(a: PolicySpec, b: PolicySpec) -> tuple[CellChange, ...]:
    la, lb = a.limits, b.limits
    out = []
    for s_band, sa, sb in _grid(la.score_edges, lb.score_edges, _score_label):
        for i_band, ia, ib in _grid(la.income_edges, lb.income_edges, _income_label):
            old, new = la.table[sa][ia], lb.table[sb][ib]
            if old != new:
                out.append(CellChange(s_band, i_band, _plain(old), _plain(new)))
    return tuple(out)


def _diff_apr(a: PolicySpec, b: PolicySpec) -> tuple[AprChange, ...]:
    pa, pb = a.pricing, b.pricing
    return tuple(
        AprChange(band, pa.apr[ia], pb.apr[ib])
        for band, ia, ib in _grid(pa.score_edges, pb.score_edges, _score_label)
        if pa.apr[ia] != pb.apr[ib]
    )


# ----------------------------------------------------------------------------------------------- labels


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,g}"


def _score_label(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "any score"
    if low is None:
        return f"<{_num(high)}" if high is not None else ""
    if high is None:
        return f"{_num(low)}+"
    if float(low).is_integer() and float(high).is_integer():
        return _num(low) if high - low == 1 else f"{_num(low)}–{_num(high - 1)}"
    return f"≥{_num(low)} <{_num(high)}"


def _short(value: float) -> str:
    """An income edge as people write it: 5k, 12.5k, 1.2M."""
    if value >= 1_000_000 and value % 100_000 == 0:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000 and value % 100 == 0:
        return f"{value / 1_000:g}k"
    return _num(value)


def _income_label(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "any income"
    if low is None:
        return f"<{_short(high)}" if high is not None else ""
    if high is None:
        return f"{_short(low)}+"
    return f"{_short(low)}–{_short(high)}"


def _amount(value: float) -> str:
    return _num(value)


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and value == "":
        return '""'
    return str(value)


_AMOUNT_FIELDS = ("min_limit", "rounding", "min_amount", "max_limit", "four_eyes_limit")


def _field_line(c: FieldChange) -> str:
    if c.field.startswith("sla_hours."):
        old = "default" if c.old is None else f"{_show(c.old)} h"
        new = "default" if c.new is None else f"{_show(c.new)} h"
        return f"{c.field}: {old} → {new}"
    if c.field in ("sha256", "scorecard content"):
        old = "none" if c.old is None else f"{str(c.old)[:12]}…"
        new = "none" if c.new is None else f"{str(c.new)[:12]}…"
        return f"{c.field}: {old} → {new}"
    if c.field == "max_apr":
        return f"max_apr: {_pct(c.old)} → {_pct(c.new)}"
    if c.field.endswith(_AMOUNT_FIELDS):
        return f"{c.field}: {_amount(c.old)} → {_amount(c.new)}"
    return f"{c.field}: {_show(c.old)} → {_show(c.new)}"


def _list_title(title: str, d: ListDiff) -> str:
    parts = [f"{len(getattr(d, k))} {k}" for k in ("added", "removed", "changed", "moved") if getattr(d, k)]
    return f"{title} ({', '.join(parts)})" if parts else title


def _list_lines(d: ListDiff, noun: str) -> list[tuple[Kind, str]]:
    out: list[tuple[Kind, str]] = []
    entries: tuple[tuple[Kind, ItemEntry], ...] = (*(("+", e) for e in d.added), *(("-", e) for e in d.removed))
    for kind, e in entries:
        where = f"#{e.position}" if kind == "+" else f"was #{e.position}"
        on = f" on {', '.join(e.events)}" if e.events is not None else ""
        action = e.action if e.change is None else f"{e.action} {e.change:.0%} of the limit"
        out.append((kind, f"{e.id} ({where}): {action}, reason {e.reason}{on}"))
        out.append(("detail", f"when {e.when}"))
    for c in d.changed:
        for f in c.fields:
            if f.field in ("when", "description", "events"):
                out.append(("~", f"{c.id}: {f.field} changed"))
                out.append(("detail", f"was: {_show(f.old)}"))
                out.append(("detail", f"now: {_show(f.new)}"))
            else:
                out.append(("~", f"{c.id}: {f.field} {_show(f.old)} → {_show(f.new)}"))
    for m in d.moved:
        after = f"now after {m.after}" if m.after else "now first"
        out.append(("~", f"{m.id}: moved {m.direction} #{m.old_position} → #{m.new_position} ({after})"))
        names = ", ".join(m.passed[:6]) + (f" and {len(m.passed) - 6} more" if len(m.passed) > 6 else "")
        if m.passed:
            what = "its reason now comes" if noun == "rule" else "it is now checked"
            out.append(("detail", f"{what} {'before' if m.direction == 'up' else 'after'} {names}"))
    return out


def _md(text: str) -> str:
    """Escape the characters Markdown would read as formatting in a line of plain text."""
    for ch in ("\\", "`", "*", "_", "[", "]", "<", ">", "|"):
        text = text.replace(ch, "\\" + ch)
    return text
