"""The report's tables: referring domains (top, new since, lost since) and the jobs.

Every cell carries its column's name (``data-label``): on a narrow screen the CSS shows
each row as a block of labelled cells. Headings that sort carry ``data-sort`` (the way
that puts the best first) and ``aria-sort``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from intersect_batch.report.data import DomainStats, JobReport, RunReport
from intersect_batch.report.fmt import attr_num, link, money, rank_text, short_date

__all__ = ["diff_cells", "domains_table", "jobs_table", "lost_table", "new_table"]


#: A column: heading, the cell's CSS class, which way is best first ("asc" / "desc", or
#: "" for a column that does not sort), and the cell's HTML and sort value for a row.
Column = tuple[str, str, str, Callable[[int, DomainStats], tuple[str, str | None]]]


def _table(
    kind: str,
    columns: Sequence[Column],
    rows: Sequence[DomainStats],
    *,
    sorted_by: int | None = None,
    row_attrs: Callable[[DomainStats], str] = lambda d: "",
) -> str:
    head = []
    for i, (title, css, best, _) in enumerate(columns):
        cls = f' class="{css}"' if css else ""
        if best:
            state = "ascending" if best == "asc" else "descending"
            sort = f' data-sort="{best}" aria-sort="{state if i == sorted_by else "none"}"'
            head.append(f'<th{cls}{sort}><button type="button">{escape(title)}</button></th>')
        else:
            head.append(f"<th{cls}>{escape(title)}</th>")
    body = []
    for n, d in enumerate(rows, start=1):
        cells = []
        for title, css, _, cell in columns:
            html, value = cell(n, d)
            cls = f' class="{css}"' if css else ""
            val = "" if value is None else f' data-value="{escape(value)}"'
            cells.append(f'<td{cls} data-label="{escape(title)}"{val}>{html}</td>')
        body.append(f'<tr data-domain="{escape(d.domain)}"{row_attrs(d)}>{"".join(cells)}</tr>')
    return (
        f'<div class="table-wrap"><table class="sortable reflow {kind}">'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _domain_cell(d: DomainStats, *, badge: str = "") -> tuple[str, str | None]:
    hosts = sorted(d.hosts, key=lambda h: (len(h), h))
    shown = ""
    if hosts and hosts != [d.domain]:
        more = " …" if d.more_hosts else ""
        shown = f'<span class="hosts">{escape(" · ".join(hosts))}{more}</span>'
    return (
        f'<span class="name">{escape(d.domain)}</span>{badge}{shown}',
        d.domain.lower(),
    )


def _new_badge(d: DomainStats) -> str:
    if d.new_since is None:
        return ""
    return (
        f'<span class="badge new" title="did not link on {escape(d.new_since)}">'
        f"new since {escape(short_date(d.new_since))}</span>"
    )


def _rank_cell(_: int, d: DomainStats) -> tuple[str, str | None]:
    return escape(rank_text(d.rank)), "-1" if d.rank is None else attr_num(d.rank)


def _pages_cell(_: int, d: DomainStats) -> tuple[str, str | None]:
    return f"{d.pages:,}", str(d.pages)


def _example_cell(_: int, d: DomainStats) -> tuple[str, str | None]:
    return link(d.example_url), None


def _position_cell(n: int, _: DomainStats) -> tuple[str, str | None]:
    return str(n), str(n)


def _targets_column(job: JobReport) -> list[Column]:
    if job.links_all_targets:
        return []  # every row would say "n of n"
    total = len(job.targets)

    def cell(_: int, d: DomainStats) -> tuple[str, str | None]:
        title = escape(", ".join(job.linked_targets(d)))
        return f'<span title="{title}">{d.targets_linked} of {total}</span>', str(d.targets_linked)

    return [("targets linked", "num", "desc", cell)]


def domains_table(job: JobReport, rows: list[DomainStats]) -> str:
    def domain(_: int, d: DomainStats) -> tuple[str, str | None]:
        return _domain_cell(d, badge=_new_badge(d))

    def first_seen(_: int, d: DomainStats) -> tuple[str, str | None]:
        # Sorted as text: ISO dates sort by their characters.
        if not d.first_seen:
            return "", None
        full = escape(d.first_seen)
        return f'<span title="{full}">{escape(d.first_seen[:10])}</span>', None

    columns: list[Column] = [
        ("#", "num pos", "asc", _position_cell),
        ("referring domain", "domain lead wide", "asc", domain),
        ("domain rank", "num", "desc", _rank_cell),
        *_targets_column(job),
        ("pages", "num", "desc", _pages_cell),
        ("example page", "url wide", "", _example_cell),
        ("first seen by the API", "date", "asc", first_seen),
    ]

    def attrs(d: DomainStats) -> str:
        return "" if d.new_since is None else f' data-new-since="{escape(d.new_since)}"'

    return _table("domains", columns, rows, sorted_by=0, row_attrs=attrs)


def new_table(job: JobReport, rows: list[DomainStats]) -> str:
    def domain(_: int, d: DomainStats) -> tuple[str, str | None]:
        if d.new_since is None:  # it linked already, from other pages
            return _domain_cell(d)
        title = f"did not link on {d.new_since}"
        return _domain_cell(
            d, badge=f'<span class="badge new" title="{escape(title)}">new domain</span>'
        )

    columns: list[Column] = [
        ("referring domain", "domain lead wide", "asc", domain),
        ("domain rank", "num", "desc", _rank_cell),
        *_targets_column(job),
        ("new pages", "num", "desc", _pages_cell),
        ("example page", "url wide", "", _example_cell),
    ]

    def attrs(d: DomainStats) -> str:
        return ' data-new-domain="yes"' if d.new_since is not None else ""

    return _table("new-since", columns, rows, row_attrs=attrs)


def lost_table(job: JobReport, rows: list[DomainStats]) -> str:
    def domain(_: int, d: DomainStats) -> tuple[str, str | None]:
        badge = (
            '<span class="badge gone" title="no page of it links any more">gone</span>'
            if d.gone
            else ""
        )
        return _domain_cell(d, badge=badge)

    columns: list[Column] = [
        ("referring domain", "domain lead wide", "asc", domain),
        ("domain rank", "num", "desc", _rank_cell),
        ("lost pages", "num", "desc", _pages_cell),
        ("example page", "url wide", "", _example_cell),
    ]

    def attrs(d: DomainStats) -> str:
        return ' data-gone="yes"' if d.gone else ""

    return _table("lost-since", columns, rows, row_attrs=attrs)


def diff_cells(job: JobReport) -> tuple[str, str, str]:
    """``(new, lost, compared with)`` as the jobs table and the job's cards show them."""
    diff = job.diff
    if diff is None:
        return "", "", "no diff"
    if diff.skipped is not None:
        return "", "", diff.skipped
    return str(diff.new), str(diff.lost), diff.previous_run or "the previous run"


def jobs_table(report: RunReport) -> str:
    rows = []
    for job in report.jobs:
        new, lost, note = diff_cells(job)
        view = job.view
        jid = escape(job.job_id)
        name = f'<a href="#job-{jid}">{jid}</a>' if job.detailed else jid
        items = job.items if job.has_items else view.items_written
        rows.append(
            f'<tr data-job="{jid}">'
            f'<td data-label="job" class="lead wide">{name}</td>'
            f'<td data-label="status" class="status-{escape(view.status)}">'
            f"{escape(view.status)}</td>"
            f'<td data-label="items" class="num" data-value="{items}">{items:,}</td>'
            f'<td data-label="new" class="num new" data-value="{new or 0}">{new and "+" + new}</td>'
            f'<td data-label="lost" class="num lost" data-value="{lost or 0}">'
            f"{lost and '−' + lost}</td>"
            f'<td data-label="compared with" class="muted">{escape(note)}</td>'
            f'<td data-label="cost" class="num" data-value="{attr_num(view.cost_usd)}">'
            f"{money(view.cost_usd)}</td>"
            "</tr>"
        )

    def th(title: str, best: str = "", css: str = "") -> str:
        cls = f' class="{css}"' if css else ""
        if not best:
            return f"<th{cls}>{escape(title)}</th>"
        return (
            f'<th{cls} data-sort="{best}" aria-sort="none">'
            f'<button type="button">{escape(title)}</button></th>'
        )

    head = "".join(
        (
            th("job", "asc"),
            th("status", "asc"),
            th("items", "desc", "num"),
            th("new", "desc", "num"),
            th("lost", "desc", "num"),
            th("compared with"),
            th("cost", "desc", "num"),
        )
    )
    return (
        '<div class="table-wrap"><table class="sortable reflow jobs">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
