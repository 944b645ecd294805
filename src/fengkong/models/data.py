"""Training and scoring tables: read, check, split and fingerprint.

Every refusal is a FengkongError naming the column at fault, raised before anything is trained or stored.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fengkong.errors import FengkongError

MAX_CATEGORIES = 1000  # a text feature with more distinct values is refused as an identifier
# Columns named as a personal or record identifier are refused as features whatever their values: an identifier
# is no characteristic of credit risk, and its values would end up in the artefact (bins, tree thresholds).
# Names are compared lower-case with every run of other characters read as "_" ("Phone Number" → phone_number).
IDENTIFIER_NAMES = frozenset(
    {
        "id", "uuid", "id_number", "id_no", "id_card", "idcard", "identity_number", "national_id", "ssn",
        "passport", "passport_number", "phone", "phone_number", "phone_no", "mobile", "mobile_number",
        "mobile_phone", "cellphone", "tel", "email", "email_address", "e_mail", "bank_card", "bank_card_number",
        "bank_card_no", "card_number", "card_no", "account_number", "account_no", "iban", "device_id", "imei",
        "idfa", "ip", "ip_address", "name", "full_name", "first_name", "last_name", "customer_name",
        "applicant_name", "address", "home_address", "customer_id", "user_id", "applicant_id", "application_id",
        "decision_id", "loan_id", "line_id", "case_id",
    }
)  # fmt: skip
# A number whose values are whole, nearly all distinct and at least ten digits long is a phone, card or account
# number, not a measurement
IDENTIFIER_DIGITS = 1e9
MIN_CLASS_ROWS = 5  # each of the training and validation parts needs at least this many goods and bads

NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)


def _bad(code: str, message: str, field: str | None) -> FengkongError:
    return FengkongError(code, message, field, 422)


def read_table(path: str | Path, what: str = "data") -> pl.DataFrame:
    """A CSV or Parquet file as a polars frame; an unreadable, unknown or empty file is refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise _bad("unsupported_file", f"{path}: use a .csv or .parquet file", what)
    if not path.is_file():
        raise _bad("file_not_found", f"{path}: no such file", what)
    try:
        if suffix == ".csv":
            frame = pl.read_csv(path, infer_schema_length=10_000, null_values=["", "NA", "NaN", "null"])
        else:
            frame = pl.read_parquet(path)
    except pl.exceptions.NoDataError:
        raise _bad("empty_data", f"{path}: the file is empty", what) from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _bad("unreadable_file", f"{path}: cannot read it: {exc}", what) from None
    if frame.height == 0:
        raise _bad("empty_data", f"{path}: the file has a header but no rows", what)
    return frame


def write_table(frame: pl.DataFrame, path: str | Path) -> None:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise _bad("unsupported_file", f"{path}: write to a .csv or .parquet file", "out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
    except OSError as exc:
        raise unwritable(path, exc, "out") from None


def unwritable(path: Path, exc: OSError, field: str) -> FengkongError:
    """A file or folder that cannot be written (no permission, no space, a file where a folder should be)."""
    return _bad("unwritable_path", f"{path}: cannot write there: {exc.strerror or exc}", field)


def fingerprint(frame: pl.DataFrame) -> str:
    """sha256 of the table as CSV text (column names, order and every value): the same rows give the same
    fingerprint whatever file format they came in."""
    digest = hashlib.sha256()
    for start in range(0, max(frame.height, 1), 200_000):
        chunk = io.BytesIO()  # the CSV bytes as polars writes them: no Python string in between
        frame.slice(start, 200_000).write_csv(chunk, include_header=start == 0)
        digest.update(chunk.getbuffer())
    return digest.hexdigest()


def binary_target(frame: pl.DataFrame, target: str, bad_value: str | None = None) -> tuple[pl.DataFrame, int]:
    """Rows with a known outcome and the target as 0/1 (1 = bad); also how many rows had none (not matured)."""
    if target not in frame.columns:
        shown = ", ".join(frame.columns[:20]) + (" ..." if frame.width > 20 else "")
        raise _bad("target_not_found", f"the data has no column {target!r} (columns: {shown})", "target")
    column = frame[target]
    known = frame.filter(column.is_not_null())
    unmatured = frame.height - known.height
    if known.height == 0:
        raise _bad("target_all_missing", f"target {target!r} has no values (no outcome has matured)", "target")
    values = known[target]
    if bad_value is not None:
        distinct = sorted({str(v) for v in values.unique().to_list()})
        if bad_value not in distinct or len(distinct) != 2:
            raise _bad(
                "target_not_binary",
                f"target {target!r} must have exactly two values, one of them the bad value {bad_value!r}; "
                f"found {distinct[:10]}",
                "target",
            )
        y = (values.cast(pl.String) == bad_value).cast(pl.Int8)
    elif values.dtype == pl.Boolean or (values.dtype in NUMERIC and _zero_one(values)):
        y = values.cast(pl.Int8)
    else:
        distinct = [str(v) for v in values.unique().sort().head(10).to_list()]
        raise _bad(
            "target_not_binary",
            f"target {target!r} must be 0/1 (1 = bad) or true/false; found {', '.join(distinct)}; "
            "name the bad value with --bad-value when it is a label such as 'bad'",
            "target",
        )
    return known.with_columns(y.alias(target)), unmatured


def _zero_one(values: pl.Series) -> bool:
    return set(values.unique().cast(pl.Float64).to_list()) <= {0.0, 1.0}


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    type: str  # number | string | bool


def feature_columns(
    frame: pl.DataFrame, target: str, features: Sequence[str] | None, exclude: Sequence[str]
) -> list[FeatureColumn]:
    """The model's candidate features and their types; absent, all-missing or unusable columns are refused."""
    if features:
        absent = [f for f in features if f not in frame.columns]
        if absent:
            raise _bad("feature_not_found", f"the data has no column {absent[0]!r}", absent[0])
        names = [f for f in features if f not in exclude and f != target]
    else:
        names = [c for c in frame.columns if c not in exclude and c != target]
    if not names:
        raise _bad("no_features", "no feature columns are left to train on", "features")
    out = []
    for name in names:
        column = frame[name]
        if re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") in IDENTIFIER_NAMES:
            raise _bad(
                "feature_identifier",
                f"feature {name!r} is named as an identifier, not a characteristic: identifiers are never model "
                f"features (their values would be stored in the model); leave it out with --exclude {name}",
                name,
            )
        if column.null_count() == column.len() or (column.dtype in NUMERIC and column.is_nan().all()):
            raise _bad(
                "feature_all_missing",
                f"feature {name!r} has no values at all; leave it out with --exclude {name}",
                name,
            )
        if column.dtype in NUMERIC and _numeric_identifier(column):
            raise _bad(
                "feature_identifier",
                f"feature {name!r} holds whole numbers of ten or more digits, nearly all different: it looks like "
                f"a phone, card or account number, not a characteristic; leave it out with --exclude {name}",
                name,
            )
        if column.dtype == pl.Boolean:
            out.append(FeatureColumn(name, "bool"))
        elif column.dtype in NUMERIC:
            out.append(FeatureColumn(name, "number"))
        elif column.dtype in (pl.String, pl.Categorical) or isinstance(column.dtype, pl.Enum):
            distinct = column.n_unique()
            if distinct > MAX_CATEGORIES or (distinct > 50 and distinct >= 0.5 * column.len()):
                # an identifier (phone, ID number, customer id) is no feature, and its values would end up in
                # the artefact's bins: refuse it rather than store personal data in a model
                raise _bad(
                    "feature_identifier",
                    f"feature {name!r} has {distinct:,} distinct values: it looks like an identifier, not a "
                    f"characteristic; leave it out with --exclude {name}",
                    name,
                )
            out.append(FeatureColumn(name, "string"))
        else:
            raise _bad(
                "feature_type",
                f"feature {name!r} is {column.dtype}; a feature must be numbers, text or true/false",
                name,
            )
    return out


def _numeric_identifier(column: pl.Series) -> bool:
    """Whole numbers of at least ten digits, distinct on at least 95 % of the rows. The cheap test first (one
    minimum, which skips missing values and NaN), so a table of ordinary measurements costs a pass per column."""
    lowest = column.min()
    if lowest is None or float(lowest) < IDENTIFIER_DIGITS:  # type: ignore[arg-type]
        return False
    values = column.drop_nulls()
    if column.dtype in (pl.Float32, pl.Float64):
        values = values.drop_nans()
        if not bool((values == values.round(0)).all()):
            return False
    return values.len() >= 50 and values.n_unique() >= 0.95 * values.len()


def normalized(frame: pl.DataFrame, columns: Sequence[FeatureColumn]) -> pl.DataFrame:
    """Numbers as Float64 (NaN as missing), text as String, booleans kept."""
    casts = []
    for c in columns:
        if c.type == "number":
            casts.append(pl.col(c.name).cast(pl.Float64).fill_nan(None))
        elif c.type == "string":
            casts.append(pl.col(c.name).cast(pl.String))
    return frame.with_columns(casts) if casts else frame


@dataclass(frozen=True)
class Split:
    train: npt.NDArray[np.int64]  # row indices
    valid: npt.NDArray[np.int64]
    method: str


def split_rows(
    frame: pl.DataFrame, target: str, valid_fraction: float, seed: int, time_col: str | None = None
) -> Split:
    """Stratified random split by default; with ``time_col`` an out-of-time split (the latest rows validate)."""
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped, unused-ignore]

    if not 0.05 <= valid_fraction <= 0.9:
        raise _bad("invalid_field", "the validation fraction must be between 0.05 and 0.9", "valid_fraction")
    y = frame[target].to_numpy()
    index = np.arange(frame.height, dtype=np.int64)
    if time_col is not None:
        if time_col not in frame.columns:
            raise _bad("time_col_not_found", f"the data has no column {time_col!r}", "time_col")
        if frame[time_col].null_count():
            raise _bad("time_col_missing", f"time column {time_col!r} has missing values", "time_col")
        order = np.argsort(frame[time_col].to_numpy(), kind="stable").astype(np.int64)
        cut = round(frame.height * (1 - valid_fraction))
        split = Split(np.sort(order[:cut]), np.sort(order[cut:]), f"out-of-time on {time_col}")
    else:
        try:
            train, valid = train_test_split(index, test_size=valid_fraction, stratify=y, random_state=seed)
        except ValueError as exc:
            raise _bad("target_too_few", f"cannot split the rows by outcome: {exc}", "target") from None
        split = Split(np.sort(train), np.sort(valid), f"stratified random ({valid_fraction:.0%} validation)")
    for part, rows in (("training", split.train), ("validation", split.valid)):
        part_y = y[rows]
        bads = int(part_y.sum())
        if bads < MIN_CLASS_ROWS or len(part_y) - bads < MIN_CLASS_ROWS:
            raise _bad(
                "target_too_few",
                f"the {part} part has {bads} bad and {len(part_y) - bads} good rows; each needs at least "
                f"{MIN_CLASS_ROWS} (more data, or a different split)",
                "target",
            )
    return split


def to_pandas(frame: pl.DataFrame) -> Any:
    """A pandas frame without pyarrow: numbers as float64 (NaN missing), text as object (None missing)."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    data = {}
    for name in frame.columns:
        s = frame[name]
        if s.dtype == pl.String:
            data[name] = pd.Series(s.to_list(), dtype=object)
        else:
            data[name] = pd.Series(s.cast(pl.Float64).fill_null(np.nan).to_numpy(), dtype="float64")
    return pd.DataFrame(data)
