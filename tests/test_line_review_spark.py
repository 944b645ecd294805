"""The distributed line review: Spark in local mode, partition by partition, gives exactly the one-machine result."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from fengkong.lines.strategy import line_strategy
from fengkong.policy.loader import load_default_policy
from fengkong.simulate.portfolio import portfolio_frame

IN_CI = os.environ.get("CI") == "true"
AS_OF = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None:
        if IN_CI:
            pytest.fail("Java is not installed but CI=true: .ci/run must install a Java runtime for Spark")
        pytest.skip("Spark needs a Java runtime (java is not on PATH)")
    from fengkong.lines.distributed import local_spark

    session = local_spark(2)
    yield session
    session.stop()


def test_spark_gives_exactly_the_one_machine_result(spark: Any) -> None:
    from fengkong.lines.distributed import review_spark

    policy = load_default_policy()
    lines = portfolio_frame(30_000, seed=11, as_of=AS_OF).drop("bad_next_12m")
    frame = spark.createDataFrame(lines.to_arrow()).repartition(5)  # rows scattered over partitions
    got = pl.from_arrow(review_spark(frame, policy, AS_OF).toArrow())
    assert isinstance(got, pl.DataFrame)
    want = line_strategy(policy).review_frame(lines, AS_OF)
    assert got.height == want.height == 30_000
    assert got.sort("line_id").equals(want.sort("line_id"))
    # the result is not trivially equal: it holds every kind of action
    assert set(got["action"]) >= {"increase", "decrease", "freeze", "close", "unfreeze", "keep", "skip"}


def test_an_empty_partition_and_a_bad_table_are_handled(spark: Any) -> None:
    from fengkong.lines.distributed import review_spark

    policy = load_default_policy()
    lines = portfolio_frame(50, seed=2, as_of=AS_OF).drop("bad_next_12m")
    frame = spark.createDataFrame(lines.to_arrow()).repartition(8)  # more partitions than some rows fill
    assert review_spark(frame, policy, AS_OF).count() == 50
    broken = spark.createDataFrame(lines.drop("line_risk_events_30d").to_arrow())
    with pytest.raises(Exception, match="line_risk_events_30d"):
        review_spark(broken, policy, AS_OF).collect()
