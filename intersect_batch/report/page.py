"""The report as one self-contained HTML page: inline CSS, inline SVG, a little inline JS.

Nothing is fetched: a Content-Security-Policy forbids every external load, so the page
opens from disk anywhere. All text that came from items or manifests is escaped.
"""

from __future__ import annotations

from collections import Counter
from html import escape

from intersect_batch.report.data import (
    UNKNOWN,
    DomainStats,
    JobReport,
    RunReport,
    rank_bucket_edges,
    top_domains,
)
from intersect_batch.report.svg import bar_chart, column_chart, number

__all__ = ["render_page"]

#: Categories drawn per distribution chart; the rest are summed as "other".
CATEGORIES = 10

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

_CSS = """
:root { --ink:#1f2328; --muted:#656d76; --line:#d0d7de; --bg:#f6f8fa; --bar:#2f81f7;
  --new:#1a7f37; --lost:#cf222e; --warn:#9a6700; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); margin: 0; background: #fff; }
header, main { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 6px; }
h3 { font-size: 14px; margin: 14px 0 6px; color: var(--muted); font-weight: 600; }
section { border: 1px solid var(--line); border-radius: 8px; padding: 16px; margin: 16px 0; }
.muted, .chart .muted { color: var(--muted); fill: var(--muted); }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.card { background: var(--bg); border-radius: 6px; padding: 8px 12px; min-width: 110px; }
.card .k { display: block; font-size: 12px; color: var(--muted); }
.card .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.new { color: var(--new); } .lost { color: var(--lost); } .warn { color: var(--warn); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--bg); font-weight: 600; white-space: nowrap; }
th[data-sort] { cursor: pointer; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num, th.num { text-align: right; }
td.url { max-width: 420px; overflow-wrap: anywhere; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 24px; }
.charts figure { margin: 0; }
figcaption { font-size: 12px; font-weight: 600; color: var(--muted); margin: 6px 0 2px; }
.chart text { font-size: 11px; fill: var(--ink); }
.chart text.value, .chart text.tick { fill: var(--muted); font-size: 10px; }
.chart rect { fill: var(--bar); }
.chart .axis { stroke: var(--line); }
.status-complete { color: var(--new); } .status-failed { color: var(--lost); }
.status-partial { color: var(--warn); }
code { background: var(--bg); padding: 0 4px; border-radius: 4px; }
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

# Click a column heading to sort its table; numbers sort by their data-value.
_SORT_JS = """
(function () {
  function value(row, i) {
    var cell = row.cells[i];
    var raw = cell.getAttribute("data-value");
    return raw === null ? cell.textContent.trim().toLowerCase() : parseFloat(raw);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () {
        var i = th.cellIndex;
        var up = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = value(a, i), y = value(b, i);
          var c = x < y ? -1 : x > y ? 1 : 0;
          return up ? c : -c;
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


def _domains_table(job: JobReport, rows: list[DomainStats]) -> str:
    total = len(job.targets)
    head = (
        '<table class="sortable domains"><thead><tr>'
        '<th class="num" data-sort>#</th><th data-sort>domain</th>'
        '<th class="num" data-sort>domain rank</th><th class="num" data-sort>targets linked</th>'
        '<th class="num" data-sort>pages</th><th>example page</th><th data-sort>first seen</th>'
        "</tr></thead><tbody>"
    )
    body = []
    for i, d in enumerate(rows, start=1):
        linked = job.linked_targets(d)
        rank = "" if d.rank is None else _attr_num(d.rank)
        body.append(
            f'<tr data-domain="{escape(d.domain)}">'
            f'<td class="num" data-value="{i}">{i}</td>'
            f"<td>{escape(d.domain)}</td>"
            f'<td class="num" data-value="{rank or -1}">{escape(_rank_text(d.rank))}</td>'
            f'<td class="num" data-value="{d.targets_linked}" title="{escape(", ".join(linked))}">'
            f"{d.targets_linked} of {total}</td>"
            f'<td class="num" data-value="{d.pages}">{d.pages:,}</td>'
            f'<td class="url">{_link(d.example_url)}</td>'
            f"<td>{escape(d.first_seen or '')}</td></tr>"
        )
    return head + "".join(body) + "</tbody></table>"


def _attr_num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _diff_cells(job: JobReport) -> tuple[str, str, str]:
    diff = job.diff
    if diff is None:
        return "", "", "no diff"
    if diff.skipped is not None:
        return "", "", diff.skipped
    since = f"since {diff.previous_run}" if diff.previous_run else ""
    return str(diff.new), str(diff.lost), since


def _jobs_table(report: RunReport) -> str:
    rows = []
    for job in report.jobs:
        new, lost, note = _diff_cells(job)
        view = job.view
        items = job.items if job.has_items else view.items_written
        rows.append(
            f'<tr data-job="{escape(job.job_id)}">'
            f'<td><a href="#job-{escape(job.job_id)}">{escape(job.job_id)}</a></td>'
            f'<td class="status-{escape(view.status)}">{escape(view.status)}</td>'
            f'<td class="num" data-value="{items}">{items:,}</td>'
            f'<td class="num new" data-value="{new or 0}">{new and "+" + new}</td>'
            f'<td class="num lost" data-value="{lost or 0}">{lost and "−" + lost}</td>'
            f'<td class="muted">{escape(note)}</td>'
            f'<td class="num" data-value="{_attr_num(view.cost_usd)}">{_money(view.cost_usd)}</td>'
            "</tr>"
        )
    return (
        '<table class="sortable jobs"><thead><tr><th data-sort>job</th><th data-sort>status</th>'
        '<th class="num" data-sort>items</th><th class="num" data-sort>new</th>'
        '<th class="num" data-sort>lost</th><th>compared with</th>'
        '<th class="num" data-sort>cost</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def _job_section(job: JobReport, top: int) -> str:
    view = job.view
    jid = escape(job.job_id)
    targets = ", ".join(f"{escape(n)}. {escape(t)}" for n, t in job.targets.items())
    parts = [
        f'<section class="job" id="job-{jid}" data-job="{jid}">',
        f'<h2>{jid} <small class="status-{escape(view.status)}">{escape(view.status)}</small></h2>',
        f'<p class="muted">targets: {targets}',
    ]
    if job.exclude_targets:
        excluded = ", ".join(escape(t) for t in job.exclude_targets)
        parts.append(f"<br>excluding pages that link to: {excluded}")
    parts.append("</p>")
    if view.reason:
        parts.append(f'<p class="warn">{escape(view.reason)}</p>')

    new, lost, note = _diff_cells(job)
    items = job.items if job.has_items else view.items_written
    cards = [
        _card("items", f"{items:,}", name="items"),
        _card("new", f"+{new}" if new else "–", name="new", css="new"),
        _card("lost", f"−{lost}" if lost else "–", name="lost", css="lost"),
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

    if job.has_items:
        if job.exclude_targets:
            heading = (
                f"Link-gap opportunities: the top {top} referring domains that link to the "
                f"targets but not to {', '.join(job.exclude_targets)}"
            )
        else:
            heading = f"Top {top} referring domains by domain rank"
        parts.append(f"<h3>{escape(heading)}</h3>")
        best = top_domains(job, top)
        parts.append(_domains_table(job, best) if best else '<p class="muted">no items</p>')
        parts.append(
            f'<p class="muted">All {len(job.domains):,} referring domains: '
            f"<code>{jid}.opportunities.csv</code></p>"
        )
        rank_rows: list[tuple[str, float]] = [
            (f"{lo}–{hi}", float(n))
            for (lo, hi), n in zip(rank_bucket_edges(job.rank_scale), job.rank_buckets, strict=True)
        ]
        if job.unranked:
            rank_rows.append(("unranked", float(job.unranked)))
        parts.append('<div class="charts">')
        parts.append(
            _figure(
                f"Pages by domain rank (0–{job.rank_scale})",
                column_chart("pages by domain rank", rank_rows, width=560),
                name="rank",
            )
        )
        parts.append(
            _figure(
                "Pages by country",
                bar_chart("pages by country", _top_categories(job.countries)),
                name="country",
            )
        )
        parts.append(
            _figure(
                "Pages by platform type",
                bar_chart("pages by platform type", _top_categories(job.platforms)),
                name="platform",
            )
        )
        parts.append("</div>")
    else:
        parts.append('<p class="muted">No items file: the job did not complete this run.</p>')

    if job.history:
        parts.append('<div class="charts">')
        parts.append(
            _figure(
                f"Items over the last {len(job.history)} runs",
                column_chart(
                    "items per run", [(p.run_date[5:], float(p.items)) for p in job.history]
                ),
                name="history-items",
            )
        )
        parts.append(
            _figure(
                f"Spend over the last {len(job.history)} runs",
                column_chart(
                    "spend per run",
                    [(p.run_date[5:], p.cost_usd) for p in job.history],
                    fmt=_short_money,
                ),
                name="history-cost",
            )
        )
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _run_section(report: RunReport) -> str:
    run = report.run
    parts = ['<section id="run"><h2>Run</h2><div class="cards">']
    if run is not None:
        statuses = ", ".join(f"{n} {escape(s)}" for s, n in sorted(run.jobs_by_status.items()))
        parts.append(_card("jobs", statuses or "none", name="jobs"))
        parts.append(_card("items", f"{run.items:,}", name="items"))
        parts.append(_card("calls", f"{run.calls:,}", name="calls"))
        parts.append(_card("cost", _money(run.cost_usd), name="cost"))
        if run.duration_s is not None:
            parts.append(_card("duration", f"{run.duration_s:,.1f} s", name="duration"))
        if run.exit_code is not None:
            parts.append(_card("exit status", str(run.exit_code), name="exit"))
    else:
        parts.append(_card("run.json", "missing", name="run"))
    parts.append("</div>")
    if report.history:
        n = len(report.history)
        parts.append('<div class="charts">')
        parts.append(
            _figure(
                f"Spend over the last {n} runs",
                column_chart(
                    "spend per run",
                    [(p.run_date[5:], p.cost_usd) for p in report.history],
                    fmt=_short_money,
                    width=560,
                ),
                name="run-history-cost",
            )
        )
        parts.append(
            _figure(
                f"Items over the last {n} runs",
                column_chart(
                    "items per run",
                    [(p.run_date[5:], float(p.items)) for p in report.history],
                    width=560,
                ),
                name="run-history-items",
            )
        )
        parts.append("</div>")
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
        f'<p class="muted">{escape(str(report.run_dir))}</p></header>'
        f"<main>{''.join(body)}</main><script>{_SORT_JS}</script></body></html>\n"
    )
