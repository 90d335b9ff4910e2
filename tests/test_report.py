"""The morning report, checked as a person sees it: CSV in a spreadsheet, HTML in Chromium."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import struct
import subprocess
import tracemalloc
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import pytest

from intersect_batch.diff import diff_job, read_diff_counts
from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.errors import UsageError
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from intersect_batch.report import OPPORTUNITY_COLUMNS, write_report
from intersect_batch.report.data import JobReport, JobView, aggregate_items
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
EVIL = '<script>alert("x")</script>'


# --- The run folders: three real nights against the emulator, plus one hostile job. ---


async def crawl_nights(out: Path) -> None:
    configs = out.parent / "configs"
    write_jobs(configs, "jobs.yaml", [GAP, PLAIN])
    # Live data: pages appear and vanish from one night to the next.
    emulator = EmulatorSettings(seed=21, size_min=200, size_max=700, live_data=0.05)
    async with running_emulator(emulator) as emu:
        for night in NIGHTS:
            outcome = await run(configs, emu, fast_settings(out, run_date=night))
            assert outcome.exit_code == ExitCode.OK, outcome.message
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


def expected_domains(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    domains: dict[str, dict[str, Any]] = {}
    for item in items:
        links = backlinks(item)
        first = links[0]
        row = domains.setdefault(
            first["domain_from"],
            {"rank": None, "pages": 0, "targets": set(), "urls": set(), "first_seen": None},
        )
        row["pages"] += 1
        row["targets"] |= {k for k, v in item["page_intersection"].items() if v}
        row["urls"].add(first["url_from"])
        rank = first["domain_from_rank"]
        if row["rank"] is None or rank > row["rank"]:
            row["rank"] = rank
        seen = min(b["first_seen"] for b in links)
        row["first_seen"] = seen if row["first_seen"] is None else min(row["first_seen"], seen)
    return domains


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
def test_opportunities_csv_has_one_row_per_referring_domain(run_dir: Path, job_id: str) -> None:
    items = read_lines(run_dir / f"{job_id}.jsonl")
    expected = expected_domains(items)
    rows = read_csv(run_dir / f"{job_id}.opportunities.csv")
    with open(run_dir / f"{job_id}.opportunities.csv", newline="") as handle:
        assert tuple(next(csv.reader(handle))) == OPPORTUNITY_COLUMNS

    assert len(items) > 100
    assert sorted(r["domain"] for r in rows) == sorted(expected)
    assert sum(int(r["pages"]) for r in rows) == len(items)
    ranks = [int(r["domain_from_rank"]) for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    targets = manifest(run_dir, job_id)["request"]["targets"]
    for row in rows:
        want = expected[row["domain"]]
        assert int(row["domain_from_rank"]) == want["rank"], row
        assert int(row["pages"]) == want["pages"], row
        assert int(row["targets_linked"]) == len(want["targets"]), row
        assert row["targets"].split() == [targets[k] for k in sorted(want["targets"], key=int)]
        assert row["example_url_from"] in want["urls"], row
        assert row["first_seen"] == want["first_seen"], row
    if job_id == "gap":  # partial intersections: some domains link to fewer targets
        assert {int(r["targets_linked"]) for r in rows} > {3}


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a run folder"):
        write_report(tmp_path / "2026-11-29")
    assert not (tmp_path / "2026-11-29").exists()


def test_csv_cells_cannot_become_spreadsheet_formulas(run_dir: Path) -> None:
    [row] = read_csv(run_dir / "hostile.opportunities.csv")
    assert row["domain"] == f'\'=HYPERLINK("http://x")<b>{EVIL}'
    assert row["pages"] == "3"
    assert row["example_url_from"] == "javascript:alert(0)"


# --- The HTML page in a real browser. ---

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed: CI must install Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
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
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


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


def rendered(tmp_path: Path, page: Path) -> tuple[Node, str]:
    """The DOM after the page's scripts ran, and the browser's console lines."""
    result = chromium(tmp_path, "--dump-dom", page.as_uri())
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return parse(result.stdout), "\n".join(console)


def bars(figure: Node) -> dict[str, float]:
    return {
        str(g.attrs["data-label"]): float(str(g.attrs["data-value"]))
        for g in figure.find_all("g", class_="bar")
    }


@pytest.fixture(scope="module")
def dom(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Node, str]:
    return rendered(tmp_path_factory.mktemp("browser"), run_dir / "report.html")


def test_page_loads_in_chromium_without_errors(dom: tuple[Node, str]) -> None:
    root, console = dom
    html = root.one("html")
    assert html.attrs.get("data-ready") == "yes", "the page's script did not run to its end"
    assert "data-errors" not in html.attrs, html.attrs.get("data-errors")
    assert console == ""


def test_jobs_table_holds_items_diffs_and_cost(run_dir: Path, dom: tuple[Node, str]) -> None:
    root, _ = dom
    table = root.one("table", class_="sortable jobs")
    rows = {str(tr.attrs["data-job"]): tr for tr in table.find_all("tr", data_job=None)}
    assert list(rows) == ["gap", "plain", "hostile"]  # run.json's order, then the rest
    for job_id in ("gap", "plain"):
        cells = [td.text() for td in rows[job_id].find_all("td")]
        job = manifest(run_dir, job_id)
        counts = read_diff_counts(run_dir / f"{job_id}.diff.jsonl")
        assert counts is not None
        new, lost = counts
        assert new + lost > 0
        assert cells[1] == "complete"
        assert cells[2] == f"{job['items_written']:,}"
        assert cells[3] == (f"+{new}" if new else "")
        assert cells[4] == (f"−{lost}" if lost else "")
        assert cells[5] == "since 2026-11-28"
        assert cells[6] == f"${job['cost_usd']:,.4f}"
    hostile = [td.text() for td in rows["hostile"].find_all("td")]
    assert hostile[5] == f"x {EVIL}"


def test_top_domains_table_matches_the_csv(run_dir: Path, dom: tuple[Node, str]) -> None:
    root, _ = dom
    section = root.one("section", id="job-gap")
    heading = [h.text() for h in section.find_all("h3")]
    assert heading[0].startswith("Link-gap opportunities") and "mine.example" in heading[0]
    rows = section.one("table", class_="sortable domains").find_all("tr", data_domain=None)
    csv_rows = read_csv(run_dir / "gap.opportunities.csv")[:25]
    assert len(rows) == 25
    for tr, row in zip(rows, csv_rows, strict=True):
        cells = [td.text() for td in tr.find_all("td")]
        assert cells[1:5] == [
            row["domain"],
            row["domain_from_rank"],
            f"{row['targets_linked']} of 3",
            row["pages"],
        ]
        assert cells[5] == row["example_url_from"]
    stats = {str(c.attrs["data-stat"]): c.text() for c in section.find_all(data_stat=None)}
    assert stats["domains"].endswith(f"{len(read_csv(run_dir / 'gap.opportunities.csv')):,}")


@pytest.mark.parametrize(("job_id", "scale"), [("gap", 100), ("plain", 1000)])
def test_charts_hold_the_distributions(
    run_dir: Path, dom: tuple[Node, str], job_id: str, scale: int
) -> None:
    root, _ = dom
    section = root.one("section", id=f"job-{job_id}")
    want = expected_charts(read_lines(run_dir / f"{job_id}.jsonl"), scale)
    assert bars(section.one("figure", data_chart="rank")) == want["rank"]
    for name in ("country", "platform"):
        shown = bars(section.one("figure", data_chart=name))
        top = sorted(want[name].items(), key=lambda kv: (-kv[1], kv[0] == "(unknown)", kv[0]))
        assert {k: v for k, v in shown.items() if k != "other"} == dict(top[:10])
        assert shown.get("other", 0) == sum(v for _, v in top[10:])


def test_history_charts_cover_the_last_runs(run_dir: Path, dom: tuple[Node, str]) -> None:
    root, _ = dom
    out = run_dir.parent
    for job_id in ("gap", "plain"):
        section = root.one("section", id=f"job-{job_id}")
        items = bars(section.one("figure", data_chart="history-items"))
        cost = bars(section.one("figure", data_chart="history-cost"))
        nights = [manifest(out / n.isoformat(), job_id) for n in NIGHTS]
        assert items == {
            n.isoformat()[5:]: m["items_written"] for n, m in zip(NIGHTS, nights, strict=True)
        }
        assert cost == {
            n.isoformat()[5:]: m["cost_usd"] for n, m in zip(NIGHTS, nights, strict=True)
        }
    spend = bars(root.one("figure", data_chart="run-history-cost"))
    runs = [json.loads((out / n.isoformat() / "run.json").read_text()) for n in NIGHTS]
    assert spend == {
        n.isoformat()[5:]: r["night"]["cost_usd"] for n, r in zip(NIGHTS, runs, strict=True)
    }


def test_untrusted_text_stays_text(run_dir: Path, dom: tuple[Node, str]) -> None:
    root, _ = dom
    assert len(root.find_all("script")) == 2  # the page's own two
    assert root.find_all("img") == [] and root.find_all("b") == []
    section = root.one("section", id="job-hostile")
    [tr] = section.one("table", class_="sortable domains").find_all("tr", data_domain=None)
    cells = tr.find_all("td")
    assert cells[1].text() == f'=HYPERLINK("http://x")<b>{EVIL}'
    assert cells[5].find_all("a") == []  # a javascript: URL is never a link
    assert bars(section.one("figure", data_chart="platform")) == {EVIL: 3.0}
    # And nothing outside the page is referenced: no scripts, styles or images to fetch.
    page = parse((run_dir / "report.html").read_text())
    assert [n.tag for n in page.find_all(src=None)] == []
    assert [n.tag for n in page.find_all(href=None) if n.tag != "a"] == []
    assert all("url(" not in style.text() for style in page.find_all("style"))
    [csp] = page.find_all("meta", http_equiv="Content-Security-Policy")
    assert "default-src 'none'" in str(csp.attrs["content"])


def test_screenshot(run_dir: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        (run_dir / "report.html").as_uri(),
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 50_000  # a blank page compresses to a few kB


def test_the_browser_check_notices_errors_and_external_loads(run_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    html = (run_dir / "report.html").read_text()
    broken.write_text(
        html.replace(
            "</body>",
            '<img src="https://example.invalid/x.png"><script>missingFunction()</script></body>',
        )
    )
    root, console = rendered(tmp_path, broken)
    errors = str(root.one("html").attrs.get("data-errors"))
    assert "missingFunction" in errors and "img-src" in errors
    assert "missingFunction" in console


def test_a_large_job_is_aggregated_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    n, pad = 10_000, 3_000
    with open(path, "w") as handle:
        for i in range(n):
            backlink = {
                "url_from": f"https://d{i % 300}.example/p{i}",
                "domain_from": f"d{i % 300}.example",
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
