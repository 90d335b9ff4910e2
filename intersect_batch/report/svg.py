"""Inline SVG bar charts: drawn in Python, so the report needs no script to show a figure.

Every bar carries its label and value as ``data-label`` / ``data-value`` attributes and a
``<title>`` tooltip; every text that came from data is escaped. A chart is drawn on a
``width``-wide canvas (its viewBox) and scales to its container, never wider than that
width: on a phone the whole chart shrinks instead of running off the screen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

__all__ = ["bar_chart", "column_chart", "number"]

Rows = Sequence[tuple[str, float]]

#: A generous width of one character of a chart's small text, in viewBox units: labels
#: further apart than their width times this do not overlap.
_CHAR_WIDTH = 6.5


def number(value: float) -> str:
    """``1,234`` for whole numbers, ``12.5`` otherwise."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _attr(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _open(kind: str, title: str, width: int, height: int) -> str:
    # No height attribute: the height follows the width through the viewBox's ratio.
    return (
        f'<svg class="chart {kind}" role="img" aria-label="{escape(title)}" width="100%" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet" '
        f'style="max-width:{width}px">'
    )


def _empty(title: str, width: int) -> str:
    return (
        _open("empty", f"{title}: no data", width, 40)
        + f'<text x="{width // 2}" y="24" text-anchor="middle" class="muted">no data</text></svg>'
    )


def bar_chart(
    title: str,
    rows: Rows,
    *,
    fmt: Callable[[float], str] = number,
    width: int = 420,
    label_width: int = 130,
) -> str:
    """A horizontal bar chart: one row per ``(label, value)``, in the order given."""
    if not rows:
        return _empty(title, width)
    row_h, top = 22, 4
    value_w = 70
    area = width - label_width - value_w
    peak = max(value for _, value in rows) or 1.0
    height = top * 2 + row_h * len(rows)
    parts = [_open("bars", title, width, height)]
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        bar = max(1.0, area * value / peak) if value > 0 else 0.0
        short = label if len(label) <= 18 else label[:17] + "…"
        parts.append(
            f'<g class="bar" data-label="{escape(label)}" data-value="{_attr(value)}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title>"
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">{escape(short)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{bar:.1f}" height="{row_h - 6}" rx="2"/>'
            f'<text x="{label_width + bar + 5:.1f}" y="{y + 15}" class="value">'
            f"{escape(fmt(value))}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def column_chart(
    title: str,
    rows: Rows,
    *,
    fmt: Callable[[float], str] = number,
    width: int = 420,
    height: int = 180,
    marks: Sequence[str | None] = (),
) -> str:
    """A vertical column chart: one column per ``(label, value)``, left to right.

    When the columns are too narrow for every label, every n-th column is labelled,
    counted from the last (the latest run's column is always labelled); each column
    keeps its full label and value in its tooltip. ``marks`` (one per row, ``None`` for
    an ordinary column) draws a column as an outline and writes the mark (``partial``)
    where its value would be: a figure that is not what a whole run gives.
    """
    if not rows:
        return _empty(title, width)
    marked = list(marks) + [None] * (len(rows) - len(marks))
    top, bottom, side = 18, 34, 6
    area_h = height - top - bottom
    slot = (width - 2 * side) / len(rows)
    widest = max(
        max(len(label), len(mark or fmt(value)))
        for (label, value), mark in zip(rows, marked, strict=True)
    )
    every = max(1, math.ceil(widest * _CHAR_WIDTH / slot))
    col_w = min(48.0, max(4.0, slot * 0.7))
    peak = max(value for _, value in rows) or 1.0
    parts = [
        _open("columns", title, width, height),
        f'<line x1="{side}" x2="{width - side}" y1="{top + area_h}" y2="{top + area_h}" '
        'class="axis"/>',
    ]
    for i, ((label, value), mark) in enumerate(zip(rows, marked, strict=True)):
        h = max(1.0, area_h * value / peak) if value > 0 else 0.0
        x = side + i * slot + (slot - col_w) / 2
        cx = side + i * slot + slot / 2
        y = top + area_h - h
        shown = mark or fmt(value)
        texts = ""
        if (len(rows) - 1 - i) % every == 0:
            texts = (
                f'<text x="{cx:.1f}" y="{y - 4:.1f}" text-anchor="middle" class="value">'
                f"{escape(shown)}</text>"
                f'<text x="{cx:.1f}" y="{top + area_h + 14}" text-anchor="middle" class="tick">'
                f"{escape(label)}</text>"
            )
        tip = f"{fmt(value)} ({mark})" if mark else fmt(value)
        css, attr = ("bar marked", f' data-mark="{escape(mark)}"') if mark else ("bar", "")
        parts.append(
            f'<g class="{css}" data-label="{escape(label)}" data-value="{_attr(value)}"{attr}>'
            f"<title>{escape(label)}: {escape(tip)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{col_w:.1f}" height="{h:.1f}" rx="2"/>'
            f"{texts}</g>"
        )
    parts.append("</svg>")
    return "".join(parts)
