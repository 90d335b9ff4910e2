"""The report as one self-contained HTML page: inline CSS, inline SVG, a little inline JS.

Nothing is fetched: a Content-Security-Policy forbids every external load, so the page
opens from disk anywhere. All text that came from items or manifests is escaped. The
page fits a phone: charts scale to their card, and on a narrow screen every table turns
into one labelled block per row, so no column (the example page least of all) is pushed
off the screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from intersect_batch.layout import opportunities_name
from intersect_batch.report.assets import CSP, CSS, GUARD_JS, SORT_JS
from intersect_batch.report.attention import Attention, attention
from intersect_batch.report.condition import night_condition
from intersect_batch.report.data import (
    UNKNOWN,
    DomainStats,
    HistoryPoint,
    JobReport,
    RunReport,
    Totals,
    rank_bucket_edges,
    top_domains,
)
from intersect_batch.report.fmt import money, seconds, short_date, short_money
from intersect_batch.report.runfiles import RefreshView
from intersect_batch.report.svg import bar_chart, column_chart
from intersect_batch.report.tables import (
    diff_cells,
    domains_table,
    jobs_table,
    lost_table,
    new_table,
)

__all__ = ["LOST_ROWS", "render_page"]

#: Categories drawn per distribution chart; the rest are summed as "other".
CATEGORIES = 10

#: Rows of the "lost since" table: shorter than the others, what left matters less.
LOST_ROWS = 10


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


def _card(key: str, value: str, *, name: str, css: str = "") -> str:
    cls = f"v {css}".strip()
    return (
        f'<div class="card" data-stat="{escape(name)}"><span class="k">{escape(key)}</span>'
        f'<span class="{cls}">{escape(value)}</span></div>'
    )


def _figure(caption: str, svg: str, *, name: str) -> str:
    return (
        f'<figure data-chart="{escape(name)}"><figcaption>{escape(caption)}</figcaption>'
        f"{svg}</figure>"
    )


def _top_categories(counts: Counter[str]) -> list[tuple[str, float]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] == UNKNOWN, kv[0]))
    rows: list[tuple[str, float]] = [(k, float(v)) for k, v in ranked[:CATEGORIES]]
    rest = sum(v for _, v in ranked[CATEGORIES:])
    if rest:
        rows.append(("other", float(rest)))
    return rows


# --- Sections. ---


def _gap_heading(job: JobReport, shown: int) -> str:
    how_many = f"the top {shown}" if shown < len(job.domains) else f"all {shown}"
    if not job.exclude_targets:
        return f"Referring domains by domain rank: {how_many}"
    names = list(job.targets.values())
    mode = job.view.request.get("intersection_mode")
    if len(names) > 4:
        targets = f"{'some' if mode == 'partial' else 'all'} of the {len(names)} targets"
    elif len(names) == 1:
        targets = names[0]
    else:
        targets = f"{'some' if mode == 'partial' else 'all'} of {', '.join(names)}"
    excluded = ", ".join(job.exclude_targets)
    return f"Link gap, {how_many} referring domains: they link to {targets} but not to {excluded}"


def _changes_part(job: JobReport, top: int) -> list[str]:
    since = job.since
    if not job.has_changes or since is None:
        return []
    jid = escape(job.job_id)
    when = escape(since)
    parts: list[str] = []
    new = sorted(job.new_domains.values(), key=DomainStats.order)
    new_whole = sum(1 for d in new if d.new_since is not None)
    parts.append(
        f'<h3 data-heading="new-since">New since {when}: {len(new):,} referring domains '
        f"with {job.new_pages:,} new pages ({new_whole:,} of them new domains)</h3>"
        if new
        else f'<h3 data-heading="new-since">New since {when}</h3>'
        '<p class="muted">No new referring page.</p>'
    )
    if new:
        parts.append(new_table(job, new[:top]))
        if len(new) > top:
            parts.append(
                f'<p class="muted" data-more="new">and {len(new) - top:,} more referring '
                f"domains with new pages: every new page is in <code>{jid}.diff.jsonl</code>, "
                f"new domains have <code>new_since</code> set in the CSV.</p>"
            )
    lost = sorted(job.lost_domains.values(), key=DomainStats.order)
    rows = min(LOST_ROWS, top)
    if lost:
        gone = sum(1 for d in lost if d.gone)
        parts.append(
            f'<h3 data-heading="lost-since">Lost since {when}: {len(lost):,} referring domains '
            f"with {job.lost_pages:,} pages ({gone:,} of them gone entirely)</h3>"
        )
        parts.append(lost_table(job, lost[:rows]))
        if len(lost) > rows:
            parts.append(
                f'<p class="muted" data-more="lost">and {len(lost) - rows:,} more: every lost '
                f"page is in <code>{jid}.diff.jsonl</code>.</p>"
            )
    return parts


#: How a history chart marks a run date that did not finish: it is drawn as an outline.
_MARKS = {"partial": "partial", "unreached": "no answer", "failed": "failed"}


def _history_charts(points: Sequence[HistoryPoint], *, what: str, name: str) -> list[str]:
    """Items and spend over the run dates: only a chart that has something to show.

    A partial night, one that never reached the API, or a job's failed run is marked, not
    drawn like a complete night.
    """
    if len(points) < 2:  # one column compares nothing
        return []
    n = len(points)
    marks = [_MARKS.get(p.status) for p in points]
    figures = []
    if any(p.items for p in points):
        figures.append(
            _figure(
                f"Items over the last {n} {what}s",
                column_chart(
                    f"items per {what}",
                    [(short_date(p.run_date), float(p.items)) for p in points],
                    width=560,
                    marks=marks,
                ),
                name=f"{name}-items",
            )
        )
    if any(p.cost_usd for p in points):
        figures.append(
            _figure(
                f"Spend over the last {n} {what}s",
                column_chart(
                    f"spend per {what}",
                    [(short_date(p.run_date), p.cost_usd) for p in points],
                    fmt=short_money,
                    width=560,
                    marks=marks,
                ),
                name=f"{name}-cost",
            )
        )
    return ['<div class="charts">', *figures, "</div>"] if figures else []


def _distribution_part(job: JobReport) -> list[str]:
    rank_rows: list[tuple[str, float]] = [
        (f"{lo}–{hi}", float(n))
        for (lo, hi), n in zip(rank_bucket_edges(job.rank_scale), job.rank_buckets, strict=True)
    ]
    if job.unranked:
        rank_rows.append(("unranked", float(job.unranked)))
    return [
        '<div class="charts">',
        _figure(
            f"Pages by domain rank (0–{job.rank_scale})",
            column_chart("pages by domain rank", rank_rows, width=560),
            name="rank",
        ),
        _figure(
            "Pages by country",
            bar_chart("pages by country", _top_categories(job.countries)),
            name="country",
        ),
        _figure(
            "Pages by platform type",
            bar_chart("pages by platform type", _top_categories(job.platforms)),
            name="platform",
        ),
        "</div>",
    ]


def _refresh_note(refresh: RefreshView | None) -> list[str]:
    """What an incremental night fetched, or what the full night found it missed."""
    if refresh is None:
        return []
    if refresh.mode == "incremental":
        return [
            '<p class="muted" data-refresh="incremental">Incremental night: only pages first '
            f"seen after {escape(refresh.cutoff or '?')} were fetched; lost pages are "
            f"{escape(refresh.lost or 'checked on full nights')}.</p>"
        ]
    if refresh.missed_by_incremental is None:
        return []
    return [
        f'<p class="muted" data-refresh="missed">Full night: {refresh.missed_by_incremental:,} '
        "pages the incremental nights since "
        f"{escape(refresh.missed_since or '?')} missed (found again, or no longer excluded).</p>"
    ]


def _job_section(job: JobReport, top: int) -> str:
    view = job.view
    jid = escape(job.job_id)
    targets = ", ".join(f"{escape(n)}. {escape(t)}" for n, t in job.targets.items())
    parts = [
        f'<section class="job" id="job-{jid}" data-job="{jid}">',
        f'<h2>{jid} <small class="status-{escape(view.status)}">{escape(view.status)}</small></h2>',
        f'<p class="muted targets">targets: {targets}',
    ]
    if job.exclude_targets:
        excluded = ", ".join(escape(t) for t in job.exclude_targets)
        parts.append(f"<br>excluding pages that link to: {excluded}")
    parts.append("</p>")
    if view.reason:
        parts.append(f'<p class="warn" data-reason>{escape(view.reason)}</p>')

    new, lost, note = diff_cells(job)
    items = job.items if job.has_items else view.items_written
    cards = [
        _card("items", f"{items:,}", name="items"),
        _card("new pages", f"+{new}" if new else "–", name="new", css="new"),
        _card("lost pages", f"−{lost}" if lost else "–", name="lost", css="lost"),
        _card("compared with", note, name="compared"),
        _card("cost", money(view.cost_usd), name="cost"),
        _card("calls", f"{view.calls:,}", name="calls"),
    ]
    if job.has_items:
        cards.append(_card("referring domains", f"{len(job.domains):,}", name="domains"))
        cards.append(_card("dofollow pages", f"{job.dofollow_items:,}", name="dofollow"))
    parts.append('<div class="cards">' + "".join(cards) + "</div>")
    parts.extend(_refresh_note(view.refresh))
    if job.unreadable_lines:
        parts.append(f'<p class="warn">{job.unreadable_lines:,} lines could not be read.</p>')
    parts.extend(f'<p class="warn" data-problem>{escape(p)}</p>' for p in job.problems)

    parts.extend(_changes_part(job, top))
    if job.has_items and job.items:
        best = top_domains(job, top)
        parts.append(f'<h3 data-heading="top">{escape(_gap_heading(job, len(best)))}</h3>')
        parts.append(domains_table(job, best))
        csv_name = opportunities_name(job.job_id)
        parts.append(
            f'<p class="muted">All {len(job.domains):,} referring domains, for a spreadsheet: '
            f'<a href="{escape(quote(csv_name))}" download data-csv>{escape(csv_name)}</a></p>'
        )
        parts.extend(_distribution_part(job))
    elif job.has_items:
        parts.append('<p class="muted" data-empty>No referring page this run.</p>')
    else:
        parts.append('<p class="muted">No items file: the job did not complete this run.</p>')
    parts.extend(_history_charts(job.history, what="run", name="history"))
    parts.append("</section>")
    return "".join(parts)


def _totals(totals: Totals, title: str, note: str, *, compared: bool) -> str:
    """A group of totals; ``compared``: some job of the run was compared with an earlier
    night (else there is no diff to count, and the card says so, not "+0 / -0")."""
    cards: list[str] = []
    t = totals
    if t.jobs_by_status is not None:
        cards.append(_card("jobs", _statuses(t.jobs_by_status), name="jobs"))
    elif t.jobs is not None:
        cards.append(_card("jobs", f"{t.jobs:,}", name="jobs"))
    if t.jobs_run is not None:
        cards.append(_card("jobs run", f"{t.jobs_run:,}", name="jobs-run"))
    if t.items is not None:
        cards.append(_card("items", f"{t.items:,}", name="items"))
    if t.new_items is not None or t.lost_items is not None:
        value = f"+{t.new_items or 0:,} / −{t.lost_items or 0:,}" if compared else "no diff"
        cards.append(_card("new / lost pages", value, name="new-lost"))
    if t.calls is not None:
        cards.append(_card("calls", f"{t.calls:,}", name="calls"))
    if t.calls_per_minute is not None:
        cards.append(_card("calls per minute", f"{t.calls_per_minute:,.1f}", name="rate"))
    if t.retries is not None:
        cards.append(_card("retries", f"{t.retries:,}", name="retries"))
    if t.cost_usd is not None:
        cards.append(_card("cost", money(t.cost_usd), name="cost"))
    if t.duration_s is not None:
        cards.append(_card("duration", seconds(t.duration_s), name="duration"))
    if t.throttled_s is not None:
        cards.append(_card("paused by the API's limits", seconds(t.throttled_s), name="throttled"))
    if t.invocations is not None:
        cards.append(_card("invocations", f"{t.invocations:,}", name="invocations"))
    extra = f' <span class="muted">{escape(note)}</span>' if note else ""
    return (
        f'<div class="totals" data-totals="{escape(t.scope)}"><h3>{escape(title)}{extra}</h3>'
        f'<div class="cards">{"".join(cards)}</div></div>'
    )


def _attention_item(a: Attention) -> str:
    labels = {
        "stopped": "run stopped",
        "invalid": "invalid config",
        "failed": "failed",
        "partial": "partial",
    }
    badge = f'<span class="badge {escape(a.kind)}">{escape(labels.get(a.kind, a.kind))}</span>'
    parts = [badge]
    if a.where:
        parts.append(f"<code>{escape(a.where)}</code>")
    if a.job_id is not None:
        name = escape(a.job_id)
        job = f'<a href="#job-{name}">{name}</a>' if a.has_section else f"<strong>{name}</strong>"
        parts.append(f"job {job}:")
    message = a.message
    if a.job_id is not None:
        # Errors name their job already; the list names it once.
        message = message.removeprefix(f"job {a.job_id!r}").lstrip(": ")
    parts.append(escape(message or a.kind))
    job_attr = "" if a.job_id is None else f' data-job="{escape(a.job_id)}"'
    return f'<li data-attention="{escape(a.kind)}"{job_attr}>{" ".join(parts)}</li>'


#: The run card's heading for a night that did not end complete.
_HEADS = {
    "partial": "partial: some jobs stopped before they finished",
    "unreached": "no answer from the API: nothing fetched",
}


def _run_section(report: RunReport) -> str:
    run = report.run
    if run is None:
        head = ""
    elif run.exit_code == 0 and not run.needs_attention:
        head = ' <small class="status-complete">all complete, exit status 0</small>'
    else:
        code = "" if run.exit_code is None else f", exit status {run.exit_code}"
        condition = night_condition(run)
        words = _HEADS.get(condition, "needs attention")
        head = (
            f' <small class="status-failed" data-condition="{condition}">'
            f"{escape(words)}{escape(code)}</small>"
        )
    parts = [f'<section id="run"><h2>Run {escape(report.run_date)}{head}</h2>']
    if run is not None:
        night = run.night_totals()
        invocation = run.invocation_totals()
        # Figures other than 0 come from a diff; zeros with no job compared are no diff.
        compared = any(job.since is not None for job in report.jobs) or any(
            t is not None and (t.new_items or t.lost_items) for t in (night, invocation)
        )
        if night is not None:
            parts.append(
                _totals(
                    night,
                    "The night",
                    "every job of the run date, all invocations",
                    compared=compared,
                )
            )
        if invocation is not None:
            when = ""
            if invocation.started_at and invocation.finished_at:
                when = f"{invocation.started_at} to {invocation.finished_at}"
            parts.append(_totals(invocation, "Latest invocation", when, compared=compared))
        if night is None:
            parts.append(
                '<p class="muted" data-note="no-night">run.json does not total the night '
                "(its format predates that); the jobs table below covers every job of the "
                "run date.</p>"
            )
    else:
        parts.append(
            '<div class="cards">'
            + _card("run.json", "missing or unreadable", name="run")
            + "</div>"
        )

    items = attention(report)
    if items:
        parts.append(
            '<div class="attention" id="attention"><h3>Needs attention</h3><ul>'
            + "".join(_attention_item(a) for a in items)
            + "</ul></div>"
        )
    elif run is not None and run.exit_code == 0:
        parts.append('<p class="ok" data-attention="none">Every job is complete.</p>')

    parts.extend(_history_charts(report.history, what="run date", name="run-history"))
    parts.append("<h3>Jobs</h3>")
    shown = sum(1 for job in report.jobs if job.detailed)
    if shown < len(report.jobs):
        parts.append(
            f'<p class="muted" data-note="sections">A section below for {shown:,} of the '
            f"{len(report.jobs):,} jobs: those that need attention, then those with the most "
            "new items. Every complete job's referring domains are in its opportunities CSV."
            "</p>"
        )
    parts.append(jobs_table(report) if report.jobs else '<p class="muted">no jobs</p>')
    parts.append("</section>")
    return "".join(parts)


def render_page(report: RunReport, *, top: int = 25) -> str:
    """The whole report page for a run folder."""
    title = f"intersect-batch report {report.run_date}"
    body = [_run_section(report), *(_job_section(job, top) for job in report.jobs if job.detailed)]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f"<script>{GUARD_JS}</script><style>{CSS}</style></head>"
        f"<body><header><h1>{escape(title)}</h1>"
        f'<p class="muted path">{escape(str(report.run_dir))}</p></header>'
        f"<main>{''.join(body)}</main><script>{SORT_JS}</script></body></html>\n"
    )
