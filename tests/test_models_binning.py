"""Fast binning for large tables (fengkong/models/binning.py): pre-bins fitted on a stratified sample while the
bins' statistics come from every training row, optbinning given exactly the statistics of all rows, the
parallel path giving the same artefact as the serial one, grouped calibration, and bad options refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from optbinning import OptimalBinning
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from fengkong.cli import app
from fengkong.errors import FengkongError
from fengkong.models.binning import fit_binnings, prebin_counts, prebins_iv, stratified_sample
from fengkong.models.calibration import Scaling, fit_calibration
from fengkong.models.data import FeatureColumn
from fengkong.models.scorecard import Scorecard
from fengkong.models.train import TrainOptions, train_model
from support.models import APP_FEATURES, german_model, history

SAMPLE = 1000  # of the ~3,100 training rows of the history with an outcome: pre-bins come from a sample


def _options(**kwargs: object) -> TrainOptions:
    values: dict[str, object] = {
        "kind": "scorecard",
        "target": "bad",
        "features": APP_FEATURES,
        "monotonic": {"bureau_worst_dpd": "asc"},
        "prebin_rows": SAMPLE,
        **kwargs,
    }
    return TrainOptions(**values)  # type: ignore[arg-type]


def test_sampled_prebins_have_statistics_from_every_training_row() -> None:
    trained = train_model(history(), _options(), "sampled", "1")
    prebinning = trained.training["parameters"]["prebinning"]
    assert prebinning["sample_rows"] == SAMPLE and prebinning["numbers"] == ["quantile"]
    assert "monthly_income" in prebinning["sampled_features"]
    card = trained.model
    assert isinstance(card, Scorecard)
    frame, bad = trained.report["train_frame"], trained.report["y_train"]
    rows = trained.training["train_rows"]
    assert frame.height == rows > 2 * SAMPLE
    bins = frame.select([e.alias(c.name) for e, c in zip(card.bin_exprs(), card.spec.characteristics, strict=True)])
    checked = 0
    for c in card.spec.characteristics:
        b = trained.report["binnings"][c.feature]
        if not b.sampled:
            continue
        table = b.optb.binning_table.build(add_totals=False)  # the bins, special, missing
        assert int(table["Count"].sum()) == rows and int(table["Event"].sum()) == int(bad.sum())
        # the artefact's bins, applied to every training row, hold exactly optbinning's counts
        index = bins[c.name].to_numpy()
        k = len(c.bins)
        for i in range(k):
            assert int(table["Count"].iloc[i]) == int((index == i).sum()), (c.name, i)
            assert int(table["Event"].iloc[i]) == int(bad[index == i].sum()), (c.name, i)
        assert int(table["Count"].iloc[-1]) == int((index == k).sum())  # missing
        checked += 1
    assert checked >= 3
    assert trained.metrics["valid"]["auc"] >= 0.62


def test_prebin_counts_give_optbinning_the_statistics_of_every_row() -> None:
    """One weighted row per (pre-bin, outcome) is, to optbinning, the same as all the rows."""
    rng = np.random.default_rng(7)
    x = rng.lognormal(0, 1, 50_000)
    y = (rng.random(x.size) < 1 / (1 + np.exp(2.5 - 0.4 * np.log1p(x)))).astype(np.int8)
    x[rng.random(x.size) < 0.05] = np.nan
    splits = np.unique(np.nanquantile(x[:5000], np.linspace(0, 1, 21)[1:-1]))
    every = OptimalBinning("x", monotonic_trend="auto_asc_desc", user_splits=splits).fit(x, y)
    xs, ys, ws = prebin_counts(x, y, splits)
    assert xs.size <= 2 * (splits.size + 2) + 1  # a handful of rows instead of 50,000
    grouped = OptimalBinning("x", monotonic_trend="auto_asc_desc", user_splits=splits).fit(xs, ys, sample_weight=ws)
    assert np.array_equal(every.splits, grouped.splits)
    a, b = every.binning_table.build(add_totals=False), grouped.binning_table.build(add_totals=False)
    assert a.drop(columns="Bin").equals(b.drop(columns="Bin")) and list(a["Bin"]) == list(b["Bin"])
    assert every.binning_table.iv == grouped.binning_table.iv


def _table(seed: int, n: int = 60_000) -> tuple[pl.DataFrame, np.ndarray, list[FeatureColumn]]:
    """Two informative numbers, three that carry nothing, one informative and one idle category."""
    rng = np.random.default_rng(seed)
    strong, weak = rng.lognormal(0, 1, n), rng.normal(0, 1, n)
    level = rng.integers(0, 5, n)
    logit = -2.2 + 0.5 * np.log1p(strong) + 0.3 * np.tanh(weak) + np.array([0.0, 0.3, -0.4, 0.5, -0.2])[level]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    frame = pl.DataFrame(
        {
            "strong": strong,
            "weak": weak,
            **{f"noise{i}": rng.normal(0, 1, n) for i in range(3)},
            "level": [f"l{v}" for v in level],
            "idle": [f"i{v}" for v in rng.integers(0, 4, n)],
        }
    )
    kinds = {"level": "string", "idle": "string"}
    return frame, y, [FeatureColumn(c, kinds.get(c, "number")) for c in frame.columns]


def test_features_that_cannot_reach_min_iv_skip_the_solver_and_change_nothing() -> None:
    frame, y, columns = _table(3)
    every = fit_binnings(frame, y, columns, monotonic={}, prebin_rows=20_000)
    screened = fit_binnings(frame, y, columns, monotonic={}, prebin_rows=20_000, min_iv=0.02)
    skipped = {b.name for b in screened if b.screened}
    assert skipped >= {"noise0", "noise1", "noise2", "idle"} and not skipped & {"strong", "weak", "level"}
    for full, quick in zip(every, screened, strict=True):
        assert not full.screened
        if quick.screened:
            # never sent to the solver: its pre-bins' IV bounds the optimal bins' IV from above, and both are
            # below the threshold, so the feature would have been dropped anyway
            assert quick.optb is None and full.iv <= quick.iv < 0.02
        else:
            assert quick.iv == full.iv >= 0.02
            assert np.array_equal(
                np.asarray(quick.optb.splits, dtype=object), np.asarray(full.optb.splits, dtype=object)
            )
            assert np.array_equal(quick.table_woe, full.table_woe)


def test_a_scorecard_with_screening_equals_one_without(monkeypatch: pytest.MonkeyPatch) -> None:
    import fengkong.models.train as train

    frame, y, _ = _table(5, 40_000)
    data = frame.with_columns(pl.Series("bad", y))
    options = TrainOptions(kind="scorecard", target="bad", prebin_rows=10_000)
    screened = train_model(data, options, "screened", "1")
    assert set(screened.training["parameters"]["screened"]["features"]) >= {"noise0", "noise1", "noise2"}
    unscreened_fit = train.fit_binnings
    monkeypatch.setattr(train, "fit_binnings", lambda *a, **k: unscreened_fit(*a, **{**k, "min_iv": None}))
    every = train_model(data, options, "screened", "1")
    assert every.training["parameters"]["screened"]["features"] == []
    assert screened.artefact == every.artefact and screened.metrics["valid"] == every.metrics["valid"]


def test_information_values_without_a_trend_equal_the_solvers() -> None:
    """With no trend and no bin limit optbinning keeps every pre-bin, so fengkong reads their IV without solving."""
    frame, y, columns = _table(4, 40_000)
    quick = fit_binnings(frame, y, columns, prebin_rows=10_000)
    solved = fit_binnings(frame, y, columns, prebin_rows=10_000, max_bins=100)  # a (loose) limit: the solver runs
    numbers = [c.name for c in columns if c.type == "number"]
    for fast, slow in zip(quick, solved, strict=True):
        assert slow.optb is not None
        if fast.name in numbers:
            # the solver keeps the pre-bins, up to merging some whose rates its integer objective cannot tell
            # apart (on a feature that carries no information); the pre-bins' IV is the true maximum
            assert fast.optb is None
            assert slow.iv <= fast.iv == pytest.approx(slow.iv, rel=1e-3 if fast.iv < 0.01 else 1e-5)
        else:
            assert fast.iv == slow.iv


def test_pre_bin_iv_is_no_bound_when_a_bin_lacks_goods_or_bads() -> None:
    assert prebins_iv(np.array([[90, 10], [80, 20], [0, 0], [5, 1]])) is not None  # an empty bin is left out
    assert prebins_iv(np.array([[90, 10], [80, 0], [5, 1]])) is None  # optbinning leaves this bin out of its IV
    assert prebins_iv(np.array([[0, 0]])) is None


def test_stratified_sample_keeps_the_bad_rate() -> None:
    y = (np.arange(100_000) % 10 == 0).astype(np.int8)
    rows = stratified_sample(y, 20_000, seed=3)
    assert rows.size == 20_000 and np.all(np.diff(rows) > 0)
    assert y[rows].mean() == pytest.approx(0.1, abs=1e-4)


@pytest.mark.parametrize("prebin_rows", [SAMPLE, None])
def test_parallel_binning_gives_the_same_artefact_as_serial(prebin_rows: int | None) -> None:
    serial = train_model(history(), _options(prebin_rows=prebin_rows, n_jobs=1), "par", "1")
    parallel = train_model(history(), _options(prebin_rows=prebin_rows, n_jobs=2), "par", "1")
    assert parallel.artefact == serial.artefact
    assert parallel.metrics == serial.metrics


def test_prebinning_methods_are_options() -> None:
    cart = train_model(history(), _options(prebinning="cart"), "cart", "1")
    assert cart.training["parameters"]["prebinning"]["numbers"] == ["cart"]
    everything = train_model(history(), _options(prebin_rows=None), "all", "1")
    assert everything.training["parameters"]["prebinning"] == {
        "numbers": ["cart"],
        "sample_rows": None,
        "sampled_features": [],
        "note": "bin statistics, WoE and IV are computed on every training row",
    }
    for trained in (cart, everything):
        assert trained.metrics["valid"]["auc"] >= 0.62


def test_small_tables_are_binned_on_every_row() -> None:
    parameters = german_model("scorecard").training["parameters"]
    assert parameters["prebinning"]["sample_rows"] is None and parameters["prebinning"]["numbers"] == ["cart"]


@pytest.mark.parametrize(
    ("options", "field"),
    [({"prebinning": "tree"}, "prebinning"), ({"prebin_rows": 10}, "prebin_rows"), ({"n_jobs": 0}, "n_jobs")],
)
def test_bad_binning_options_are_refused(options: dict[str, object], field: str) -> None:
    with pytest.raises(FengkongError) as caught:
        train_model(history(), _options(**options), "bad", "1")
    assert (caught.value.code, caught.value.field) == ("invalid_field", field)


def test_grouped_calibration_fits_the_same_curve_as_every_row() -> None:
    """A scorecard's whole-point scores are grouped by (score, outcome) before fitting: same likelihood."""
    rng = np.random.default_rng(11)
    score = np.rint(rng.normal(600, 40, 200_000))
    bad = (rng.random(score.size) < 1 / (1 + np.exp((score - 520) / 25))).astype(np.int8)
    scaling = Scaling()
    platt = fit_calibration(score, bad, scaling, "platt", "test")
    rows = LogisticRegression(C=1e6, max_iter=1000).fit(scaling.log_odds_from_score(score).reshape(-1, 1), bad)
    assert platt.slope == pytest.approx(float(rows.coef_[0][0]), rel=1e-3)
    assert platt.intercept == pytest.approx(float(rows.intercept_[0]), rel=1e-3, abs=1e-3)
    iso = fit_calibration(score, bad, scaling, "isotonic", "test")
    every = IsotonicRegression(increasing=False, out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(score, bad)
    assert iso.score_knots == pytest.approx(list(every.X_thresholds_))
    assert iso.pd_knots == pytest.approx(list(every.y_thresholds_), abs=1e-12)
    grid = np.linspace(450, 750, 31)
    assert np.allclose(iso.pd(grid, scaling), np.clip(every.predict(grid), 1e-6, 1 - 1e-6), atol=1e-12)


def test_boosting_uses_the_cores_the_load_leaves_free_and_the_model_does_not_depend_on_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    import fengkong.models.train as train_module
    from fengkong.models.train import boosting_threads

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    for others, threads in ((0.2, 4), (1.4, 3), (2.6, 1), (9.0, 1)):
        monkeypatch.setattr(train_module, "others_busy_cores", lambda others=others: others)
        assert boosting_threads() == threads
    monkeypatch.undo()
    # other processes' busy time: the machine's less this process's own (which would otherwise count its own
    # binning of a moment ago as another's load)
    assert train_module.others_between((100.0, 10.0, 0.0), (101.5, 10.9, 1.0)) == pytest.approx(0.6)
    assert train_module.others_between((100.0, 10.0, 0.0), (100.9, 10.9, 1.0)) == pytest.approx(0.0, abs=1e-9)
    assert train_module.others_between((100.0, 10.0, 0.0), (100.5, 10.9, 1.0)) == 0.0  # never below 0
    before = train_module.cpu_sample()
    spin_until = time.perf_counter() + 0.3
    while time.perf_counter() < spin_until:
        pass
    after = train_module.cpu_sample()
    assert before is not None and after is not None  # Linux: /proc/stat is read
    assert after[1] - before[1] >= 0.03 and after[0] - before[0] >= 0.03  # the spin shows in both clocks
    from threadpoolctl import threadpool_info

    seen: dict[int, set[int]] = {1: set(), 2: set()}

    def train(n: int) -> str:
        def step(task: str, done: int, total: int) -> None:
            if task.startswith("boosting") and 0 < done < total:  # LightGBM's OpenMP pool, round by round
                seen[n].update(i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp")

        options = TrainOptions(kind="gbdt", target="bad", features=APP_FEATURES, rounds=500, n_jobs=n)
        return train_model(history(), options, "t", "1", progress=step).artefact

    one, two = train(1), train(2)
    assert seen == {1: {1}, 2: {2}}
    assert one == two  # the text model records no thread count


def test_gbdt_information_values_cover_every_candidate() -> None:
    frame = history().with_columns(pl.col("monthly_income").alias("income_copy"))
    options = TrainOptions(kind="gbdt", target="bad", features=[*APP_FEATURES, "income_copy"], rounds=20)
    iv = train_model(frame, options, "gbdt-iv", "1").metrics["iv"]
    assert set(iv) == {*APP_FEATURES, "income_copy"}
    assert iv["income_copy"] == pytest.approx(iv["monthly_income"])


def test_the_command_line_passes_the_binning_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FENGKONG_DATABASE_URL", f"sqlite:///{tmp_path / 'fengkong.db'}")
    monkeypatch.setenv("FENGKONG_SECRET_KEY", "test-secret-key-0123456789abcdef-0123456789")
    data = tmp_path / "history.csv"
    history().select([*APP_FEATURES, "bad"]).write_csv(data)
    runner = CliRunner()
    common = ["model", "train", str(data), "--target", "bad", "--no-report", "--json"]
    result = runner.invoke(app, [*common, "--name", "opts", "--prebin-rows", "1000", "--prebinning", "cart",
                                 "--jobs", "1"])  # fmt: skip
    assert result.exit_code == 0, result.output
    prebinning = json.loads(result.output)["training"]["parameters"]["prebinning"]
    assert prebinning["sample_rows"] == 1000 and prebinning["numbers"] == ["cart"]
    result = runner.invoke(app, [*common, "--name", "opts", "--prebin-rows", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["training"]["parameters"]["prebinning"]["sample_rows"] is None
    result = runner.invoke(app, [*common, "--name", "opts", "--prebinning", "tree"])
    assert result.exit_code != 0 and "prebinning" in result.output
    listed = json.loads(runner.invoke(app, ["model", "list", "--json"]).output)
    assert [m["label"] for m in listed] == ["opts@1", "opts@2"]  # the refused run registered nothing
