"""The report as one self-contained HTML page: inline CSS, inline SVG, a little inline JS.

Nothing is fetched: a Content-Security-Policy forbids every external load, so the page
opens from disk anywhere. All text that came from items or manifests is escaped. The
page fits a phone: charts scale to their card, and on a narrow screen every table turns
into one labelled block per row, so no column (the example page least of all) is pushed
off the screen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from html import escape
from urllib.parse import quote

from intersect_batch.report.data import (
    UNKNOWN,
    Attention,
    DomainStats,
    HistoryPoint,
    JobReport,
    RunReport,
    Totals,
    attention,
    rank_bucket_edges,
    top_domains,
)
from intersect_batch.report.svg import bar_chart, column_chart, number

__all__ = ["LOST_ROWS", "render_page"]

#: Categories drawn per distribution chart; the rest are summed as "other".
CATEGORIES = 10

#: Rows of the "lost since" table: shorter than the others, what left matters less.
LOST_ROWS = 10

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

_CSS = """
:root { --ink:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#f6f8fa; --bar:#2f81f7;
  --new:#1a7f37; --new-bg:#dafbe1; --lost:#cf222e; --lost-bg:#ffebe9; --warn:#9a6700;
  --warn-bg:#fff8c5; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); margin: 0; background: #fff; }
header, main { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 6px; }
h3 { font-size: 14px; margin: 16px 0 6px; color: var(--muted); font-weight: 600; }
h2 small { font-size: 13px; font-weight: 600; margin-left: 6px; }
section { border: 1px solid var(--line); border-radius: 8px; padding: 16px; margin: 16px 0;
  min-width: 0; }
a { color: #0969da; }
.muted, .chart .muted { color: var(--muted); fill: var(--muted); }
.path, .targets { overflow-wrap: anywhere; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.card { background: var(--bg); border-radius: 6px; padding: 8px 12px; min-width: 110px;
  flex: 0 1 auto; }
.card .k { display: block; font-size: 12px; color: var(--muted); }
.card .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums;
  overflow-wrap: anywhere; }
.totals h3 { margin-bottom: 0; }
.totals h3 .muted { font-weight: 400; }
.new { color: var(--new); } .lost { color: var(--lost); } .warn { color: var(--warn); }
.badge { display: inline-block; font-size: 11px; font-weight: 600; border-radius: 10px;
  padding: 0 7px; margin-left: 4px; white-space: nowrap; vertical-align: 1px; }
.badge.new { background: var(--new-bg); color: var(--new); }
.badge.gone { background: var(--lost-bg); color: var(--lost); }
.badge.failed, .badge.invalid, .badge.stopped { background: var(--lost-bg); color: var(--lost); }
.badge.partial { background: var(--warn-bg); color: var(--warn); }
.hosts { display: block; font-size: 12px; font-weight: 400; color: var(--muted);
  overflow-wrap: anywhere; }
.attention { border-left: 3px solid var(--lost); background: #fff; padding: 2px 0 2px 12px;
  margin: 12px 0; }
.attention ul { margin: 4px 0; padding-left: 0; list-style: none; }
.attention li { margin: 4px 0; overflow-wrap: anywhere; }
.attention code { font-size: 12px; }
.ok { color: var(--new); font-weight: 600; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
th[data-sort] button { font: inherit; color: inherit; background: none; border: 0;
  padding: 0; cursor: pointer; text-align: inherit; }
th[data-sort] button::after { content: " \\2195"; color: var(--muted); font-weight: 400; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: var(--ink); }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: var(--ink); }
td.num, th.num { text-align: right; }
td.url { max-width: 420px; overflow-wrap: anywhere; }
td.domain { overflow-wrap: anywhere; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 24px; }
.charts figure { margin: 0; flex: 1 1 300px; min-width: 0; }
svg.chart { display: block; height: auto; }
figcaption { font-size: 12px; font-weight: 600; color: var(--muted); margin: 6px 0 2px; }
.chart text { font-size: 11px; fill: var(--ink); }
.chart text.value, .chart text.tick { fill: var(--muted); font-size: 10px; }
.chart rect { fill: var(--bar); }
.chart .axis { stroke: var(--line); }
.status-complete { color: var(--new); } .status-failed { color: var(--lost); }
.status-partial { color: var(--warn); }
code { background: var(--bg); padding: 0 4px; border-radius: 4px; overflow-wrap: anywhere; }
@media (max-width: 720px) {
  header, main { padding: 0 10px; }
  header { padding-top: 12px; }
  h1 { font-size: 19px; }
  section { padding: 12px 10px; margin: 12px 0; }
  .card { min-width: 0; flex: 1 1 28%; padding: 6px 8px; }
  .card .v { font-size: 15px; }
  .charts figure { flex-basis: 100%; }
  .chart text { font-size: 14px; }
  .chart text.value, .chart text.tick { font-size: 13px; }
  /* One block per row, its cells on a three-column grid, each under its own label:
     every cell stays on the screen, the example page on a line of its own. */
  table.reflow thead { display: none; }
  table.reflow, table.reflow tbody { display: block; }
  table.reflow tr { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr));
    gap: 2px 10px; padding: 8px 0; border-bottom: 1px solid var(--line); }
  table.reflow td { display: block; border: 0; padding: 0; text-align: left; min-width: 0;
    max-width: none; }
  table.reflow td::before { content: attr(data-label); display: block; color: var(--muted);
    font-size: 11px; }
  table.reflow td.wide { grid-column: 1 / -1; }
  table.reflow td.lead { font-weight: 600; }
  table.reflow td.lead::before, table.reflow td.pos { display: none; }
}
"""

# Installed first, so that any later failure (or a blocked load) is written into the DOM:
# a headless browser's --dump-dom then shows it, and a test can assert there is none.
_GUARD_JS = """
(function () {
  var seen = [];
  function note(text) {
    seen.push(String(text));
    document.documentElement.setAttribute("data-errors", seen.join(" | "));
  }
  window.addEventListener("error", function (e) { note(e.message || "error"); });
  window.addEventListener("unhandledrejection", function (e) { note(e.reason); });
  document.addEventListener("securitypolicyviolation", function (e) {
    note("blocked " + e.violatedDirective + " " + e.blockedURI);
  });
  // The page never opens a dialog; one would stall a headless browser, so record it.
  ["alert", "confirm", "prompt"].forEach(function (name) {
    window[name] = function (text) { note(name + "(" + text + ")"); };
  });
  var original = console.error;
  console.error = function () {
    note(Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
"""

# A heading's button sorts its table. The first click sorts best first (the heading's
# data-sort says which way that is), the next one reverses; aria-sort tells which column
# the rows are in order of. Numbers sort by their data-value.
_SORT_JS = """
(function () {
  function value(row, i) {
    var cell = row.cells[i];
    var raw = cell.getAttribute("data-value");
    return raw === null ? cell.textContent.trim().toLowerCase() : parseFloat(raw);
  }
  var names = { asc: "ascending", desc: "descending" };
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("th[data-sort]");
    heads.forEach(function (th) {
      th.querySelector("button").addEventListener("click", function () {
        var best = th.getAttribute("data-sort");
        var other = best === "asc" ? "desc" : "asc";
        var way = th.getAttribute("aria-sort") === names[best] ? other : best;
        heads.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", names[way]);
        var i = th.cellIndex;
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = value(a, i), y = value(b, i);
          var c = x < y ? -1 : x > y ? 1 : 0;
          return way === "asc" ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute("data-ready", "yes");
})();
"""


def _money(value: float) -> str:
    return f"${value:,.4f}"


def _short_money(value: float) -> str:
    return f"${value:,.2f}" if value >= 10 else f"${value:.3f}"


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:,.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


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


def _link(url: str | None) -> str:
    if not url:
        return ""
    text = escape(url)
    # Only web links become clickable: an item could carry a javascript: or data: URL.
    if url.lower().startswith(("http://", "https://")):
        return f'<a href="{text}" rel="noopener noreferrer nofollow">{text}</a>'
    return text


def _rank_text(rank: float | None) -> str:
    return "" if rank is None else number(rank)


def _attr_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


# --- Tables. ---

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


def _short_date(date: str) -> str:
    return date[5:] if len(date) == 10 and date[4] == "-" else date


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
        f"new since {escape(_short_date(d.new_since))}</span>"
    )


def _rank_cell(_: int, d: DomainStats) -> tuple[str, str | None]:
    return escape(_rank_text(d.rank)), "-1" if d.rank is None else _attr_num(d.rank)


def _pages_cell(_: int, d: DomainStats) -> tuple[str, str | None]:
    return f"{d.pages:,}", str(d.pages)


def _example_cell(_: int, d: DomainStats) -> tuple[str, str | None]:
    return _link(d.example_url), None


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


def _domains_table(job: JobReport, rows: list[DomainStats]) -> str:
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
        ("first seen by the API", "", "asc", first_seen),
    ]

    def attrs(d: DomainStats) -> str:
        return "" if d.new_since is None else f' data-new-since="{escape(d.new_since)}"'

    return _table("domains", columns, rows, sorted_by=0, row_attrs=attrs)


def _new_table(job: JobReport, rows: list[DomainStats]) -> str:
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


def _lost_table(job: JobReport, rows: list[DomainStats]) -> str:
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


def _diff_cells(job: JobReport) -> tuple[str, str, str]:
    """``(new, lost, compared with)`` as the jobs table and the job's cards show them."""
    diff = job.diff
    if diff is None:
        return "", "", "no diff"
    if diff.skipped is not None:
        return "", "", diff.skipped
    return str(diff.new), str(diff.lost), diff.previous_run or "the previous run"


def _jobs_table(report: RunReport) -> str:
    rows = []
    for job in report.jobs:
        new, lost, note = _diff_cells(job)
        view = job.view
        jid = escape(job.job_id)
        items = job.items if job.has_items else view.items_written
        rows.append(
            f'<tr data-job="{jid}">'
            f'<td data-label="job" class="lead wide"><a href="#job-{jid}">{jid}</a></td>'
            f'<td data-label="status" class="status-{escape(view.status)}">'
            f"{escape(view.status)}</td>"
            f'<td data-label="items" class="num" data-value="{items}">{items:,}</td>'
            f'<td data-label="new" class="num new" data-value="{new or 0}">{new and "+" + new}</td>'
            f'<td data-label="lost" class="num lost" data-value="{lost or 0}">'
            f"{lost and '−' + lost}</td>"
            f'<td data-label="compared with" class="muted">{escape(note)}</td>'
            f'<td data-label="cost" class="num" data-value="{_attr_num(view.cost_usd)}">'
            f"{_money(view.cost_usd)}</td>"
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
        parts.append(_new_table(job, new[:top]))
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
        parts.append(_lost_table(job, lost[:rows]))
        if len(lost) > rows:
            parts.append(
                f'<p class="muted" data-more="lost">and {len(lost) - rows:,} more: every lost '
                f"page is in <code>{jid}.diff.jsonl</code>.</p>"
            )
    return parts


def _history_charts(points: Sequence[HistoryPoint], *, what: str, name: str) -> list[str]:
    """Items and spend over the run dates: only a chart that has something to show."""
    if len(points) < 2:  # one column compares nothing
        return []
    n = len(points)
    figures = []
    if any(p.items for p in points):
        figures.append(
            _figure(
                f"Items over the last {n} {what}s",
                column_chart(
                    f"items per {what}",
                    [(_short_date(p.run_date), float(p.items)) for p in points],
                    width=560,
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
                    [(_short_date(p.run_date), p.cost_usd) for p in points],
                    fmt=_short_money,
                    width=560,
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

    new, lost, note = _diff_cells(job)
    items = job.items if job.has_items else view.items_written
    cards = [
        _card("items", f"{items:,}", name="items"),
        _card("new pages", f"+{new}" if new else "–", name="new", css="new"),
        _card("lost pages", f"−{lost}" if lost else "–", name="lost", css="lost"),
        _card("compared with", note, name="compared"),
        _card("cost", _money(view.cost_usd), name="cost"),
        _card("calls", f"{view.calls:,}", name="calls"),
    ]
    if job.has_items:
        cards.append(_card("referring domains", f"{len(job.domains):,}", name="domains"))
        cards.append(_card("dofollow pages", f"{job.dofollow_items:,}", name="dofollow"))
    parts.append('<div class="cards">' + "".join(cards) + "</div>")
    if job.unreadable_lines:
        parts.append(f'<p class="warn">{job.unreadable_lines:,} lines could not be read.</p>')

    parts.extend(_changes_part(job, top))
    if job.has_items and job.items:
        best = top_domains(job, top)
        parts.append(f'<h3 data-heading="top">{escape(_gap_heading(job, len(best)))}</h3>')
        parts.append(_domains_table(job, best))
        csv_name = f"{job.job_id}.opportunities.csv"
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


def _totals(totals: Totals, title: str, note: str) -> str:
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
        value = f"+{t.new_items or 0:,} / −{t.lost_items or 0:,}"
        cards.append(_card("new / lost pages", value, name="new-lost"))
    if t.calls is not None:
        cards.append(_card("calls", f"{t.calls:,}", name="calls"))
    if t.calls_per_minute is not None:
        cards.append(_card("calls per minute", f"{t.calls_per_minute:,.1f}", name="rate"))
    if t.retries is not None:
        cards.append(_card("retries", f"{t.retries:,}", name="retries"))
    if t.cost_usd is not None:
        cards.append(_card("cost", _money(t.cost_usd), name="cost"))
    if t.duration_s is not None:
        cards.append(_card("duration", _seconds(t.duration_s), name="duration"))
    if t.throttled_s is not None:
        cards.append(_card("paused by the API's limits", _seconds(t.throttled_s), name="throttled"))
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


def _run_section(report: RunReport) -> str:
    run = report.run
    if run is None:
        head = ""
    elif run.exit_code == 0 and not run.needs_attention:
        head = ' <small class="status-complete">all complete, exit status 0</small>'
    else:
        code = "" if run.exit_code is None else f", exit status {run.exit_code}"
        head = f' <small class="status-failed">needs attention{escape(code)}</small>'
    parts = [f'<section id="run"><h2>Run {escape(report.run_date)}{head}</h2>']
    if run is not None:
        night = run.night_totals()
        invocation = run.invocation_totals()
        if night is not None:
            parts.append(_totals(night, "The night", "every job of the run date, all invocations"))
        if invocation is not None:
            when = ""
            if invocation.started_at and invocation.finished_at:
                when = f"{invocation.started_at} to {invocation.finished_at}"
            parts.append(_totals(invocation, "Latest invocation", when))
        if night is None:
            parts.append(
                '<p class="muted" data-note="no-night">run.json does not total the night '
                "(its format predates that); the jobs table below covers every job of the "
                "run date.</p>"
            )
    else:
        parts.append('<div class="cards">' + _card("run.json", "missing", name="run") + "</div>")

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
    parts.append(_jobs_table(report) if report.jobs else '<p class="muted">no jobs</p>')
    parts.append("</section>")
    return "".join(parts)


def render_page(report: RunReport, *, top: int = 25) -> str:
    """The whole report page for a run folder."""
    title = f"intersect-batch report {report.run_date}"
    body = [_run_section(report), *(_job_section(job, top) for job in report.jobs)]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f"<script>{_GUARD_JS}</script><style>{_CSS}</style></head>"
        f"<body><header><h1>{escape(title)}</h1>"
        f'<p class="muted path">{escape(str(report.run_dir))}</p></header>'
        f"<main>{''.join(body)}</main><script>{_SORT_JS}</script></body></html>\n"
    )
