"""The outcome column of a lines table (``bad`` / ``bad_next_12m``) holds 0, 1 or nothing: any other value is
refused by column name before a figure is computed or a file written, wherever the table comes in (the
side-by-side comparison, ``policy simulate --lines``, ``lines review --lines``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from fengkong.cli import app
from fengkong.errors import FengkongError
from fengkong.lines.compare import compare_line_strategies, outcomes_of
from fengkong.lines.review import summarise
from fengkong.lines.strategy import line_strategy
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy
from fengkong.policy.simulate import simulate
from fengkong.simulate.history import history_frame
from fengkong.simulate.portfolio import AS_OF, portfolio_frame

SECRET = "test-secret-key-0123456789abcdef-0123456789"
FRAME = portfolio_frame(600, seed=8)
POLICY = load_default_policy()


def _with(column: str, values: list[Any], dtype: Any = None) -> pl.DataFrame:
    """FRAME with ``column``'s first rows replaced by ``values``."""
    series = FRAME.get_column("bad_next_12m")
    head = pl.Series(column, values, dtype=dtype or series.dtype, strict=False)
    tail = series.slice(len(values)).cast(head.dtype).alias(column)
    return FRAME.drop("bad_next_12m").with_columns(pl.concat([head, tail]))


@pytest.mark.parametrize(
    ("values", "dtype", "says"),
    [
        ([2], pl.Int64, "found 1 other value(s), e.g. 2"),
        ([-1, 0, 7], pl.Int64, "found 2 other value(s), e.g. -1, 7"),
        ([0.5, 1.0], pl.Float64, "e.g. 0.5"),  # once read as 0 by a cast, silently
        ([1_000_000], pl.Int64, "e.g. 1000000"),
        (["yes", "no"], pl.String, "it holds String values, e.g. 'yes', 'no'"),
    ],
)
def test_an_outcome_other_than_0_or_1_is_refused_naming_the_column(values: list[Any], dtype: Any, says: str) -> None:
    for column in ("bad_next_12m", "bad"):
        table = _with(column, values, dtype)
        if dtype == pl.String:
            table = table.with_columns(pl.col(column).cast(pl.String))
        with pytest.raises(FengkongError) as err:
            compare_line_strategies(POLICY, POLICY, table, AS_OF)
        assert (err.value.code, err.value.field, err.value.status) == ("invalid_value", column, 422)
        assert err.value.message.startswith(f"column {column}: outcomes must be 0") and says in err.value.message
        # the policy simulation door refuses it the same way, after nothing but checks
        with pytest.raises(FengkongError) as err:
            simulate(POLICY, POLICY, history_frame(50), lines=table, as_of=AS_OF)
        assert err.value.field == column


def test_empty_outcomes_are_left_out_and_0_1_in_any_type_count_the_same() -> None:
    """Nulls (and NaN, as pandas writes a missing float) are lines not matured yet; booleans and floats 0/1 are
    outcomes like integers."""
    want = compare_line_strategies(POLICY, POLICY, FRAME, AS_OF)["current"]["outcomes"]
    as_float = FRAME.with_columns(pl.col("bad_next_12m").cast(pl.Float64))
    as_bool = FRAME.with_columns(pl.col("bad_next_12m").cast(pl.Boolean))
    for table in (as_float, as_bool):
        assert compare_line_strategies(POLICY, POLICY, table, AS_OF)["current"]["outcomes"] == want
    n = 100
    missing = _with("bad_next_12m", [None] * n)
    nan = as_float.with_columns(
        pl.when(pl.int_range(pl.len()) < n).then(float("nan")).otherwise(pl.col("bad_next_12m")).alias("bad_next_12m")
    )
    result = line_strategy(POLICY).review_frame(FRAME, AS_OF)
    matured = FRAME.slice(n).select("line_id", pl.col("bad_next_12m").alias("bad"))
    expected = summarise(result, POLICY.version, AS_OF, matured).as_dict()["outcomes"]
    for table in (missing, nan):
        got = compare_line_strategies(POLICY, POLICY, table, AS_OF)["current"]["outcomes"]
        assert got == expected and got["bad_total"] + got["good_total"] == FRAME.height - n
    # "bad" comes first when both are there; no column: no outcomes
    both = FRAME.with_columns(pl.lit(0).alias("bad"))
    frame = outcomes_of(both)
    assert frame is not None and frame["bad"].sum() == 0
    assert outcomes_of(FRAME.drop("bad_next_12m")) is None


def test_the_command_lines_refuse_it_and_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FENGKONG_DATABASE_URL", f"sqlite:///{tmp_path / 'f.db'}")
    monkeypatch.setenv("FENGKONG_SECRET_KEY", SECRET)
    bad = tmp_path / "half.parquet"
    _with("bad_next_12m", [0.5], pl.Float64).write_parquet(bad)
    history = tmp_path / "hist.parquet"
    history_frame(200, seed=3).write_parquet(history)
    runner = CliRunner()
    plan, report = tmp_path / "plan.parquet", tmp_path / "report.md"
    r = runner.invoke(
        app, ["lines", "review", "--lines", str(bad), "--json", "--out", str(plan), "--report", str(report)]
    )
    assert r.exit_code == 1 and json.loads(r.output)["field"] == "bad_next_12m", r.output
    assert "0.5" in json.loads(r.output)["message"]
    rep = tmp_path / "rep"
    args = ["policy", "simulate", str(DEFAULT_POLICY_PATH), "--applications", str(history), "--lines", str(bad)]
    r = runner.invoke(app, [*args, "--as-of", AS_OF.isoformat(), "--json", "--report", str(rep)])
    assert r.exit_code == 1 and json.loads(r.stdout)["field"] == "bad_next_12m", r.output
    assert not plan.exists() and not report.exists() and not rep.exists()
