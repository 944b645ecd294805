"""Line review on Apache Spark, partition by partition, with the very function one machine uses.

``review_spark`` sends each partition, as Arrow record batches (``DataFrame.mapInArrow``), through
``LineStrategy.review_frame``: Spark only moves the rows. What travels to the executors is the policy's
``lines:`` section as JSON text and the review date, so executors need fengkong installed, not the
database or the model registry. A test runs it in local mode and checks it gives exactly the one-machine result.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import polars as pl

from fengkong.features.registry import FEATURES
from fengkong.lines.strategy import OUTPUT_SCHEMA, LineStrategy
from fengkong.models.scorecard import resolve_scorecard
from fengkong.policy.schema import LinesSpec

if TYPE_CHECKING:
    from fengkong.policy.compiler import CompiledPolicy


@functools.lru_cache(maxsize=8)
def _strategy(policy_version: str, lines_json: str, rounding: float) -> LineStrategy:
    """One compiled strategy per executor process and policy, however many partitions it handles."""
    spec = LinesSpec.model_validate_json(lines_json)
    card = resolve_scorecard(spec.behaviour_scorecard) if spec.behaviour_scorecard else None
    return LineStrategy(policy_version, spec.segments, spec.guardrails, card, rounding, FEATURES)


def review_batches(
    batches: Iterable[Any], policy_version: str, lines_json: str, rounding: float, as_of: dt.date
) -> Iterator[Any]:
    """Review Arrow record batches; yields record batches in the Arrow schema of ``arrow_schema()``."""
    import pyarrow as pa  # type: ignore[import-untyped]

    strategy = _strategy(policy_version, lines_json, rounding)
    target = arrow_schema()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        frame = pl.from_arrow(pa.Table.from_batches([batch]))
        assert isinstance(frame, pl.DataFrame)
        result = strategy.review_frame(frame, as_of).to_arrow().cast(target)
        yield from result.to_batches()


def arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {
        pl.String(): pa.string(),
        pl.Float64(): pa.float64(),
        pl.Date(): pa.date32(),
        pl.Boolean(): pa.bool_(),
        pl.List(pl.String()): pa.list_(pa.string()),
    }
    return pa.schema([pa.field(name, kinds[dtype]) for name, dtype in OUTPUT_SCHEMA.items()])


def spark_schema() -> Any:
    from pyspark.sql import types as T

    kinds = {
        pl.String(): T.StringType(),
        pl.Float64(): T.DoubleType(),
        pl.Date(): T.DateType(),
        pl.Boolean(): T.BooleanType(),
        pl.List(pl.String()): T.ArrayType(T.StringType()),
    }
    return T.StructType([T.StructField(name, kinds[dtype], True) for name, dtype in OUTPUT_SCHEMA.items()])


def review_spark(lines: Any, policy: CompiledPolicy, as_of: dt.date) -> Any:
    """Review a Spark DataFrame of lines (the columns of ``review_frame``); returns a Spark DataFrame."""
    version = policy.version
    lines_json = policy.spec.lines.model_dump_json()
    rounding = float(policy.spec.limits.rounding)

    def run(batches: Iterable[Any]) -> Iterator[Any]:
        return review_batches(batches, version, lines_json, rounding, as_of)

    return lines.mapInArrow(run, spark_schema())


def local_spark(cores: int = 2) -> Any:
    """A local-mode Spark session whose Python workers run this interpreter (so they can import fengkong)."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("fengkong-line-review")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(cores * 2))
        .getOrCreate()
    )
