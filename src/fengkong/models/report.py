"""The validation report: Markdown (with the plots as PNG files beside it) and one self-contained HTML file
(plots embedded), for a model validator or a regulator to read.

It shows AUC, KS, Gini and Brier score on each sample (training and validation at train time; any labelled
table later), the ROC and KS curves, the score distribution by outcome, the calibration (reliability) curve,
the stability of the score between samples (PSI), the information value of every candidate feature and the
bin table of every characteristic (scorecard) or of the features that move the risk most (GBDT).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fengkong.models.base import ScoreModel
from fengkong.models.data import unwritable
from fengkong.models.gbdt import GbdtModel
from fengkong.models.metrics import psi_against, psi_reading
from fengkong.models.scorecard import Scorecard
from fengkong.models.scoring import Scored, characteristic_names, score_points

MAX_GBDT_TABLES = 10
MAX_SHAP_ROWS = 20_000  # the GBDT tables' mean points come from TreeSHAP on at most this many rows


@dataclass
class Sample:
    label: str
    scored: Scored
    bad: npt.NDArray[Any]
    frame: pl.DataFrame  # the model's input columns


@dataclass
class ReportInput:
    title: str
    model: ScoreModel
    kind: str
    facts: list[tuple[str, str]]  # (what, value) lines at the top
    samples: list[Sample]  # the last one is the headline (validation)
    metrics: dict[str, dict[str, float]]  # label → performance()
    iv: Mapping[str, float | None] = field(default_factory=dict)
    selected: Sequence[str] = ()
    screened: Sequence[str] = ()  # features whose IV is their pre-bins' (below min_iv, never binned optimally)
    psi: list[tuple[str, float]] = field(default_factory=list)  # (what, PSI) lines
    stability: Mapping[str, Any] | None = None  # training bins, for the decile tables of a GBDT


def write_report(data: ReportInput, out_dir: Path, field: str = "report") -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNGs) and ``report.html`` into ``out_dir``; returns both paths. A folder that
    cannot be written is a FengkongError naming ``field`` (the option that gave the folder)."""
    images = _plots(data)
    tables = _bin_tables(data)
    md = _markdown(data, images, tables)
    html = _html(data, images, tables)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, png in images.items():
            (out_dir / f"{name}.png").write_bytes(png)
        md_path.write_text(md, encoding="utf-8")
        html_path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise unwritable(out_dir, exc, field) from None
    return md_path, html_path


# ---------------------------------------------------------------------------------------------- plots


def _plots(data: ReportInput) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve  # type: ignore[import-untyped, unused-ignore]
    from sklearn.metrics import roc_curve  # type: ignore[import-untyped, unused-ignore]

    head = data.samples[-1]
    out: dict[str, bytes] = {}

    fig, ax = plt.subplots(figsize=(5, 5))
    for s in data.samples:
        fpr, tpr, _ = roc_curve(s.bad, -s.scored.score)
        ax.plot(fpr, tpr, label=f"{s.label} (AUC {data.metrics[s.label]['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate (goods declined)", ylabel="true positive rate (bads caught)", title="ROC")
    ax.legend(loc="lower right")
    out["roc"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    order = np.argsort(head.scored.score)
    s_sorted = head.scored.score[order]
    b_sorted = head.bad[order]
    cum_bad = np.cumsum(b_sorted) / max(int(b_sorted.sum()), 1)
    cum_good = np.cumsum(1 - b_sorted) / max(int((1 - b_sorted).sum()), 1)
    gap = np.abs(cum_bad - cum_good)
    at = int(np.argmax(gap))
    ax.plot(s_sorted, cum_bad, label="bads")
    ax.plot(s_sorted, cum_good, label="goods")
    ax.vlines(s_sorted[at], cum_good[at], cum_bad[at], colors="red", label=f"KS {gap[at]:.3f} at {s_sorted[at]:g}")
    ax.set(xlabel="score", ylabel="cumulative share", title=f"KS ({head.label})")
    ax.legend()
    out["ks"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.histogram_bin_edges(head.scored.score, bins=30).tolist()
    ax.hist(head.scored.score[head.bad == 0], bins=bins, alpha=0.6, density=True, label="good")
    ax.hist(head.scored.score[head.bad == 1], bins=bins, alpha=0.6, density=True, label="bad")
    ax.set(xlabel="score", ylabel="density", title=f"Score by outcome ({head.label})")
    ax.legend()
    out["score_distribution"] = _png(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for s in data.samples:
        n_bins = max(2, min(10, len(s.bad) // 30))
        true, predicted = calibration_curve(s.bad, s.scored.pd, n_bins=n_bins, strategy="quantile")
        ax.plot(predicted, true, marker="o", label=s.label)
    top = float(max(np.max(s.scored.pd) for s in data.samples))
    ax.plot([0, top], [0, top], color="grey", linestyle=":")
    ax.set(xlabel="predicted PD", ylabel="observed bad rate", title="Calibration")
    ax.legend()
    out["calibration"] = _png(fig)

    ivs = sorted(((k, v) for k, v in data.iv.items() if v is not None), key=lambda kv: -kv[1])[:25]
    if ivs:
        fig, ax = plt.subplots(figsize=(7, max(2.5, 0.28 * len(ivs))))
        ax.barh([k[:40] for k, _ in reversed(ivs)], [v for _, v in reversed(ivs)])
        ax.set(xlabel="information value", title="IV per feature")
        out["iv"] = _png(fig)
    plt.close("all")
    return out


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- tables


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _metrics_table(data: ReportInput) -> Table:
    keys = ["auc", "ks", "gini", "brier", "bad_rate", "mean_pd", "rows"]
    labels = [s.label for s in data.samples]
    rows = [[k, *(_fmt(data.metrics[label].get(k)) for label in labels)] for k in keys]
    return Table("Performance", ["measure", *labels], rows)


def _iv_table(data: ReportInput) -> Table:
    ranked = sorted(data.iv.items(), key=lambda kv: -(kv[1] if kv[1] is not None else -1))
    rows = [
        [k, _fmt(v), "yes" if k in data.selected else "screened: IV of its pre-bins" if k in data.screened else ""]
        for k, v in ranked
    ]
    return Table("Information value per candidate feature", ["feature", "IV", "in the model"], rows)


def _bin_tables(data: ReportInput) -> list[Table]:
    if isinstance(data.model, Scorecard):
        return _scorecard_tables(data.model, data.samples)
    if isinstance(data.model, GbdtModel) and data.stability is not None:
        return _gbdt_tables(data.model, data.samples, data.stability)
    return []


def _scorecard_tables(card: Scorecard, samples: Sequence[Sample]) -> list[Table]:
    tables = []
    labels = card.bin_labels()
    per_sample = []
    for s in samples:
        bins = s.frame.select([e.alias(f"b{i}") for i, e in enumerate(card.bin_exprs())]).to_numpy()
        per_sample.append((s, bins.reshape(s.frame.height, len(labels))))
    for i, c in enumerate(card.spec.characteristics):
        points = [b.points for b in c.bins] + [c.missing_points]
        header = ["bin", "points"]
        for s, _ in per_sample:
            header += [f"{s.label} rows", f"{s.label} share", f"{s.label} bad rate"]
        header.append("WoE" + (f" ({per_sample[0][0].label})" if per_sample else ""))
        rows = []
        woe_iv = _woe(per_sample[0][1][:, i], per_sample[0][0].bad, len(points)) if per_sample else None
        for j, (label, p) in enumerate(zip(labels[i], points, strict=True)):
            row = [label, _fmt(p)]
            for s, bins in per_sample:
                mask = bins[:, i] == j
                n = int(mask.sum())
                row += [str(n), f"{n / max(len(mask), 1):.1%}", f"{s.bad[mask].mean():.1%}" if n else "–"]
            row.append(_fmt(woe_iv[0][j]) if woe_iv else "–")
            rows.append(row)
        iv_text = f", IV {woe_iv[1]:.3f}" if woe_iv else ""
        tables.append(Table(f"{c.name} ({c.feature}; reason {c.reason}{iv_text})", header, rows))
    return tables


def _woe(bins: npt.NDArray[Any], bad: npt.NDArray[Any], k: int) -> tuple[list[float | None], float]:
    """WoE = ln(share of goods / share of bads) per bin (empty bins: none) and the characteristic's IV."""
    goods, bads = max(int((1 - bad).sum()), 1), max(int(bad.sum()), 1)
    woe: list[float | None] = []
    iv = 0.0
    for j in range(k):
        mask = bins == j
        g = (int(mask.sum()) - int(bad[mask].sum())) / goods
        b = int(bad[mask].sum()) / bads
        if g == 0 and b == 0:
            woe.append(None)
            continue
        g, b = max(g, 1e-4), max(b, 1e-4)
        w = math.log(g / b)
        woe.append(w)
        iv += (g - b) * w
    return woe, iv


def _gbdt_tables(model: GbdtModel, samples: Sequence[Sample], stability: Mapping[str, Any]) -> list[Table]:
    head = samples[-1]
    if head.scored.points is None or head.frame.height > MAX_SHAP_ROWS:  # TreeSHAP on a sample of rows
        frame = head.frame.head(MAX_SHAP_ROWS)
        head = Sample(head.label, score_points(model, frame), head.bad[: frame.height], frame)
    points = head.scored.points
    assert points is not None
    names = characteristic_names(model)
    weight = np.mean(np.abs(points), axis=0) if head.scored.rows else np.zeros(len(names))
    order = np.argsort(-weight)[:MAX_GBDT_TABLES]
    tables = []
    for j in order:
        f = model.spec.features[int(j)]
        spec = stability.get("features", {}).get(f.feature)
        if spec is None:
            continue
        values = head.frame[f.feature]
        if spec["type"] == "categorical":
            text = values.cast(pl.String)
            cats = spec["categories"]
            codes = {c: k for k, c in enumerate(cats)}
            mapped = text.replace_strict(codes, default=len(cats), return_dtype=pl.Int64).to_numpy()
            bin_of = np.where(text.is_null().to_numpy(), -1, mapped)
            labels = [*cats, "other"]
        else:
            numbers = values.cast(pl.Float64).fill_nan(None)
            edges = spec["edges"]
            raw = np.searchsorted(np.asarray(edges), numbers.fill_null(0.0).to_numpy(), side="right")
            bin_of = np.where(numbers.is_null().to_numpy(), -1, raw)
            lows = ["-inf", *(f"{e:g}" for e in edges)]
            highs = [*(f"{e:g}" for e in edges), "inf"]
            labels = [f"[{lo}, {hi})" for lo, hi in zip(lows, highs, strict=True)]
        rows = []
        for k, label in [*enumerate(labels), (-1, "missing")]:
            mask = bin_of == k
            n = int(mask.sum())
            if n == 0:
                continue
            rows.append(
                [
                    label,
                    str(n),
                    f"{n / len(mask):.1%}",
                    f"{head.bad[mask].mean():.1%}",
                    _fmt(float(points[mask, j].mean())),
                ]
            )
        title = f"{f.name} (reason {f.reason}; mean |points| {weight[j]:.2f}, {head.label})"
        tables.append(Table(title, ["bin", "rows", "share", "bad rate", "mean points"], rows))
    return tables


# ---------------------------------------------------------------------------------------------- rendering


def _md_table(t: Table) -> str:
    def cell(v: str) -> str:
        return v.replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in t.rows]
    return "\n".join(lines)


def _markdown(data: ReportInput, images: Mapping[str, bytes], tables: Sequence[Table]) -> str:
    parts = [f"# {data.title}", ""]
    parts += [f"- **{k}**: {v}" for k, v in data.facts]
    parts += ["", "## Performance", "", _md_table(_metrics_table(data)), ""]
    if data.psi:
        parts += ["## Stability (PSI)", ""]
        parts += [f"- {what}: {value:.4f} ({psi_reading(value)})" for what, value in data.psi]
        parts.append("")
    parts += ["## Plots", ""]
    parts += [f"![{name}]({name}.png)" for name in images]
    if data.iv:
        parts += ["", "## " + _iv_table(data).title, "", _md_table(_iv_table(data))]
    parts += ["", "## Bin tables", ""]
    for t in tables:
        parts += [f"### {t.title}", "", _md_table(t), ""]
    return "\n".join(parts) + "\n"


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 48%; margin: 0 1% 1em 0; vertical-align: top; }
</style></head><body>
<h1>{{ title }}</h1>
<ul>{% for k, v in facts %}<li><b>{{ k }}</b>: {{ v }}</li>{% endfor %}</ul>
{% for t in head_tables %}<h2>{{ t.title }}</h2>{{ render(t) }}{% endfor %}
{% if psi %}<h2>Stability (PSI)</h2><ul>
{% for what, value, reading in psi %}<li>{{ what }}: {{ "%.4f"|format(value) }} ({{ reading }})</li>{% endfor %}
</ul>{% endif %}
<h2>Plots</h2>
{% for name, uri in images %}<img alt="{{ name }}" src="{{ uri }}">{% endfor %}
{% if iv_table %}<h2>{{ iv_table.title }}</h2>{{ render(iv_table) }}{% endif %}
<h2>Bin tables</h2>
{% for t in tables %}<h3>{{ t.title }}</h3>{{ render(t) }}{% endfor %}
</body></html>
"""

_TABLE = """<table><tr>{% for h in t.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in t.rows %}<tr>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>"""


def _html(data: ReportInput, images: Mapping[str, bytes], tables: Sequence[Table]) -> str:
    from jinja2 import Environment
    from markupsafe import Markup

    env = Environment(autoescape=True)  # feature names and categories come from the data: always escaped
    table_template = env.from_string(_TABLE)

    def render(t: Table) -> Markup:
        return Markup(table_template.render(t=t))  # noqa: S704 - the table template autoescapes every cell

    uris = [(name, "data:image/png;base64," + base64.b64encode(png).decode("ascii")) for name, png in images.items()]
    return env.from_string(_HTML).render(
        title=data.title,
        facts=data.facts,
        head_tables=[_metrics_table(data)],
        psi=[(what, value, psi_reading(value)) for what, value in data.psi],
        images=uris,
        iv_table=_iv_table(data) if data.iv else None,
        tables=tables,
        render=render,
    )


def stability_lines(stability: Mapping[str, Any], scored: Scored, frame: pl.DataFrame) -> list[tuple[str, float]]:
    """PSI of the score and of each input of ``frame`` against the training bins."""
    out = [("score vs training", psi_against(stability["score"], pl.Series("score", scored.score)))]
    for name, spec in stability.get("features", {}).items():
        if name in frame.columns:
            out.append((f"{name} vs training", psi_against(spec, frame[name])))
    return out
