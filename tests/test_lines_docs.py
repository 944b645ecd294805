"""docs/lines.md names the features the registry has: the features table is the registry's `line` and `drawdown`
groups, with their types, and the drawdowns section names every drawdown feature and every feature the default
policy's drawdown rules read."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from fengkong.features.registry import FEATURES
from fengkong.policy.loader import DEFAULT_POLICY_PATH

DOC = (Path(__file__).resolve().parent.parent / "docs" / "lines.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else len(DOC)]


def test_the_features_table_is_the_registrys_line_and_drawdown_groups() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| (\w+) \|", _section("Features"), flags=re.M)
    documented = {name: (group, kind) for name, group, kind in rows}
    assert len(documented) == len(rows)  # each feature once
    registry = {f.name: (f.group, f.type.value) for f in FEATURES if f.group in ("line", "drawdown")}
    assert documented == registry


def test_the_drawdowns_section_names_every_feature_drawdown_rules_read() -> None:
    named = set(re.findall(r"`(\w+)`", _section("Drawdowns")))
    drawdown = {f.name for f in FEATURES if f.group == "drawdown"}
    assert "drawdown_new_device" in drawdown
    assert drawdown <= named, drawdown - named
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    read = {
        word
        for rule in policy["lines"]["drawdowns"]["rules"]
        for word in re.findall(r"[a-z_][a-z0-9_]*", rule["when"])
        if word in FEATURES
    }
    assert read - {"customer_protected", "list_blacklist_hit", "list_watchlist_hit"} <= named, read - named
