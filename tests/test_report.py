"""The morning report, checked as a person sees it: CSV in a spreadsheet, HTML in Chromium.

Three real nights against the emulator (live data, so pages come and go), the last one
with an invalid config file, a job the API rejects and a job without results. The page
is opened in headless Chromium, driven over the DevTools protocol, at 1400 px and at
400 px (a phone): the layout is measured there and a full-page screenshot of each width
is kept in the test's temporary folder, and copied to ``$REPORT_SHOTS_DIR`` when that is
set, to be looked at.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
import os
import select
import shutil
import struct
import subprocess
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest

from intersect_batch.diff import diff_job, read_diff_counts
from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.errors import UsageError
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from intersect_batch.report import OPPORTUNITY_COLUMNS, write_report
from intersect_batch.report.data import JobReport, JobView, aggregate_items
from intersect_batch.report.domains import registrable_domain
from tests.support import fast_settings, manifest, read_lines, run, write_jobs

NIGHTS = [dt.date(2026, 11, 27), dt.date(2026, 11, 28), dt.date(2026, 11, 29)]
GAP = {
    "id": "gap",
    "targets": ["alpha.example", "beta.example", "gamma.example"],
    "exclude_targets": ["mine.example"],
    "intersection_mode": "partial",
    "rank_scale": "one_hundred",
}
PLAIN = {"id": "plain", "targets": ["delta.example", "epsilon.example"]}
# Tonight only: a job with no result, one the API rejects (an unknown order_by field).
EMPTY = {"id": "empty", "targets": ["zero.example"]}
BROKEN = {"id": "broken", "targets": ["delta.example"], "order_by": ["1.no_such_field,desc"]}
INVALID_YAML = "jobs:\n  - id: typo\n    targets: [a.example]\n    limit: 5\n"
EVIL = '<script>alert("x")</script>'
WIDTHS = (1400, 400)


# --- The run folders: three real nights against the emulator, plus one hostile job. ---


async def crawl_nights(out: Path) -> None:
    configs = out.parent / "configs"
    write_jobs(configs, "jobs.yaml", [GAP, PLAIN])
    # Live data: pages appear and vanish from one night to the next.
    emulator = EmulatorSettings(
        seed=29, size_min=200, size_max=700, live_data=0.05, sizes={"zero.example": 0}
    )
    async with running_emulator(emulator) as emu:
        for night in NIGHTS:
            tonight = night == NIGHTS[-1]
            if tonight:
                write_jobs(configs, "more.yaml", [EMPTY, BROKEN])
                (configs / "bad.yaml").write_text(INVALID_YAML)
            outcome = await run(configs, emu, fast_settings(out, run_date=night))
            expected = ExitCode.ATTENTION if tonight else ExitCode.OK
            assert outcome.exit_code == expected, outcome.message
            folder = out / night.isoformat()
            for job_id in ("gap", "plain"):
                diff_job(RunFolder(out, night), job_id, manifest(folder, job_id)["fingerprint"])


def hostile_item(n: int) -> dict[str, Any]:
    backlink = {
        "url_from": f"javascript:alert({n})",
        "domain_from": f'=HYPERLINK("http://x")<b>{EVIL}',
        "domain_from_rank": 500,
        "page_from_rank": 3,
        "domain_from_country": '"><img src=x onerror=alert(2)>',
        "domain_from_platform_type": [EVIL],
        "dofollow": True,
        "first_seen": "2024-01-02 03:04:05 +00:00",
    }
    return {"page_intersection": {"1": [backlink]}, "summary": {"intersections_count": 1}}


def write_hostile_job(folder: Path) -> None:
    items = [hostile_item(n) for n in range(3)]
    (folder / "hostile.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    document = {
        "job_id": "hostile",
        "status": "complete",
        "output": "hostile.jsonl",
        "request": {"targets": {"1": EVIL}},
        "items_written": 3,
        "calls": 1,
        "cost_usd": 0.0215,
        # The manifest's diff field, as the run records it, wins over counting a diff file.
        "diff": {"previous_run": "2026-11-28", "new": 0, "lost": 0, "skipped": f"x {EVIL}"},
    }
    (folder / "hostile.manifest.json").write_text(json.dumps(document))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nights") / "out"
    anyio.run(crawl_nights, out)
    folder = out / NIGHTS[-1].isoformat()
    write_hostile_job(folder)
    write_report(folder, history=14)
    return folder


# --- What the report should say, computed independently from the items. ---


def backlinks(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for links in (item["page_intersection"] or {}).values() for b in links or []]


def site(host: str) -> str:
    """The emulator's hosts are ``www.<name>.<tld>`` or ``<name>.<tld>``: one site each."""
    return host.lower().removeprefix("www.")


def expected_domains(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    domains: dict[str, dict[str, Any]] = {}
    for item in items:
        links = backlinks(item)
        first = links[0]
        row = domains.setdefault(
            site(first["domain_from"]),
            {
                "rank": None,
                "pages": 0,
                "targets": set(),
                "urls": set(),
                "hosts": set(),
                "first_seen": None,
            },
        )
        row["pages"] += 1
        row["targets"] |= {k for k, v in item["page_intersection"].items() if v}
        row["urls"].add(first["url_from"])
        row["hosts"].add(first["domain_from"])
        rank = first["domain_from_rank"]
        if row["rank"] is None or rank > row["rank"]:
            row["rank"] = rank
        seen = min(b["first_seen"] for b in links)
        row["first_seen"] = seen if row["first_seen"] is None else min(row["first_seen"], seen)
    return domains


def best_first(domains: dict[str, dict[str, Any]]) -> list[str]:
    """Rank, then targets linked, then pages (all descending), then the name."""
    return sorted(
        domains,
        key=lambda d: (-domains[d]["rank"], -len(domains[d]["targets"]), -domains[d]["pages"], d),
    )


def changes(run_dir: Path, job_id: str, change: str) -> list[dict[str, Any]]:
    lines = read_lines(run_dir / f"{job_id}.diff.jsonl")
    return [line for line in lines if line["change"] == change]


def expected_charts(items: list[dict[str, Any]], scale: int) -> dict[str, Counter[str]]:
    width = scale // 10
    labels = [f"{i * width}–{(i + 1) * width - 1 if i < 9 else scale}" for i in range(10)]
    rank: Counter[str] = Counter(dict.fromkeys(labels, 0))
    country: Counter[str] = Counter()
    platform: Counter[str] = Counter()
    for item in items:
        first = backlinks(item)[0]
        rank[labels[min(9, first["domain_from_rank"] // width)]] += 1
        country[first["domain_from_country"] or "(unknown)"] += 1
        for p in {p for b in backlinks(item) for p in b["domain_from_platform_type"] or []}:
            platform[p] += 1
    return {"rank": rank, "country": country, "platform": platform}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- The CSV, read as a spreadsheet would. ---


@pytest.mark.parametrize("job_id", ["gap", "plain"])
def test_opportunities_csv_has_one_row_per_site(run_dir: Path, job_id: str) -> None:
    items = read_lines(run_dir / f"{job_id}.jsonl")
    expected = expected_domains(items)
    rows = read_csv(run_dir / f"{job_id}.opportunities.csv")
    with open(run_dir / f"{job_id}.opportunities.csv", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == OPPORTUNITY_COLUMNS

    assert len(items) > 100
    assert [r["domain"] for r in rows] == best_first(expected)
    assert sum(int(r["pages"]) for r in rows) == len(items)
    targets = manifest(run_dir, job_id)["request"]["targets"]
    for row in rows:
        want = expected[row["domain"]]
        assert int(row["domain_from_rank"]) == want["rank"], row
        assert int(row["pages"]) == want["pages"], row
        assert set(row["hosts"].split()) == want["hosts"], row
        assert int(row["targets_linked"]) == len(want["targets"]), row
        assert row["targets"].split() == [targets[k] for k in sorted(want["targets"], key=int)]
        assert row["example_url_from"] in want["urls"], row
        assert row["first_seen_by_api"] == want["first_seen"], row
    # One site, one row: www.x and x are one domain, and the data has such pairs.
    both = [r for r in rows if {f"www.{r['domain']}", r["domain"]} <= set(r["hosts"].split())]
    assert len(both) >= 3
    if job_id == "gap":  # partial intersections: some domains link to fewer targets
        assert {int(r["targets_linked"]) for r in rows} > {3}


@pytest.mark.parametrize("job_id", ["gap", "plain"])
def test_csv_marks_the_sites_that_did_not_link_last_night(run_dir: Path, job_id: str) -> None:
    last_night = run_dir.parent / NIGHTS[-2].isoformat()
    before = set(expected_domains(read_lines(last_night / f"{job_id}.jsonl")))
    rows = read_csv(run_dir / f"{job_id}.opportunities.csv")
    marked = {r["domain"] for r in rows if r["new_since"]}
    assert marked == {r["domain"] for r in rows} - before
    assert marked, "live data should bring at least one new site"
    assert {r["new_since"] for r in rows if r["new_since"]} == {NIGHTS[-2].isoformat()}


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a run folder"):
        write_report(tmp_path / "2026-11-29")
    assert not (tmp_path / "2026-11-29").exists()


def test_csv_cells_cannot_become_spreadsheet_formulas(run_dir: Path) -> None:
    [row] = read_csv(run_dir / "hostile.opportunities.csv")
    assert row["domain"] == f'\'=HYPERLINK("http://x")<b>{EVIL}'
    assert row["pages"] == "3"
    assert row["example_url_from"] == "javascript:alert(0)"


# --- The HTML page in a real browser, driven over the DevTools protocol. ---

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """Headless Chromium on ``--remote-debugging-pipe``: one JSON message per NUL, fd 3/4."""

    def __init__(self, profile: Path) -> None:
        if CHROMIUM is None:
            if os.environ.get("CI") == "true":
                pytest.fail("chromium is not installed: CI must install Debian's chromium")
            pytest.skip("chromium is not installed (apt-get install chromium)")
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self._log = open(profile.parent / f"{profile.name}.stderr", "wb")  # noqa: SIM115
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        # The protocol's pipe is fd 3 (to the browser) and fd 4 (from it).
        shell = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}'
        self._process = subprocess.Popen(
            ["bash", "-c", shell, *command],
            pass_fds=(to_browser, from_browser),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        os.close(to_browser)
        os.close(from_browser)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._in], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Call ``method``; its result. Events that arrive meanwhile are kept in ``events``."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 20
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._id:
                assert "error" not in answer, (method, answer["error"])
                result: dict[str, Any] = answer["result"]
                return result
            self.events.append(answer)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        """The first event ``method`` of ``session`` (waiting for it if it has not come)."""
        deadline = time.monotonic() + 20
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event
            self.events.append(self._message(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self._process.wait(timeout=10)
        except (OSError, EOFError, TimeoutError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait(timeout=10)
        finally:
            os.close(self._in)
            os.close(self._out)
            self._log.close()


@dataclass
class Tab:
    """One page open at one viewport width."""

    browser: Chromium
    session: str
    width: int

    def evaluate(self, expression: str) -> Any:
        result = self.browser.send(
            "Runtime.evaluate", self.session, expression=expression, returnByValue=True
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def console(self) -> list[str]:
        """What the page logged or threw: console calls, uncaught errors, blocked loads."""
        lines = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled":
                lines.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                )
            elif event.get("method") == "Runtime.exceptionThrown":
                lines.append(str(params["exceptionDetails"]))
            elif event.get("method") == "Log.entryAdded":
                lines.append(params["entry"]["text"])
        return lines

    def screenshot(self, path: Path, *, max_height: int = 12_000) -> None:
        """The whole page (down to ``max_height`` px) as a PNG."""
        size = self.browser.send("Page.getLayoutMetrics", self.session)["cssContentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": self.width,
            "height": min(size["height"], max_height),
            "scale": 1,
        }
        shot = self.browser.send(
            "Page.captureScreenshot",
            self.session,
            format="png",
            captureBeyondViewport=True,
            clip=clip,
        )
        path.write_bytes(base64.b64decode(shot["data"]))


def open_tab(browser: Chromium, url: str, width: int) -> Tab:
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable", session)
    # A phone is a mobile viewport: the page's meta viewport applies, as on a real one.
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        session,
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=width < 700,
    )
    browser.send("Page.navigate", session, url=url)
    browser.wait_for("Page.loadEventFired", session)
    return Tab(browser, session, width)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node | str] = []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str | None = None, **attrs: str | None) -> list[Node]:
        """Descendants by tag and attributes (``class_`` is class, ``data_x`` is data-x;
        ``None`` asks only that the attribute is there)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                    child.attrs.get(k) == v if v is not None else k in child.attrs
                    for k, v in wanted.items()
                ):
                    found.append(child)
                found.extend(child.find_all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str | None) -> Node:
        [node] = self.find_all(tag, **attrs)
        return node

    def has_class(self, name: str) -> bool:
        return name in str(self.attrs.get("class") or "").split()


class TreeBuilder(HTMLParser):
    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


# Measured in the page after it loaded: widths, the last column of every chart, every
# table against its card, every example-page link. Boxes are viewport coordinates.
LAYOUT_JS = """
(function () {
  function box(el) {
    var r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, width: r.width, height: r.height};
  }
  function owner(el) { var s = el.closest("section"); return s ? s.id : ""; }
  var doc = document.documentElement;
  return JSON.stringify({
    viewport: doc.clientWidth,
    page: Math.max(doc.scrollWidth, document.body.scrollWidth),
    charts: Array.prototype.map.call(document.querySelectorAll("figure[data-chart]"), function (f) {
      var bars = f.querySelectorAll("g.bar rect");
      return {chart: f.getAttribute("data-chart"), section: owner(f),
              svg: box(f.querySelector("svg")), last: box(bars[bars.length - 1])};
    }),
    tables: Array.prototype.map.call(document.querySelectorAll("table"), function (t) {
      return {section: owner(t), kind: t.className, table: box(t),
              card: box(t.closest("section"))};
    }),
    links: Array.prototype.map.call(document.querySelectorAll("td.url a"), function (a) {
      return {section: owner(a), box: box(a)};
    })
  });
})()
"""


@dataclass
class View:
    """The report as rendered at one width: its DOM, console, layout and screenshot."""

    width: int
    tab: Tab
    dom: Node
    console: list[str]
    layout: dict[str, Any]
    screenshot: Path


@pytest.fixture(scope="module")
def views(
    run_dir: Path, browser: Chromium, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, View]:
    shots = tmp_path_factory.mktemp("screenshots")
    found = {}
    for width in WIDTHS:
        tab = open_tab(browser, (run_dir / "report.html").as_uri(), width)
        shot = shots / f"report-{width}.png"
        tab.screenshot(shot)
        found[width] = View(
            width=width,
            tab=tab,
            dom=parse(tab.evaluate("document.documentElement.outerHTML")),
            console=tab.console(),
            layout=json.loads(tab.evaluate(LAYOUT_JS)),
            screenshot=shot,
        )
    keep = os.environ.get("REPORT_SHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for view in found.values():
            shutil.copy(view.screenshot, Path(keep) / view.screenshot.name)
    return found


@pytest.fixture(scope="module")
def dom(views: dict[int, View]) -> Node:
    return views[1400].dom


def bars(figure: Node) -> dict[str, float]:
    return {
        str(g.attrs["data-label"]): float(str(g.attrs["data-value"]))
        for g in figure.find_all("g", class_="bar")
    }


def cells(row: Node) -> dict[str, Node]:
    """A table row's cells by their column's name (every cell carries its data-label)."""
    return {str(td.attrs["data-label"]): td for td in row.find_all("td")}


@pytest.mark.parametrize("width", WIDTHS)
def test_page_loads_in_chromium_without_errors(views: dict[int, View], width: int) -> None:
    view = views[width]
    html = view.dom.one("html")
    assert html.attrs.get("data-ready") == "yes", "the page's script did not run to its end"
    assert "data-errors" not in html.attrs, html.attrs.get("data-errors")
    assert view.console == []


@pytest.mark.parametrize("width", WIDTHS)
def test_nothing_runs_off_the_screen(views: dict[int, View], width: int) -> None:
    layout = views[width].layout
    assert layout["viewport"] == width
    assert layout["page"] <= layout["viewport"], "the page scrolls sideways"
    # Tonight's column (the last) of every chart is drawn, inside the chart and the screen.
    history = [c for c in layout["charts"] if "history" in c["chart"]]
    assert {c["chart"] for c in history} >= {"run-history-items", "run-history-cost"}
    for chart in layout["charts"]:
        last, svg = chart["last"], chart["svg"]
        if "history" in chart["chart"]:
            assert last["height"] > 0 and last["width"] > 0, chart
        assert svg["right"] <= width and svg["left"] >= 0, chart
        assert svg["left"] <= last["left"] and last["right"] <= svg["right"] + 0.5, chart
    # Every table fits inside its card, and so does every example page link.
    for table in layout["tables"]:
        assert table["table"]["right"] <= table["card"]["right"] + 0.5, table
    assert layout["links"]
    for link in layout["links"]:
        assert link["box"]["left"] >= 0 and link["box"]["right"] <= width, link


def test_screenshots_show_the_page_at_both_widths(views: dict[int, View]) -> None:
    for width, view in views.items():
        data = view.screenshot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        shot_width, shot_height = struct.unpack(">II", data[16:24])
        assert shot_width == width and shot_height > 2000
        assert len(data) > 100_000  # a blank page compresses to a few kB


@pytest.mark.parametrize("width", WIDTHS)
def test_run_card_names_what_needs_attention(views: dict[int, View], width: int) -> None:
    card = views[width].dom.one("section", id="run")
    assert "needs attention, exit status 1" in card.one("h2").text()
    [invalid] = card.find_all("li", data_attention="invalid")
    text = invalid.text()
    assert "bad.yaml:4" in text and "job typo:" in text
    assert "limit: unknown field 'limit'" in text
    [failed] = card.find_all("li", data_attention="failed")
    assert failed.attrs["data-job"] == "broken"
    assert "[40501]" in failed.text() and "no_such_field" in failed.text()
    assert failed.one("a").attrs["href"] == "#job-broken"


def test_run_card_totals_say_which_run_they_are_about(run_dir: Path, dom: Node) -> None:
    summary = json.loads((run_dir / "run.json").read_text())
    card = dom.one("section", id="run")
    groups = {str(g.attrs["data-totals"]): g for g in card.find_all(data_totals=None)}
    stats = {
        scope: {
            str(c.attrs["data-stat"]): c.find_all("span")[1].text()
            for c in g.find_all(data_stat=None)
        }
        for scope, g in groups.items()
    }
    labels = {scope: g.one("h3").text() for scope, g in groups.items()}
    assert labels["invocation"].startswith("Latest invocation")
    if "night" in summary:  # the run.json with night / invocation blocks
        assert labels["night"].startswith("The night")
        assert stats["night"]["cost"] == f"${summary['night']['cost_usd']:,.4f}"
        assert stats["invocation"]["calls"] == f"{summary['invocation']['calls']:,}"
    else:  # totals of the latest invocation at the top level, nothing for the night
        assert "night" not in groups
        assert card.find_all(data_note="no-night")
        assert stats["invocation"]["calls"] == f"{summary['calls']:,}"
        assert stats["invocation"]["cost"] == f"${summary['cost_usd']:,.4f}"
        assert stats["invocation"]["jobs"] == "3 complete, 1 failed, 1 invalid"


def test_jobs_table_holds_items_diffs_and_cost(run_dir: Path, dom: Node) -> None:
    table = dom.one("table", class_="sortable reflow jobs")
    rows = {str(tr.attrs["data-job"]): cells(tr) for tr in table.find_all("tr", data_job=None)}
    assert set(rows) == {"gap", "plain", "empty", "broken", "hostile"}
    assert list(rows)[-1] == "hostile"  # run.json's order, then the rest
    for job_id in ("gap", "plain"):
        row = {k: td.text() for k, td in rows[job_id].items()}
        job = manifest(run_dir, job_id)
        counts = read_diff_counts(run_dir / f"{job_id}.diff.jsonl")
        assert counts is not None
        new, lost = counts
        assert new + lost > 0
        assert row["status"] == "complete"
        assert row["items"] == f"{job['items_written']:,}"
        assert row["new"] == (f"+{new}" if new else "")
        assert row["lost"] == (f"−{lost}" if lost else "")
        assert row["compared with"] == "2026-11-28"
        assert row["cost"] == f"${job['cost_usd']:,.4f}"
    assert rows["hostile"]["compared with"].text() == f"x {EVIL}"
    assert rows["broken"]["status"].text() == "failed"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("job_id", ["gap", "plain"])
def test_new_since_table_lists_the_new_pages_by_site(
    run_dir: Path, views: dict[int, View], width: int, job_id: str
) -> None:
    new = changes(run_dir, job_id, "new")
    expected = expected_domains([c["item"] for c in new])
    assert {site(str(urlsplit(c["key"]).hostname)) for c in new} == set(expected)
    section = views[width].dom.one("section", id=f"job-{job_id}")
    heading = section.one("h3", data_heading="new-since").text()
    assert heading.startswith(f"New since 2026-11-28: {len(expected)} referring domains")
    assert f"with {len(new)} new pages" in heading
    rows = section.one("table", class_="sortable reflow new-since").find_all("tr", data_domain=None)
    shown = [(str(r.attrs["data-domain"]), cells(r)["new pages"].text()) for r in rows]
    order = best_first(expected)
    assert shown == [(d, str(expected[d]["pages"])) for d in order[:25]]
    more = section.find_all("p", data_more="new")
    assert [p.text().split()[1] for p in more] == (
        [str(len(order) - 25)] if len(order) > 25 else []
    )
    # A site is a new domain when it did not link at all last night.
    last_night = run_dir.parent / NIGHTS[-2].isoformat()
    before = set(expected_domains(read_lines(last_night / f"{job_id}.jsonl")))
    for row in rows:
        is_new = row.attrs.get("data-new-domain") == "yes"
        assert is_new == (row.attrs["data-domain"] not in before), row.attrs


@pytest.mark.parametrize("job_id", ["gap", "plain"])
def test_lost_since_table_is_the_shorter_one(run_dir: Path, dom: Node, job_id: str) -> None:
    lost = changes(run_dir, job_id, "lost")
    expected = expected_domains([c["item"] for c in lost])
    section = dom.one("section", id=f"job-{job_id}")
    heading = section.one("h3", data_heading="lost-since").text()
    assert heading.startswith(f"Lost since 2026-11-28: {len(expected)} referring domains")
    rows = section.one("table", class_="sortable reflow lost-since").find_all(
        "tr", data_domain=None
    )
    assert [r.attrs["data-domain"] for r in rows] == best_first(expected)[:10]
    tonight = set(expected_domains(read_lines(run_dir / f"{job_id}.jsonl")))
    for row in rows:
        assert (row.attrs.get("data-gone") == "yes") == (row.attrs["data-domain"] not in tonight)


def test_top_domains_table_matches_the_csv(run_dir: Path, dom: Node) -> None:
    section = dom.one("section", id="job-gap")
    heading = section.one("h3", data_heading="top").text()
    assert heading == (
        "Link gap, the top 25 referring domains: they link to some of alpha.example, "
        "beta.example, gamma.example but not to mine.example"
    )
    table = section.one("table", class_="sortable reflow domains")
    rows = table.find_all("tr", data_domain=None)
    csv_rows = read_csv(run_dir / "gap.opportunities.csv")
    assert len(rows) == 25
    for tr, row in zip(rows, csv_rows[:25], strict=True):
        shown = cells(tr)
        assert shown["referring domain"].one("span", class_="name").text() == row["domain"]
        assert shown["domain rank"].text() == row["domain_from_rank"]
        assert shown["targets linked"].text() == f"{row['targets_linked']} of 3"
        assert shown["pages"].text() == row["pages"]
        assert shown["example page"].text() == row["example_url_from"]
        assert shown["first seen by the API"].text() == row["first_seen_by_api"][:10]
        assert tr.attrs.get("data-new-since") == (row["new_since"] or None)
        hosts = shown["referring domain"].find_all("span", class_="hosts")
        if row["hosts"] != row["domain"]:
            assert set(hosts[0].text().split(" · ")) == set(row["hosts"].split())
    stats = {str(c.attrs["data-stat"]): c.text() for c in section.find_all(data_stat=None)}
    assert stats["domains"].endswith(f"{len(csv_rows):,}")
    [link] = section.find_all("a", data_csv=None)
    assert link.attrs["href"] == "gap.opportunities.csv" == link.text()
    assert (run_dir / str(link.attrs["href"])).is_file()


def test_targets_linked_is_left_out_when_every_domain_links_to_all(dom: Node) -> None:
    # plain: intersection_mode all, so every referring page links to both targets.
    for job_id, shown in (("plain", False), ("gap", True)):
        section = dom.one("section", id=f"job-{job_id}")
        heads = [th.text() for th in section.find_all("th")]
        assert ("targets linked" in heads) == shown, job_id
    heading = dom.one("section", id="job-plain").one("h3", data_heading="top").text()
    assert heading == "Referring domains by domain rank: the top 25"


def test_a_job_without_items_draws_no_chart(dom: Node) -> None:
    section = dom.one("section", id="job-empty")
    assert section.find_all("figure") == [] and section.find_all("svg") == []
    assert section.find_all("table") == []
    assert section.find_all("p", data_empty=None)
    broken = dom.one("section", id="job-broken")
    assert broken.find_all("svg") == []
    assert "[40501]" in broken.one("p", data_reason=None).text()


def test_sortable_headings_show_it_and_sort_best_first(views: dict[int, View]) -> None:
    tab = views[1400].tab
    table = "#job-gap table.domains"
    heads = tab.evaluate(
        f"Array.prototype.map.call(document.querySelectorAll('{table} th'), function (th) {{"
        " return [th.textContent, th.getAttribute('aria-sort'), !!th.querySelector('button')]; })"
    )
    assert heads[0] == ["#", "ascending", True]  # the rows come best first
    assert ["domain rank", "none", True] in heads
    assert ["example page", None, False] in heads

    def click_and_read(column: str) -> tuple[str, list[float]]:
        return tuple(
            tab.evaluate(
                "(function () {"
                f" var th = Array.prototype.find.call(document.querySelectorAll('{table} th'),"
                f"   function (h) {{ return h.textContent === '{column}'; }});"
                " th.querySelector('button').click();"
                f" var rows = document.querySelectorAll('{table} tbody tr');"
                " var values = Array.prototype.map.call(rows, function (r) {"
                "   return parseFloat(r.cells[th.cellIndex].getAttribute('data-value')); });"
                " return [th.getAttribute('aria-sort'), values]; })()"
            )
        )

    for column in ("pages", "domain rank", "targets linked"):
        state, values = click_and_read(column)
        assert (state, values) == ("descending", sorted(values, reverse=True)), column
        state, values = click_and_read(column)
        assert (state, values) == ("ascending", sorted(values)), column
    state, values = click_and_read("#")
    assert (state, values) == ("ascending", list(range(1, 26)))


@pytest.mark.parametrize(("job_id", "scale"), [("gap", 100), ("plain", 1000)])
def test_charts_hold_the_distributions(run_dir: Path, dom: Node, job_id: str, scale: int) -> None:
    section = dom.one("section", id=f"job-{job_id}")
    want = expected_charts(read_lines(run_dir / f"{job_id}.jsonl"), scale)
    assert bars(section.one("figure", data_chart="rank")) == want["rank"]
    for name in ("country", "platform"):
        shown = bars(section.one("figure", data_chart=name))
        top = sorted(want[name].items(), key=lambda kv: (-kv[1], kv[0] == "(unknown)", kv[0]))
        assert {k: v for k, v in shown.items() if k != "other"} == dict(top[:10])
        assert shown.get("other", 0) == sum(v for _, v in top[10:])


def test_history_charts_cover_the_last_runs(run_dir: Path, dom: Node) -> None:
    out = run_dir.parent
    for job_id in ("gap", "plain"):
        section = dom.one("section", id=f"job-{job_id}")
        items = bars(section.one("figure", data_chart="history-items"))
        cost = bars(section.one("figure", data_chart="history-cost"))
        nights = [manifest(out / n.isoformat(), job_id) for n in NIGHTS]
        assert items == {
            n.isoformat()[5:]: m["items_written"] for n, m in zip(NIGHTS, nights, strict=True)
        }
        assert cost == {
            n.isoformat()[5:]: m["cost_usd"] for n, m in zip(NIGHTS, nights, strict=True)
        }
    spend = bars(dom.one("figure", data_chart="run-history-cost"))
    runs = [json.loads((out / n.isoformat() / "run.json").read_text()) for n in NIGHTS]
    night_cost = [r["night"]["cost_usd"] for r in runs]
    assert spend == {n.isoformat()[5:]: c for n, c in zip(NIGHTS, night_cost, strict=True)}


def test_untrusted_text_stays_text(run_dir: Path, dom: Node) -> None:
    assert len(dom.find_all("script")) == 2  # the page's own two
    assert dom.find_all("img") == [] and dom.find_all("b") == []
    section = dom.one("section", id="job-hostile")
    [tr] = section.one("table", class_="sortable reflow domains").find_all("tr", data_domain=None)
    shown = cells(tr)
    assert shown["referring domain"].text() == f'=HYPERLINK("http://x")<b>{EVIL}'
    assert shown["example page"].find_all("a") == []  # a javascript: URL is never a link
    assert bars(section.one("figure", data_chart="platform")) == {EVIL: 3.0}
    # And nothing outside the page is referenced: no scripts, styles or images to fetch.
    page = parse((run_dir / "report.html").read_text())
    assert [n.tag for n in page.find_all(src=None)] == []
    assert [n.tag for n in page.find_all(href=None) if n.tag != "a"] == []
    assert all("url(" not in style.text() for style in page.find_all("style"))
    [csp] = page.find_all("meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in str(csp.attrs["content"])


def test_the_browser_check_notices_errors_and_external_loads(
    run_dir: Path, browser: Chromium, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.html"
    html = (run_dir / "report.html").read_text()
    broken.write_text(
        html.replace(
            "</body>",
            '<img src="https://example.invalid/x.png"><script>missingFunction()</script></body>',
        )
    )
    tab = open_tab(browser, broken.as_uri(), 1400)
    errors = str(tab.evaluate("document.documentElement.getAttribute('data-errors')"))
    assert "missingFunction" in errors and "img-src" in errors
    assert any("missingFunction" in line for line in tab.console())


def test_a_large_job_is_aggregated_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    n, pad = 10_000, 3_000
    with open(path, "w") as handle:
        for i in range(n):
            backlink = {
                "url_from": f"https://d{i % 300}.example/p{i}",
                # Every other page on www.: still one site per d<k>.example.
                "domain_from": f"{'www.' if i // 300 % 2 else ''}d{i % 300}.example",
                "domain_from_rank": i % 1000,
                "domain_from_country": ["US", "DE", None][i % 3],
                "domain_from_platform_type": ["blogs", "cms"][: i % 3],
                "first_seen": f"2020-01-{1 + i % 28:02d} 00:00:00 +00:00",
                "page_from_title": "x" * pad,
            }
            item = {"page_intersection": {"1": [backlink], "2": [backlink] if i % 2 else []}}
            handle.write(json.dumps(item) + "\n")
    report = JobReport(
        view=JobView(job_id="big", status="complete"),
        targets={"1": "a.example", "2": "b.example"},
        exclude_targets=[],
        rank_scale=1000,
    )
    # The Public Suffix List is loaded once per process, whatever the item count.
    assert registrable_domain("www.warm-up.example") == "warm-up.example"
    tracemalloc.start()
    try:
        aggregate_items(report, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 30_000_000
    assert peak < 3_000_000, f"peak {peak:,} bytes"
    assert report.items == n and len(report.domains) == 300
    assert report.countries == Counter({"US": 3334, "DE": 3333, "(unknown)": 3333})
    assert report.platforms == Counter({"blogs": 6666, "cms": 3333, "(unknown)": 3334})
    assert report.rank_buckets == [1000] * 10
    assert report.domains["d7.example"].targets_linked == 2
    assert report.domains["d8.example"].targets_linked == 1
    assert sorted(report.domains["d7.example"].hosts) == ["d7.example", "www.d7.example"]
