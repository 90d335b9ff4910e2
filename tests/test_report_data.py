"""The report's reading of a run folder, from hand-written files: run.json in both of its
shapes (and damaged), new and lost sites from a diff, sites by the Public Suffix List
without a network or a cache file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.diff import write_diff
from intersect_batch.durable import MAX_LINE_BYTES
from intersect_batch.report import write_report
from intersect_batch.report.data import RunView, decode_tolerantly
from intersect_batch.report.domains import registrable_domain
from tests.test_report import Node, cells, parse, read_csv

DATE = "2026-11-29"
BEFORE = "2026-11-28"


def page(url: str, rank: int, targets: tuple[str, ...] = ("1",)) -> dict[str, Any]:
    host = url.split("/")[2]
    link = {"url_from": url, "domain_from": host, "domain_from_rank": rank, "page_from_rank": 1}
    return {"page_intersection": {t: [link] for t in targets}}


def write_job(
    folder: Path,
    job_id: str,
    items: list[dict[str, Any]] | None,
    *,
    status: str = "complete",
    request: dict[str, Any] | None = None,
    **fields: Any,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if items is not None:
        text = "".join(json.dumps(i) + "\n" for i in items)
        (folder / f"{job_id}.jsonl").write_text(text)
    document = {
        "job_id": job_id,
        "status": status,
        "output": f"{job_id}.jsonl" if items is not None else None,
        "request": request or {"targets": ["a.example"]},
        "items_written": len(items or []),
        "calls": 1,
        "cost_usd": 0.02,
        **fields,
    }
    (folder / f"{job_id}.manifest.json").write_text(json.dumps(document))


def render(folder: Path) -> Node:
    return parse(write_report(folder).read_text())


def totals(root: Node) -> dict[str, dict[str, str]]:
    """The Run card's figures: {"night" | "invocation": {stat: value}}."""
    return {
        str(group.attrs["data-totals"]): {
            str(card.attrs["data-stat"]): card.find_all("span")[1].text()
            for card in group.find_all(data_stat=None)
        }
        for group in root.one("section", id="run").find_all(data_totals=None)
    }


def attention(root: Node) -> list[tuple[str, str]]:
    items = root.one("section", id="run").find_all("li", data_attention=None)
    return [(str(li.attrs["data-attention"]), " ".join(li.text().split())) for li in items]


# --- run.json, in the shape with night / invocation blocks and in today's. ---

NEW_SHAPE: dict[str, Any] = {
    "version": "0.1.0",
    "run_date": DATE,
    "exit_code": 1,
    "needs_attention": True,
    "stop_reason": None,
    "night": {
        "jobs_by_status": {"complete": 3, "failed": 1, "invalid": 2},
        "jobs": 6,
        "items": 1234,
        "calls": 56,
        "retries": 2,
        "cost_usd": 1.23,
        "new_items": 10,
        "lost_items": 4,
        "invocations": 2,
    },
    "invocation": {
        "started_at": "2026-11-29T02:15:00+00:00",
        "finished_at": "2026-11-29T02:15:12+00:00",
        "duration_s": 12.3,
        "calls": 20,
        "retries": 1,
        "cost_usd": 0.45,
        "items": 400,
        "calls_per_minute": 97.5,
        "jobs_run": 2,
        "throttled_s": 0.0,
    },
    "jobs": [
        {"job_id": "ok", "status": "complete", "items": 1, "config_file": "configs/a.yaml"},
        {
            "job_id": "broke",
            "status": "failed",
            "reason": "job 'broke' offset 2000: [40501] Invalid Field: 'order_by'",
            "config_file": "configs/a.yaml",
            "config_line": 7,
        },
        {
            "job_id": "typo",
            "status": "invalid",
            "reason": "targets: expected 1 to 20 targets",
            "config_file": "configs/b.yaml",
            "config_line": 3,
        },
        {
            "job_id": "twice",
            "status": "invalid",
            "reason": "id 'twice' also at configs/c.yaml:2",
            "config_file": "configs/c.yaml",
            "config_line": 9,
        },
        {"job_id": "gone-too", "status": "partial", "reason": "budget reached"},
    ],
    "config_errors": [
        {
            "file": "configs/b.yaml",
            "line": 3,
            "job": "typo",
            "field": "targets",
            "message": "expected 1 to 20 targets",
        }
    ],
    "settings": {},
}

TODAY_SHAPE: dict[str, Any] = {
    "version": "0.1.0",
    "run_date": DATE,
    "started_at": "2026-11-29T02:15:00+00:00",
    "finished_at": "2026-11-29T02:17:05+00:00",
    "duration_s": 125.0,
    "exit_code": 1,
    "needs_attention": True,
    "stop_reason": "budget reached",
    "jobs_by_status": {"complete": 1, "invalid": 1},
    "calls": 7,
    "retries": 0,
    "items": 1,
    "cost_usd": 0.14,
    "calls_per_minute": 3.36,
    "new_items": 0,
    "lost_items": 0,
    "jobs": [{"job_id": "ok", "status": "complete", "reason": None, "items": 1}],
    "config_errors": [
        {"file": "configs/b.yaml", "message": "not a mapping"},
        {"file": "configs/c.yaml", "line": 4, "job": "x", "field": "limit", "message": "unknown"},
    ],
    "settings": {},
}


def test_run_card_of_the_night_and_invocation_shape(tmp_path: Path) -> None:
    folder = tmp_path / DATE
    write_job(folder, "ok", [page("https://www.a.com/1", 5)])
    write_job(
        folder,
        "broke",
        None,
        status="failed",
        reason="job 'broke' offset 2000: [40501] Invalid Field: 'order_by'",
        config_file="configs/a.yaml",
        config_line=7,
    )
    (folder / "run.json").write_text(json.dumps(NEW_SHAPE))
    root = render(folder)

    run = root.one("section", id="run")
    labels = [" ".join(h.text().split()) for h in run.find_all("h3")]
    assert labels[0] == "The night every job of the run date, all invocations"
    assert labels[1] == "Latest invocation 2026-11-29T02:15:00+00:00 to 2026-11-29T02:15:12+00:00"
    assert totals(root) == {
        "night": {
            "jobs": "3 complete, 1 failed, 2 invalid",
            "items": "1,234",
            "new-lost": "+10 / −4",
            "calls": "56",
            "retries": "2",
            "cost": "$1.2300",
            "invocations": "2",
        },
        "invocation": {
            "jobs-run": "2",
            "items": "400",
            "calls": "20",
            "rate": "97.5",
            "retries": "1",
            "cost": "$0.4500",
            "duration": "12.3 s",
            "throttled": "0.0 s",
        },
    }
    assert run.find_all(data_note="no-night") == []
    assert "needs attention, exit status 1" in run.one("h2").text()
    assert attention(root) == [
        ("invalid", "invalid config configs/b.yaml:3 job typo: targets: expected 1 to 20 targets"),
        (
            "invalid",
            "invalid config configs/c.yaml:9 job twice: id 'twice' also at configs/c.yaml:2",
        ),
        (
            "failed",
            "failed configs/a.yaml:7 job broke: offset 2000: [40501] Invalid Field: 'order_by'",
        ),
        ("partial", "partial job gone-too: budget reached"),
    ]
    # A job with a section of its own is linked to it; one without is only named.
    [broke] = run.find_all("li", data_job="broke")
    assert broke.one("a").attrs["href"] == "#job-broke"
    assert run.one("li", data_job="gone-too").find_all("a") == []


def test_run_card_of_todays_shape_invents_no_night(tmp_path: Path) -> None:
    folder = tmp_path / DATE
    write_job(folder, "ok", [page("https://www.a.com/1", 5)])
    (folder / "run.json").write_text(json.dumps(TODAY_SHAPE))
    root = render(folder)

    assert totals(root) == {
        "invocation": {
            "jobs": "1 complete, 1 invalid",
            "items": "1",
            # Its one job was compared with nothing: no diff, not "+0 / -0".
            "new-lost": "no diff",
            "calls": "7",
            "rate": "3.4",
            "retries": "0",
            "cost": "$0.1400",
            "duration": "2 min 05 s",
        }
    }
    run = root.one("section", id="run")
    assert run.find_all(data_note="no-night")
    assert attention(root) == [
        ("stopped", "run stopped budget reached"),
        ("invalid", "invalid config configs/b.yaml not a mapping"),
        ("invalid", "invalid config configs/c.yaml:4 job x: limit: unknown"),
    ]


def test_a_damaged_run_json_loses_only_what_is_damaged(tmp_path: Path) -> None:
    document = {
        **NEW_SHAPE,
        "exit_code": "one",
        "night": {"items": "many", "calls": 5, "jobs_by_status": ["complete"]},
        "invocation": "yesterday",
        "jobs": [{"job_id": "a", "status": 3}, {"no_id": 1}, "x"],
        "config_errors": [{"file": "x.yaml", "line": "seven", "message": "bad"}],
    }
    view = decode_tolerantly(RunView, json.dumps(document).encode())
    assert view is not None
    assert view.exit_code is None and view.invocation is None
    assert view.night is not None and (view.night.calls, view.night.items) == (5, None)
    assert view.night.jobs_by_status is None
    assert [(j.job_id, j.status) for j in view.jobs] == [("a", "")]
    [error] = view.config_errors
    assert (error.file, error.line, error.describe()) == ("x.yaml", None, "x.yaml: bad")
    assert decode_tolerantly(RunView, b'{"exit_code": 0}') is None  # no run_date
    assert decode_tolerantly(RunView, b"[1, 2]") is None
    assert decode_tolerantly(RunView, b"{not json") is None

    folder = tmp_path / DATE
    write_job(folder, "ok", [page("https://www.a.com/1", 5)])
    (folder / "run.json").write_text(json.dumps(document))
    assert totals(render(folder)) == {"night": {"calls": "5"}}
    (folder / "run.json").write_text("{not json")
    stat = render(folder).one("section", id="run").one(data_stat="run")
    assert stat.text() == "run.jsonmissing or unreadable"


# --- New and lost sites, from a diff. ---


def test_new_and_lost_sites_from_a_diff(tmp_path: Path) -> None:
    before = [
        page("https://www.keeps.com/1", 50),
        page("https://moves.com/old", 40),
        page("https://www.leaves.org/1", 90),
        page("https://leaves.org/2", 90),
    ]
    tonight = [
        page("https://www.keeps.com/1", 50),
        page("https://keeps.com/2", 50, ("1", "2")),  # a new page of a site that linked
        page("https://www.arrives.co.uk/a", 70),  # a new site, on two hosts
        page("https://arrives.co.uk/b", 70, ("2",)),
        page("https://blog.arrives.co.uk/c", 70),
        page("https://moves.com/new", 40),  # new page, but the site linked last night
    ]
    request = {"targets": ["t1.example", "t2.example"], "intersection_mode": "partial"}
    out = tmp_path / "out"
    write_job(out / BEFORE, "j", before, request=request)
    folder = out / DATE
    write_job(folder, "j", tonight, request=request)
    new, lost = write_diff(out / BEFORE / "j.jsonl", folder / "j.jsonl", folder / "j.diff.jsonl")
    assert (new, lost) == (5, 3)
    diff = {"previous_run": BEFORE, "new": new, "lost": lost}
    write_job(folder, "j", tonight, request=request, diff=diff)
    root = render(folder)

    rows = {r["domain"]: r for r in read_csv(folder / "j.opportunities.csv")}
    assert list(rows) == ["arrives.co.uk", "keeps.com", "moves.com"]
    assert rows["arrives.co.uk"]["hosts"] == "www.arrives.co.uk arrives.co.uk blog.arrives.co.uk"
    assert rows["arrives.co.uk"]["pages"] == "3"
    assert rows["arrives.co.uk"]["targets_linked"] == "2"
    assert {d: r["new_since"] for d, r in rows.items()} == {
        "arrives.co.uk": BEFORE,
        "keeps.com": "",
        "moves.com": "",
    }

    section = root.one("section", id="job-j")
    new_rows = section.one("table", class_="sortable reflow new-since").find_all("tr")[1:]
    assert [
        (r.attrs["data-domain"], r.attrs.get("data-new-domain"), cells(r)["new pages"].text())
        for r in new_rows
    ] == [("arrives.co.uk", "yes", "3"), ("keeps.com", None, "1"), ("moves.com", None, "1")]
    heading = section.one("h3", data_heading="new-since").text()
    assert heading == (
        "New since 2026-11-28: 3 referring domains with 5 new pages (1 of them new domains)"
    )
    lost_rows = section.one("table", class_="sortable reflow lost-since").find_all("tr")[1:]
    assert [(r.attrs["data-domain"], r.attrs.get("data-gone")) for r in lost_rows] == [
        ("leaves.org", "yes"),
        ("moves.com", None),
    ]
    top = section.one("table", class_="sortable reflow domains").find_all("tr")[1:]
    assert [r.attrs.get("data-new-since") for r in top] == [BEFORE, None, None]
    assert "new since 11-28" in cells(top[0])["referring domain"].text()


def test_no_new_since_table_without_a_diff(tmp_path: Path) -> None:
    folder = tmp_path / DATE
    write_job(
        folder,
        "j",
        [page("https://a.com/1", 1)],
        diff={"previous_run": BEFORE, "skipped": f"parameters changed since {BEFORE}"},
    )
    (folder / "j.diff.jsonl").write_text('{"change":"new","key":"https://a.com/1","item":{}}\n')
    section = render(folder).one("section", id="job-j")
    assert section.find_all(data_heading="new-since") == []
    assert [r["new_since"] for r in read_csv(folder / "j.opportunities.csv")] == [""]
    assert cells(
        section.one("table", class_="sortable reflow domains").find_all("tr")[1]
    )  # the top table is still there


# --- Sites by the Public Suffix List: tldextract's snapshot, no network, no cache. ---


@pytest.mark.parametrize(
    ("host", "site"),
    [
        ("www.cloudbeacon.org", "cloudbeacon.org"),
        ("cloudbeacon.org", "cloudbeacon.org"),
        ("WWW.PixelAlpha.COM.", "pixelalpha.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("www.co.uk", "www.co.uk"),  # registered directly under the public suffix co.uk
        ("alice.blogspot.com", "alice.blogspot.com"),  # the list's private section
        ("www.alice.blogspot.com", "alice.blogspot.com"),
        ("shop.d7.example", "d7.example"),  # a suffix the list does not know: one label
        ("192.0.2.7", "192.0.2.7"),
        ("localhost", "localhost"),
        ("co.uk", "co.uk"),
        ('=cmd|"/c calc"!A1', '=cmd|"/c calc"!A1'),  # no host name: left as it came
    ],
)
def test_registrable_domain(host: str, site: str) -> None:
    assert registrable_domain(host) == site


OFFLINE_SCRIPT = """
import json, socket, sys
from pathlib import Path

def refuse(*args, **kwargs):
    raise OSError("network blocked by the test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

if sys.argv[1] == "report":
    from intersect_batch.report import write_report
    from intersect_batch.report.domains import registrable_domain
    write_report(Path(sys.argv[2]))
    sites = [registrable_domain(h) for h in ("www.pixelalpha.com", "x.y.example.co.uk")]
else:  # the control: tldextract as it comes, its cache on
    import tldextract
    extract = tldextract.TLDExtract(suffix_list_urls=())
    sites = [extract("www.pixelalpha.com").top_domain_under_public_suffix]
try:
    socket.create_connection(("127.0.0.1", 9))
    guard = "open"
except OSError as exc:
    guard = str(exc)
print(json.dumps({"sites": sites, "guard": guard}))
"""


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_sites_come_from_the_bundled_list_without_network_or_cache(tmp_path: Path) -> None:
    folder = tmp_path / "out" / DATE
    write_job(
        folder, "j", [page("https://www.pixelalpha.com/1", 1), page("https://pixelalpha.com/2", 1)]
    )
    home, cache, tld_cache = tmp_path / "home", tmp_path / "xdg-cache", tmp_path / "tld-cache"
    for path in (home, cache, tld_cache):
        path.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLDEXTRACT_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), TLDEXTRACT_CACHE=str(tld_cache))

    def run(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", OFFLINE_SCRIPT, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    result = run("report", str(folder))
    assert result == {
        "sites": ["pixelalpha.com", "example.co.uk"],
        "guard": "network blocked by the test",
    }
    [row] = read_csv(folder / "j.opportunities.csv")
    assert (row["domain"], row["pages"]) == ("pixelalpha.com", "2")
    for path in (home, cache, tld_cache):
        assert files_under(path) == [], path
    # The control: tldextract left to its defaults writes its cache where looked for.
    assert run("control")["sites"] == ["pixelalpha.com"]
    assert files_under(tld_cache) != []


# --- Files that cannot be read. ---


def test_an_unavailable_diff_is_shown_with_its_reason(tmp_path: Path) -> None:
    folder = tmp_path / DATE
    reason = f"diff unavailable: the result of {BEFORE} cannot be read: x is a FIFO"
    diff = {"previous_run": BEFORE, "skipped": reason, "unavailable": True}
    write_job(folder, "j", [page("https://a.com/1", 1)], diff=diff)
    root = render(folder)
    section = root.one("section", id="job-j")
    assert section.one("div", data_stat="compared").text() == f"compared with{reason}"
    row = root.one("tr", data_job="j")
    assert cells(row)["compared with"].text() == reason


def test_a_damaged_items_file_is_left_out_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / DATE
    write_job(folder, "j", [page("https://a.com/1", 1), page("https://b.com/1", 2)])
    items = folder / "j.jsonl"
    with items.open("ab") as handle:  # a sparse line-less tail past the cap
        handle.truncate(items.stat().st_size + MAX_LINE_BYTES + 1)
    (folder / "j.opportunities.csv").write_text("stale\n")
    section = render(folder).one("section", id="job-j")
    why = (
        f"its items are left out: {items}: line 3 is longer than 64 MiB "
        "(the longest line a run writes): the file is damaged"
    )
    assert [p.text() for p in section.find_all("p", data_problem=None)] == [why]
    assert section.one("div", data_stat="items").text() == "items2"  # the manifest's
    assert section.find_all("div", data_stat="domains") == []
    assert [r.getMessage() for r in caplog.records] == [f"report of job j: {why}"]
    assert not (folder / "j.opportunities.csv").exists()  # no CSV of another night's file
