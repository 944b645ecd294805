"""Loading policies: the bundled default, every kind of bad file (with position and rule id), and the
decisions the default policy makes on hand-built applications."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from fengkong.domain import Outcome
from fengkong.features.registry import FEATURES, FeatureType
from fengkong.models.scorecard import BUILTIN_DIR
from fengkong.policy.compiler import CAPACITY_REASON, CompiledPolicy, PolicyResult
from fengkong.policy.errors import PolicyError, PolicyProblem
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy, load_policy_file, load_policy_text
from fengkong.reasons import CATALOGUE

DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
STARTER_JSON = (BUILTIN_DIR / "starter@1.json").read_text(encoding="utf-8")

SMALL = """\
policy: small
version: "1"
max_reasons: 4
rules:
  - id: R_AGE
    when: age < 18
    action: decline
    reason: AGE_OUT_OF_RANGE
  - id: R_INCOME
    when: monthly_income < 2000
    action: decline
    reason: INCOME_TOO_LOW
  - id: R_DEVICE
    when: has_device_id == false
    action: review
    reason: DEVICE_NOT_VERIFIED
score:
  scorecard: starter@1
  decline_below: 560
  review_below: 600
  max_reasons: 2
limits:
  score_edges: [600, 700]
  income_edges: [5000]
  table:
    - [0, 0]
    - [3000, 5000]
    - [6000, 10000]
  min_limit: 1000
  rounding: 100
pricing:
  score_edges: [700]
  apr: [0.2, 0.15]
  max_apr: 0.24
"""


def locate(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the nth occurrence of needle in text."""
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(needle, pos + 1)
        assert pos >= 0
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def line_of(text: str, needle: str, nth: int = 0) -> int:
    return locate(text, needle, nth)[0]


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def problems_of(text: str, **kwargs: Any) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, source="policies/test.yaml", **kwargs)
    err = info.value
    assert err.source == "policies/test.yaml"
    assert err.problems
    # the message names the file (and the position where known) of every problem
    for p in err.problems:
        assert p.render("policies/test.yaml") in str(err)
        assert str(err).count("policies/test.yaml") == len(err.problems)
    return err.problems


def only_problem(text: str, **kwargs: Any) -> PolicyProblem:
    problems = problems_of(text, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


# ---------------------------------------------------------------------------------------------- loading


def test_bundled_default_policy_loads() -> None:
    policy = load_default_policy()
    assert isinstance(policy, CompiledPolicy)
    assert policy.name == "default"
    assert policy.version == "2026.11.5"
    assert policy.model_version == "starter@1"
    assert len(policy.spec.rules) == 24
    assert [r.id for r in policy.spec.rules][:3] == ["ELIG_AGE", "ELIG_EMPLOYMENT", "ELIG_INCOME"]
    assert policy.source_text == DEFAULT_TEXT
    assert policy.content_hash == hashlib.sha256(DEFAULT_TEXT.encode()).hexdigest()
    assert "score" not in policy.inputs
    assert {"age", "employment", "monthly_income", "debt_to_income", "employment_months"} <= set(policy.inputs)
    assert set(policy.inputs) <= set(FEATURES.names())
    for rule in policy.spec.rules:
        assert rule.reason in CATALOGUE


def test_load_policy_text_equals_load_policy_file() -> None:
    from_file = load_policy_file(DEFAULT_POLICY_PATH)
    from_text = load_policy_text(DEFAULT_TEXT)
    assert from_file.content_hash == from_text.content_hash
    assert from_file.spec == from_text.spec


def test_small_policy_loads() -> None:
    policy = load_policy_text(SMALL)
    assert [r.id for r in policy.spec.rules] == ["R_AGE", "R_INCOME", "R_DEVICE"]


# ---------------------------------------------------------------------------------------------- bad files


def test_bad_yaml_syntax() -> None:
    text = edit(SMALL, "when: age < 18\n", "when: age < 18: x\n")
    p = only_problem(text)
    assert p.where == "yaml"
    assert p.message.startswith("bad YAML")
    assert (p.line, p.column) == locate(text, ": x")


def test_bad_yaml_unclosed_flow_sequence() -> None:
    text = edit(SMALL, "income_edges: [5000]", "income_edges: [5000")
    p = only_problem(text)
    assert p.where == "yaml" and p.line is not None and p.column is not None
    assert p.line >= line_of(text, "income_edges")


@pytest.mark.parametrize("text", ["- just\n- a list\n", "hello\n", ""])
def test_document_must_be_a_mapping(text: str) -> None:
    p = only_problem(text)
    assert p.where == "document"
    assert "mapping" in p.message


def test_unknown_top_level_key_points_at_the_key() -> None:
    text = edit(SMALL, "max_reasons: 4\n", "max_reason: 4\n")
    p = only_problem(text)
    assert p.where == "max_reason"
    assert "unknown key" in p.message and "spelling" in p.message
    assert (p.line, p.column) == locate(text, "max_reason:")


def test_unknown_top_level_key_with_a_block_value_points_at_the_key() -> None:
    # ``rule:`` instead of ``rules:``: the problem is on the key's line, not on the first rule below it
    text = edit(SMALL, "rules:\n", "rule:\n")
    problems = problems_of(text)
    [p] = [p for p in problems if p.where == "rule"]
    assert "unknown key" in p.message
    assert (p.line, p.column) == locate(text, "rule:")


def test_unknown_key_inside_a_rule() -> None:
    text = edit(SMALL, "    action: review\n", "    acton: review\n")
    problems = problems_of(text)
    by_where = {p.where: p for p in problems}
    assert "rules[2].acton" in by_where and "rules[2].action" in by_where
    typo = by_where["rules[2].acton"]
    assert typo.rule_id == "R_DEVICE"
    assert (typo.line, typo.column) == locate(text, "acton")
    assert "Field required" in by_where["rules[2].action"].message
    assert by_where["rules[2].action"].rule_id == "R_DEVICE"


def test_bad_action_names_the_rule_and_position() -> None:
    text = edit(SMALL, "    action: review\n", "    action: block\n")
    p = only_problem(text)
    assert p.where == "rules[2].action" and p.rule_id == "R_DEVICE"
    assert (p.line, p.column) == locate(text, "block")
    assert "'decline'" in p.message and "'review'" in p.message


def test_unknown_feature_in_a_rule_points_at_the_feature() -> None:
    text = edit(DEFAULT_TEXT, "when: id_age_gap > 1\n", "when: id_age_gap > 1 and ages < 30\n")
    p = only_problem(text)
    assert p.rule_id == "ID_AGE_GAP"
    assert p.where == "rules[4].when"
    assert "unknown feature 'ages'" in p.message and "did you mean 'age'?" in p.message
    assert "id_age_gap > 1 and ages < 30" in p.message  # the expression is quoted back
    assert p.line == line_of(text, "when: id_age_gap > 1 and ages")
    assert (p.line, p.column) == locate(text, "ages <")
    assert f"policies/test.yaml:{p.line}:{p.column}: rule 'ID_AGE_GAP' rules[4].when:" in p.render("policies/test.yaml")


@pytest.mark.parametrize("quote", ["'", '"'])
def test_position_in_a_quoted_condition(quote: str) -> None:
    text = edit(SMALL, "when: age < 18\n", f"when: {quote}age < 18 or agee > 70{quote}\n")
    p = only_problem(text)
    assert p.rule_id == "R_AGE"
    assert (p.line, p.column) == locate(text, "agee")


def test_position_in_a_multi_line_condition_is_the_rule_line() -> None:
    folded = "    when: >-\n      monthly_income < 2000\n      or agee > 3\n"
    text = edit(SMALL, "    when: monthly_income < 2000\n", folded)
    p = only_problem(text)
    assert p.rule_id == "R_INCOME"
    assert "unknown feature 'agee'" in p.message
    assert p.line == line_of(text, "when: >-")


def test_type_mix_in_a_rule() -> None:
    text = edit(SMALL, "when: age < 18\n", "when: age < '18'\n")
    p = only_problem(text)
    assert p.rule_id == "R_AGE" and p.where == "rules[0].when"
    assert "cannot compare number with string using '<'" in p.message
    assert (p.line, p.column) == locate(text, "< '18'")


def test_unknown_categorical_value_in_a_rule() -> None:
    text = edit(SMALL, "when: age < 18\n", "when: employment == 'salary'\n")
    p = only_problem(text)
    assert p.rule_id == "R_AGE"
    assert "employment is never 'salary'" in p.message
    assert (p.line, p.column) == locate(text, "'salary'")


def test_bad_syntax_in_a_rule() -> None:
    text = edit(SMALL, "when: monthly_income < 2000\n", "when: monthly_income < 2000 && age > 3\n")
    p = only_problem(text)
    assert p.rule_id == "R_INCOME" and p.where == "rules[1].when"
    assert "unexpected character '&'" in p.message and "'and'" in p.message
    assert (p.line, p.column) == locate(text, "&&")


def test_single_equals_in_a_rule() -> None:
    text = edit(SMALL, "when: has_device_id == false\n", "when: has_device_id = false\n")
    p = only_problem(text)
    assert p.rule_id == "R_DEVICE"
    assert "use == to compare" in p.message
    assert (p.line, p.column) == locate(text, "= false")


def test_condition_that_is_not_a_bool() -> None:
    text = edit(SMALL, "when: age < 18\n", "when: age + 18\n")
    p = only_problem(text)
    assert p.rule_id == "R_AGE"
    assert "must be true or false" in p.message and "number" in p.message
    assert (p.line, p.column) == locate(text, "age + 18")


def test_unknown_reason_code() -> None:
    text = edit(SMALL, "reason: INCOME_TOO_LOW", "reason: INCOME_TOO_SMALL")
    p = only_problem(text)
    assert p.rule_id == "R_INCOME" and p.where == "rules[1].reason"
    assert "unknown reason code 'INCOME_TOO_SMALL'" in p.message
    assert (p.line, p.column) == locate(text, "INCOME_TOO_SMALL")


def test_duplicate_rule_ids() -> None:
    text = edit(SMALL, "  - id: R_DEVICE\n", "  - id: R_AGE\n")
    p = only_problem(text)
    assert "'R_AGE'" in p.message and "twice" in p.message
    assert p.rule_id == "R_AGE"
    assert p.where == "rules[2].id"
    assert (p.line, p.column) == locate(text, "R_AGE", nth=1)


def test_bad_rule_id() -> None:
    text = edit(SMALL, "  - id: R_DEVICE\n", "  - id: 9 lives\n")
    p = only_problem(text)
    assert p.where == "rules[2].id"
    assert (p.line, p.column) == locate(text, "9 lives")


def _section_lines(text: str, key: str) -> range:
    """The lines of a top-level section, from its key to the line before the next top-level key."""
    start = line_of(text, f"\n{key}:") + 1
    lines = text.splitlines()
    end = start
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    return range(start, end + 1)


def test_limit_table_with_too_few_rows() -> None:
    text = edit(SMALL, "    - [6000, 10000]\n", "")
    p = only_problem(text)
    assert p.where.startswith("limits")
    assert "table needs 3 rows" in p.message and "has 2" in p.message
    assert p.line in _section_lines(text, "limits")


def test_limit_table_with_a_short_row() -> None:
    text = edit(SMALL, "    - [3000, 5000]\n", "    - [3000]\n")
    p = only_problem(text)
    assert p.where.startswith("limits")
    assert "table row 1 needs 2 limits" in p.message and "has 1" in p.message
    assert p.line in _section_lines(text, "limits")


def test_negative_limit() -> None:
    text = edit(SMALL, "    - [3000, 5000]\n", "    - [3000, -5000]\n")
    p = only_problem(text)
    assert "table row 1 has a negative limit" in p.message


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("score_edges: [600, 700]", "score_edges: [700, 600]", "limits.score_edges"),
        ("score_edges: [600, 700]", "score_edges: [600, 600]", "limits.score_edges"),
        ("income_edges: [5000]\n", "income_edges: [5000, 5000]\n", "limits.income_edges"),
        ("  score_edges: [700]\n  apr", "  score_edges: [700, 650]\n  apr", "pricing.score_edges"),
    ],
)
def test_non_increasing_edges(old: str, new: str, where: str) -> None:
    text = edit(SMALL, old, new)
    problems = problems_of(text)
    [p] = [p for p in problems if p.where == where]
    assert "must increase strictly" in p.message
    assert (p.line, p.column) == locate(text, new.strip().split("\n")[0].split(": ")[1])


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("decline_below: 560", "decline_below: .nan", "score.decline_below"),
        ("review_below: 600", "review_below: .NaN", "score.review_below"),
        ("score_edges: [600, 700]", "score_edges: [600, .nan]", "limits.score_edges[1]"),
        ("income_edges: [5000]", "income_edges: [.nan]", "limits.income_edges[0]"),
        ("    - [3000, 5000]\n", "    - [3000, .nan]\n", "limits.table[1][1]"),
        ("  score_edges: [700]\n  apr", "  score_edges: [.nan]\n  apr", "pricing.score_edges[0]"),
    ],
)
def test_nan_is_not_a_number_in_a_policy(old: str, new: str, where: str) -> None:
    # NaN compares false in Python but sorts above every number in polars: row and table would disagree
    text = edit(SMALL, old, new)
    problems = problems_of(text)
    [p] = [p for p in problems if p.where == where]
    assert "not NaN" in p.message
    needle = ".NaN" if ".NaN" in new else ".nan"
    assert (p.line, p.column) == locate(text, needle)


def test_infinite_cut_offs_are_allowed() -> None:
    text = edit(SMALL, "decline_below: 560\n  review_below: 600", "decline_below: .inf\n  review_below: .inf")
    assert load_policy_text(text).spec.score.review_below == float("inf")


def test_apr_above_max_apr() -> None:
    text = edit(SMALL, "apr: [0.2, 0.15]", "apr: [0.36, 0.15]")
    p = only_problem(text)
    assert p.where.startswith("pricing")
    assert "apr 0.36 is outside (0, max_apr=0.24]" in p.message
    assert p.line in _section_lines(text, "pricing")


def test_apr_count_must_match_edges() -> None:
    text = edit(SMALL, "apr: [0.2, 0.15]", "apr: [0.2]")
    p = only_problem(text)
    assert "apr needs 2 rates" in p.message


def test_max_apr_above_legal_range() -> None:
    text = edit(SMALL, "max_apr: 0.24", "max_apr: 1.5")
    p = only_problem(text)
    assert p.where == "pricing.max_apr"
    assert (p.line, p.column) == locate(text, "1.5")


def test_review_below_under_decline_below() -> None:
    text = edit(SMALL, "review_below: 600", "review_below: 500")
    p = only_problem(text)
    assert p.where.startswith("score")
    assert "review_below must be at least decline_below" in p.message
    assert p.line in _section_lines(text, "score")


def test_unknown_scorecard() -> None:
    text = edit(SMALL, "scorecard: starter@1", "scorecard: starter@9")
    p = only_problem(text)
    assert p.where == "score.scorecard"
    assert "no scorecard 'starter@9' found" in p.message
    assert (p.line, p.column) == locate(text, "starter@9")


def test_malformed_scorecard_reference() -> None:
    text = edit(SMALL, "scorecard: starter@1", "scorecard: starter")
    p = only_problem(text)
    assert p.where == "score.scorecard"
    assert (p.line, p.column) == locate(text, "starter\n")


def _write_card(folder: Path, name: str, version: str, **changes: Any) -> Path:
    data = json.loads(STARTER_JSON)
    data.update(name=name, version=version, **changes)
    path = folder / f"{name}@{version}.json"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def _pinned(text: str, ref: str, sha: str | None) -> str:
    pin = f"\n  sha256: {sha}" if sha else ""
    return edit(text, "scorecard: starter@1", f"scorecard: {ref}{pin}")


def test_scorecard_next_to_the_policy_file_with_a_matching_pin(tmp_path: Path) -> None:
    card = _write_card(tmp_path, "mycard", "2")
    sha = hashlib.sha256(card.read_bytes()).hexdigest()
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(_pinned(SMALL, "mycard@2", sha), encoding="utf-8")
    policy = load_policy_file(policy_path)
    assert policy.model_version == "mycard@2"
    assert policy.scorecard.content_hash == sha
    # the same text loads through load_policy_text given the folder
    assert load_policy_text(policy_path.read_text(), model_dirs=[tmp_path]).scorecard.content_hash == sha
    # without the folder the scorecard is not found
    p = only_problem(policy_path.read_text())
    assert "no scorecard 'mycard@2' found" in p.message


def test_scorecard_whose_pinned_sha256_does_not_match(tmp_path: Path) -> None:
    card = _write_card(tmp_path, "mycard", "2")
    sha = hashlib.sha256(card.read_bytes()).hexdigest()
    card.write_text(card.read_text() + "\n", encoding="utf-8")  # changed after it was pinned
    text = _pinned(SMALL, "mycard@2", sha)
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy_file(policy_path)
    [p] = info.value.problems
    assert info.value.source == str(policy_path)
    assert p.where == "score.scorecard"
    assert "does not match" in p.message and sha[:12] in p.message
    assert (p.line, p.column) == locate(text, "mycard@2")
    assert str(policy_path) in str(info.value)


def test_pin_on_a_builtin_scorecard() -> None:
    sha = hashlib.sha256((BUILTIN_DIR / "starter@1.json").read_bytes()).hexdigest()
    assert load_policy_text(_pinned(SMALL, "starter@1", sha)).scorecard.content_hash == sha
    p = only_problem(_pinned(SMALL, "starter@1", "ab" * 32))  # "0" * 64 would be a YAML int
    assert "does not match" in p.message


def test_scorecard_file_holding_another_version(tmp_path: Path) -> None:
    card = _write_card(tmp_path, "mycard", "2")
    card.rename(tmp_path / "mycard@3.json")
    p = only_problem(_pinned(SMALL, "mycard@3", None), model_dirs=[tmp_path])
    assert "holds mycard@2, not mycard@3" in p.message


def test_scorecard_over_an_unknown_feature(tmp_path: Path) -> None:
    data = json.loads(STARTER_JSON)
    data["characteristics"][0]["feature"] = "monthly_incom"
    data["characteristics"][1]["reason"] = "NO_SUCH_REASON"
    _write_card(tmp_path, "mycard", "2", characteristics=data["characteristics"])
    problems = problems_of(_pinned(SMALL, "mycard@2", None), model_dirs=[tmp_path])
    messages = [p.message for p in problems]
    assert all(p.where == "score.scorecard" for p in problems)
    assert any("unknown feature 'monthly_incom'" in m for m in messages)
    assert any("unknown reason code 'NO_SUCH_REASON'" in m for m in messages)


def test_invalid_scorecard_json(tmp_path: Path) -> None:
    (tmp_path / "mycard@2.json").write_text("{not json", encoding="utf-8")
    p = only_problem(_pinned(SMALL, "mycard@2", None), model_dirs=[tmp_path])
    assert "not valid JSON" in p.message


def test_several_problems_are_reported_together() -> None:
    text = edit(SMALL, "when: age < 18\n", "when: agee < 18\n")
    text = edit(text, "reason: INCOME_TOO_LOW", "reason: NOPE")
    text = edit(text, "when: has_device_id == false", "when: has_device_id == 'no'")
    text = edit(text, "scorecard: starter@1", "scorecard: missing@1")
    problems = problems_of(text)
    assert [(p.where, p.rule_id) for p in problems] == [
        ("rules[0].when", "R_AGE"),
        ("rules[1].reason", "R_INCOME"),
        ("rules[2].when", "R_DEVICE"),
        ("score.scorecard", None),
    ]
    assert (problems[0].line, problems[0].column) == locate(text, "agee")
    assert (problems[1].line, problems[1].column) == locate(text, "NOPE")
    assert (problems[2].line, problems[2].column) == locate(text, "==", nth=0)
    with pytest.raises(PolicyError) as info:
        load_policy_text(text)
    assert len(str(info.value).splitlines()) == 4


def test_several_structural_problems_are_reported_together() -> None:
    text = edit(SMALL, "apr: [0.2, 0.15]", "apr: [0.36, 0.15]")
    text = edit(text, "    - [6000, 10000]\n", "")
    text = edit(text, "review_below: 600", "review_below: 500")
    text = edit(text, "max_reasons: 4\n", "max_reasons: 4\nowner: risk-team\n")
    problems = problems_of(text)
    wheres = sorted(p.where for p in problems)
    assert wheres == ["limits", "owner", "pricing", "score"]


def test_structural_and_expression_problems_are_reported_together() -> None:
    text = edit(SMALL, "apr: [0.2, 0.15]", "apr: [0.36, 0.15]")
    text = edit(text, "when: age < 18\n", "when: agee < 18\n")
    text = edit(text, "reason: INCOME_TOO_LOW", "reason: NOPE")
    problems = problems_of(text)
    by_where = {p.where: p for p in problems}
    assert set(by_where) == {"pricing", "rules[0].when", "rules[1].reason"}
    assert (by_where["rules[0].when"].line, by_where["rules[0].when"].column) == locate(text, "agee")
    assert by_where["rules[1].reason"].rule_id == "R_INCOME"


def test_missing_file_and_non_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_file(tmp_path / "absent.yaml")
    assert info.value.problems[0].where == "file" and "cannot read" in info.value.problems[0].message
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(SMALL.replace("small", "sm\xe4ll").encode("latin-1"))
    with pytest.raises(PolicyError) as info:
        load_policy_file(bad)
    assert "UTF-8" in info.value.problems[0].message


# ---------------------------------------------------------------------------------------------- decisions
#
# Expected values are worked out by hand from default.yaml and starter@1.json. The starter scorecard's
# most points per characteristic: income 80, debt_burden 70, recent_inquiries 60, worst_delinquency 80,
# active_loans 50, employment 50, tenure 45, bureau_file 30; base 400, so the best score is 865.

GOOD: dict[str, Any] = {
    "age": 30,
    "monthly_income": 20000,  # 80 points (top), income band 3 (20k+)
    "employment": "salaried",  # 50
    "employment_months": 60,  # 45
    "requested_amount": 40000,
    "request_to_income": 2,
    "id_number_valid": True,
    "id_age_gap": 0,
    "has_device_id": True,
    "bureau_inquiries_7d": 0,
    "bureau_inquiries_30d": 0,  # 60
    "bureau_inquiries_90d": 0,  # 30
    "bureau_active_loans": 0,  # 50
    "bureau_total_debt": 0,
    "bureau_worst_dpd": 0,  # 80
    "bureau_hit": True,
    "debt_to_income": 0.0,  # 70
}

# A thin, stretched applicant whom the score declines and no rule does:
# income 3500 → 25 (lost 55); debt_to_income 2.2 → 0 (lost 70); inquiries_30d 4 → 20 (lost 40);
# worst_dpd 10 → 45 (lost 35); active_loans 5 → 15 (lost 35); freelance → 25 (lost 25);
# employment_months 3 → 5 (lost 40); inquiries_90d 12 → 15 (lost 15). Lost 315 → score 550 < 560.
STRETCHED: dict[str, Any] = {
    **GOOD,
    "monthly_income": 3500,
    "debt_to_income": 2.2,
    "bureau_inquiries_30d": 4,
    "bureau_worst_dpd": 10,
    "bureau_active_loans": 5,
    "employment": "freelance",
    "employment_months": 3,
    "bureau_inquiries_90d": 12,
    "request_to_income": 2,
}

# Score 590 (review band, 560–600) whose limit row is all zeros:
# income 6000 → 45 (lost 35); dti 0.3 → 50 (lost 20); inquiries_30d missing → 30 (lost 30);
# worst_dpd 10 → 45 (lost 35); active_loans 5 → 15 (lost 35); employment missing → 0 (lost 50);
# employment_months 3 → 5 (lost 40); inquiries_90d 22 → 0 (lost 30). Lost 275 → 590.
BORDERLINE: dict[str, Any] = {
    **GOOD,
    "monthly_income": 6000,
    "debt_to_income": 0.3,
    "bureau_inquiries_30d": None,
    "bureau_worst_dpd": 10,
    "bureau_active_loans": 5,
    "employment": None,
    "employment_months": 3,
    "bureau_inquiries_90d": 22,
}


@pytest.fixture(scope="module")
def default_policy() -> CompiledPolicy:
    return load_default_policy()


@pytest.fixture(scope="module")
def zero_row_policy() -> CompiledPolicy:
    """The default policy with no offer below score 600, so a score review there is a capacity decline."""
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    data["version"] = "zero-row-test"
    data["limits"]["table"][0] = [0, 0, 0, 0]
    return load_policy_text(yaml.safe_dump(data), source="zero-row")


DTYPES = {FeatureType.NUMBER: pl.Float64, FeatureType.STRING: pl.String, FeatureType.BOOL: pl.Boolean}


def frame_of(policy: CompiledPolicy, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The policy's input columns for these rows (absent keys become nulls)."""
    schema = {}
    for name in policy.inputs:
        feature = FEATURES.get(name)
        assert feature is not None
        schema[name] = DTYPES[feature.type]
    return pl.DataFrame([{n: r.get(n) for n in policy.inputs} for r in rows], schema=schema, orient="row")


def decide(policy: CompiledPolicy, row: dict[str, Any]) -> PolicyResult:
    """decide_row, checked against decide_frame on the same row."""
    result = policy.decide_row(row)
    [got] = policy.decide_frame(frame_of(policy, [row])).to_dicts()
    assert got == {
        "outcome": result.outcome.value,
        "reasons": list(result.reasons),
        "limit": result.limit,
        "apr": result.apr,
        "score": result.score,
        "rule_hits": [h.id for h in result.rule_hits],
    }
    return result


def test_approve_top_band(default_policy: CompiledPolicy) -> None:
    r = decide(default_policy, GOOD)
    assert r.score == 865.0
    assert r.outcome is Outcome.APPROVE and r.score_outcome is Outcome.APPROVE
    assert r.reasons == () and r.rule_hits == ()
    assert r.limit == 50000.0  # score band 780+, income band 20k+
    assert r.apr == pytest.approx(0.1080, abs=0) and r.apr == 0.108
    assert all(line.lost == 0 for line in r.score_lines)


def test_approve_middle_band(default_policy: CompiledPolicy) -> None:
    # income 7000 → 45 (lost 35); dti 0.3 → 50 (lost 20); inquiries_30d 2 → 45 (lost 15);
    # worst_dpd 5 → 45 (lost 35); active_loans 5 → 15 (lost 35); self_employed → 40 (lost 10);
    # employment_months 30 → 35 (lost 10); inquiries_90d 0 → 30. Lost 160 → 705.
    row = {
        **GOOD,
        "monthly_income": 7000,
        "debt_to_income": 0.3,
        "bureau_inquiries_30d": 2,
        "bureau_worst_dpd": 5,
        "bureau_active_loans": 5,
        "employment": "self_employed",
        "employment_months": 30,
    }
    r = decide(default_policy, row)
    assert r.score == 705.0
    assert r.outcome is Outcome.APPROVE and r.reasons == ()
    assert r.limit == 10000.0  # score band 660–719, income band 5k–10k
    assert r.apr == 0.18  # pricing band 660–719
    assert r.score_reasons == ("SCORE_INCOME", "SCORE_DELINQUENCY")  # 35, 35 lost: ties in scorecard order


def test_missing_values_never_fire_rules(default_policy: CompiledPolicy) -> None:
    row = {**GOOD, "has_device_id": None, "id_number_valid": None, "age": None, "id_age_gap": float("nan")}
    r = decide(default_policy, row)
    assert r.outcome is Outcome.APPROVE and r.rule_hits == ()
    assert r.limit == 50000.0


def test_decline_by_rules_gives_reasons_in_policy_order(default_policy: CompiledPolicy) -> None:
    # student → 0 (lost 50), worst_dpd 95 → 0 (lost 80): score 735, which alone would approve
    row = {**GOOD, "bureau_worst_dpd": 95, "has_device_id": False, "employment": "student", "age": 17}
    r = decide(default_policy, row)
    assert r.score == 735.0 and r.score_outcome is Outcome.APPROVE
    assert r.outcome is Outcome.DECLINE
    assert [h.id for h in r.rule_hits] == ["ELIG_AGE", "ELIG_EMPLOYMENT", "DEVICE_ABSENT", "BUREAU_SEVERE_DPD"]
    # only the rules whose action is the outcome give reasons; the score gave the same outcome? no → none
    assert r.reasons == ("AGE_OUT_OF_RANGE", "EMPLOYMENT_NOT_ELIGIBLE", "BUREAU_SERIOUS_DELINQUENCY")
    assert r.limit is None and r.apr is None


def test_review_by_rules_keeps_limit_and_price(default_policy: CompiledPolicy) -> None:
    row = {**GOOD, "id_age_gap": 3, "bureau_inquiries_7d": 4}
    r = decide(default_policy, row)
    assert r.outcome is Outcome.REVIEW and r.score == 865.0
    assert [h.id for h in r.rule_hits] == ["ID_AGE_GAP", "MULTI_HEAD_WATCH"]
    assert r.reasons == ("ID_AGE_MISMATCH", "MULTI_HEAD_RECENT_INQUIRIES")
    assert r.limit == 50000.0 and r.apr == 0.108


def test_review_rule_boundaries(default_policy: CompiledPolicy) -> None:
    assert decide(default_policy, {**GOOD, "id_age_gap": 1}).outcome is Outcome.APPROVE  # > 1, not ≥
    assert decide(default_policy, {**GOOD, "bureau_inquiries_7d": 6}).reasons == ("MULTI_HEAD_RECENT_INQUIRIES",)
    assert decide(default_policy, {**GOOD, "bureau_inquiries_7d": 6}).outcome is Outcome.DECLINE
    assert decide(default_policy, {**GOOD, "age": 65}).outcome is Outcome.APPROVE
    assert decide(default_policy, {**GOOD, "age": 65.5}).outcome is Outcome.DECLINE
    assert decide(default_policy, {**GOOD, "bureau_worst_dpd": 90}).reasons[0] == "BUREAU_SERIOUS_DELINQUENCY"
    r = decide(default_policy, {**GOOD, "bureau_worst_dpd": 89})
    assert r.outcome is Outcome.REVIEW and r.reasons == ("BUREAU_RECENT_DELINQUENCY",)


def test_score_decline_gives_score_reasons_by_points_lost(default_policy: CompiledPolicy) -> None:
    r = decide(default_policy, STRETCHED)
    assert r.score == 550.0
    assert r.rule_hits == ()
    assert r.outcome is Outcome.DECLINE and r.score_outcome is Outcome.DECLINE
    # debt_burden lost 70 and income 55: most points lost first, not scorecard order
    assert r.reasons == ("SCORE_DEBT_BURDEN", "SCORE_INCOME")
    assert r.limit is None and r.apr is None
    lost = {line.name: line.lost for line in r.score_lines}
    assert lost == {
        "income": 55,
        "debt_burden": 70,
        "recent_inquiries": 40,
        "worst_delinquency": 35,
        "active_loans": 35,
        "employment": 25,
        "tenure": 40,
        "bureau_file": 15,
    }


def test_rule_and_score_decline_put_rule_reasons_first(default_policy: CompiledPolicy) -> None:
    # income 1500 → 0 (lost 80) and ELIG_INCOME fires; score 525
    r = decide(default_policy, {**STRETCHED, "monthly_income": 1500})
    assert r.score == 525.0
    assert [h.id for h in r.rule_hits] == ["ELIG_INCOME"]
    assert r.reasons == ("INCOME_TOO_LOW", "SCORE_INCOME", "SCORE_DEBT_BURDEN")


def test_capacity_decline_when_limit_is_under_min_limit(zero_row_policy: CompiledPolicy) -> None:
    r = decide(zero_row_policy, BORDERLINE)
    assert r.score == 590.0
    assert r.score_outcome is Outcome.REVIEW
    assert r.outcome is Outcome.DECLINE
    assert r.reasons == (CAPACITY_REASON,)
    assert r.limit is None and r.apr is None
    assert r.score_reasons == ("SCORE_EMPLOYMENT", "SCORE_EMPLOYMENT")  # employment 50, tenure 40


def test_capacity_decline_drops_review_reasons(zero_row_policy: CompiledPolicy) -> None:
    r = decide(zero_row_policy, {**BORDERLINE, "id_age_gap": 4})
    assert [h.id for h in r.rule_hits] == ["ID_AGE_GAP"]
    assert r.outcome is Outcome.DECLINE and r.reasons == (CAPACITY_REASON,)


def test_max_reasons_caps_the_reasons(default_policy: CompiledPolicy) -> None:
    row = {
        **GOOD,
        "age": 70,
        "employment": "unemployed",
        "monthly_income": 1500,
        "id_number_valid": False,
        "bureau_worst_dpd": 120,
        "bureau_active_loans": 12,
    }
    r = decide(default_policy, row)
    assert [h.id for h in r.rule_hits] == [
        "ELIG_AGE",
        "ELIG_EMPLOYMENT",
        "ELIG_INCOME",
        "ID_CHECKSUM",
        "BUREAU_SEVERE_DPD",
        "BUREAU_MANY_LOANS",
    ]
    assert r.outcome is Outcome.DECLINE
    assert r.reasons == ("AGE_OUT_OF_RANGE", "EMPLOYMENT_NOT_ELIGIBLE", "INCOME_TOO_LOW", "ID_NUMBER_INVALID")
    two = load_policy_text(edit(DEFAULT_TEXT, "max_reasons: 4\n", "max_reasons: 2\n"))
    assert decide(two, row).reasons == ("AGE_OUT_OF_RANGE", "EMPLOYMENT_NOT_ELIGIBLE")


def _variant(**top: Any) -> dict[str, Any]:
    doc = yaml.safe_load(DEFAULT_TEXT)
    doc.update(top)
    return doc


def test_repeated_reason_codes_are_dropped_before_the_cap() -> None:
    doc = _variant(max_reasons=3)
    doc["rules"] += [
        {
            "id": "EXTRA_INQ",
            "when": "bureau_inquiries_7d >= 7",
            "action": "decline",
            "reason": "MULTI_HEAD_RECENT_INQUIRIES",
        },
        {"id": "EXTRA_LOW_INCOME", "when": "monthly_income < 3000", "action": "decline", "reason": "SCORE_INCOME"},
    ]
    policy = load_policy_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    # income 2500 → 0 (lost 80): STRETCHED's 550 - 25 = 525; score reasons income (80), debt_burden (70)
    r = decide(policy, {**STRETCHED, "monthly_income": 2500, "bureau_inquiries_7d": 8})
    assert r.score == 525.0
    assert [h.id for h in r.rule_hits] == ["MULTI_HEAD_7D", "EXTRA_INQ", "EXTRA_LOW_INCOME"]
    assert r.reasons == ("MULTI_HEAD_RECENT_INQUIRIES", "SCORE_INCOME", "SCORE_DEBT_BURDEN")


def test_income_multiple_cap_and_rounding() -> None:
    doc = _variant()
    doc["limits"]["income_multiple_cap"] = 0.3333
    policy = load_policy_text(yaml.safe_dump(doc, sort_keys=False))
    r = decide(policy, GOOD)
    assert r.limit == 6600.0  # min(50000, 20000 × 0.3333 = 6666) rounded down to 100
    r = decide(policy, {**GOOD, "monthly_income": None})  # no income: band 0 and no cap; income scores 0
    assert r.score == 785.0 and r.limit == 10000.0
    doc["limits"]["rounding"] = 1000
    r = decide(load_policy_text(yaml.safe_dump(doc, sort_keys=False)), GOOD)
    assert r.limit == 6000.0


def test_decide_frame_decides_many_rows_like_decide_row(zero_row_policy: CompiledPolicy) -> None:
    default_policy = zero_row_policy
    rows = [GOOD, STRETCHED, BORDERLINE, {**GOOD, "age": 17}, {**GOOD, "id_age_gap": 2}, {}]
    out = default_policy.decide_frame(frame_of(default_policy, rows))
    assert out.columns == ["outcome", "reasons", "limit", "apr", "score", "rule_hits"]
    assert out["outcome"].to_list() == [default_policy.decide_row(r).outcome.value for r in rows]
    assert out["outcome"].to_list() == ["approve", "decline", "decline", "decline", "review", "decline"]


def test_decide_frame_requires_every_input_column(default_policy: CompiledPolicy) -> None:
    with pytest.raises(ValueError, match="lacks feature column"):
        default_policy.decide_frame(pl.DataFrame({"age": [30]}))


def test_default_policy_offers_a_small_line_to_a_score_review(default_policy: CompiledPolicy) -> None:
    r = decide(default_policy, BORDERLINE)
    assert r.score_outcome is Outcome.REVIEW and r.outcome is Outcome.REVIEW
    assert r.limit is not None and r.limit >= default_policy.spec.limits.min_limit
