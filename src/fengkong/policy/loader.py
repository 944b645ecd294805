"""Load a policy file: parse YAML, check its structure and meaning, compile it. Every problem is reported
with the file, line and column, the rule id and what to change; a policy with any problem is not loaded."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fengkong.features.registry import FEATURES, FeatureRegistry, FeatureType
from fengkong.models.base import ModelResolver, resolve_model
from fengkong.models.scorecard import ScorecardError, resolve_scorecard
from fengkong.policy import expressions as ex
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.errors import ExpressionError, PolicyError, PolicyProblem
from fengkong.policy.schema import DuplicateRuleIdError, PolicySpec
from fengkong.reasons import is_known

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_POLICY_PATH = BUNDLED_DIR / "default.yaml"

Path_ = tuple[str | int, ...]


def load_policy_file(
    path: str | Path, features: FeatureRegistry = FEATURES, models: ModelResolver | None = None
) -> CompiledPolicy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), [PolicyProblem("file", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise PolicyError(str(path), [PolicyProblem("file", "is not UTF-8 text")]) from None
    return load_policy_text(text, source=str(path), features=features, model_dirs=(path.parent,), models=models)


def load_policy_text(
    text: str,
    source: str = "<policy>",
    features: FeatureRegistry = FEATURES,
    model_dirs: Sequence[Path] = (),
    models: ModelResolver | None = None,
) -> CompiledPolicy:
    """``models``: the registry's resolver (the engine supplies it), so ``score.scorecard`` may name a registered
    scorecard or GBDT; without it only scorecard files beside the policy or bundled with fengkong resolve."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(source, [PolicyProblem("yaml", f"bad YAML: {what}", line=line, column=col)]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, [PolicyProblem("document", "a policy is a YAML mapping (key: value) at top level")])
    positions, key_positions = _positions(root)

    def problem(
        where: Path_, message: str, rule_id: str | None = None, offset: int | None = None, at_key: bool = False
    ) -> PolicyProblem:
        line, col, plain = (key_positions if at_key else positions).get(where, (None, None, False))
        if offset is not None:
            if line is not None and col is not None and plain:
                col += offset
            elif line is None:
                col = offset + 1
        return PolicyProblem(_render(where), message, rule_id, line, col)

    raw_rules = data.get("rules")
    rules: list[Any] = raw_rules if isinstance(raw_rules, list) else []

    def rule_id_at(where: Path_) -> str | None:
        if len(where) >= 2 and where[0] == "rules" and isinstance(where[1], int) and where[1] < len(rules):
            item = rules[where[1]]
            rule_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(rule_id, str):
                return rule_id
        return None

    problems: list[PolicyProblem] = []
    trees: list[ex.Node] = []

    trigger_trees: list[ex.Node] = []

    def check_rule(i: int, rule_id: str | None, when: Any, reason: Any, section: str = "rules") -> None:
        if isinstance(when, str) and when:
            try:
                tree = ex.parse(when)
                kind = ex.check(tree, features)
                if kind is not FeatureType.BOOL:
                    raise ExpressionError(f"a rule condition must be true or false, this one is a {kind}", 0)
                (trees if section == "rules" else trigger_trees).append(tree)
            except ExpressionError as exc:
                problems.append(problem((section, i, "when"), exc.message + f" — in: {when}", rule_id, exc.position))
        if isinstance(reason, str) and not is_known(reason):
            problems.append(problem((section, i, "reason"), f"unknown reason code {reason!r}", rule_id))

    try:
        spec = PolicySpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if isinstance(err.get("ctx", {}).get("error"), DuplicateRuleIdError):
                loc = ("rules", err["ctx"]["error"].index, "id")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check its spelling)"
            problems.append(problem(loc, msg, rule_id_at(loc), at_key=err["type"] == "extra_forbidden"))
        # the rules' conditions and reasons are still checked, so every problem is reported at once
        for i, item in enumerate(rules or []):
            if isinstance(item, dict):
                check_rule(i, rule_id_at(("rules", i)), item.get("when"), item.get("reason"))
        raise PolicyError(source, problems) from None

    for i, rule in enumerate(spec.rules):
        check_rule(i, rule.id, rule.when, rule.reason)
    for i, trigger in enumerate(spec.triggers):
        check_rule(i, trigger.id, trigger.when, trigger.reason, section="triggers")
    problems.extend(_check_line_strategy(spec, features, model_dirs, problem))
    score_key = ("score", "model" if "model" in (data.get("score") or {}) else "scorecard")

    try:
        scorecard = resolve_model(spec.score.scorecard, model_dirs, spec.score.sha256, models)
        problems.extend(problem(score_key, msg) for msg in scorecard.check_against(features))
    except ScorecardError as exc:
        problems.append(problem(score_key, str(exc)))
    if problems:
        raise PolicyError(source, problems)
    content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return CompiledPolicy(spec, trees, scorecard, features, text, content_hash, trigger_trees)


def _check_line_strategy(
    spec: PolicySpec, features: FeatureRegistry, model_dirs: Sequence[Path], problem: Any
) -> list[PolicyProblem]:
    """The ``lines:`` section: segment and drawdown-rule conditions over registered features, known reasons, and
    the behaviour scorecard."""
    found: list[PolicyProblem] = []
    conditions: list[tuple[Path_, str, str, str]] = [
        (("lines", "segments", i), s.id, s.when, s.reason) for i, s in enumerate(spec.lines.segments)
    ] + [(("lines", "drawdowns", "rules", i), r.id, r.when, r.reason) for i, r in enumerate(spec.lines.drawdowns.rules)]
    for where, item_id, when, code in conditions:
        try:
            kind = ex.check(ex.parse(when), features)
            if kind is not FeatureType.BOOL:
                raise ExpressionError(f"a condition must be true or false, this one is a {kind}", 0)
        except ExpressionError as exc:
            found.append(problem((*where, "when"), exc.message + f" — in: {when}", item_id, exc.position))
        if not is_known(code):
            found.append(problem((*where, "reason"), f"unknown reason code {code!r}", item_id))
    if spec.lines.behaviour_scorecard is not None:
        try:
            card = resolve_scorecard(spec.lines.behaviour_scorecard, model_dirs)
            found.extend(problem(("lines", "behaviour_scorecard"), m) for m in card.check_against(features))
        except ScorecardError as exc:
            found.append(problem(("lines", "behaviour_scorecard"), str(exc)))
    return found


def load_default_policy() -> CompiledPolicy:
    return load_policy_file(DEFAULT_POLICY_PATH)


def _render(where: Path_) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


def _positions(root: Any) -> tuple[dict[Path_, tuple[int, int, bool]], dict[Path_, tuple[int, int, bool]]]:
    """Map each path in the YAML document to (line, column, value is a plain one-line scalar), for the
    values and for the mapping keys (an unknown key is reported where the key is, not where its value is)."""
    out: dict[Path_, tuple[int, int, bool]] = {}
    keys: dict[Path_, tuple[int, int, bool]] = {}

    def walk(node: Any, path: Path_) -> None:
        plain = isinstance(node, yaml.ScalarNode) and node.style is None and node.start_mark.line == node.end_mark.line
        quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
        col = node.start_mark.column + 1 + (1 if quoted else 0)
        out[path] = (node.start_mark.line + 1, col, plain or quoted)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                keys[(*path, key.value)] = (key.start_mark.line + 1, key.start_mark.column + 1, False)
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    if root is not None:
        walk(root, ())
    return out, keys
