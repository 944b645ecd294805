"""Charts as inline SVG, drawn on the server: no chart library, no script, nothing fetched by the browser.

Each function returns markup safe to put in a page (every label is escaped) with a ``<title>`` for screen
readers; pages show the numbers in a table beside each chart for people who would rather read.
Colours are SVG presentation attributes, not ``style=`` attributes, so the strict Content-Security-Policy holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

PALETTE = ("#2b6cb0", "#dd6b20", "#c53030", "#2f855a", "#6b46c1", "#b7791f", "#319795", "#718096")
OUTCOME_COLOURS = {"approve": "#2f855a", "review": "#b7791f", "decline": "#c53030"}
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:g}" if value == int(value) else f"{value:.2f}"


def _open(width: int, height: int, title: str, css: str = "chart") -> list[str]:
    return [
        f'<svg class="{css}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]


def empty(title: str, width: int = 560, height: int = 60) -> Markup:
    parts = _open(width, height, title)
    parts.append(f'<text x="10" y="35" {_FONT} fill="#4a5568">no data yet</text></svg>')
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped


def bar_chart(items: Sequence[tuple[str, float]], title: str, colour: str = PALETTE[0], width: int = 560) -> Markup:
    """Horizontal bars, one per (label, value), longest scale to the widest bar."""
    if not items:
        return empty(title, width)
    label_w, bar_h, gap = 190, 18, 6
    height = len(items) * (bar_h + gap) + gap
    top = max((v for _, v in items), default=0.0) or 1.0
    usable = width - label_w - 60
    parts = _open(width, height, title)
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = max(1.0, usable * value / top) if value > 0 else 0.0
        text = str(label) if len(str(label)) <= 30 else str(label)[:29] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" {_FONT} fill="#1a202c">{escape(text)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colour}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" {_FONT} fill="#1a202c">{escape(_fmt(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels and values are escaped above


def stacked_columns(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    colours: Mapping[str, str] | None = None,
    width: int = 640,
    height: int = 220,
) -> Markup:
    """One column per label (e.g. a day), stacked by series (e.g. outcome), with a legend."""
    if not labels or not series:
        return empty(title, width)
    colours = colours or {}
    left, bottom, top_pad, legend_h = 40, 34, 8, 18
    plot_h = height - bottom - top_pad - legend_h
    plot_w = width - left - 16
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    peak = max(totals, default=0.0) or 1.0
    step = plot_w / len(labels)
    bar_w = max(2.0, step * 0.7)
    parts = _open(width, height, title)
    parts.append(_axis(left, top_pad + legend_h, plot_w, plot_h, peak))
    for i, label in enumerate(labels):
        x = left + i * step + (step - bar_w) / 2
        base = float(top_pad + legend_h + plot_h)
        for j, (name, values) in enumerate(series.items()):
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / peak
            base -= h
            fill = colours.get(name, PALETTE[j % len(PALETTE)])
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{fill}">'
                f"<title>{escape(label)} {escape(name)}: {escape(_fmt(v))}</title></rect>"
            )
        parts.append(_x_label(i, len(labels), x + bar_w / 2, height - bottom + 14, label))
    parts.append(_legend(list(series), colours, left))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels and values are escaped


def line_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    title: str,
    *,
    percent: bool = False,
    colour: str = PALETTE[0],
    width: int = 640,
    height: int = 200,
) -> Markup:
    """A line over labels; a gap where a value is None (e.g. a day without decisions)."""
    present = [v for v in values if v is not None]
    if not labels or not present:
        return empty(title, width)
    left, bottom, top_pad = 44, 34, 10
    plot_h = height - bottom - top_pad
    plot_w = width - left - 24  # room for the last label
    peak = 1.0 if percent else (max(present) or 1.0)
    step = plot_w / max(1, len(labels) - 1) if len(labels) > 1 else 0.0
    parts = _open(width, height, title)
    parts.append(_axis(left, top_pad, plot_w, plot_h, peak, percent))
    segment: list[str] = []
    segments: list[list[str]] = []
    points: list[str] = []
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        x = left + (i * step if len(labels) > 1 else plot_w / 2)
        if v is None:
            if segment:
                segments.append(segment)
            segment = []
        else:
            y = top_pad + plot_h - plot_h * v / peak
            segment.append(f"{x:.1f},{y:.1f}")
            shown = f"{v:.1%}" if percent else _fmt(v)
            points.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(label)}: {escape(shown)}</title></circle>"
            )
        parts.append(_x_label(i, len(labels), x, height - bottom + 14, label))
    if segment:
        segments.append(segment)
    for seg in segments:
        parts.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{colour}" stroke-width="2"/>')
    parts.extend(points)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels and values are escaped


def _axis(left: int, top: int, plot_w: int, plot_h: int, peak: float, percent: bool = False) -> str:
    out = [
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#a0aec0"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h - plot_h * frac
        value = peak * frac
        text = f"{value:.0%}" if percent else _fmt(round(value, 2))
        out.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {_FONT} fill="#4a5568">{escape(text)}</text>'
        )
        if frac:
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#edf2f7"/>')
    return "".join(out)


def _x_label(i: int, n: int, x: float, y: float, label: str) -> str:
    every = max(1, n // 8)  # about eight labels whatever the range
    if i % every and i != n - 1:
        return ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" {_FONT} fill="#4a5568">{escape(label)}</text>'


def _legend(names: list[str], colours: Mapping[str, str], left: int) -> str:
    out = []
    x = left
    for j, name in enumerate(names):
        fill = colours.get(name, PALETTE[j % len(PALETTE)])
        out.append(
            f'<rect x="{x}" y="4" width="10" height="10" fill="{fill}"/>'
            f'<text x="{x + 14}" y="13" {_FONT} fill="#1a202c">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return "".join(out)


# ------------------------------------------------------------------------------------------ link graph


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str
    label: str
    kind: str  # "customer" or an identifier kind (device, phone, ...)
    role: str = ""  # for customers: "self", "declined", "fraud" or ""


_NODE_FILL = {"self": "#2b6cb0", "fraud": "#c53030", "declined": "#dd6b20", "": "#a0aec0"}


def graph_picture(
    nodes: Sequence[GraphNode], edges: Sequence[tuple[str, str]], title: str, width: int = 640, height: int = 420
) -> Markup:
    """Customers (circles) and the identifiers that link them (squares), placed by a force-directed layout
    (networkx ``spring_layout`` with a fixed seed: the same group is drawn the same way every time)."""
    if not nodes:
        return empty(title, width)
    import networkx as nx  # type: ignore[import-untyped, unused-ignore]  # only when a picture is drawn

    graph: Any = nx.Graph()
    graph.add_nodes_from(sorted(n.id for n in nodes))
    graph.add_edges_from(sorted(edges))
    pos = nx.spring_layout(graph, seed=7) if len(nodes) > 1 else {nodes[0].id: (0.0, 0.0)}
    pad = 40
    xs = [float(p[0]) for p in pos.values()]
    ys = [float(p[1]) for p in pos.values()]
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (max(ys) - min(ys)) or 1.0

    def place(node_id: str) -> tuple[float, float]:
        px, py = pos[node_id]
        return (
            pad + (float(px) - min(xs)) / span_x * (width - 2 * pad),
            pad + (float(py) - min(ys)) / span_y * (height - 2 * pad),
        )

    parts = _open(width, height, title, "chart graph")
    for a, b in edges:
        (x1, y1), (x2, y2) = place(a), place(b)
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#a0aec0"/>')
    for node in nodes:
        x, y = place(node.id)
        label = escape(node.label)
        if node.kind == "customer":
            fill = _NODE_FILL.get(node.role, _NODE_FILL[""])
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{11 if node.role == "self" else 8}" fill="{fill}">'
                f"<title>{label}{escape(' (' + node.role + ')') if node.role else ''}</title></circle>"
                f'<text x="{x:.1f}" y="{y - 13:.1f}" text-anchor="middle" {_FONT} fill="#1a202c">{label}</text>'
            )
        else:
            parts.append(
                f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12" fill="#ffffff" stroke="#4a5568">'
                f"<title>{label}</title></rect>"
                f'<text x="{x:.1f}" y="{y + 18:.1f}" text-anchor="middle" {_FONT} fill="#4a5568">'
                f"{escape(node.kind)}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels are escaped
