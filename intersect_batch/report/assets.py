"""The report page's own style and scripts, and the policy that forbids any other load."""

from __future__ import annotations

__all__ = ["CSP", "CSS", "GUARD_JS", "SORT_JS"]

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

CSS = """
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
/* Numbers and dates take the width they need; names and links get the rest. */
td.num, th.num, td.date { width: 1%; white-space: nowrap; }
/* break-word, not anywhere: the link column asks for a whole URL's width first. */
td.url { overflow-wrap: break-word; word-break: normal; }
td.domain { overflow-wrap: anywhere; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 24px; }
.charts figure { margin: 0; flex: 1 1 300px; min-width: 0; }
svg.chart { display: block; height: auto; }
figcaption { font-size: 12px; font-weight: 600; color: var(--muted); margin: 6px 0 2px; }
.chart text { font-size: 11px; fill: var(--ink); }
.chart text.value, .chart text.tick { fill: var(--muted); font-size: 10px; }
.chart rect { fill: var(--bar); }
/* A night that did not finish (partial, no answer) is an outline, not a whole column. */
.chart g.marked rect { fill: none; stroke: var(--warn); stroke-dasharray: 3 2; }
.chart g.marked text.value { fill: var(--warn); }
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
    max-width: none; width: auto; white-space: normal; }
  table.reflow td::before { content: attr(data-label); display: block; color: var(--muted);
    font-size: 11px; }
  table.reflow td.wide { grid-column: 1 / -1; }
  table.reflow td.url { overflow-wrap: anywhere; }
  table.reflow td.lead { font-weight: 600; }
  table.reflow td.lead::before, table.reflow td.pos { display: none; }
  /* A label with nothing under it says nothing: an empty cell is left out. */
  table.reflow td:empty { display: none; }
}
"""

# Installed first, so that any later failure (or a blocked load) is written into the DOM:
# a headless browser's --dump-dom then shows it, and a test can assert there is none.
GUARD_JS = """
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
SORT_JS = """
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
