"""The crawl's own figures are true, in virtual time: each job's duration and end, the
calls a stop waits for, and the order a job's pages leave in.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import pytest

from intersect_batch import jobs
from intersect_batch.closing import closing_line
from intersect_batch.crawl import CrawlObserver
from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.errors import JobFatalApiError, ThrottledApiError
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from intersect_batch.manifest import InvocationTotals, JobLine, NightTotals, RunSummary
from intersect_batch.settings import Limits
from intersect_batch.stop import CrawlControl
from tests.scripted import Crawled, ScriptedApi, fail, job, run_crawl, settings
from tests.support import RUN_DATE, fast_settings, manifest, run, write_jobs
from tests.virtual_time import run_virtual

#: One call a second after a burst of four: sends queue at the rate limiter.
ONE_A_SECOND = Limits(rate_per_minute=64, concurrency=30, burst=4, safety=1.0)


class Told(CrawlObserver):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def stopping(self, message: str) -> None:
        self.messages.append(message)


def test_a_jobs_pages_leave_in_page_order_behind_the_rate_limiter(tmp_path: Path) -> None:
    # Page 5 of job a is refused for the rate at 3.3 s: the run pauses 5 s while pages
    # 6-9 hold their slots, waiting. They leave in page order when the pause ends (the
    # refused page's retry comes next, after the pages handed out before it failed).
    api = ScriptedApi({"a": 400, "b": 200}, latency=0.5)
    api.script("a", 50, fail(ThrottledApiError("rate", status_code=40202), 0.3))
    run_settings = settings(
        tmp_path, limits=Limits(rate_per_minute=64, concurrency=5, burst=4, safety=1.0)
    )
    done = run_virtual(lambda: run_crawl(api, [job("a"), job("b")], run_settings))
    assert all(final.status == "complete" for final in done.result.jobs)
    pages = [(s.offset // 10, s.at) for s in api.sent if s.job == "a"]
    assert pages[:13] == [
        (0, 0.0),
        (1, 0.5),
        (2, 0.5),
        (3, 1.0),
        (4, 2.0),
        (5, 3.0),
        (6, 8.3),
        (7, 8.3),
        (8, 8.3),
        (9, 8.3),
        (10, 9.3),
        (5, 10.3),
        (11, 11.3),
    ]
    assert [page for page, _ in pages[12:]] == list(range(11, 40))
    b_pages = [s.offset // 10 for s in api.sent if s.job == "b"]
    assert b_pages == list(range(20))


def test_a_stop_waits_for_the_calls_at_the_api_not_those_waiting_for_the_rate(
    tmp_path: Path,
) -> None:
    # Calls take 2.5 s: the probe is answered at 2.5 s, four pages go out then, and one
    # a second after. At 10.2 s two calls are at the API (sent at 8.5 and 9.5 s) and 28
    # more hold a slot, waiting for their rate token: those are never sent.
    api = ScriptedApi({"a": 1000}, latency=2.5)
    told = Told()

    async def main() -> Crawled:
        control = CrawlControl()
        async with anyio.create_task_group() as group:

            async def signal_at() -> None:
                await anyio.sleep(10.2)
                control.signal(signal.SIGINT)

            group.start_soon(signal_at)
            run_settings = settings(tmp_path, limits=ONE_A_SECOND, pages_ahead=64, grace=10.0)
            done = await run_crawl(api, [job("a")], run_settings, control=control, observer=told)
        return done

    done = run_virtual(main)
    assert told.messages == ["waiting up to 10 s for 2 calls in flight; Ctrl-C again to stop now"]
    checkpoint = done.final("a").checkpoint
    assert checkpoint is not None
    assert [s.at for s in api.sent[-3:]] == [7.5, 8.5, 9.5]
    assert checkpoint.pages == len(api.sent) == 12


def test_each_job_has_its_own_duration_and_a_failed_job_ends_when_it_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wall clock, read in virtual time: each end is stamped when it happens.
    monkeypatch.setattr(jobs, "now_iso", lambda: f"t={anyio.current_time():.1f}")
    api = ScriptedApi({"a": 30, "b": 200, "c": 0}, latency=1.0)
    api.script("a", 10, fail(JobFatalApiError("Invalid Field: 'targets'.", status_code=40501)))
    run_settings = settings(
        tmp_path, limits=Limits(rate_per_minute=61, concurrency=2, burst=1, safety=1.0)
    )
    done = run_virtual(lambda: run_crawl(api, [job("a"), job("b"), job("c")], run_settings))
    ends = {
        f.job.job_id: (f.status, f.finished_at, round(f.duration_s, 3)) for f in done.result.jobs
    }
    # a's first call went at 0 s, its second failed at 3.5 s; b's first went at 1 s, its
    # last was written at 24 s when the run ended; c (no result) took its one call.
    assert ends == {
        "a": ("failed", "t=3.5", 3.5),
        "b": ("complete", "t=24.0", 23.0),
        "c": ("complete", "t=3.0", 1.0),
    }


@pytest.mark.anyio
async def test_the_last_line_says_why_the_nights_items_are_not_the_invocations(
    tmp_path: Path,
) -> None:
    # Live data: pages shift while they are fetched, so some items come back twice.
    configs = tmp_path / "configs"
    targets = ["alpha.example", "b.example"]
    write_jobs(configs, "jobs.yaml", [{"id": "live", "targets": targets, "page_size": 100}])
    run_settings = fast_settings(
        tmp_path / "out", limits=Limits(rate_per_minute=60_000, concurrency=1)
    )
    emulator = EmulatorSettings(sizes={"alpha.example": 2300}, live_data=0.01, seed=2)
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, run_settings)
    assert outcome.exit_code == ExitCode.OK
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    got = manifest(run_dir, "live")
    dropped = got["duplicates_dropped"]
    assert dropped > 0
    night = json.loads((run_dir / "run.json").read_text())["night"]
    assert night["duplicates_dropped"] == dropped and night["items_waiting"] == 0
    written = got["items_written"]
    assert night["items"] == written
    fetched = written + dropped
    said = f"items: {written} in the night, {fetched} fetched now: {dropped} duplicates dropped;"
    assert said in outcome.message.splitlines()[-1]


def _summary(reason: str) -> RunSummary:
    night = NightTotals(
        jobs_by_status={"failed": 1}, jobs=1, items=0, calls=1, retries=0, cost_usd=0.02,
        new_items=0, lost_items=0, invocations=1,
    )  # fmt: skip
    invocation = InvocationTotals(
        started_at="", finished_at="", duration_s=1.0, calls=1, retries=0, cost_usd=0.02,
        spent_usd=0.02, items=0, calls_per_minute=60.0, jobs_run=1, throttled_s=0.0,
    )  # fmt: skip
    line = JobLine(
        job_id="gamma", status="failed", reason=reason, items=0, pages=0, calls=1,
        retries=0, cost_usd=0.02, duration_s=1.0, output=None,
    )  # fmt: skip
    return RunSummary(
        version="0", run_date="2026-11-29", exit_code=1, needs_attention=True,
        stop_reason=None, night=night, invocation=invocation, jobs=[line],
        config_errors=[], settings={},
    )  # fmt: skip


def test_a_long_reason_is_cut_between_words_and_keeps_its_cause(tmp_path: Path) -> None:
    reason = (
        "gave up after 6 attempts: job 'gamma' offset 300: the answer's total_count moved "
        "between pages while the query was being crawled: Internal Server Error"
    )
    folder = RunFolder(tmp_path, RUN_DATE)
    line = closing_line(_summary(reason), folder, report=False)
    said = line.split("needs attention: ", 1)[1].split("; results in", 1)[0]
    assert said == (
        "gamma failed (gave up after 6 attempts: job 'gamma' offset 300\u2026: "
        "Internal Server Error)"
    )
