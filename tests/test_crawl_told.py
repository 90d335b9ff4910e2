"""What a person sees of a crawl: why it stopped, each job's end, the night's ledger mid-run.

The real crawl runs in virtual time against scripted answers (see ``tests/scripted.py``):
the words of stop reasons and log records, the figures of each job's snapshot and end, and
the ledger read at exact virtual instants while calls go on.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from intersect_batch.answer import FetchedPage
from intersect_batch.checkpoint import Counters
from intersect_batch.crawl import CallError, CrawlObserver, JobSnapshot, crawl
from intersect_batch.errors import (
    JobFatalApiError,
    OutputError,
    ThrottledApiError,
    TransientApiError,
    UnreachableApiError,
)
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger, read_ledger
from intersect_batch.pacing import price
from intersect_batch.settings import Limits, RetryPolicy
from intersect_batch.stop import CrawlControl, Stop
from intersect_batch.store import JobStore
from tests.scripted import (
    DATE,
    Crawled,
    ScriptedApi,
    empty,
    fail,
    item,
    job,
    lines_of,
    run_crawl,
    settings,
)
from tests.virtual_time import run_virtual

PAGE = price(1, 10)


def _crawl(api: ScriptedApi, jobs: list[Any], run_settings: Any, **kw: Any) -> Crawled:
    return run_virtual(lambda: run_crawl(api, jobs, run_settings, **kw))


def _claiming(cost: float) -> Any:
    async def step(api: ScriptedApi, call: Any) -> FetchedPage:
        await anyio.sleep(api.latency)
        page = api.page(call)
        return FetchedPage(page.total_count, page.items_count, page.lines, cost, None)

    return step


class _Watching(CrawlObserver):
    def __init__(self) -> None:
        self.started: list[JobSnapshot] = []
        self.finished: list[tuple[JobSnapshot, Any]] = []
        self.stops: list[str] = []

    def job_started(self, job: JobSnapshot) -> None:
        self.started.append(job)

    def job_finished(self, job: JobSnapshot, final: Any) -> None:
        self.finished.append((job, final))

    def stopping(self, message: str) -> None:
        self.stops.append(message)


async def _crawl_reading_ledger(
    api: ScriptedApi, jobs: list[Any], run_settings: Any, at: list[float]
) -> tuple[Crawled, list[tuple[Ledger, tuple[int, int]]]]:
    """Crawl; read the night's ledger (its figures and its file's identity) at ``at``."""
    folder = RunFolder(run_settings.out_dir, DATE)
    read: list[tuple[Ledger, tuple[int, int]]] = []

    async def reader() -> None:
        for when in at:
            await anyio.sleep(when - anyio.current_time())
            stat = os.stat(folder.ledger)
            read.append((read_ledger(folder.ledger), (stat.st_ino, stat.st_mtime_ns)))

    async with anyio.create_task_group() as group:
        group.start_soon(reader)
        done = await run_crawl(api, jobs, run_settings)
    return done, read


# -- why the run stopped, in its words -------------------------------------------------------


def test_the_safety_cap_says_which_cap_and_what_to_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = ScriptedApi({"a": 10_000})
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = _crawl(api, [job("a")], settings(tmp_path, max_calls=7))
    reason = (
        "the safety cap of 7 calls for one run is reached (--max-calls); "
        "raise it if the jobs really need more"
    )
    assert done.result.stop == Stop("cap", reason)
    assert done.final("a").reason == reason
    assert caplog.messages == [f"stopping: {reason}"]
    # Every page sent is durable: the one refused went back, none is lost.
    checkpoint = done.final("a").checkpoint
    assert checkpoint is not None and checkpoint.pages == 7 and done.result.calls == 7


def test_the_budget_says_what_the_next_call_could_cost_and_what_is_spent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = ScriptedApi({"a": 1000})
    run_settings = settings(tmp_path, budget_usd=0.05, limits=Limits(concurrency=1))
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = _crawl(api, [job("a")], run_settings)
    reason = (
        "budget: the next call could cost 0.02030 USD and 0.04060 of 0.05 USD are spent tonight"
    )
    assert done.result.stop == Stop("budget", reason)
    assert done.final("a").reason == reason
    assert caplog.messages == [f"stopping: {reason}"]
    assert len(api.sent) == 2 and done.result.spent_usd == 0.0406


def test_a_crawl_abandoned_with_no_stop_says_its_jobs_were_stopped_early(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A library caller abandons the crawl at 1.5 s: no stop was given, the call in flight
    # since 1 s (it may have been billed) counts as a call at its worst case.
    api = ScriptedApi({"a": 100})
    control = CrawlControl()
    watching = _Watching()

    async def main() -> Crawled:
        async with anyio.create_task_group() as group:

            async def abandon() -> None:
                await anyio.sleep(1.5)
                control.abandon()

            group.start_soon(abandon)
            run_settings = settings(tmp_path, limits=Limits(concurrency=1))
            done = await run_crawl(
                api, [job("a")], run_settings, control=control, observer=watching
            )
        return done

    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = run_virtual(main)
    assert done.result.stop is None
    a = done.final("a")
    assert (a.status, a.reason) == ("partial", "stopped before its pages were fetched")
    assert [s.offset for s in api.sent] == [0, 10]
    assert done.result.calls == 2 and a.counters.calls == 2
    assert done.result.cost_usd == pytest.approx(PAGE)
    assert done.result.spent_usd == 0.0406
    ledger = read_ledger(done.folder.ledger)
    assert (ledger.calls, ledger.spent_usd) == (2, 0.0406)
    assert watching.stops == ["stopping now: the calls in flight are abandoned"]
    assert caplog.messages == [
        "stopping now: the calls in flight are abandoned",
        "calls still in flight were abandoned; their pages are fetched again",
    ]


def test_a_library_call_with_the_defaults_names_the_api_plainly(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10})
    api.script("a", 0, *[fail(UnreachableApiError("cannot connect"), 0.0)] * 50)
    run_settings = settings(tmp_path, retry=RetryPolicy(attempts=2, unreachable_after=10.0))
    folder = RunFolder(tmp_path, DATE)

    async def main() -> Any:
        return await crawl([job("a")], fetch=api, folder=folder, settings=run_settings)

    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = run_virtual(main)
    after = dt.datetime.now(dt.UTC)
    assert result.stop is not None
    assert result.stop.reason == "the API at the API could not be reached: cannot connect"
    assert [(f.job.job_id, f.status) for f in result.jobs] == [("a", "partial")]
    # Its own times: ISO 8601 in UTC to the second, and how long it took for real.
    started = dt.datetime.fromisoformat(result.started_at)
    finished = dt.datetime.fromisoformat(result.finished_at)
    assert before <= started <= finished <= after
    assert result.started_at.endswith("+00:00") and "." not in result.started_at
    assert 0 <= result.duration_s <= (after - before).total_seconds() + 1
    assert read_ledger(folder.ledger) == Ledger(invocations=1)


# -- the night's ledger while calls go on -----------------------------------------------------


def test_the_ledger_is_written_every_five_seconds_with_what_was_spent(tmp_path: Path) -> None:
    # One call at a time, answered every 0.75 s, each claiming more than the list; a cap
    # books money ahead of the calls (a chunk of 5 % of the cap).
    claim = 0.0212345678
    api = ScriptedApi({"a": 1000}, latency=0.75)
    for offset in range(0, 1000, 10):
        api.script("a", offset, _claiming(claim))
    run_settings = settings(tmp_path, budget_usd=10.0, limits=Limits(concurrency=1), max_calls=15)
    done, read = run_virtual(
        lambda: _crawl_reading_ledger(api, [job("a")], run_settings, [0.1, 5.1, 10.1])
    )
    [(start, _), (five, _), (ten, _)] = read
    first_booking = round(PAGE + 0.5, 8)
    assert start == Ledger(invocations=1, booked_usd=first_booking)
    # 6 answers by 5 s (the 7th at 5.25 s), 13 by 10 s: rounded to 8 places.
    assert five == Ledger(
        spent_usd=round(6 * claim, 8),
        cost_usd=round(6 * claim, 8),
        calls=6,
        invocations=1,
        booked_usd=first_booking,
    )
    assert five.spent_usd == 0.12740741
    assert ten.calls == 13 and ten.spent_usd == round(13 * claim, 8)
    assert ten.booked_usd == first_booking  # 14 calls committed: within the first chunk
    assert (done.result.cost_usd, done.result.spent_usd) == (round(15 * claim, 8),) * 2
    final = read_ledger(done.folder.ledger)
    assert final == Ledger(
        spent_usd=round(15 * claim, 8),
        cost_usd=round(15 * claim, 8),
        calls=15,
        invocations=1,
    )


def test_the_ledger_is_not_rewritten_while_no_call_is_counted(tmp_path: Path) -> None:
    # Two calls of 12 s each: the ledger is written at 0 s, at 15 s (the first was
    # counted at 12 s) and at the end (24 s); not at 5, 10 or 20 s.
    api = ScriptedApi({"a": 20}, latency=12.0)
    run_settings = settings(tmp_path, limits=Limits(concurrency=1))
    done, read = run_virtual(
        lambda: _crawl_reading_ledger(api, [job("a")], run_settings, [1.0, 11.0, 16.0, 21.0])
    )
    [(at_1, file_1), (at_11, file_11), (at_16, file_16), (at_21, file_21)] = read
    assert at_1 == at_11 == Ledger(invocations=1)
    assert file_1 == file_11
    assert (
        at_16
        == at_21
        == Ledger(spent_usd=round(PAGE, 8), cost_usd=round(PAGE, 8), calls=1, invocations=1)
    )
    assert file_16 == file_21 != file_1
    assert read_ledger(done.folder.ledger).calls == 2


# -- each job's start and end -----------------------------------------------------------------


def test_jobs_that_never_started_are_only_named(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 30, "b": 30, "c": 30})
    watching = _Watching()
    run_settings = settings(tmp_path, max_calls=1, limits=Limits(concurrency=1))
    done = _crawl(api, [job("a"), job("b"), job("c")], run_settings, observer=watching)
    assert done.result.not_started == ("b", "c")
    assert [f.job.job_id for f in done.result.jobs] == ["a"]
    assert [f.job.job_id for f in done.ended] == ["a"]
    assert [final.job.job_id for _, final in watching.finished] == ["a"]
    assert [s.job_id for s in watching.started] == ["a", "b", "c"]
    # Nothing on disk names them.
    names = {p.name for p in done.folder.path.rglob("*")}
    assert not any(n.startswith(("b", "c")) for n in names)


def test_a_job_whose_calls_all_failed_keeps_its_counters_for_the_next_run(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 30})
    api.script("a", 0, fail(TransientApiError("server busy", retry_after=1.0), 0.5))
    run_settings = settings(tmp_path, max_calls=1)
    first = _crawl(api, [job("a")], run_settings)
    a = first.final("a")
    assert (a.status, a.output) == ("partial", None)
    assert a.counters == a.invocation == Counters(calls=1, retries=1, cost_usd=0.0)
    assert a.checkpoint is not None and a.checkpoint.counters == a.counters
    assert a.errors == (CallError(kind="transient", message="server busy", offset=0),)
    assert read_ledger(first.folder.ledger).retries == 1
    again = _crawl(api, [job("a")], settings(tmp_path))
    assert again.final("a").status == "complete"
    assert again.final("a").counters == Counters(calls=4, retries=1, cost_usd=3 * PAGE)
    assert again.final("a").invocation.calls == 3


def test_what_observers_see_of_a_new_and_a_resumed_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = ScriptedApi({"a": 40})
    fresh = _Watching()
    first = _crawl(api, [job("a")], settings(tmp_path, max_calls=2), observer=fresh)
    assert fresh.started == [JobSnapshot("a", None, 0, None, 0, 0, 0, 0.0, 0)]
    [(ended, final)] = fresh.finished
    assert ended == JobSnapshot("a", "partial", 2, 4, 20, 2, 0, 2 * PAGE, 0)
    assert final is first.final("a")
    resumed = _Watching()
    with caplog.at_level(logging.INFO, logger="intersect_batch"):
        again = _crawl(api, [job("a")], settings(tmp_path), observer=resumed)
    assert resumed.started == [JobSnapshot("a", None, 2, 4, 20, 2, 0, 2 * PAGE, 2)]
    [record] = [r for r in caplog.records if r.getMessage() == "job resumed"]
    assert (record.job, record.pages_on_disk) == ("a", 2)  # type: ignore[attr-defined]
    a = again.final("a")
    assert (a.status, a.resumed_pages, a.pages_planned) == ("complete", 2, 4)
    assert a.output == again.folder.result("a")
    assert a.started_at == first.final("a").started_at
    assert 0 <= a.duration_s < 60 and a.finished_at >= a.started_at


def test_a_job_complete_before_a_crash_is_closed_by_the_next_run(tmp_path: Path) -> None:
    class Stuck(JobStore):
        def close(self) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(self.part_path))

    api = ScriptedApi({"a": 25})
    first = _crawl(api, [job("a")], settings(tmp_path), store=Stuck)
    assert first.final("a").status == "complete"
    api.sent.clear()
    watching = _Watching()
    again = _crawl(api, [job("a")], settings(tmp_path), observer=watching)
    assert api.sent == []
    a = again.final("a")
    assert (a.status, a.reason, a.output) == ("complete", None, again.folder.result("a"))
    assert a.counters == Counters(calls=3, retries=0, cost_usd=2 * PAGE + price(1, 5))
    assert again.folder.result("a").read_bytes() == lines_of("a", 25)
    [(snapshot, told)] = watching.finished
    assert (snapshot.status, snapshot.pages_done, snapshot.items) == ("complete", 3, 25)
    assert told is a
    assert list(again.folder.state.iterdir()) == []


def test_a_signal_while_calls_wait_for_their_rate_sends_none_of_them(tmp_path: Path) -> None:
    # One call a second and no burst: the first job's probe goes at 0 s, the others wait
    # for their tokens; a signal at 0.5 s holds them back unsent.
    api = ScriptedApi({f"j{n}": 100 for n in range(6)}, latency=5.0)
    control = CrawlControl()
    limits = Limits(rate_per_minute=60, burst=1)

    async def main() -> Crawled:
        async with anyio.create_task_group() as group:

            async def signal_at() -> None:
                await anyio.sleep(0.5)
                control.signal(signal.SIGTERM)

            group.start_soon(signal_at)
            jobs = [job(f"j{n}") for n in range(6)]
            done = await run_crawl(api, jobs, settings(tmp_path, limits=limits), control=control)
        return done

    done = run_virtual(main)
    assert [s.at for s in api.sent] == [0.0]
    assert done.result.calls == 1 and done.result.spent_usd == pytest.approx(PAGE)
    assert done.result.not_started == ("j1", "j2", "j3", "j4", "j5")
    assert done.final("j0").reason == "interrupted by SIGTERM"


# -- what an answer does to its job -----------------------------------------------------------


def test_a_hole_is_told_in_the_jobs_errors_and_retried_after_its_delay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = ScriptedApi({"a": 400})
    api.script("a", 300, empty(0.5))
    with caplog.at_level(logging.DEBUG, logger="intersect_batch"):
        done = _crawl(api, [job("a", page_size=100)], settings(tmp_path))
    a = done.final("a")
    assert a.status == "complete" and a.holes == ()
    assert a.errors == (
        CallError(kind="hole", message="an empty page inside total_count 400", offset=300),
    )
    # The hole came at 1.5 s; its retry went after the seeded backoff of 0.844422 s.
    assert [(s.offset, s.at) for s in api.sent] == [
        (0, 0.0), (100, 1.0), (200, 1.0), (300, 1.0), (300, pytest.approx(2.344422)),
    ]  # fmt: skip
    written = [r for r in caplog.records if r.getMessage() == "page written"]
    assert sorted((r.job, r.offset, r.items) for r in written) == [  # type: ignore[attr-defined]
        ("a", offset, 100) for offset in (0, 100, 200, 300)
    ]
    assert "call failed, retrying in 0.84s: an empty page inside total_count 400" in (
        caplog.messages
    )


def test_a_failed_jobs_hole_in_flight_is_paid_and_neither_retried_nor_written(
    tmp_path: Path,
) -> None:
    # Page 1 is refused at 1.1 s, failing the job; page 3 comes back empty at 2 s.
    api = ScriptedApi({"b": 100})
    api.script("b", 10, fail(JobFatalApiError("bad", status_code=40501), 0.1))
    api.script("b", 30, empty(1.0))
    done = _crawl(api, [job("b")], settings(tmp_path))
    b = done.final("b")
    assert b.status == "failed" and len(api.sent) == 5
    assert b.errors == (CallError(kind="job_fatal", message="bad", offset=10, status_code=40501),)
    # Pages 0, 2 and 4 are kept for the next run; the empty page 3 is not.
    assert b.checkpoint is not None and (b.checkpoint.pages, b.items_fetched) == (3, 30)
    assert not done.folder.result("b").exists()
    assert b.counters.calls == 5 and b.counters.cost_usd == pytest.approx(3 * PAGE + price(1, 0))


def test_an_answer_to_a_call_sent_before_a_refusal_does_not_end_the_refusals(
    tmp_path: Path,
) -> None:
    # j0's probe is refused at 0.5 s and again after its 2.5 s pause; j1's probe, sent at
    # 0 s and answered at 1 s, says nothing of the rate since: the second pause doubles.
    api = ScriptedApi({"j0": 10, "j1": 10}, latency=1.0)
    refused = ThrottledApiError("rate", status_code=40202)
    api.script("j0", 0, fail(refused, 0.5), fail(refused, 0.5))
    policy = RetryPolicy(attempts=2, base=1.0, cap=60.0, slowdown=2.5)
    done = _crawl(api, [job("j0"), job("j1")], settings(tmp_path, retry=policy))
    assert [(s.job, s.at) for s in api.sent] == [
        ("j0", 0.0), ("j1", 0.0), ("j0", 3.0), ("j0", 8.5),
    ]  # fmt: skip
    assert done.result.throttled_s == 7.5
    assert read_ledger(done.folder.ledger).throttled_s == 7.5
    assert {f.status for f in done.result.jobs} == {"complete"}


def _page_of(offset: int, *, echoed: bool) -> Any:
    """An answer carrying the items of the page at ``offset``, whatever was asked."""

    async def step(api: ScriptedApi, call: Any) -> FetchedPage:
        await anyio.sleep(api.latency)
        lines = [item(call.job_id, offset + k) for k in range(call.limit)]
        total = api.totals[call.job_id]
        return FetchedPage(total, len(lines), lines, PAGE, None, echoed=echoed)

    return step


def test_a_page_repeated_without_an_echo_is_a_bad_answer_and_asked_again(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 30})
    api.script("a", 10, _page_of(0, echoed=False))
    done = _crawl(api, [job("a")], settings(tmp_path))
    a = done.final("a")
    assert a.status == "complete"
    assert done.folder.result("a").read_bytes() == lines_of("a", 30)
    assert a.errors == (
        CallError(
            kind="transient",
            message="bad answer: no echo of the request, and every item is one the job "
            "already holds: a page repeated, not the page asked for",
            offset=10,
        ),
    )
    assert [(s.offset, s.at) for s in api.sent] == [(0, 0.0), (10, 1.0), (20, 1.0), (10, 
        pytest.approx(2.844422))]  # fmt: skip
    # The repeated answer was paid for: 4 calls, one retry.
    assert a.counters == Counters(calls=4, retries=1, cost_usd=3 * PAGE + PAGE)


def test_a_page_at_a_shrunken_totals_end_is_not_judged_a_repeat(tmp_path: Path) -> None:
    # The last page, asked at offset 20, says the total is now 20 and carries old items:
    # past the total, nothing is missing; its items are dropped as duplicates.
    async def shrunk(api: ScriptedApi, call: Any) -> FetchedPage:
        await anyio.sleep(api.latency)
        lines = [item("a", k) for k in range(10)]
        return FetchedPage(20, len(lines), lines, PAGE, None)

    api = ScriptedApi({"a": 30})
    api.script("a", 20, shrunk)
    done = _crawl(api, [job("a")], settings(tmp_path))
    a = done.final("a")
    assert (a.status, a.errors, a.counters.calls) == ("complete", (), 3)
    assert done.folder.result("a").read_bytes() == lines_of("a", 20)


def test_a_job_whose_pages_repeat_others_items_fails_instead_of_missing_them(
    tmp_path: Path,
) -> None:
    # Pages 1 and 2 echo their request but carry page 0's items: 20 of 100 dropped.
    api = ScriptedApi({"a": 100})
    api.script("a", 10, _page_of(0, echoed=True))
    api.script("a", 20, _page_of(0, echoed=True))
    done = _crawl(api, [job("a")], settings(tmp_path))
    a = done.final("a")
    why = (
        "20 duplicate items dropped, 20% of total_count 100: pages came back holding items "
        "of other pages (over 10% and over a page's worth), so the result would miss items; "
        "run it again with --fresh"
    )
    assert (a.status, a.reason, a.output) == ("failed", why, None)
    assert a.errors == (CallError(kind="bad_answer", message=why),)
    assert not done.folder.result("a").exists()
    assert len(api.sent) == 10


def test_a_job_an_earlier_run_called_is_not_counted_as_never_started(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 30, "b": 30})
    api.script("a", 0, fail(TransientApiError("server busy"), 0.5))
    _crawl(api, [job("a")], settings(tmp_path, max_calls=1))
    # Now b goes first and the cap holds a back: a keeps what its first call cost.
    again = _crawl(api, [job("b"), job("a")], settings(tmp_path, max_calls=1))
    assert again.result.not_started == ()
    a = again.final("a")
    assert (a.status, a.counters, a.invocation) == (
        "partial", Counters(calls=1, retries=1), Counters(),
    )  # fmt: skip
    assert a.duration_s == 0.0  # no call of its own tonight


def test_a_job_whose_damaged_progress_was_discarded_is_ended_with_its_warning(
    tmp_path: Path,
) -> None:
    # a's part file lost its checkpoint: discarded, said; the cap then holds a back.
    folder = RunFolder(tmp_path, DATE)
    part = JobStore(folder, "a").part_path
    part.parent.mkdir(parents=True)
    part.write_bytes(lines_of("a", 10))
    api = ScriptedApi({"a": 30, "b": 30})
    done = _crawl(api, [job("b"), job("a")], settings(tmp_path, max_calls=1))
    assert done.result.not_started == ()
    a = done.final("a")
    warning = "progress without its checkpoint: its pages are fetched again"
    assert (a.status, a.warnings, a.counters) == ("partial", (warning,), Counters())
    assert [s.job for s in api.sent] == ["b"]


def test_the_items_an_answer_repaired_are_counted_in_its_jobs_progress(tmp_path: Path) -> None:
    async def repaired(api: ScriptedApi, call: Any) -> FetchedPage:
        await anyio.sleep(api.latency)
        page = api.page(call)
        return FetchedPage(page.total_count, page.items_count, page.lines, PAGE, None,
                           items_repaired=2)  # fmt: skip

    api = ScriptedApi({"a": 30})
    api.script("a", 10, repaired)
    done = _crawl(api, [job("a")], settings(tmp_path, max_calls=2))
    a = done.final("a")
    assert a.checkpoint is not None and (a.checkpoint.pages, a.checkpoint.items_repaired) == (2, 2)


def test_a_deadline_of_the_callers_that_expires_while_jobs_end_lets_them_end(
    tmp_path: Path,
) -> None:
    # The cap stops the crawl at 1 s; the caller's own deadline expires at 1.5 s while
    # it is told a job's end (its manifest written, say, taking 1 s): the end and the
    # night's final ledger are still written.
    api = ScriptedApi({"a": 30})
    folder = RunFolder(tmp_path, DATE)
    folder.path.mkdir(parents=True)
    told: list[tuple[str, float]] = []

    async def job_ended(final: Any) -> None:
        await anyio.sleep(1.0)
        told.append((final.status, anyio.current_time()))

    async def main() -> None:
        with anyio.move_on_after(1.5):
            await crawl([job("a")], fetch=api, folder=folder, on_job_end=job_ended,
                        settings=settings(tmp_path, max_calls=1))  # fmt: skip

    run_virtual(main)
    assert told == [("partial", 2.0)]
    assert read_ledger(folder.ledger) == Ledger(
        spent_usd=0.0203, cost_usd=0.0203, calls=1, invocations=1
    )


def test_a_job_whose_counters_cannot_be_saved_says_so_in_its_end(tmp_path: Path) -> None:
    why = "job 'a': cannot save its progress: No space left on device"

    class Full(JobStore):
        def save(self, counters: Any) -> Any:
            raise OutputError(why)

    api = ScriptedApi({"a": 30})
    done = _crawl(api, [job("a")], settings(tmp_path, max_calls=1), store=Full)
    a = done.final("a")
    assert (a.status, a.errors) == ("partial", (CallError(kind="output", message=why),))
    # The last durable checkpoint is the one its page left.
    assert a.checkpoint is not None and a.checkpoint.pages == 1


def test_each_call_asks_the_jobs_request_at_its_offset_and_limit(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 25})
    tasks: list[dict[str, Any]] = []

    async def fetch(call: Any) -> FetchedPage:
        tasks.append(call.task)
        return await api(call)

    folder = RunFolder(tmp_path, DATE)

    async def main() -> Any:
        return await crawl([job("a", max_items=20)], fetch=fetch, folder=folder,
                           settings=settings(tmp_path))  # fmt: skip

    run_virtual(main)
    asked = {"targets": {"1": "a.example"}}
    assert tasks == [{**asked, "offset": 0, "limit": 10}, {**asked, "offset": 10, "limit": 10}]


def test_a_job_with_nothing_on_disk_is_not_opened_before_its_first_page(tmp_path: Path) -> None:
    # One listing of the state folder says a has no progress: its store is begun, not
    # opened, so a store whose opening would fail is never asked to.
    class Locked(JobStore):
        def open(self, fingerprint: str) -> Any:
            raise OutputError("cannot open its progress")

    api = ScriptedApi({"a": 30})
    done = _crawl(api, [job("a")], settings(tmp_path), store=Locked)
    assert done.final("a").status == "complete"


def test_a_resumed_job_keeps_its_max_items(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 100})
    _crawl(api, [job("a", max_items=20)], settings(tmp_path, max_calls=1))
    again = _crawl(api, [job("a", max_items=20)], settings(tmp_path))
    a = again.final("a")
    assert (a.status, a.pages_planned, a.resumed_pages) == ("complete", 2, 1)
    assert [s.offset for s in api.sent] == [0, 10]
    assert again.folder.result("a").read_bytes() == lines_of("a", 20)


def test_each_job_lasts_from_its_first_call_to_its_own_end(tmp_path: Path) -> None:
    # Two slots, answers in half a second: a and b are probed at once; c's first call
    # waits for a's slot, and fails; b's last page comes after that.
    api = ScriptedApi({"a": 10, "b": 30, "c": 10}, latency=0.5)
    api.script("c", 0, fail(JobFatalApiError("[40501] invalid field"), 0.5))
    two_slots = settings(tmp_path, limits=Limits(rate_per_minute=60_000, concurrency=2))
    done = _crawl(api, [job("a"), job("b"), job("c")], two_slots)
    sent = {(s.job, s.offset): s.at for s in api.sent}
    assert sent == {("a", 0): 0.0, ("b", 0): 0.0, ("c", 0): 0.5, ("b", 10): 0.5, ("b", 20): 1.0}
    ends = {f.job.job_id: (f.status, f.duration_s) for f in done.result.jobs}
    assert ends == {"a": ("complete", 0.5), "b": ("complete", 1.5), "c": ("failed", 0.5)}


def test_the_time_the_run_paused_is_told_to_the_millisecond(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10}, latency=1.0)
    api.script("a", 0, fail(ThrottledApiError("rate", status_code=40202), 0.5))
    policy = RetryPolicy(attempts=2, base=1.0, cap=60.0, slowdown=1.23456)
    done = _crawl(api, [job("a")], settings(tmp_path, retry=policy))
    assert [(s.job, s.at) for s in api.sent] == [("a", 0.0), ("a", pytest.approx(1.73456))]
    assert done.result.throttled_s == 1.235
