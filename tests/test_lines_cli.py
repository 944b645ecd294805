"""`fengkong lines ...` from the command line: review (dry run, --apply, --due, --policy, --lines, --out), run,
scheduler, portfolio, act; exit code 1 and the field named on every bad input, with nothing written."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
from typer.testing import CliRunner

from fengkong.cli import app
from fengkong.lines.review import summarise
from fengkong.lines.strategy import line_strategy
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_default_policy
from fengkong.simulate.portfolio import portfolio_frame
from test_lines import _portfolio, approved, snapshot, today

AS_OF = dt.date(2026, 11, 23)


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_review_dry_run_then_apply_with_its_plan_and_run(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Path
) -> None:
    engine, url = sqlite_engine, sqlite_engine.database_url
    ids = _portfolio(engine, application, 4)  # customers 0 and 2 are cut for multi-head growth
    before = snapshot(engine)
    r = run("lines", "review", "--database-url", url)
    assert r.exit_code == 0, r.output
    assert "decrease" in r.output and "LINE_MULTI_HEAD_GROWTH" in r.output and "dry run" in r.output
    assert snapshot(engine) == before

    r = run("lines", "review", "--apply", "--json", "--out", str(tmp_path / "plan.csv"), "--database-url", url)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["applied"], out["skipped"], out["resumed"], out["actions"]["decrease"]) == (2, 0, False, 2)
    assert out["exposure"]["limit_after"] < out["exposure"]["limit_before"]
    assert out["exposure"]["available_after"] < out["exposure"]["available_before"]
    assert sorted(out["first_time"]["sample"]) == sorted([ids[0], ids[2]]) and out["first_time"]["lines"] == 2
    plan = pl.read_csv(tmp_path / "plan.csv")
    assert plan.height == 4
    assert sorted(plan.filter(pl.col("first_time"))["line_id"].to_list()) == sorted([ids[0], ids[2]])
    cut = plan.filter(pl.col("action") == "decrease")["reasons"].to_list()
    assert len(cut) == 2 and all(r.split(";")[0] == "LINE_MULTI_HEAD_GROWTH" for r in cut)
    for lid in (ids[0], ids[2]):
        assert engine.lines.get(lid)["history"][-1]["review_run_id"] == out["run_id"]

    r = run("lines", "run", out["run_id"], "--json", "--database-url", url)
    assert r.exit_code == 0 and json.loads(r.output)["lines_acted"] == 2
    r = run("lines", "run", out["run_id"], "--database-url", url)
    assert f"{out['run_id']} [completed]" in r.output
    r = run("lines", "show", ids[0], "--database-url", url)
    assert "[active]" in r.output and "decrease" in r.output


def test_bad_inputs_exit_1_name_the_field_and_write_nothing(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Path
) -> None:
    engine, url = sqlite_engine, sqlite_engine.database_url
    line = approved(engine, application, "c-cli-bad")
    lid, limit = line["line_id"], line["limit"]
    bad_policy = tmp_path / "typo.yaml"
    bad_policy.write_text(
        DEFAULT_POLICY_PATH.read_text().replace("when: line_inquiries_growth >= 6", "when: line_inquiries_grwth >= 6")
    )
    future = (today() + dt.timedelta(days=3)).isoformat()
    before = snapshot(engine)
    cases = [
        (["review", "--policy", str(bad_policy)], "line_inquiries_grwth", "lines.segments[3].when"),
        (["review", "--policy", str(DEFAULT_POLICY_PATH), "--apply"], "dry run only", "policy"),
        (["review", "--apply", "--as-of", future], "future date", "as_of"),
        (["review", "--as-of", "2026-02-30"], "is not a date", "as_of"),
        (["review", "--resume", "rev_nope"], "rev_nope", "resume"),
        (["review", "--apply", "--chunk-size", "0"], "chunk_size", "chunk_size"),
        (["review", "--lines", str(tmp_path / "none.parquet")], "no such file", "lines"),
        (["act", lid, "decrease", "--new-limit", "-5", "--note", "n"], "finite amount", "new_limit"),
        (["act", lid, "increase", "--new-limit", str(limit * 9), "--note", "n"], "max_", "new_limit"),
        (["act", lid, "freeze", "--note", "n", "--reason", "NOT_A_CODE"], "NOT_A_CODE", "reasons"),
        (["act", lid, "unfreeze", "--note", "n"], "cannot unfreeze", "action"),
        (["run", "rev_nope"], "rev_nope", "run_id"),
    ]
    for args, text, field in cases:
        r = run("lines", *args, "--json", "--database-url", url)
        assert r.exit_code == 1, (args, r.output)
        body = json.loads(r.output)
        fields = {body.get("field")} | {e.get("field") for e in body.get("errors") or []}
        assert text in r.output and field in fields, (args, body)
        assert snapshot(engine) == before, args
    r = run("lines", "review", "--policy", str(bad_policy), "--database-url", url)  # and without --json
    assert r.exit_code == 1 and "did you mean 'line_inquiries_growth'" in r.output


def test_a_candidate_policy_is_dry_run_over_the_live_lines(
    sqlite_engine: Any, application: dict[str, Any], tmp_path: Path
) -> None:
    engine, url = sqlite_engine, sqlite_engine.database_url
    _portfolio(engine, application, 4)
    gentler = tmp_path / "gentle.yaml"
    text = DEFAULT_POLICY_PATH.read_text().replace('version: "2026.11.5"', 'version: "2026.11.5-gentle"')
    gentler.write_text(text.replace("when: line_inquiries_growth >= 6", "when: line_inquiries_growth >= 60"))
    before = snapshot(engine)
    r = run("lines", "review", "--policy", str(gentler), "--json", "--database-url", url)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert (out["policy_version"], out["actions"]["decrease"], out["run_id"]) == ("2026.11.5-gentle", 0, None)
    assert snapshot(engine) == before


def test_a_simulated_portfolio_gives_the_over_restriction_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fk.db'}"
    path = tmp_path / "pf.parquet"
    r = run("lines", "portfolio", "--rows", "3000", "--seed", "4", "--as-of", AS_OF.isoformat(), "--out", str(path))
    assert r.exit_code == 0, r.output
    frame = pl.read_parquet(path)
    assert frame.equals(portfolio_frame(3000, seed=4, as_of=AS_OF))
    r = run("lines", "review", "--lines", str(path), "--as-of", AS_OF.isoformat(), "--json", "--database-url", url)
    assert r.exit_code == 0, r.output
    o = json.loads(r.output)["outcomes"]
    policy = load_default_policy()
    result = line_strategy(policy).review_frame(frame, AS_OF)
    want = summarise(result, policy.version, AS_OF, frame.select("line_id", pl.col("bad_next_12m").alias("bad")))
    assert want.outcomes is not None
    assert (o["restricted"], o["restricted_good"], o["restricted_bad"]) == (
        want.outcomes.restricted,
        want.outcomes.restricted_good,
        want.outcomes.restricted_bad,
    )
    restricted = result.join(frame, on="line_id").filter(pl.col("action").is_in(["decrease", "freeze", "close"]))
    assert o["restricted_good"] == restricted.filter(pl.col("bad_next_12m") == 0).height > 0
    r = run("lines", "review", "--lines", str(path), "--as-of", AS_OF.isoformat(), "--database-url", url)
    assert "later performed well" in r.output
    # CSV works the same; a table missing a column, or with text where a number belongs, is refused by name
    frame.write_csv(tmp_path / "pf.csv")
    r = run(
        "lines",
        "review",
        "--lines",
        str(tmp_path / "pf.csv"),
        "--as-of",
        AS_OF.isoformat(),
        "--json",
        "--database-url",
        url,
    )
    assert r.exit_code == 0 and json.loads(r.output)["outcomes"] == o
    frame.drop("line_income_change").write_parquet(tmp_path / "short.parquet")
    frame.with_columns(pl.lit("lots").alias("outstanding")).write_parquet(tmp_path / "text.parquet")
    frame.with_columns(pl.lit(2).alias("bad_next_12m")).write_parquet(tmp_path / "badtruth.parquet")
    for name, field in (("short", "line_income_change"), ("text", "outstanding"), ("badtruth", "bad_next_12m")):
        r = run("lines", "review", "--lines", str(tmp_path / f"{name}.parquet"), "--json", "--database-url", url)
        assert r.exit_code == 1 and json.loads(r.output)["field"] == field, r.output
    r = run("lines", "review", "--lines", str(path), "--apply", "--json", "--database-url", url)
    assert r.exit_code == 1 and json.loads(r.output)["field"] == "lines"


def test_scheduler_once_reviews_the_due_frozen_lines(sqlite_engine: Any, application: dict[str, Any]) -> None:
    import sqlalchemy as sa

    from fengkong.store.tables import credit_lines

    engine, url = sqlite_engine, sqlite_engine.database_url
    line = approved(engine, application, "c-cli-due")
    engine.lines.act(line["line_id"], "freeze", actor="ana", note="check", reasons=["LINE_RISK_EVENTS"])
    r = run("lines", "scheduler", "--once", "--json", "--database-url", url)
    assert r.exit_code == 0 and json.loads(r.output)["due"] == 0
    with engine.db.begin() as conn:
        conn.execute(sa.update(credit_lines).values(review_due_on=today()))
    r = run("lines", "review", "--due", "--json", "--database-url", url)
    assert json.loads(r.output)["scope"] == "due" and json.loads(r.output)["actions"]["unfreeze"] == 1
    r = run("lines", "scheduler", "--once", "--json", "--database-url", url)
    tick = json.loads(r.output)
    assert r.exit_code == 0 and (tick["due"], tick["applied"]) == (1, 1)
    assert engine.lines.get(line["line_id"])["status"] == "active"
