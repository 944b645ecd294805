"""The one check of a realised-outcome column (1 went bad, 0 performed well, empty not matured), shared by the
application simulation and the line review comparison so both read and refuse outcomes the same way."""

from __future__ import annotations

import polars as pl


def outcome_values(raw: pl.Series) -> tuple[pl.Series, str | None]:
    """``raw`` as Float64 0/1/null (booleans as 1/0, NaN from pandas as null), and what is wrong with it (None
    when nothing is). Anything but 0, 1 and empty (2, 0.5, "yes") would silently count a row as neither good nor
    bad, or as the wrong one, so the caller refuses it, naming its own field."""
    if not (raw.dtype.is_numeric() or raw.dtype == pl.Boolean or raw.dtype == pl.Null):
        examples = ", ".join(repr(v) for v in raw.drop_nulls().unique(maintain_order=True).head(3))
        return pl.Series(raw.name, [None] * len(raw), dtype=pl.Float64), f"it holds {raw.dtype} values, e.g. {examples}"
    values = raw.cast(pl.Float64)
    values = values.fill_nan(None) if raw.dtype.is_float() else values
    wrong = values.is_not_null() & ~values.is_in([0.0, 1.0])
    if wrong.any():
        examples = ", ".join(_plain(v) for v in values.filter(wrong).unique().sort().head(3).to_list())
        return values, f"found {int(wrong.sum()):,} other value(s), e.g. {examples}"
    return values, None


def _plain(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
