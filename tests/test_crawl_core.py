"""The crawl's promises, driven through its fetch seam with scripted answers, in virtual time.

No server: the real schedule, pacer, budget and writer run against a fake API whose
answers come out of order, late, failing or empty on purpose. Times are exact.
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.answer import FetchedPage
from intersect_batch.checkpoint import Counters
from intersect_batch.crawl import CallError, CrawlObserver
from intersect_batch.errors import (
    JobFatalApiError,
    OutputError,
    RunFatalApiError,
    ThrottledApiError,
    TransientApiError,
    UnreachableApiError,
)
from intersect_batch.ledger import Ledger
from intersect_batch.pacing import price
from intersect_batch.settings import Limits, RetryPolicy
from intersect_batch.store import JobStore
from tests.scripted import (
    ScriptedApi,
    empty,
    fail,
    job,
    lines_of,
    run_crawl,
    settings,
    slow,
)
from tests.virtual_time import run_virtual


def crawl_in_virtual_time(api: ScriptedApi, jobs: list[Any], run_settings: Any, **kw: Any) -> Any:
    return run_virtual(lambda: run_crawl(api, jobs, run_settings, **kw))


def test_pages_answered_out_of_order_are_written_in_order(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 95, "b": 40})
    # Page 1 of job a is the slowest of all: everything behind it arrives first.
    api.script("a", 10, slow(9.0))
    api.script("a", 30, slow(0.1))
    done = crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path))
    for name, total in (("a", 95), ("b", 40)):
        assert done.final(name).status == "complete"
        assert done.folder.result(name).read_bytes() == lines_of(name, total)
    # One call per page: 10 + 4, none paid twice.
    assert len(api.sent) == 14
    assert done.result.calls == 14


def test_never_more_calls_at_once_than_the_slots(tmp_path: Path) -> None:
    api = ScriptedApi({f"j{n}": 200 for n in range(5)})
    done = crawl_in_virtual_time(
        api, [job(f"j{n}") for n in range(5)], settings(tmp_path, limits=Limits(concurrency=3))
    )
    assert all(final.status == "complete" for final in done.result.jobs)
    assert api.most_in_flight == 3


def test_probes_go_first_then_pages_fan_out(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 100, "b": 100, "c": 100})
    crawl_in_virtual_time(
        api, [job("a"), job("b"), job("c")], settings(tmp_path, limits=Limits(concurrency=3))
    )
    assert [(s.job, s.offset) for s in api.sent[:3]] == [("a", 0), ("b", 0), ("c", 0)]
    assert all(s.at == pytest.approx(0.0) for s in api.sent[:3])


def test_decoded_pages_in_memory_are_bounded(tmp_path: Path) -> None:
    committed = 0

    class SlowDisk(JobStore):
        def commit(self, pages: Any, counters: Any) -> Any:
            nonlocal committed
            time.sleep(0.01)  # a slow disk (in real time): answers pile up behind the writer
            result = super().commit(pages, counters)
            committed += len(pages)
            return result

    api = ScriptedApi({"a": 300}, latency=1.0, unread=True, durable_pages=lambda: committed)
    run_settings = settings(tmp_path, limits=Limits(concurrency=10), pages_in_memory=2)
    done = crawl_in_virtual_time(api, [job("a")], run_settings, store=SlowDisk)
    assert done.final("a").status == "complete"
    assert api.decoded_not_durable_max == 2


def test_the_pages_ahead_window_holds_back_pages_behind_a_slow_one(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 300})
    api.script("a", 10, slow(50.0))
    done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path, pages_ahead=5))
    sent_before = [s.offset // 10 for s in api.sent if s.at < 50.0]
    # Page 1 holds the writer at page 1: nothing past 1 + 5 goes out meanwhile.
    assert max(sent_before) == 5
    assert done.folder.result("a").read_bytes() == lines_of("a", 300)


def test_a_job_is_completed_once_however_its_last_pages_arrive(tmp_path: Path) -> None:
    finalized: list[str] = []

    class Counted(JobStore):
        def finalize(self) -> Path:
            finalized.append(self.job_id)
            time.sleep(0.005)
            return super().finalize()

    api = ScriptedApi({"a": 80, "b": 80}, latency=1.0)
    done = crawl_in_virtual_time(
        api, [job("a"), job("b")], settings(tmp_path, limits=Limits(concurrency=8)), store=Counted
    )
    assert sorted(finalized) == ["a", "b"]
    assert sorted(f.job.job_id for f in done.ended) == ["a", "b"]


def test_retries_back_off_then_give_up_and_the_job_fails_alone(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 30, "b": 30})
    error = TransientApiError("Internal Error.", status_code=50000)
    api.script("a", 10, fail(error), fail(error), fail(error))
    policy = RetryPolicy(attempts=3, base=1.0, cap=8.0)
    done = crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path, retry=policy))
    a = done.final("a")
    assert a.status == "failed"
    assert a.reason == "gave up after 3 attempts: job 'a' offset 10: [50000] Internal Error."
    assert [e.offset for e in a.errors] == [10, 10, 10]
    assert api.calls_by_page[("a", 10)] == 3
    assert done.final("b").status == "complete"
    # The pages that were answered are durable: the next run does not pay for them again.
    assert a.checkpoint is not None and a.checkpoint.pages_done == {0, 2}


def test_retry_after_is_honoured_to_the_second(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 20}, latency=1.0)
    api.script("a", 10, fail(TransientApiError("busy", http_status=503, retry_after=7.0), 0.5))
    crawl_in_virtual_time(api, [job("a")], settings(tmp_path))
    sends = [s.at for s in api.sent if s.offset == 10]
    assert sends[1] - sends[0] == pytest.approx(0.5 + 7.0, abs=1e-3)


def test_a_throttle_pauses_every_call_and_costs_no_attempt(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 200, "b": 200}, latency=1.0)
    api.script("a", 20, fail(ThrottledApiError("rate", status_code=40202), 0.0))
    policy = RetryPolicy(attempts=2, base=1.0, cap=60.0, slowdown=5.0)
    done = crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path, retry=policy))
    [refused_at, *_] = [s.at for s in api.sent if (s.job, s.offset) == ("a", 20)]
    # The refusal holds every call of the run, of every job, for the slowdown.
    assert [s for s in api.sent if refused_at < s.at < refused_at + 5.0 - 1e-6] == []
    assert done.result.throttled_s == pytest.approx(5.0, abs=1e-3)
    assert {f.status for f in done.result.jobs} == {"complete"}


def test_refusals_in_a_row_double_the_pause_and_spend_no_attempt(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 20}, latency=1.0)
    api.script("a", 10, *[fail(ThrottledApiError("rate", status_code=40202), 0.0)] * 5)
    policy = RetryPolicy(attempts=2, base=1.0, cap=60.0, slowdown=5.0)
    done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path, retry=policy))
    assert done.final("a").status == "complete"  # five refusals, two attempts: none spent
    sends = [s.at for s in api.sent if s.offset == 10]
    assert [b - a for a, b in itertools.pairwise(sends)] == pytest.approx(
        [5.0, 10.0, 20.0, 40.0, 60.0], abs=1e-3
    )
    assert done.result.throttled_s == pytest.approx(135.0, abs=1e-3)


def test_a_run_throttled_past_its_patience_stops_with_what_to_lower(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 100}, latency=1.0)
    api.script("a", 0, *[fail(ThrottledApiError("rate", status_code=40202), 0.0)] * 50)
    policy = RetryPolicy(attempts=3, slowdown=5.0, cap=5.0, patience=60.0)
    done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path, retry=policy))
    assert done.result.stop is not None and done.result.stop.kind == "throttled"
    assert "lower --rate-per-minute (now 60000) or --concurrency (now 4)" in done.result.stop.reason
    assert done.final("a").status == "partial"
    assert len(api.sent) == 12  # 60 s of patience at 5 s a refusal
    assert done.result.run_fatal is None


def test_an_unreachable_api_stops_the_run_and_no_job_burns_its_attempts(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 100, "b": 100})
    down = UnreachableApiError("cannot connect: ClientConnectorError")
    for name in ("a", "b"):
        api.script(name, 0, *[fail(down, 0.0)] * 100)
    policy = RetryPolicy(attempts=2, base=1.0, cap=8.0, unreachable_after=30.0)
    done = crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path, retry=policy))
    stop = done.result.stop
    assert stop is not None and stop.kind == "unreachable"
    assert stop.reason.startswith("the API at https://api.test/v3 could not be reached")
    assert {f.status for f in done.result.jobs} == {"partial"}
    assert isinstance(done.result.run_fatal, UnreachableApiError)
    # Retries every 1-8 s (jittered, seeded) until nothing reached the API for 30 s.
    assert len(api.sent) == 19
    # Nothing reached the API: no call is counted.
    assert done.result.calls == 0 and done.result.cost_usd == 0


def test_a_run_fatal_answer_stops_sending_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = ScriptedApi({f"j{n}": 100 for n in range(4)}, latency=1.0)
    api.script("j0", 0, fail(RunFatalApiError("Insufficient funds.", status_code=40210), 0.2))
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = crawl_in_virtual_time(api, [job(f"j{n}") for n in range(4)], settings(tmp_path))
    assert done.result.stop is not None and done.result.stop.kind == "run_fatal"
    reason = "the API stopped the run: job 'j0' offset 0: [40210] Insufficient funds."
    assert done.result.stop.reason == reason
    assert caplog.messages == [f"stopping: {reason}"]
    # The jobs stopped say why, as the run does.
    assert {f.reason for f in done.result.jobs} == {reason}
    # Only the probes already in flight went out.
    assert len(api.sent) == 4
    assert {f.status for f in done.result.jobs} == {"partial"}


def test_a_job_fatal_answer_ends_its_job_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = ScriptedApi({"a": 50, "b": 50})
    refused = JobFatalApiError("Invalid Field: 'filters'.", status_code=40501, http_status=200)
    api.script("a", 0, fail(refused))
    with caplog.at_level(logging.ERROR, logger="intersect_batch"):
        done = crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path))
    assert done.final("a").status == "failed"
    assert done.final("a").reason == "job 'a' offset 0: [40501] Invalid Field: 'filters'."
    assert done.final("a").errors == (
        CallError(
            kind=refused.kind,
            message="Invalid Field: 'filters'.",
            offset=0,
            http_status=200,
            status_code=40501,
        ),
    )
    assert done.final("b").status == "complete"
    assert api.calls_by_page[("a", 0)] == 1
    # The refusal said no cost: it costs nothing.
    assert done.final("a").counters == Counters(calls=1, retries=0, cost_usd=0.0)
    # Said once, when it happens, naming the job.
    [record] = caplog.records
    assert record.getMessage() == (
        "job failed: job 'a' offset 0: [40501] Invalid Field: 'filters'."
    )
    assert (record.job, record.status) == ("a", "failed")  # type: ignore[attr-defined]


def test_an_empty_page_inside_the_total_is_never_written_as_complete(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 400, "b": 30})
    api.script("a", 300, empty(), empty(), empty())
    done = crawl_in_virtual_time(api, [job("a", page_size=100), job("b")], settings(tmp_path))
    a = done.final("a")
    assert a.status == "failed"
    assert a.reason == "offset 300: an empty page inside total_count 400, after 3 attempts"
    assert [(h.offset, h.attempts) for h in a.holes] == [(300, 3)]
    assert [(e.kind, e.offset) for e in a.errors] == [("hole", 300)] * 3
    assert not done.folder.result("a").exists()
    assert done.final("b").status == "complete"


def test_a_hole_that_fills_on_retry_completes_the_job(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 400})
    api.script("a", 300, empty())
    done = crawl_in_virtual_time(api, [job("a", page_size=100)], settings(tmp_path))
    assert done.final("a").status == "complete"
    assert done.folder.result("a").read_bytes() == lines_of("a", 400)
    assert done.final("a").counters.retries == 1


def test_a_huge_total_with_empty_pages_stops_after_a_few_calls(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10**9})
    for page in range(1, 40):
        api.script("a", page * 1000, *[empty(0.1)] * 10)
    done = crawl_in_virtual_time(
        api, [job("a", page_size=1000)], settings(tmp_path, limits=Limits(concurrency=30))
    )
    assert done.final("a").status == "failed"
    # The first wave, then only the lowest hole again: never a million pages.
    assert len(api.sent) == 1 + 8 + 2


def test_the_budget_holds_even_when_answers_are_lost_after_billing(tmp_path: Path) -> None:
    api = ScriptedApi({f"j{n}": 100 for n in range(6)}, latency=1.0)
    lost = TransientApiError("answer cut short", maybe_billed=True)
    for n in range(6):
        api.script(f"j{n}", 10, fail(lost))
    cap = 20 * price(1, 10)
    done = crawl_in_virtual_time(
        api, [job(f"j{n}") for n in range(6)], settings(tmp_path, budget_usd=cap)
    )
    # What the server may have billed: every answered page, and the lost ones at worst.
    assert api.failures > 0
    may_have_billed = api.billed + api.failures * price(1, 10)
    assert may_have_billed <= cap + 1e-9
    assert done.result.stop is not None and done.result.stop.kind == "budget"
    assert done.result.spent_usd <= cap + 1e-9


def test_a_provider_billing_five_times_the_price_cannot_overrun_the_cap(tmp_path: Path) -> None:
    api = ScriptedApi({f"j{n}": 100 for n in range(10)}, latency=1.0, price_factor=5.0)
    cap = 1.0
    done = crawl_in_virtual_time(
        api,
        [job(f"j{n}") for n in range(10)],
        settings(tmp_path, budget_usd=cap, limits=Limits(concurrency=10)),
    )
    assert api.billed <= cap + 1e-9
    assert done.result.stop is not None and done.result.stop.kind == "budget"
    # The first call went alone, then the others at once, at the price it showed.
    assert api.sent[1].at == pytest.approx(1.0)


def test_the_budget_counts_what_earlier_runs_of_the_night_spent(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 1000}, latency=1.0)
    cap = 0.5
    before = Ledger(spent_usd=0.45, cost_usd=0.45, calls=15, invocations=1)
    done = crawl_in_virtual_time(
        api, [job("a", page_size=100)], settings(tmp_path, budget_usd=cap), ledger=before
    )
    assert 0.45 + api.billed <= cap + 1e-9
    assert done.result.stop is not None and done.result.stop.kind == "budget"


def test_a_full_disk_fails_the_job_and_loses_nothing_for_the_next_run(tmp_path: Path) -> None:
    failures = [True]

    class FullOnce(JobStore):
        def commit(self, pages: Any, counters: Any) -> Any:
            if self.job_id == "a" and any(p.page == 3 for p in pages) and failures:
                failures.pop()
                raise OutputError(f"job 'a': cannot write page 3: {os.strerror(errno.ENOSPC)}")
            return super().commit(pages, counters)

    api = ScriptedApi({"a": 100, "b": 50})
    first = crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path), store=FullOnce)
    assert first.final("a").status == "failed"
    assert "No space left on device" in (first.final("a").reason or "")
    assert first.final("b").status == "complete"
    paid_first = {s.offset for s in api.sent if s.job == "a"}
    # Space again: the next run completes the job, every item exactly once.
    api.sent.clear()
    again = crawl_in_virtual_time(api, [job("a"), job("b")][:1], settings(tmp_path))
    assert again.final("a").status == "complete"
    assert again.folder.result("a").read_bytes() == lines_of("a", 100)
    paid_again = {s.offset for s in api.sent}
    # Only what was not durable is paid again: the failed page and the one committed with it.
    assert 30 in paid_again and len(paid_again & paid_first) == 2


def test_the_safety_cap_stops_a_run_that_would_call_too_much(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10_000})
    done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path, max_calls=7))
    assert len(api.sent) == 7
    assert done.result.stop is not None and done.result.stop.kind == "cap"
    assert done.final("a").status == "partial"


def test_a_resumed_job_sends_only_its_missing_pages(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 100})
    crawl_in_virtual_time(api, [job("a")], settings(tmp_path, max_calls=4))
    paid = {s.offset for s in api.sent}
    api.sent.clear()
    done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path))
    assert done.final("a").status == "complete"
    assert {s.offset for s in api.sent}.isdisjoint(paid)
    assert done.folder.result("a").read_bytes() == lines_of("a", 100)
    assert done.final("a").counters.calls == 10


def test_a_job_whose_only_page_said_no_result_completes_on_resume(tmp_path: Path) -> None:
    async def no_result(api: ScriptedApi, call: Any) -> Any:
        # 40102: no result at all, not even a total_count.
        return FetchedPage(total_count=None, items_count=0, lines=[], cost=0.02, task_id=None)

    api = ScriptedApi({"a": 0})
    api.script("a", 0, no_result)

    class DiskGone(JobStore):
        def finalize(self) -> Path:
            raise OutputError(f"job {self.job_id!r}: cannot move its result into place: I/O error")

    first = crawl_in_virtual_time(api, [job("a")], settings(tmp_path), store=DiskGone)
    assert first.final("a").status == "failed"
    why = "job 'a': cannot move its result into place: I/O error"
    assert first.final("a").reason == why
    assert first.final("a").errors == (CallError(kind="output", message=why),)
    api.sent.clear()
    again = crawl_in_virtual_time(api, [job("a")], settings(tmp_path))
    assert again.final("a").status == "complete"
    assert api.sent == []  # the durable "no result" page is not asked again
    assert again.folder.result("a").read_bytes() == b""


def test_refusals_of_calls_sent_together_pause_the_run_once(tmp_path: Path) -> None:
    # Four calls go out at 0 s and are refused at 0.5-0.8 s: one wave, one pause of 5 s.
    api = ScriptedApi({f"j{n}": 10 for n in range(4)}, latency=1.0)
    for n in range(4):
        api.script(f"j{n}", 0, fail(ThrottledApiError("rate", status_code=40202), 0.5 + n / 10))
    policy = RetryPolicy(attempts=2, base=1.0, cap=60.0, slowdown=5.0)
    done = crawl_in_virtual_time(
        api, [job(f"j{n}") for n in range(4)], settings(tmp_path, retry=policy)
    )
    assert {f.status for f in done.result.jobs} == {"complete"}
    assert done.result.throttled_s == pytest.approx(5.0, abs=1e-6)
    assert sorted(s.at for s in api.sent[4:]) == pytest.approx([5.5] * 4, abs=1e-6)


@pytest.mark.parametrize(
    ("previous", "total", "jump"),
    [
        (100, 1000, None),  # 100 pages where there were 10: ten times, not more
        (100, 1001, 1001),  # 101 pages
        (5, 110, None),  # 11 pages where there was 1: not 10 pages more
        (5, 111, 111),  # 12 pages
        (0, 111, 111),  # none before counts as one page
        (None, 10**6, None),  # no last run to compare with
    ],
)
def test_a_total_that_jumps_past_the_last_runs_is_flagged_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    previous: int | None,
    total: int,
    jump: int | None,
) -> None:
    api = ScriptedApi({"a": total})
    # Two pages, the second reporting another total: the first jump is the one kept.
    api.script("a", 10, _with_total(total * 2 if jump else total - 1))
    spec = dataclasses.replace(job("a", max_items=20), previous_total=previous)
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = crawl_in_virtual_time(api, [spec], settings(tmp_path))
    assert done.final("a").plan_jump == jump
    if jump is None:
        assert caplog.records == []
    else:
        [record] = caplog.records
        pages = -(-total // 10)
        assert record.getMessage() == (
            f"total_count jumped from {previous} at the last complete run to {total}: "
            f"{pages} pages planned"
        )
        assert record.job == "a"  # type: ignore[attr-defined]


def _with_total(total: int) -> Any:
    async def step(api: ScriptedApi, call: Any) -> FetchedPage:
        return api.page(call, total=total)

    return step


def test_a_complete_job_is_told_once_with_its_end_and_its_files_removed(tmp_path: Path) -> None:
    told: list[tuple[Any, Any]] = []

    class Watching(CrawlObserver):
        def job_finished(self, job: Any, final: Any) -> None:
            told.append((job, final))

    api = ScriptedApi({"a": 25})
    done = run_virtual(lambda: run_crawl(api, [job("a")], settings(tmp_path), observer=Watching()))
    [(snapshot, final)] = told
    assert final.status == "complete" and final.reason is None
    assert (snapshot.job_id, snapshot.status, snapshot.pages_done, snapshot.items) == (
        "a",
        "complete",
        3,
        25,
    )
    assert final.checkpoint is not None and final.checkpoint.finalized
    assert final.output == done.folder.result("a")
    assert not done.folder.state.exists() or list(done.folder.state.iterdir()) == []


def test_progress_files_that_cannot_be_removed_leave_the_job_complete(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Stuck(JobStore):
        def close(self) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(self.part_path))

    api = ScriptedApi({"a": 5})
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path), store=Stuck)
    assert done.final("a").status == "complete"
    [record] = caplog.records
    assert record.getMessage().startswith(
        "cannot remove its progress files: [Errno 13] Permission denied"
    )
    assert record.job == "a"  # type: ignore[attr-defined]


def test_a_retry_is_counted_told_and_logged_with_its_delay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    retried: list[tuple[str, int, str, float]] = []

    class Watching(CrawlObserver):
        def call_retried(self, job: Any, offset: int, message: str, delay: float) -> None:
            retried.append((job.job_id, offset, message, delay))

    api = ScriptedApi({"a": 10})
    busy = TransientApiError("server busy", retry_after=0.25)
    api.script("a", 0, fail(busy, 0.5), fail(busy, 0.5))
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = run_virtual(
            lambda: run_crawl(api, [job("a")], settings(tmp_path), observer=Watching())
        )
    assert done.final("a").status == "complete"
    assert done.result.retries == 2 and done.final("a").counters.retries == 2
    assert [r[:3] for r in retried] == [("a", 0, "server busy")] * 2
    assert [r[3] for r in retried] == pytest.approx([0.25, 0.25])
    assert caplog.messages == ["call failed, retrying in 0.25s: server busy"] * 2
    assert [(r.job, r.offset, r.attempt) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("a", 0, 1),
        ("a", 0, 2),
    ]


def test_a_job_keeps_its_first_fifty_failed_calls(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10})
    api.script("a", 0, *[fail(TransientApiError(f"try {n}"), 0.0) for n in range(55)])
    policy = RetryPolicy(attempts=60, base=0.001, cap=0.001)
    done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path, retry=policy))
    assert done.final("a").status == "complete"
    assert [e.message for e in done.final("a").errors] == [f"try {n}" for n in range(50)]


def test_a_job_whose_writes_fail_together_is_failed_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class FullAfterFirst(JobStore):
        def commit(self, pages: Any, counters: Any) -> Any:
            if all(p.page > 0 for p in pages):
                time.sleep(0.01)  # the pages behind this commit queue for it
                raise OutputError("job 'a': cannot write: No space left on device")
            return super().commit(pages, counters)

    api = ScriptedApi({"a": 60}, latency=1.0)
    with caplog.at_level(logging.ERROR, logger="intersect_batch"):
        done = crawl_in_virtual_time(api, [job("a")], settings(tmp_path), store=FullAfterFirst)
    assert done.final("a").status == "failed"
    why = "job 'a': cannot write: No space left on device"
    written = [e for e in done.final("a").errors if e.kind == "output"]
    assert len(written) > 1
    assert {(e.message, e.offset) for e in written} <= {(why, o) for o in range(10, 60, 10)}
    assert len({e.offset for e in written}) == len(written)
    assert caplog.messages == ["job failed: job 'a': cannot write: No space left on device"]


def test_a_job_whose_progress_cannot_be_opened_fails_alone(tmp_path: Path) -> None:
    why = "job 'a': cannot open its progress: Permission denied"

    class Locked(JobStore):
        def open(self, fingerprint: str) -> Any:
            if self.job_id == "a":
                raise OutputError(why)
            return super().open(fingerprint)

    api = ScriptedApi({"a": 30, "b": 30})
    # Only a job with files on disk has progress to open: the first run leaves its probe.
    crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path, max_calls=2))
    api.sent.clear()
    done = crawl_in_virtual_time(api, [job("a"), job("b")], settings(tmp_path), store=Locked)
    a = done.final("a")
    assert (a.status, a.reason) == ("failed", why)
    assert a.errors == (CallError(kind="output", message=why),)
    assert a.checkpoint is None and a.started_at.endswith("+00:00")
    assert a.pages_planned == 1  # total_count 0: the one page that says so
    assert [(s.job, s.offset) for s in api.sent] == [("b", 10), ("b", 20)]
    assert done.final("b").status == "complete"


def test_damaged_progress_is_said_per_job_and_resumed_counters_carry_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    started: list[Any] = []

    class Watching(CrawlObserver):
        def job_started(self, job: Any) -> None:
            started.append(job)

    class Damaged(JobStore):
        def open(self, fingerprint: str) -> Any:
            opened = super().open(fingerprint)
            return dataclasses.replace(opened, warnings=("its checkpoint does not decode",))

    api = ScriptedApi({"a": 40})
    first = crawl_in_virtual_time(api, [job("a")], settings(tmp_path, max_calls=2))
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = run_virtual(
            lambda: run_crawl(
                api, [job("a")], settings(tmp_path), store=Damaged, observer=Watching()
            )
        )
    a = done.final("a")
    assert a.warnings == ("its checkpoint does not decode",)
    [record] = [r for r in caplog.records if r.getMessage() == "its checkpoint does not decode"]
    assert record.job == "a"  # type: ignore[attr-defined]
    assert a.resumed_pages == 2 and a.counters.calls == 4 and a.invocation.calls == 2
    [snapshot] = started
    assert (snapshot.job_id, snapshot.pages_done, snapshot.calls) == ("a", 2, 2)
    assert a.started_at == first.final("a").started_at is not None


def test_observers_see_each_page_and_each_end_as_the_manifest_will(tmp_path: Path) -> None:
    seen: list[tuple[Any, ...]] = []

    class Watching(CrawlObserver):
        def page_done(self, job: Any, items: int, cost: float) -> None:
            seen.append((job.status, job.pages_done, job.pages_planned, job.items, job.calls,
                         job.retries, job.cost_usd, job.resumed_pages, items, cost))  # fmt: skip

    api = ScriptedApi({"a": 25})
    api.script("a", 10, fail(TransientApiError("busy", retry_after=0.5)))
    done = run_virtual(
        lambda: run_crawl(api, [job("a")], settings(tmp_path, max_calls=3), observer=Watching())
    )
    page, last = price(1, 10), price(1, 5)
    # Page 1 failed once and the cap held its retry: page 2 waits in the spool.
    assert seen == [
        (None, 1, 3, 10, 1, 0, pytest.approx(page), 0, 10, pytest.approx(page)),
        (None, 2, 3, 10, 3, 1, pytest.approx(page + last), 0, 5, pytest.approx(last)),
    ]
    a = done.final("a")
    assert (a.status, a.pages_planned, a.items_fetched) == ("partial", 3, 15)
    assert (a.invocation.calls, a.invocation.retries) == (3, 1)
    assert a.invocation.cost_usd == pytest.approx(page + last)
    assert a.counters == a.invocation and a.duration_s >= 0
    # Saved for the next run, with the same counters.
    assert a.checkpoint is not None and a.checkpoint.counters == a.counters
