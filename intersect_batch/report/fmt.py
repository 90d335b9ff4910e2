"""How the report writes numbers, money, durations, dates and links."""

from __future__ import annotations

from html import escape

from intersect_batch.report.svg import number

__all__ = ["attr_num", "link", "money", "rank_text", "seconds", "short_date", "short_money"]


def money(value: float) -> str:
    """``$1,234.5678``: a cost, to the API's precision."""
    return f"${value:,.4f}"


def short_money(value: float) -> str:
    """``$12.34`` or ``$0.123``: a cost short enough for a chart's label."""
    return f"${value:,.2f}" if value >= 10 else f"${value:.3f}"


def seconds(value: float) -> str:
    """``12.3 s``, ``2 min 05 s`` or ``1 h 02 min``."""
    if value < 120:
        return f"{value:,.1f} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def link(url: str | None) -> str:
    """An escaped link to ``url``, or its escaped text when it is not a web URL."""
    if not url:
        return ""
    text = escape(url)
    # Only web links become clickable: an item could carry a javascript: or data: URL.
    if url.lower().startswith(("http://", "https://")):
        return f'<a href="{text}" rel="noopener noreferrer nofollow">{text}</a>'
    return text


def rank_text(rank: float | None) -> str:
    """A rank as shown in a table (empty when unknown)."""
    return "" if rank is None else number(rank)


def attr_num(value: float) -> str:
    """A number for a ``data-value`` attribute: ``12`` or ``12.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def short_date(date: str) -> str:
    """``11-29`` for ``2026-11-29`` (a chart's label); other text as it is."""
    return date[5:] if len(date) == 10 and date[4] == "-" else date
