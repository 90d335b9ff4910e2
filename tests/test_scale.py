"""A night of many jobs: what a stop costs does not grow with the jobs it never reached.

The whole run (configs, lock, crawl, manifests, run.json) goes through the crawl's fetch
seam with scripted answers, in virtual time; the process sends itself the SIGTERM while
its second call goes out (through the crawl's control, as the process's handler does), so
exactly two jobs ever start, however long the folder.
"""

from __future__ import annotations

import io
import json
import logging
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from intersect_batch.answer import FetchedPage
from intersect_batch.crawl import Call
from intersect_batch.exitcode import ExitCode
from intersect_batch.manifest import InvocationTotals, JobLine, NightTotals, RunSummary
from intersect_batch.providers import resolve_provider
from intersect_batch.report import build, write_report
from intersect_batch.runner import RunOutcome, run_batch
from intersect_batch.settings import Limits
from intersect_batch.stop import CrawlControl
from intersect_batch.summary import TABLE_ROWS, summary_table
from tests.scripted import ScriptedApi
from tests.support import DEMO_ENV, fast_settings, write_jobs
from tests.virtual_time import run_virtual

STARTED = ["run-0", "run-1"]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _stopped_night(tmp_path: Path, waiting: int) -> tuple[RunOutcome, list[str], Path]:
    """A night of two jobs that start and ``waiting`` behind them, stopped by SIGTERM."""
    ids = STARTED + [f"wait-{n:04d}" for n in range(waiting)]
    configs = tmp_path / "configs"
    write_jobs(
        configs, "jobs.yaml", [{"id": i, "targets": [f"{i}.example", "b.example"]} for i in ids]
    )
    api = ScriptedApi(dict.fromkeys(ids, 5), latency=1.0)
    control = CrawlControl()

    async def fetch(call: Call) -> FetchedPage:
        if len(api.sent) == 1:
            control.signal(signal.SIGTERM)  # as the second call goes out, as the process would
        return await api(call)

    settings = fast_settings(tmp_path / "out", limits=Limits(rate_per_minute=60_000, concurrency=2))
    handler = _Records()
    logger = logging.getLogger("intersect_batch")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        outcome = run_virtual(
            lambda: run_batch(
                configs,
                provider=resolve_provider("dataforseo", "http://127.0.0.1:9/v3"),
                environ=DEMO_ENV,
                settings=settings,
                fetch=fetch,
                control=control,
            )
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [s.job for s in api.sent] == STARTED
    return outcome, [r.getMessage() for r in handler.records], settings.folder.path


def _files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def test_a_signal_stop_costs_the_same_for_ten_or_a_hundred_jobs_never_started(
    tmp_path: Path,
) -> None:
    few, few_messages, few_dir = _stopped_night(tmp_path / "few", 10)
    many, many_messages, many_dir = _stopped_night(tmp_path / "many", 100)
    for outcome in (few, many):
        assert outcome.exit_code == ExitCode.SIGTERM
    # The same records, files and run.json lines whatever the waiting jobs' number: the
    # two jobs that ran, the stop, and one line for all the jobs it never reached.
    expected = [
        "run starting",
        "stopping: interrupted by SIGTERM",
        "waiting up to 5 s for 2 calls in flight; a second signal again to stop now",
        *["page written", "diff: no earlier complete run", "job complete"] * 2,
    ]
    assert sorted(few_messages) == sorted([*expected, "10 jobs not started"])
    assert sorted(many_messages) == sorted([*expected, "100 jobs not started"])
    files = [
        ".intersect-batch-run",
        ".ledger.json",
        "run-0.jsonl",
        "run-0.manifest.json",
        "run-1.jsonl",
        "run-1.manifest.json",
        "run.json",
    ]
    assert _files(few_dir) == _files(many_dir) == files
    for outcome, run_dir, waiting in ((few, few_dir, 10), (many, many_dir, 100)):
        summary: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
        assert [job["job_id"] for job in summary["jobs"]] == STARTED
        assert summary["not_started"] == [f"wait-{n:04d}" for n in range(waiting)]
        assert summary["night"]["jobs_by_status"] == {"complete": 2}
        assert summary["invocation"]["jobs_run"] == 2
        last = outcome.message.splitlines()[-1]
        assert f"; {waiting} jobs not started; " in last
        assert "needs attention" not in last


def _job_files(folder: Path, job_id: str, *, status: str, new: int) -> None:
    backlink = {"url_from": f"https://{job_id}.example/a", "domain_from": f"{job_id}.example"}
    item = {"page_intersection": {"1": [backlink]}}
    if status == "complete":
        (folder / f"{job_id}.jsonl").write_text(json.dumps(item) + "\n")
    document = {
        "job_id": job_id,
        "status": status,
        "output": f"{job_id}.jsonl" if status == "complete" else None,
        "request": {"targets": {"1": "mine.example"}},
        "items_written": 1 if status == "complete" else 0,
        "diff": {"previous_run": "2026-11-28", "new": new, "lost": 0},
    }
    (folder / f"{job_id}.manifest.json").write_text(json.dumps(document))


def test_a_report_of_many_jobs_has_sections_for_a_few_and_a_row_for_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "out" / "2026-11-29"
    folder.mkdir(parents=True)
    for n, new in enumerate([3, 9, 1, 7, 0]):
        _job_files(folder, f"job-{n}", status="complete", new=new)
    _job_files(folder, "job-stopped", status="partial", new=0)
    monkeypatch.setattr(build, "SECTIONS", 3)
    page = write_report(folder).read_text()
    # Sections: the job that needs attention, then the most new items; a row for every job.
    sections = re.findall(r'<section class="job" id="job-([^"]+)"', page)
    assert sorted(sections) == ["job-1", "job-3", "job-stopped"]
    assert len(re.findall(r'<tr data-job="', page)) == 6
    assert 'href="#job-job-0"' not in page and 'href="#job-job-1"' in page
    assert "A section below for 3 of the 6 jobs" in page
    # Every complete job still gets its opportunities CSV.
    assert sorted(p.name for p in folder.glob("*.opportunities.csv")) == [
        f"job-{n}.opportunities.csv" for n in range(5)
    ]


def _line(job_id: str, status: str = "complete", reason: str | None = None) -> JobLine:
    return JobLine(
        job_id=job_id,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        items=10,
        pages=1,
        calls=1,
        retries=0,
        cost_usd=0.0203,
        duration_s=0.5,
        output=f"{job_id}.jsonl" if status == "complete" else None,
    )


def test_the_terminal_table_of_many_jobs_sums_up_past_its_rows() -> None:
    jobs = [_line(f"job-{n:03d}") for n in range(TABLE_ROWS + 4)]
    jobs.append(_line("zz-broken", "failed", "the API rejected the request (40501)"))
    summary = RunSummary(
        version="1",
        run_date="2026-11-29",
        exit_code=1,
        needs_attention=True,
        stop_reason=None,
        night=NightTotals(
            jobs_by_status={"complete": TABLE_ROWS + 4, "failed": 1},
            jobs=TABLE_ROWS + 5,
            items=450,
            calls=45,
            retries=0,
            cost_usd=0.9135,
            new_items=0,
            lost_items=0,
            invocations=1,
        ),
        invocation=InvocationTotals(
            started_at="",
            finished_at="",
            duration_s=9.0,
            calls=45,
            retries=0,
            cost_usd=0.9135,
            items=450,
            calls_per_minute=45.0,
            jobs_run=TABLE_ROWS + 5,
            throttled_s=0.0,
        ),
        jobs=jobs,
        config_errors=[],
        settings={},
        not_started=["w-1", "w-2", "w-3"],
    )
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(summary_table(summary))
    lines = console.export_text().splitlines()
    table = lines[: lines.index("needs attention:")]
    rows = [line for line in table if line.startswith(("job-", "zz-"))]
    # The job that needs attention first, then as many as the table holds, then one row.
    assert len(rows) == TABLE_ROWS
    assert rows[0].split()[:2] == ["zz-broken", "failed"]
    [rest] = [line for line in table if line.startswith("5 more jobs")]
    assert rest.split()[3:5] == ["5", "complete"] and rest.split()[5:7] == ["50", "5"]
    assert "3 jobs not started (run.json lists them)" in lines
    assert "zz-broken failed: the API rejected the request (40501)" in lines
