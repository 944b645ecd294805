"""`fengkong policy diff A B`: the diff of two policy specs (rules, triggers, score, limit and price tables, line
strategy segments, guardrails, drawdowns, cases) and the command that reads A and B from files or from versions
published in the database."""

from __future__ import annotations

import copy
import itertools
import json
from bisect import bisect_right
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fengkong.cli import app
from fengkong.policy.diff import CellChange, PolicyDiff, diff_policies
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_text
from fengkong.policy.schema import PolicySpec

TEST_SECRET = "test-secret-key-0123456789abcdef-0123456789"
DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
DEFAULT_DATA: dict[str, Any] = yaml.safe_load(DEFAULT_TEXT)
DEFAULT_VERSION = DEFAULT_DATA["version"]


def spec(change: Callable[[dict[str, Any]], None] | None = None) -> PolicySpec:
    """The default policy's spec, after applying ``change`` to a copy of its YAML data."""
    data = copy.deepcopy(DEFAULT_DATA)
    if change is not None:
        change(data)
    return PolicySpec.model_validate(data)


def rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in data["rules"] if r["id"] == rule_id)


def trigger(data: dict[str, Any], trigger_id: str) -> dict[str, Any]:
    return next(t for t in data["triggers"] if t["id"] == trigger_id)


def rule_ids(data: dict[str, Any]) -> list[str]:
    return [r["id"] for r in data["rules"]]


def move_rule(data: dict[str, Any], rule_id: str, to: int) -> None:
    item = rule(data, rule_id)
    data["rules"].remove(item)
    data["rules"].insert(to, item)


def diff_of(change: Callable[[dict[str, Any]], None]) -> PolicyDiff:
    return diff_policies(spec(), spec(change))


def text_lines(diff: PolicyDiff) -> list[str]:
    return [line.strip() for line in diff.text().splitlines()]


# ------------------------------------------------------------------------------------------------ no change


def test_identical_policies_give_an_empty_diff() -> None:
    diff = diff_policies(spec(), spec())
    assert diff.identical and diff.equivalent and not diff and diff.count == 0
    d = diff.as_dict()
    assert d["identical"] is True and d["changes"] == 0
    assert d["policy"] == [] and d["score"] == [] and d["limits"] == {"fields": [], "cells": []}
    assert d["pricing"] == {"fields": [], "apr": []}
    for section in ("rules", "triggers"):
        assert d[section] == {"added": [], "removed": [], "changed": [], "moved": []}
    assert "No differences: the two policies are equivalent." in diff.text()
    assert "No differences" in diff.markdown()


def test_respacing_a_condition_is_not_a_change_but_a_new_threshold_is() -> None:
    def respace(data: dict[str, Any]) -> None:
        rule(data, "ELIG_AGE")["when"] = "(age<18)  or  (age > 65)"

    assert diff_of(respace).identical

    def tighten(data: dict[str, Any]) -> None:
        rule(data, "ELIG_AGE")["when"] = "age < 20 or age > 65"

    diff = diff_of(tighten)
    assert [(c.id, [f.field for f in c.fields]) for c in diff.rules.changed] == [("ELIG_AGE", ["when"])]


def test_only_descriptive_changes_are_equivalent_but_not_identical() -> None:
    def relabel(data: dict[str, Any]) -> None:
        data["version"] = "2099.1"
        data["description"] = "renamed"
        rule(data, "ELIG_AGE")["description"] = "adults only"

    diff = diff_of(relabel)
    assert not diff.identical and diff.equivalent and diff.count == 3
    assert {(c.field, c.old, c.new) for c in diff.policy} == {
        ("version", DEFAULT_VERSION, "2099.1"),
        ("description", DEFAULT_DATA["description"], "renamed"),
    }
    assert "Decisions unchanged: only names, versions or descriptions differ." in diff.text()

    def recurrency(data: dict[str, Any]) -> None:
        data["currency"] = "HKD"
        data["max_reasons"] = 3

    diff = diff_of(recurrency)
    assert not diff.equivalent
    assert {(c.field, c.old, c.new) for c in diff.policy} == {("currency", "CNY", "HKD"), ("max_reasons", 4, 3)}
    assert "~ currency: CNY → HKD" in text_lines(diff)


# ------------------------------------------------------------------------------------------------ rules


def test_rule_added_and_removed_with_positions_and_no_spurious_moves() -> None:
    def change(data: dict[str, Any]) -> None:
        data["rules"].remove(rule(data, "ELIG_INCOME"))  # third rule
        data["rules"].insert(
            5, {"id": "NEW_RULE", "when": "monthly_income < 1500", "action": "decline", "reason": "INCOME_TOO_LOW"}
        )

    diff = diff_of(change)
    assert [(e.id, e.position, e.action, e.reason) for e in diff.rules.added] == [
        ("NEW_RULE", 6, "decline", "INCOME_TOO_LOW")
    ]
    assert [(e.id, e.position) for e in diff.rules.removed] == [("ELIG_INCOME", 3)]
    # every later rule shifted by one place, but none changed its order relative to the others
    assert diff.rules.moved == () and diff.rules.changed == ()
    assert not diff.equivalent
    lines = text_lines(diff)
    assert "+ NEW_RULE (#6): decline, reason INCOME_TOO_LOW" in lines
    assert "when monthly_income < 1500" in lines
    assert "- ELIG_INCOME (was #3): decline, reason INCOME_TOO_LOW" in lines
    assert "Rules (1 added, 1 removed)" in lines


def test_rule_fields_changed() -> None:
    def change(data: dict[str, Any]) -> None:
        r = rule(data, "DTI_HIGH")
        r.update(when="debt_to_income > 2", action="review", reason="LARGE_REQUEST_REVIEW", description="new text")

    diff = diff_of(change)
    (changed,) = diff.rules.changed
    assert changed.id == "DTI_HIGH" and changed.old_position == changed.new_position
    assert [(f.field, f.old, f.new) for f in changed.fields] == [
        ("when", "debt_to_income > 2.5", "debt_to_income > 2"),
        ("action", "decline", "review"),
        ("reason", "HIGH_DEBT_TO_INCOME", "LARGE_REQUEST_REVIEW"),
        ("description", "", "new text"),
    ]
    lines = text_lines(diff)
    assert "~ DTI_HIGH: when changed" in lines
    assert "was: debt_to_income > 2.5" in lines and "now: debt_to_income > 2" in lines
    assert "~ DTI_HIGH: action decline → review" in lines
    assert "~ DTI_HIGH: reason HIGH_DEBT_TO_INCOME → LARGE_REQUEST_REVIEW" in lines


def test_rule_moved_is_the_one_that_moved_not_the_ones_it_passed() -> None:
    def change(data: dict[str, Any]) -> None:
        move_rule(data, "ID_CHECKSUM", 0)  # from fourth to first

    diff = diff_of(change)
    assert (diff.rules.added, diff.rules.removed, diff.rules.changed) == ((), (), ())
    (moved,) = diff.rules.moved
    assert (moved.id, moved.old_position, moved.new_position, moved.direction, moved.after) == (
        "ID_CHECKSUM",
        4,
        1,
        "up",
        None,
    )
    assert moved.passed == ("ELIG_AGE", "ELIG_EMPLOYMENT", "ELIG_INCOME")
    assert not diff.equivalent, "the order of rules decides the order of reasons"
    lines = text_lines(diff)
    assert "~ ID_CHECKSUM: moved up #4 → #1 (now first)" in lines
    assert "its reason now comes before ELIG_AGE, ELIG_EMPLOYMENT, ELIG_INCOME" in lines


def test_rule_moved_down_and_changed_is_reported_as_both() -> None:
    def change(data: dict[str, Any]) -> None:
        move_rule(data, "ELIG_AGE", 2)
        rule(data, "ELIG_AGE")["action"] = "review"

    diff = diff_of(change)
    (moved,) = diff.rules.moved
    assert (moved.id, moved.direction, moved.after, moved.passed) == (
        "ELIG_AGE",
        "down",
        "ELIG_INCOME",
        ("ELIG_EMPLOYMENT", "ELIG_INCOME"),
    )
    (changed,) = diff.rules.changed
    assert (changed.id, changed.old_position, changed.new_position) == ("ELIG_AGE", 1, 3)
    assert "~ ELIG_AGE: moved down #1 → #3 (now after ELIG_INCOME)" in text_lines(diff)


def test_reversed_rules_are_all_but_one_moved() -> None:
    def change(data: dict[str, Any]) -> None:
        data["rules"].reverse()

    diff = diff_of(change)
    assert len(diff.rules.moved) == len(DEFAULT_DATA["rules"]) - 1


# ------------------------------------------------------------------------------------------------ triggers


def test_trigger_changes() -> None:
    def change(data: dict[str, Any]) -> None:
        trigger(data, "TAKEOVER")["events"] = ["drawdown", "transfer_out", "login"]
        trigger(data, "FAILED_LOGIN_BURST")["action"] = "freeze_line"
        data["triggers"].remove(trigger(data, "MULTI_HEAD_SURGE"))
        data["triggers"].append(
            {
                "id": "BIG_LOGIN_BURST",
                "events": ["login"],
                "when": "customer_failed_logins_1h >= 20",
                "action": "freeze_line",
                "reason": "ACCOUNT_TAKEOVER_SUSPECTED",
            }
        )
        data["triggers"].insert(0, data["triggers"].pop(2))  # SCAM_FIRST_PAYEE first

    diff = diff_of(change)
    t = diff.triggers
    assert [(e.id, e.position, e.events) for e in t.added] == [("BIG_LOGIN_BURST", 8, ("login",))]
    assert [(e.id, e.position) for e in t.removed] == [("MULTI_HEAD_SURGE", 4)]
    assert [(c.id, [(f.field, f.old, f.new) for f in c.fields]) for c in t.changed] == [
        ("TAKEOVER", [("events", ["drawdown", "transfer_out"], ["drawdown", "transfer_out", "login"])]),
        ("FAILED_LOGIN_BURST", [("action", "alert", "freeze_line")]),
    ]
    assert [(m.id, m.direction) for m in t.moved] == [("SCAM_FIRST_PAYEE", "up")]
    assert diff.rules.empty
    lines = text_lines(diff)
    assert "Triggers (1 added, 1 removed, 2 changed, 1 moved)" in lines
    assert "+ BIG_LOGIN_BURST (#8): freeze_line, reason ACCOUNT_TAKEOVER_SUSPECTED on login" in lines
    assert "- MULTI_HEAD_SURGE (was #4): alert, reason MULTI_HEAD_INQUIRIES on bureau_update" in lines
    assert "~ TAKEOVER: events changed" in lines and "now: [drawdown, transfer_out, login]" in lines
    assert "~ FAILED_LOGIN_BURST: action alert → freeze_line" in lines
    assert "it is now checked before TAKEOVER, CASH_OUT_LOOP" in lines


# ------------------------------------------------------------------------------------------------ score


def test_score_cutoffs_scorecard_and_pin() -> None:
    sha = "ab" * 32

    def change(data: dict[str, Any]) -> None:
        data["score"].update(scorecard="starter@2", sha256=sha, decline_below=580, review_below=620.5, max_reasons=3)

    diff = diff_of(change)
    assert [(c.field, c.old, c.new) for c in diff.score] == [
        ("scorecard", "starter@1", "starter@2"),
        ("sha256", None, sha),
        ("decline_below", 560, 580),
        ("review_below", 600, 620.5),
        ("max_reasons", 2, 3),
    ]
    assert not diff.equivalent
    lines = text_lines(diff)
    assert "~ scorecard: starter@1 → starter@2" in lines
    assert "~ decline_below: 560 → 580" in lines and "~ review_below: 600 → 620.5" in lines
    assert f"~ sha256: none → {sha[:12]}…" in lines


def test_same_scorecard_ref_with_different_content_is_reported() -> None:
    same = diff_policies(spec(), spec(), scorecard_hashes=("a" * 64, "a" * 64))
    assert same.identical
    diff = diff_policies(spec(), spec(), scorecard_hashes=("a" * 64, "b" * 64))
    assert [(c.field, c.old, c.new) for c in diff.score] == [("scorecard content", "a" * 64, "b" * 64)]
    assert not diff.equivalent


# ------------------------------------------------------------------------------------------------ limits


def test_one_limit_cell_changed_is_named_by_its_bands() -> None:
    def change(data: dict[str, Any]) -> None:
        data["limits"]["table"][1][1] = 6000  # score 600–659, income 5k–10k

    diff = diff_of(change)
    (cell,) = diff.limit_cells
    assert (cell.score_band.label, cell.income_band.label, cell.old, cell.new) == ("600–659", "5k–10k", 5000, 6000)
    assert (cell.score_band.low, cell.score_band.high, cell.income_band.low, cell.income_band.high) == (
        600,
        660,
        5000,
        10000,
    )
    assert "~ limit 600–659 × 5k–10k: 5,000 → 6,000" in text_lines(diff)
    assert diff.limits == () and not diff.equivalent


def test_open_ended_bands_are_labelled() -> None:
    def change(data: dict[str, Any]) -> None:
        data["limits"]["table"][0][0] = 500
        data["limits"]["table"][4][3] = 60000

    diff = diff_of(change)
    assert [(c.score_band.label, c.income_band.label) for c in diff.limit_cells] == [("<600", "<5k"), ("780+", "20k+")]
    assert (diff.limit_cells[0].score_band.low, diff.limit_cells[1].income_band.high) == (None, None)


def test_limit_fields() -> None:
    def change(data: dict[str, Any]) -> None:
        data["limits"].update(income_multiple_cap=None, min_limit=2000, rounding=500)

    diff = diff_of(change)
    assert [(c.field, c.old, c.new) for c in diff.limits] == [
        ("income_multiple_cap", 5, None),
        ("min_limit", 1000, 2000),
        ("rounding", 100, 500),
    ]
    lines = text_lines(diff)
    assert "~ income_multiple_cap: 5 → none" in lines and "~ min_limit: 1,000 → 2,000" in lines


def _lookup(table: list[list[float]], score_edges: list[float], income_edges: list[float], s: float, i: float) -> float:
    return table[bisect_right(score_edges, s)][bisect_right(income_edges, i)]


def _inside(cell: CellChange, s: float, i: float) -> bool:
    def within(low: float | None, high: float | None, x: float) -> bool:
        return (low is None or x >= low) and (high is None or x < high)

    return within(cell.score_band.low, cell.score_band.high, s) and within(
        cell.income_band.low, cell.income_band.high, i
    )


def test_moved_band_edges_report_exactly_the_regions_whose_limit_changed() -> None:
    def change(data: dict[str, Any]) -> None:
        data["limits"]["score_edges"] = [600, 650, 720, 780]
        data["limits"]["income_edges"] = [5000, 12000, 20000]
        data["limits"]["table"][3][2] = 26000

    a, b = spec(), spec(change)
    diff = diff_policies(a, b)
    assert [(c.field, c.old, c.new) for c in diff.limits] == [
        ("score_edges", [600, 660, 720, 780], [600, 650, 720, 780]),
        ("income_edges", [5000, 10000, 20000], [5000, 12000, 20000]),
    ]
    labels = {(c.score_band.label, c.income_band.label) for c in diff.limit_cells}
    assert ("650–659", "5k–10k") in labels and ("720–779", "12k–20k") in labels
    assert ("600–649", "<5k") not in labels
    # every (score, income) point gets a different limit exactly when it lies in a reported region
    scores = [500, 599, 600, 649, 650, 655, 659, 660, 700, 719, 720, 779, 780, 900]
    incomes = [0, 4999, 5000, 9999, 10000, 11999, 12000, 19999, 20000, 50000]
    for s, i in itertools.product(scores, incomes):
        old = _lookup(a.limits.table, a.limits.score_edges, a.limits.income_edges, s, i)
        new = _lookup(b.limits.table, b.limits.score_edges, b.limits.income_edges, s, i)
        hits = [c for c in diff.limit_cells if _inside(c, s, i)]
        assert len(hits) == (1 if old != new else 0), (s, i)
        if hits:
            assert (hits[0].old, hits[0].new) == (old, new), (s, i)


# ------------------------------------------------------------------------------------------------ pricing


def test_apr_change_by_band() -> None:
    def change(data: dict[str, Any]) -> None:
        data["pricing"]["apr"][1] = 0.162  # 660–719

    diff = diff_of(change)
    (apr,) = diff.apr
    assert (apr.score_band.label, apr.old, apr.new) == ("660–719", 0.18, 0.162)
    assert "~ APR 660–719: 18.00% → 16.20%" in text_lines(diff)
    assert diff.pricing == ()


def test_pricing_edges_and_cap() -> None:
    def change(data: dict[str, Any]) -> None:
        data["pricing"]["score_edges"] = [640, 720, 780]
        data["pricing"]["max_apr"] = 0.22

    diff = diff_of(change)
    assert [(c.field, c.old, c.new) for c in diff.pricing] == [
        ("score_edges", [660, 720, 780], [640, 720, 780]),
        ("max_apr", 0.24, 0.22),
    ]
    # scores 640–659 used to pay the first band's 21.6%, now the second band's 18%
    assert [(c.score_band.label, c.old, c.new) for c in diff.apr] == [("640–659", 0.216, 0.18)]
    assert "~ max_apr: 24.00% → 22.00%" in text_lines(diff)


# ------------------------------------------------------------------------------------------------ rendering


def test_as_dict_is_json_and_markdown_has_sections() -> None:
    def change(data: dict[str, Any]) -> None:
        data["version"] = "2099.1"
        move_rule(data, "ID_CHECKSUM", 0)
        data["limits"]["table"][1][1] = 6000
        data["pricing"]["apr"][1] = 0.162
        data["score"]["decline_below"] = 580

    diff = diff_of(change)
    d = json.loads(json.dumps(diff.as_dict()))
    assert d["a"] == {"policy": "default", "version": DEFAULT_VERSION} and d["b"]["version"] == "2099.1"
    assert d["identical"] is False and d["equivalent"] is False and d["changes"] == 5
    assert d["rules"]["moved"][0]["id"] == "ID_CHECKSUM"
    assert d["limits"]["cells"] == [
        {
            "score_band": {"label": "600–659", "low": 600, "high": 660},
            "income_band": {"label": "5k–10k", "low": 5000, "high": 10000},
            "old": 5000,
            "new": 6000,
        }
    ]
    assert d["pricing"]["apr"][0]["score_band"]["label"] == "660–719"
    assert d["score"] == [{"field": "decline_below", "old": 560, "new": 580}]
    md = diff.markdown()
    for heading in ("### Policy", "### Rules (1 moved)", "### Score", "### Limits (score band × income band)"):
        assert heading in md
    assert "- `~` limit 600–659 × 5k–10k: 5,000 → 6,000" in md
    assert "ID\\_CHECKSUM" in md  # escaped for Markdown


# ------------------------------------------------------------------------------------------------ lines, cases


def segment(data: dict[str, Any], segment_id: str) -> dict[str, Any]:
    return next(s for s in data["lines"]["segments"] if s["id"] == segment_id)


def test_line_strategy_segments_are_diffed_by_id_with_order() -> None:
    """First matching segment wins, so a segment moved ahead of others changes which lines it takes."""

    def change(data: dict[str, Any]) -> None:
        segs = data["lines"]["segments"]
        segment(data, "MULTI_HEAD_GROWTH")["change"] = 0.4
        segment(data, "RISK_EVENTS")["when"] = "line_risk_events_30d >= 2"
        segs.insert(0, segs.pop(segs.index(segment(data, "INCOME_DROP"))))
        segs.remove(segment(data, "GROW_GOOD"))
        segs.append(
            {"id": "HIGH_USE", "when": "line_utilisation > 0.95", "action": "keep", "reason": "LINE_DELINQUENT"}
        )

    diff = diff_of(change)
    seg = diff.segments
    assert [e.id for e in seg.added] == ["HIGH_USE"] and seg.added[0].action == "keep"
    assert [(e.id, e.change) for e in seg.removed] == [("GROW_GOOD", 0.2)]
    changed = {c.id: [(f.field, f.old, f.new) for f in c.fields] for c in seg.changed}
    assert changed == {
        "MULTI_HEAD_GROWTH": [("change", 0.3, 0.4)],
        "RISK_EVENTS": [("when", "line_risk_events_30d >= 1", "line_risk_events_30d >= 2")],
    }
    assert [(m.id, m.old_position, m.new_position, m.direction) for m in seg.moved] == [("INCOME_DROP", 5, 1, "up")]
    assert diff.rules.empty and not diff.equivalent and diff.count == 5  # added, removed, 2 changed, moved
    text = text_lines(diff)
    assert "Line segments (1 added, 1 removed, 2 changed, 1 moved)" in text
    assert "- GROW_GOOD (was #7): increase 20% of the limit, reason LINE_GOOD_BEHAVIOUR" in text
    assert "~ MULTI_HEAD_GROWTH: change 0.3 → 0.4" in text
    assert "~ INCOME_DROP: moved up #5 → #1 (now first)" in text
    d = json.loads(json.dumps(diff.as_dict()))
    assert d["lines"]["segments"]["removed"][0]["change"] == 0.2
    assert "change" not in d["lines"]["segments"]["added"][0]  # a keep segment has none


def test_guardrails_drawdowns_and_cases_are_diffed() -> None:
    def change(data: dict[str, Any]) -> None:
        data["lines"]["behaviour_scorecard"] = "behaviour@2"
        data["lines"]["guardrails"]["max_decreases"] = 1
        data["lines"]["guardrails"]["max_limit"] = 150000
        data["lines"]["drawdowns"]["terms"] = [3, 6, 12]
        data["lines"]["drawdowns"]["min_amount"] = 500
        rules = data["lines"]["drawdowns"]["rules"]
        next(r for r in rules if r["id"] == "DD_RAPID")["when"] = "customer_drawdowns_1h >= 2"
        rules.pop()  # DD_BLACKLIST
        data["cases"] = {"sla_hours": {"review": 12}, "four_eyes_limit": 80000}

    base = copy.deepcopy(DEFAULT_DATA)
    base.pop("cases", None)
    diff = diff_policies(PolicySpec.model_validate(base), spec(change))
    assert [(c.field, c.old, c.new) for c in diff.line_fields] == [
        ("behaviour_scorecard", "behaviour@1", "behaviour@2"),
        ("guardrails.max_decreases", 2, 1),
        ("guardrails.max_limit", 200000, 150000),
        ("drawdowns.terms", [3, 6, 12, 24], [3, 6, 12]),
        ("drawdowns.min_amount", 100, 500),
    ]
    assert [e.id for e in diff.drawdown_rules.removed] == ["DD_BLACKLIST"]
    assert [c.id for c in diff.drawdown_rules.changed] == ["DD_RAPID"]
    assert [(c.field, c.old, c.new) for c in diff.cases] == [
        ("sla_hours.review", None, 12),
        ("four_eyes_limit", 50000, 80000),
    ]
    assert not diff.equivalent and diff.count == 5 + 2 + 2
    text = text_lines(diff)
    for line in (
        "~ guardrails.max_limit: 200,000 → 150,000",
        "~ drawdowns.min_amount: 100 → 500",
        "Drawdown rules (1 removed, 1 changed)",
        "- DD_BLACKLIST (was #6): decline, reason LINKED_TO_FRAUD",
        "~ sla_hours.review: default → 12 h",
        "~ four_eyes_limit: 50,000 → 80,000",
    ):
        assert line in text, line
    md = diff.markdown()
    assert "### Lines" in md and "### Cases" in md and "### Drawdown rules (1 removed, 1 changed)" in md
    d = json.loads(json.dumps(diff.as_dict()))
    assert d["cases"][0] == {"field": "sla_hours.review", "old": None, "new": 12}
    assert d["lines"]["drawdown_rules"]["removed"][0]["id"] == "DD_BLACKLIST"


def test_a_segment_description_alone_is_equivalent() -> None:
    diff = diff_of(lambda d: segment(d, "DELINQUENT").update(description="late lines"))
    assert not diff.identical and diff.equivalent


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "fengkong.db"


@pytest.fixture
def cli(db_file: Path) -> Iterator[Callable[..., Any]]:
    runner = CliRunner()
    env = {"FENGKONG_DATABASE_URL": f"sqlite:///{db_file}", "FENGKONG_SECRET_KEY": TEST_SECRET, "COLUMNS": "200"}

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    yield invoke


def write_policy(path: Path, replacements: dict[str, str]) -> Path:
    text = DEFAULT_TEXT
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return path


CANDIDATE = {
    'version: "2026.11.5"': 'version: "2026.12.1"',
    "when: debt_to_income > 2.5": "when: debt_to_income > 2.0",
    "decline_below: 560": "decline_below: 580",
    "- [2000,  5000,  8000,  10000]": "- [2000,  6000,  8000,  10000]",
    "apr: [0.2160, 0.1800, 0.1440, 0.1080]": "apr: [0.2160, 0.1620, 0.1440, 0.1080]",
}


def publish(db_file: Path, *paths: Path) -> None:
    from fengkong import Engine
    from fengkong.policy.loader import load_policy_file

    with Engine(f"sqlite:///{db_file}", secret_key=TEST_SECRET) as engine:  # publishes the default at start
        for path in paths:
            engine.publish_policy(load_policy_file(path), actor="test")


def test_cli_diff_of_two_files(cli: Callable[..., Any], tmp_path: Path, db_file: Path) -> None:
    candidate = write_policy(tmp_path / "candidate.yaml", CANDIDATE)
    r = cli("policy", "diff", str(DEFAULT_POLICY_PATH), str(candidate))
    assert r.exit_code == 0, r.output
    lines = [line.rstrip() for line in r.output.splitlines()]
    assert f"A  default {DEFAULT_VERSION}  (file {DEFAULT_POLICY_PATH})" in lines
    assert f"B  default 2026.12.1  (file {candidate})" in lines
    for expected in (
        "Policy",
        f"  ~ version: {DEFAULT_VERSION} → 2026.12.1",
        "Rules (1 changed)",
        "  ~ DTI_HIGH: when changed",
        "      was: debt_to_income > 2.5",
        "      now: debt_to_income > 2.0",
        "Score",
        "  ~ decline_below: 560 → 580",
        "Limits (score band × income band)",
        "  ~ limit 600–659 × 5k–10k: 5,000 → 6,000",
        "Pricing",
        "  ~ APR 660–719: 18.00% → 16.20%",
        "5 differences",
    ):
        assert expected in lines, (expected, r.output)
    assert lines.index("Rules (1 changed)") < lines.index("Score") < lines.index("Pricing")
    assert not db_file.exists(), "diffing two files touches no database"


def test_cli_identical_files(cli: Callable[..., Any], tmp_path: Path) -> None:
    copy_ = write_policy(tmp_path / "same.yaml", {"# The bundled": "# A copy of the bundled"})
    r = cli("policy", "diff", str(DEFAULT_POLICY_PATH), str(copy_))
    assert r.exit_code == 0, r.output
    assert "No differences: the two policies are equivalent." in r.output and "0 differences" in r.output


def test_cli_published_version_against_a_file(cli: Callable[..., Any], tmp_path: Path, db_file: Path) -> None:
    candidate = write_policy(tmp_path / "candidate.yaml", CANDIDATE)
    publish(db_file)
    r = cli("policy", "diff", DEFAULT_VERSION, str(candidate))
    assert r.exit_code == 0, r.output
    assert f"A  default {DEFAULT_VERSION}  (published, active)" in r.output
    assert "~ limit 600–659 × 5k–10k: 5,000 → 6,000" in r.output
    # the other way round, and two published versions
    publish(db_file, candidate)
    r = cli("policy", "diff", str(candidate), DEFAULT_VERSION)
    assert r.exit_code == 0, r.output
    assert "~ decline_below: 580 → 560" in r.output
    r = cli("policy", "diff", DEFAULT_VERSION, "2026.12.1")
    assert r.exit_code == 0, r.output
    assert "B  default 2026.12.1  (published)" in r.output and "~ APR 660–719: 18.00% → 16.20%" in r.output


def test_cli_json(cli: Callable[..., Any], tmp_path: Path, db_file: Path) -> None:
    candidate = write_policy(tmp_path / "candidate.yaml", CANDIDATE)
    publish(db_file)
    r = cli("policy", "diff", DEFAULT_VERSION, str(candidate), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["a"]["source"] == "published" and d["a"]["ref"] == DEFAULT_VERSION and d["a"]["active"] is True
    assert d["b"] == {
        "policy": "default",
        "version": "2026.12.1",
        "ref": str(candidate),
        "source": "file",
        "content_hash": d["b"]["content_hash"],
    }
    assert len(d["a"]["content_hash"]) == 64 and d["a"]["content_hash"] != d["b"]["content_hash"]
    assert d["identical"] is False and d["equivalent"] is False and d["changes"] == 5
    assert d["rules"]["changed"] == [
        {
            "id": "DTI_HIGH",
            "old_position": 22,
            "new_position": 22,
            "fields": [{"field": "when", "old": "debt_to_income > 2.5", "new": "debt_to_income > 2.0"}],
        }
    ]
    assert d["limits"]["cells"][0]["score_band"]["label"] == "600–659"
    assert d["pricing"]["apr"][0] == {
        "score_band": {"label": "660–719", "low": 660, "high": 720},
        "old": 0.18,
        "new": 0.162,
    }
    assert set(d) == {
        "a",
        "b",
        "identical",
        "equivalent",
        "changes",
        "policy",
        "rules",
        "triggers",
        "score",
        "limits",
        "pricing",
        "lines",
        "cases",
    }
    assert d["lines"] == {
        "segments": {"added": [], "removed": [], "changed": [], "moved": []},
        "fields": [],
        "drawdown_rules": {"added": [], "removed": [], "changed": [], "moved": []},
    }
    assert d["cases"] == []


def test_cli_unknown_version_names_the_argument(cli: Callable[..., Any], tmp_path: Path, db_file: Path) -> None:
    publish(db_file)
    r = cli("policy", "diff", DEFAULT_VERSION, "2030.1")
    assert r.exit_code == 1
    assert "B: '2030.1' is neither a policy file nor a published policy version" in r.output
    assert f"published versions: {DEFAULT_VERSION}" in r.output
    r = cli("policy", "diff", str(tmp_path / "missing.yaml"), DEFAULT_VERSION, "--json")
    assert r.exit_code == 1
    error = json.loads(r.output)
    assert error["code"] == "unknown_policy" and error["field"] == "A"
    assert "missing.yaml" in error["message"]


def test_cli_unknown_without_a_database_creates_none(cli: Callable[..., Any], db_file: Path) -> None:
    r = cli("policy", "diff", str(DEFAULT_POLICY_PATH), "2026.11.5")
    assert r.exit_code == 1
    assert "B: '2026.11.5' is neither a policy file nor a published policy version (none is published)" in r.output
    assert not db_file.exists()


def test_cli_invalid_policy_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    broken = write_policy(tmp_path / "broken.yaml", {"when: age < 18 or age > 65": "when: agee < 18"})
    r = cli("policy", "diff", str(broken), str(DEFAULT_POLICY_PATH))
    assert r.exit_code == 1
    assert "invalid_policy" in r.output and "broken.yaml" in r.output and "agee" in r.output


def test_loaded_policy_matches_spec_diff() -> None:
    """The command diffs loaded (validated) policies; a loaded policy's spec diffs like the raw spec."""
    text = DEFAULT_TEXT.replace("min_limit: 1000", "min_limit: 1500")
    diff = diff_policies(load_policy_text(DEFAULT_TEXT).spec, load_policy_text(text).spec)
    assert [(c.field, c.old, c.new) for c in diff.limits] == [("min_limit", 1000, 1500)]
