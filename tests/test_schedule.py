"""The schedule's rules, one by one: it is pure, so each is a few exact lines."""

from __future__ import annotations

import math
import random

import pytest

from intersect_batch.jobstate import Hole
from intersect_batch.schedule import (
    Done,
    Failure,
    GaveUp,
    JobEnded,
    Retry,
    RunStopped,
    Schedule,
    Send,
    Wait,
)
from intersect_batch.settings import RetryPolicy


class Highest(random.Random):
    """Draws the top of every range, so that back-off delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


def schedule(**policy: float) -> Schedule:
    values = {"attempts": 3, "base": 1.0, "cap": 8.0, "slowdown": 5.0, **policy}
    return Schedule(
        retry=RetryPolicy(**values),  # type: ignore[arg-type]
        pages_ahead=4,
        rng=Highest(),
    )


def sends(plan: Schedule, now: float = 0.0) -> list[tuple[int, int]]:
    """Every page ready now, as (job, page)."""
    out = []
    while isinstance(decision := plan.next(now), Send):
        out.append((decision.job, decision.page))
    return out


def answer(plan: Schedule, job: int, page: int, total: int, items: int | None = None) -> None:
    size = plan.job(job).page_size
    verdict = plan.answered(
        job, page, 0.0, total=total, items=size if items is None else items, limit=size
    )
    assert verdict == "write"


def test_probes_go_first_and_a_job_fans_out_once_its_total_is_known() -> None:
    plan = schedule()
    a = plan.add_job(10, None)
    b = plan.add_job(10, None)
    assert sends(plan) == [(a, 0), (b, 0)]
    assert plan.next(0.0) == Wait(None)
    answer(plan, a, 0, total=35)
    # 4 pages in all; 3 to go, within the window of 4 ahead of the writer.
    assert plan.job(a).planned == 4
    assert sends(plan) == [(a, 1), (a, 2), (a, 3)]


def test_a_send_carries_the_offset_and_the_limit_max_items_leaves() -> None:
    plan = schedule()
    job = plan.add_job(100, 250)
    assert plan.next(0.0) == Send(job=job, page=0, offset=0, limit=100)
    answer(plan, job, 0, total=10_000)
    assert plan.job(job).planned == 3
    assert plan.next(0.0) == Send(job=job, page=1, offset=100, limit=100)
    assert plan.next(0.0) == Send(job=job, page=2, offset=200, limit=50)


def test_the_window_holds_pages_until_the_writer_catches_up() -> None:
    plan = schedule()
    job = plan.add_job(10, None, total=200)
    assert sends(plan) == [(job, 0), (job, 1), (job, 2), (job, 3)]
    # Pages 1..3 are answered and durable out of order: the writer still stands at 0.
    for page in (1, 2, 3):
        answer(plan, job, page, total=200)
        assert not plan.durable(job, 0, [page])
    assert sends(plan) == []
    answer(plan, job, 0, total=200)
    assert not plan.durable(job, 4, [0])
    assert sends(plan) == [(job, 4), (job, 5), (job, 6), (job, 7)]


def test_completion_is_decided_once() -> None:
    plan = schedule()
    job = plan.add_job(10, None)
    assert sends(plan) == [(job, 0)]
    answer(plan, job, 0, total=15)
    assert sends(plan) == [(job, 1)]
    answer(plan, job, 1, total=15)
    assert plan.durable(job, 2, [0, 1]) is True
    assert plan.job(job).status == "complete"
    assert plan.durable(job, 2, [1]) is False
    assert plan.next(0.0) == Done()


def test_a_late_page_of_a_complete_job_is_dropped_but_a_failed_jobs_is_kept() -> None:
    plan = schedule()
    done = plan.add_job(10, None, total=10)
    failed = plan.add_job(10, None, total=30)
    assert sends(plan) == [(done, 0), (failed, 0), (failed, 1), (failed, 2)]
    answer(plan, done, 0, total=10)
    assert plan.durable(done, 1, [0])
    assert plan.answered(done, 0, 0.0, total=10, items=10, limit=10) == "drop"
    plan.end_job(failed, "failed", "the API rejected it")
    # Paid for: it is written, so the next run does not pay for it again.
    assert plan.answered(failed, 2, 0.0, total=30, items=10, limit=10) == "write"


def test_transient_failures_back_off_exponentially_then_give_up() -> None:
    plan = schedule(attempts=3, base=1.0, cap=8.0)
    job = plan.add_job(10, None, total=10)
    assert sends(plan) == [(job, 0)]
    first = plan.failed(job, 0, 100.0, Failure.TRANSIENT, message="HTTP 500")
    assert first == Retry(at=101.0, attempt=1)
    assert plan.next(100.5) == Wait(101.0)
    assert sends(plan, 101.0) == [(job, 0)]
    assert plan.failed(job, 0, 101.0, Failure.TRANSIENT, message="HTTP 500") == Retry(
        at=103.0, attempt=2
    )
    assert sends(plan, 103.0) == [(job, 0)]
    last = plan.failed(job, 0, 103.0, Failure.TRANSIENT, message="[50401] Timeout")
    assert last == GaveUp("gave up after 3 attempts: [50401] Timeout")
    assert plan.job(job).status == "failed"
    assert plan.job(job).reason == "gave up after 3 attempts: [50401] Timeout"
    assert plan.next(200.0) == Done()


def test_the_back_off_is_capped_and_jittered_below_its_bound() -> None:
    plan = Schedule(
        retry=RetryPolicy(attempts=20, base=1.0, cap=8.0),
        pages_ahead=4,
        rng=random.Random(7),
    )
    job = plan.add_job(10, None, total=10)
    now = 0.0
    for attempt in range(1, 10):
        assert sends(plan, now) == [(job, 0)]
        retry = plan.failed(job, 0, now, Failure.TRANSIENT, message="x")
        assert isinstance(retry, Retry)
        assert 0.0 <= retry.at - now <= min(8.0, 2.0 ** (attempt - 1))
        now = retry.at


def test_retry_after_wins_over_the_back_off_within_the_cap() -> None:
    plan = schedule(cap=8.0)
    job = plan.add_job(10, None, total=10)
    sends(plan)
    assert plan.failed(job, 0, 0.0, Failure.TRANSIENT, message="x", retry_after=3.5) == Retry(
        at=3.5, attempt=1
    )
    sends(plan, 3.5)
    assert plan.failed(job, 0, 4.0, Failure.TRANSIENT, message="x", retry_after=600) == Retry(
        at=12.0, attempt=2
    )


def test_throttling_pauses_the_run_grows_and_costs_no_attempt() -> None:
    plan = schedule(attempts=2, slowdown=5.0, cap=60.0)
    job = plan.add_job(10, None, total=100)
    assert len(sends(plan)) == 4
    first = plan.failed(job, 0, 10.0, Failure.THROTTLED, message="[40202] rate")
    assert first == Retry(at=15.0, attempt=0, paused_until=15.0)
    # The next refusal in a row doubles the pause; none of them spends an attempt.
    second = plan.failed(job, 1, 10.0, Failure.THROTTLED, message="[40202] rate")
    assert second == Retry(at=20.0, attempt=0, paused_until=20.0)
    assert plan.paused_until == 20.0
    assert plan.throttled_seconds == 10.0  # 10..20, each second once
    assert sends(plan, 15.0) == [(job, 0)]
    assert sends(plan, 20.0) == [(job, 1)]
    for _ in range(5):
        assert isinstance(plan.failed(job, 0, 20.0, Failure.THROTTLED, message="x"), Retry)
        sends(plan, 1000.0)
    assert plan.job(job).attempts == {}
    # An answer ends the streak: the next refusal pauses for the slowdown again.
    answer(plan, job, 1, total=100)
    assert plan.failed(job, 2, 2000.0, Failure.THROTTLED, message="x") == Retry(
        at=2005.0, attempt=0, paused_until=2005.0
    )


def test_a_run_throttled_past_its_patience_stops() -> None:
    plan = schedule(slowdown=5.0, cap=5.0, patience=12.0)
    job = plan.add_job(10, None, total=100)
    sends(plan)
    assert isinstance(plan.failed(job, 0, 0.0, Failure.THROTTLED, message="x"), Retry)
    assert isinstance(plan.failed(job, 1, 5.0, Failure.THROTTLED, message="x"), Retry)
    assert not plan.halted
    assert plan.failed(job, 2, 10.0, Failure.THROTTLED, message="x") == RunStopped(
        "throttled", "the API refused calls for rate or concurrency for 15 s in all (patience 12 s)"
    )
    assert plan.halted
    # The throttled pages' retries are due by now: none goes out.
    assert plan.next(100.0) == Done()


def test_an_unreachable_api_costs_no_attempt_and_stops_the_run_after_a_while() -> None:
    plan = schedule(attempts=2, unreachable_after=60.0, base=1.0, cap=8.0)
    job = plan.add_job(10, None, total=100)
    sends(plan)
    now = 0.0
    for _ in range(10):
        outcome = plan.failed(job, 0, now, Failure.UNREACHABLE, message="refused")
        assert isinstance(outcome, Retry)
        now = outcome.at
        assert sends(plan, now) == [(job, 0)]
    assert plan.job(job).attempts == {}
    assert now < 60.0
    while isinstance(outcome := plan.failed(job, 0, now, Failure.UNREACHABLE, message="r"), Retry):
        now = outcome.at
        sends(plan, now)
    assert outcome == RunStopped("unreachable", "r")
    assert now >= 60.0
    assert plan.next(now + 100.0) == Done()
    assert plan.job(job).status is None  # stopped, not failed: the next run goes on


def test_a_call_that_reaches_the_api_ends_the_unreachable_streak() -> None:
    plan = schedule(unreachable_after=10.0)
    job = plan.add_job(10, None, total=100)
    sends(plan)
    assert isinstance(plan.failed(job, 0, 0.0, Failure.UNREACHABLE, message="r"), Retry)
    answer(plan, job, 1, total=100)
    assert isinstance(plan.failed(job, 2, 11.0, Failure.UNREACHABLE, message="r"), Retry)
    assert isinstance(plan.failed(job, 3, 20.0, Failure.UNREACHABLE, message="r"), Retry)
    assert isinstance(plan.failed(job, 2, 21.0, Failure.UNREACHABLE, message="r"), RunStopped)


def test_job_and_run_fatal_failures() -> None:
    plan = schedule()
    a = plan.add_job(10, None, total=30)
    b = plan.add_job(10, None, total=30)
    sends(plan)
    assert plan.failed(a, 0, 0.0, Failure.JOB_FATAL, message="[40501] bad") == JobEnded(
        "failed", "[40501] bad"
    )
    assert plan.job(a).status == "failed"
    assert plan.job(b).status is None
    assert plan.next(0.0) == Wait(None)  # b's pages are in flight
    stop = plan.failed(b, 1, 0.0, Failure.RUN_FATAL, message="[40210] funds")
    assert stop == RunStopped("run_fatal", "[40210] funds")
    assert plan.job(b).status is None  # stopped, not failed: the next run goes on
    assert plan.next(0.0) == Done()


def test_an_empty_page_inside_the_total_is_a_hole_retried_then_failed() -> None:
    plan = schedule(attempts=3)
    job = plan.add_job(100, None)
    sends(plan)
    answer(plan, job, 0, total=400)
    assert sends(plan) == [(job, 1), (job, 2), (job, 3)]
    hole = plan.answered(job, 3, 0.0, total=400, items=0, limit=100)
    assert hole == Hole(offset=300, reason="an empty page inside total_count 400", attempts=1)
    assert isinstance(hole, Hole)
    assert plan.failed(job, 3, 0.0, Failure.TRANSIENT, message="x", hole=hole) == Retry(
        at=1.0, attempt=1
    )
    for now in (1.0, 3.0):
        assert sends(plan, now) == [(job, 3)]
        hole = plan.answered(job, 3, now, total=400, items=0, limit=100)
        assert isinstance(hole, Hole)
        outcome = plan.failed(job, 3, now, Failure.TRANSIENT, message="x", hole=hole)
    assert outcome == GaveUp("offset 300: an empty page inside total_count 400, after 3 attempts")
    assert plan.holes(job) == [Hole(300, "an empty page inside total_count 400", 3)]


@pytest.mark.parametrize(
    ("holes", "tail"), [(3, ""), (5, "; and 2 more (the manifest lists them)")]
)
def test_a_job_that_gives_up_on_its_holes_names_three_and_counts_the_rest(
    holes: int, tail: str
) -> None:
    policy = RetryPolicy(attempts=2, base=1.0, cap=8.0, slowdown=5.0)
    plan = Schedule(retry=policy, pages_ahead=8, rng=Highest())
    job = plan.add_job(100, None)
    sends(plan)
    answer(plan, job, 0, total=10_000)
    assert len(sends(plan)) >= holes
    for page in range(1, holes + 1):
        hole = plan.answered(job, page, 0.0, total=10_000, items=0, limit=100)
        assert isinstance(hole, Hole)
        plan.failed(job, page, 0.0, Failure.TRANSIENT, message="x", hole=hole)
    assert sends(plan, 1.0) == [(job, 1)]
    hole = plan.answered(job, 1, 1.0, total=10_000, items=0, limit=100)
    assert isinstance(hole, Hole)
    outcome = plan.failed(job, 1, 1.0, Failure.TRANSIENT, message="x", hole=hole)
    named = "; ".join(
        f"offset {offset}: an empty page inside total_count 10000" for offset in (100, 200, 300)
    )
    assert outcome == GaveUp(f"{named}{tail}, after 2 attempts")
    assert len(plan.holes(job)) == holes


@pytest.mark.parametrize(
    ("total", "items", "limit", "hole"),
    [
        (400, 0, 100, "an empty page inside total_count 400"),
        (400, 60, 100, "60 of 100 items although total_count is 400"),
        (390, 60, 100, "60 of 90 items although total_count is 390"),
        (None, 0, 100, "no result inside total_count 400"),
        # The total shrank in the same answer: a consistent page, not a hole.
        (300, 0, 100, None),
        (350, 50, 100, None),
        (None, 0, 100, None),
        # The last page may be short.
        (399, 99, 100, None),
    ],
)
def test_what_is_a_hole(total: int | None, items: int, limit: int, hole: str | None) -> None:
    plan = schedule()
    job = plan.add_job(100, None)
    sends(plan)
    answer(plan, job, 0, total=400 if (total, hole) != (None, None) else 300)
    sends(plan)
    verdict = plan.answered(job, 3, 0.0, total=total, items=items, limit=limit)
    if hole is None:
        assert verdict == "write"
    else:
        assert isinstance(verdict, Hole) and verdict.reason == hole


def test_only_the_lowest_hole_is_asked_again_and_no_new_page_goes_out() -> None:
    plan = schedule(attempts=5)
    job = plan.add_job(100, None)
    sends(plan)
    answer(plan, job, 0, total=10_000)
    assert sends(plan) == [(job, 1), (job, 2), (job, 3)]
    for page in (3, 2):
        hole = plan.answered(job, page, 0.0, total=10_000, items=0, limit=100)
        assert isinstance(hole, Hole)
        plan.failed(job, page, 0.0, Failure.TRANSIENT, message="x", hole=hole)
    answer(plan, job, 1, total=10_000)
    plan.durable(job, 2, [0, 1])
    # Page 2 is retried alone; page 3 waits for it; page 5 and later wait for both.
    assert sends(plan, 100.0) == [(job, 2)]
    answer(plan, job, 2, total=10_000)
    assert sends(plan, 100.0) == [(job, 3)]
    answer(plan, job, 3, total=10_000)
    plan.durable(job, 4, [2, 3])
    assert sends(plan, 100.0) == [(job, 4), (job, 5), (job, 6), (job, 7)]


def test_an_unsent_page_is_the_next_again_without_an_attempt() -> None:
    plan = schedule()
    a = plan.add_job(10, None)
    b = plan.add_job(10, None)
    assert plan.next(0.0) == Send(job=a, page=0, offset=0, limit=10)
    plan.unsent(a, 0)
    assert sends(plan) == [(a, 0), (b, 0)]
    answer(plan, a, 0, total=30)
    assert sends(plan) == [(a, 1), (a, 2)]
    plan.unsent(a, 2)
    assert sends(plan) == [(a, 2)]
    assert plan.job(a).attempts == {}


def test_a_resumed_job_sends_only_what_is_not_durable() -> None:
    plan = schedule()
    job = plan.add_job(10, None, total=80, durable=[0, 1, 2, 5], written=3)
    assert sends(plan) == [(job, 3), (job, 4), (job, 6)]
    assert plan.job(job).planned == 8


def test_a_total_that_shrinks_never_unplans_pages_already_sent() -> None:
    plan = schedule()
    job = plan.add_job(10, None)
    sends(plan)
    answer(plan, job, 0, total=40)
    assert sends(plan) == [(job, 1), (job, 2), (job, 3)]
    answer(plan, job, 1, total=15)
    assert plan.job(job).planned == 4
    answer(plan, job, 2, total=15, items=0)
    answer(plan, job, 3, total=15, items=0)
    assert plan.durable(job, 4, [0, 1, 2, 3])


def test_a_stopped_run_sends_nothing_more_and_marks_its_jobs_partial() -> None:
    plan = schedule()
    job = plan.add_job(10, None, total=100)
    assert sends(plan) == [(job, 0), (job, 1), (job, 2), (job, 3)]
    plan.unsent(job, 3)
    plan.halt()
    assert plan.halted
    # The unsent page is due at once, and page 0's answer opens the window: nothing goes.
    answer(plan, job, 0, total=100)
    assert plan.durable(job, 1, [0]) is False
    assert plan.next(0.0) == Done()
    plan.end_active("budget")
    assert (plan.job(job).status, plan.job(job).reason) == ("partial", "budget")


class Lowest(random.Random):
    """Draws the bottom of every range: the shortest back-off the jitter allows."""

    def uniform(self, a: float, b: float) -> float:
        return a


def test_a_window_of_one_page_sends_each_page_after_the_one_before_is_written() -> None:
    for ahead in (1, 0):
        plan = Schedule(retry=RetryPolicy(), pages_ahead=ahead, rng=Highest())
        job = plan.add_job(10, None)
        assert sends(plan) == [(job, 0)]
        answer(plan, job, 0, total=30)
        assert sends(plan) == []
        plan.durable(job, 1, [0])
        assert sends(plan) == [(job, 1)]


def test_the_first_end_of_a_job_stays_unless_a_complete_job_cannot_be_moved_into_place() -> None:
    plan = schedule()
    failed = plan.add_job(10, None, total=10)
    done = plan.add_job(10, None, total=10)
    moved = plan.add_job(10, None, total=10)
    plan.end_job(failed, "failed", "the API rejected it")
    plan.end_job(failed, "failed", "a second reason")
    plan.end_job(failed, "complete", None)
    for key in (done, moved):
        plan.end_job(key, "complete", None)
    plan.end_job(done, "partial", "stopped")
    plan.end_job(moved, "failed", "cannot move its result into place")
    assert [(plan.job(k).status, plan.job(k).reason) for k in (failed, done, moved)] == [
        ("failed", "the API rejected it"),
        ("complete", None),
        ("failed", "cannot move its result into place"),
    ]


def test_a_job_ended_before_its_probe_sends_nothing() -> None:
    plan = schedule()
    a = plan.add_job(10, None)
    b = plan.add_job(10, None)
    plan.end_job(a, "failed", "its output folder cannot be written")
    assert sends(plan) == [(b, 0)]


def test_a_resumed_job_without_a_total_probes_first_and_skips_its_durable_pages() -> None:
    plan = schedule()
    job = plan.add_job(10, None, durable=[1])
    assert sends(plan) == [(job, 0)]
    answer(plan, job, 0, total=40)
    assert sends(plan) == [(job, 2), (job, 3)]


def test_a_failed_jobs_waiting_retry_is_not_sent() -> None:
    plan = schedule()
    a = plan.add_job(10, None, total=10)
    b = plan.add_job(10, None, total=10)
    assert sends(plan) == [(a, 0), (b, 0)]
    assert plan.failed(a, 0, 0.0, Failure.TRANSIENT, message="HTTP 500") == Retry(1.0, 1)
    plan.end_job(a, "failed", "its output folder cannot be written")
    assert plan.next(5.0) == Wait(None)  # b's page is still in flight
    # Its late failure changes nothing: the job's first end stays.
    assert plan.failed(a, 0, 5.0, Failure.TRANSIENT, message="x") == JobEnded(
        "failed", "its output folder cannot be written"
    )


def test_a_retry_behind_a_lower_hole_does_not_hold_up_other_jobs_retries() -> None:
    plan = schedule(attempts=5)
    a = plan.add_job(100, None, total=10_000)
    b = plan.add_job(10, None, total=10)
    assert sends(plan) == [(a, 0), (a, 1), (a, 2), (a, 3), (b, 0)]
    hole = plan.answered(a, 3, 0.0, total=10_000, items=0, limit=100)
    assert isinstance(hole, Hole)
    assert plan.failed(a, 3, 0.0, Failure.TRANSIENT, message="x", hole=hole) == Retry(1.0, 1)
    assert plan.failed(b, 0, 0.0, Failure.TRANSIENT, message="HTTP 500") == Retry(1.0, 1)
    hole = plan.answered(a, 2, 0.5, total=10_000, items=0, limit=100)
    assert isinstance(hole, Hole)
    assert plan.failed(a, 2, 0.5, Failure.TRANSIENT, message="x", hole=hole) == Retry(1.5, 1)
    # At 1.0 page 3's retry is due but waits for page 2; b's retry, due as well, goes out.
    assert plan.next(1.0) == Send(job=b, page=0, offset=0, limit=10)


def test_holes_found_in_offset_order_wait_for_the_lowest_and_fail_together() -> None:
    plan = schedule(attempts=2)
    job = plan.add_job(100, None, total=10_000)
    assert sends(plan) == [(job, 0), (job, 1), (job, 2), (job, 3)]
    for page in (2, 3):
        hole = plan.answered(job, page, 0.0, total=10_000, items=0, limit=100)
        assert isinstance(hole, Hole)
        outcome = plan.failed(job, page, 0.0, Failure.TRANSIENT, message="x", hole=hole)
    # Page 3 waits, with no time of its own, until page 2 is resolved.
    assert outcome == Retry(at=math.inf, attempt=1)
    assert sends(plan, 1.0) == [(job, 2)]
    hole = plan.answered(job, 2, 1.0, total=10_000, items=60, limit=100)
    assert hole == Hole(200, "60 of 100 items although total_count is 10000", attempts=2)
    assert plan.failed(job, 2, 1.0, Failure.TRANSIENT, message="x", hole=hole) == GaveUp(
        "offset 200: 60 of 100 items although total_count is 10000; "
        "offset 300: an empty page inside total_count 10000, after 2 attempts"
    )


def test_a_parked_hole_goes_out_once_the_hole_before_it_fills() -> None:
    plan = schedule(attempts=5)
    job = plan.add_job(100, None, total=10_000)
    sends(plan)
    for page in (2, 3):
        hole = plan.answered(job, page, 0.0, total=10_000, items=0, limit=100)
        assert isinstance(hole, Hole)
        plan.failed(job, page, 0.0, Failure.TRANSIENT, message="x", hole=hole)
    assert sends(plan, 1.0) == [(job, 2)]
    answer(plan, job, 2, total=10_000)
    assert sends(plan, 1.0) == [(job, 3)]


def test_a_resumed_page_0_that_was_not_sent_goes_out_again() -> None:
    plan = schedule()
    job = plan.add_job(10, None, total=30)
    assert sends(plan) == [(job, 0), (job, 1), (job, 2)]
    plan.unsent(job, 0)
    assert sends(plan) == [(job, 0)]


def test_a_failed_page_waits_for_its_retry_even_when_asked_for_next_at_once() -> None:
    plan = schedule()
    job = plan.add_job(10, None, total=30)
    assert plan.next(0.0) == Send(job=job, page=0, offset=0, limit=10)
    assert plan.failed(job, 0, 0.0, Failure.TRANSIENT, message="HTTP 500") == Retry(1.0, 1)
    assert sends(plan, 0.5) == [(job, 1), (job, 2)]
    assert sends(plan, 1.0) == [(job, 0)]


def test_a_run_stopping_verdict_is_a_value_of_its_own_failure_not_the_first_stops() -> None:
    # Why the run stopped is the crawl's to keep (its one Stop): the schedule only
    # halts, and each verdict tells the kind and reason of the failure it judged.
    plan = schedule(unreachable_after=0.0)
    job = plan.add_job(10, None, total=100)
    sends(plan)
    plan.halt()
    assert plan.failed(job, 0, 0.0, Failure.RUN_FATAL, message="[40210] funds") == RunStopped(
        "run_fatal", "[40210] funds"
    )
    assert plan.failed(job, 1, 0.0, Failure.UNREACHABLE, message="refused") == Retry(1.0, 0)
    assert plan.failed(job, 2, 1.0, Failure.UNREACHABLE, message="refused") == RunStopped(
        "unreachable", "refused"
    )
    assert plan.halted
    assert plan.next(100.0) == Done()


def test_a_hole_of_a_job_that_already_failed_is_dropped() -> None:
    plan = schedule()
    job = plan.add_job(100, None, total=400)
    sends(plan)
    plan.end_job(job, "failed", "the API rejected it")
    assert plan.answered(job, 3, 0.0, total=400, items=0, limit=100) == "drop"


def test_a_page_answered_after_failures_leaves_no_attempt_behind() -> None:
    plan = schedule(attempts=3)
    job = plan.add_job(10, None, total=20)
    sends(plan)
    plan.failed(job, 1, 0.0, Failure.TRANSIENT, message="x")
    assert sends(plan, 1.0) == [(job, 1)]
    answer(plan, job, 1, total=20)
    assert plan.job(job).attempts == {}


def test_a_first_page_with_no_results_plans_a_job_of_one_empty_page() -> None:
    plan = schedule()
    job = plan.add_job(10, None)
    sends(plan)
    assert plan.answered(job, 0, 0.0, total=None, items=0, limit=10) == "write"
    assert (plan.job(job).total, plan.job(job).planned) == (0, 1)
    assert plan.durable(job, 1, [0])


def test_a_page_0_with_no_results_is_never_a_hole() -> None:
    plan = schedule()
    job = plan.add_job(10, None, total=30)
    sends(plan)
    assert plan.answered(job, 0, 0.0, total=None, items=0, limit=10) == "write"


def test_an_answer_without_a_total_keeps_the_total_known_for_the_next_hole() -> None:
    plan = schedule()
    job = plan.add_job(10, None)
    sends(plan)
    answer(plan, job, 0, total=80)
    assert sends(plan) == [(job, 1), (job, 2), (job, 3)]
    answer(plan, job, 1, total=25)
    # Past the last total: no result is what it should be...
    assert plan.answered(job, 3, 0.0, total=None, items=0, limit=10) == "write"
    assert plan.job(job).total == 25
    # ...but inside it, no result is a hole.
    hole = plan.answered(job, 2, 0.0, total=None, items=0, limit=10)
    assert hole == Hole(20, "no result inside total_count 25", attempts=1)


def test_a_holes_attempts_count_every_call_of_its_page() -> None:
    plan = schedule(attempts=5)
    job = plan.add_job(100, None, total=400)
    sends(plan)
    for attempt, now in enumerate((0.0, 1.0, 3.0), start=1):
        if attempt > 1:
            assert sends(plan, now) == [(job, 3)]
        hole = plan.answered(job, 3, now, total=400, items=0, limit=100)
        assert isinstance(hole, Hole) and hole.attempts == attempt
        plan.failed(job, 3, now, Failure.TRANSIENT, message="x", hole=hole)


def test_a_retry_after_under_a_second_is_kept_and_a_negative_one_means_now() -> None:
    plan = schedule(cap=8.0)
    job = plan.add_job(10, None, total=20)
    sends(plan)
    assert plan.failed(job, 0, 10.0, Failure.TRANSIENT, message="x", retry_after=0.5) == Retry(
        at=10.5, attempt=1
    )
    assert plan.failed(job, 1, 10.0, Failure.TRANSIENT, message="x", retry_after=-3) == Retry(
        at=10.0, attempt=1
    )


def test_full_jitter_may_send_a_retry_at_once() -> None:
    plan = Schedule(retry=RetryPolicy(attempts=3, base=1.0, cap=8.0), pages_ahead=4, rng=Lowest())
    job = plan.add_job(10, None, total=10)
    sends(plan)
    assert plan.failed(job, 0, 7.0, Failure.TRANSIENT, message="x") == Retry(at=7.0, attempt=1)


def test_a_throttle_with_retry_after_pauses_for_it_within_the_cap() -> None:
    plan = schedule(cap=60.0, slowdown=5.0)
    job = plan.add_job(10, None, total=100)
    sends(plan)
    assert plan.failed(job, 0, 0.0, Failure.THROTTLED, message="x", retry_after=30) == Retry(
        at=30.0, attempt=0, paused_until=30.0
    )
    # An earlier end does not shorten the pause, nor count its seconds twice.
    assert plan.failed(job, 1, 1.0, Failure.THROTTLED, message="x", retry_after=0.5) == Retry(
        at=30.0, attempt=0, paused_until=1.5
    )
    assert plan.throttled_seconds == 30.0
    assert plan.failed(job, 2, 30.0, Failure.THROTTLED, message="x", retry_after=600) == Retry(
        at=90.0, attempt=0, paused_until=90.0
    )
    assert plan.failed(job, 3, 90.0, Failure.THROTTLED, message="x", retry_after=-1) == Retry(
        at=90.0, attempt=0, paused_until=90.0
    )
    assert plan.paused_until == 90.0


def test_a_throttled_or_unreachable_page_keeps_the_attempts_it_had() -> None:
    plan = schedule(attempts=5, slowdown=5.0)
    job = plan.add_job(10, None, total=100)
    sends(plan)
    plan.failed(job, 0, 0.0, Failure.TRANSIENT, message="x")
    assert sends(plan, 1.0) == [(job, 0)]
    assert plan.failed(job, 0, 1.0, Failure.THROTTLED, message="x") == Retry(
        at=6.0, attempt=1, paused_until=6.0
    )
    assert sends(plan, 6.0) == [(job, 0)]
    assert plan.failed(job, 0, 6.0, Failure.UNREACHABLE, message="x") == Retry(at=7.0, attempt=1)
    assert plan.failed(job, 1, 6.0, Failure.UNREACHABLE, message="x") == Retry(at=7.0, attempt=0)


def test_an_answer_ends_a_throttle_streak_only_if_its_call_went_out_after_the_refusal() -> None:
    plan = schedule(slowdown=5.0, cap=60.0)
    job = plan.add_job(10, None, total=100)
    sends(plan)
    assert plan.failed(job, 0, 10.0, Failure.THROTTLED, message="x") == Retry(15.0, 0, 15.0)
    # Sent before the refusal: the streak goes on, and the next pause doubles.
    answer_at = plan.answered(job, 1, 11.0, total=100, items=10, limit=10, sent_at=9.0)
    assert answer_at == "write"
    assert plan.failed(job, 2, 15.0, Failure.THROTTLED, message="x") == Retry(25.0, 0, 25.0)
    # Sent at the instant of the last refusal: it went through, the streak is over.
    plan.answered(job, 3, 16.0, total=100, items=10, limit=10, sent_at=15.0)
    assert plan.failed(job, 0, 30.0, Failure.THROTTLED, message="x") == Retry(35.0, 0, 35.0)


def test_refusals_of_one_wave_pause_once_and_cost_no_attempt() -> None:
    plan = schedule(attempts=5, slowdown=5.0, cap=60.0)
    job = plan.add_job(10, None, total=100)
    assert sends(plan) == [(job, 0), (job, 1), (job, 2), (job, 3)]
    assert plan.failed(job, 3, 1.0, Failure.TRANSIENT, message="x") == Retry(2.0, 1)
    assert sends(plan, 2.0) == [(job, 3)]
    assert plan.failed(job, 0, 10.0, Failure.THROTTLED, message="x", sent_at=0.0) == Retry(
        15.0, 0, 15.0
    )
    # Sent before that refusal: the same wave. It waits for the same pause, which neither
    # grows nor counts twice, and the page's attempts stay as they were.
    assert plan.failed(job, 1, 11.0, Failure.THROTTLED, message="x", sent_at=0.0) == Retry(15.0, 0)
    assert plan.failed(job, 3, 11.0, Failure.THROTTLED, message="x", sent_at=2.0) == Retry(15.0, 1)
    assert (plan.paused_until, plan.throttled_seconds) == (15.0, 5.0)
    assert plan.job(job).attempts == {3: 1}
    assert sends(plan, 14.0) == []
    assert sends(plan, 15.0) == [(job, 0), (job, 1), (job, 3)]
    # Sent at the instant of the last refusal: a refusal of its own, and the pause doubles.
    assert plan.failed(job, 2, 12.0, Failure.THROTTLED, message="x", sent_at=10.0) == Retry(
        22.0, 0, 22.0
    )
    assert (plan.paused_until, plan.throttled_seconds) == (22.0, 12.0)


def test_a_throttle_or_a_transient_failure_reached_the_api_and_ends_the_unreachable_streak() -> (
    None
):
    for reached in (Failure.THROTTLED, Failure.TRANSIENT):
        plan = schedule(attempts=5, unreachable_after=60.0, slowdown=1.0, cap=8.0)
        job = plan.add_job(10, None, total=100)
        sends(plan)
        assert isinstance(plan.failed(job, 0, 0.0, Failure.UNREACHABLE, message="r"), Retry)
        assert isinstance(plan.failed(job, 1, 30.0, reached, message="x"), Retry)
        assert isinstance(plan.failed(job, 2, 70.0, Failure.UNREACHABLE, message="r"), Retry)


def test_the_unreachable_back_off_grows_with_the_time_the_api_has_been_unreachable() -> None:
    plan = Schedule(
        retry=RetryPolicy(base=1.0, cap=8.0, unreachable_after=60.0),
        pages_ahead=4,
        rng=Lowest(),
    )
    job = plan.add_job(10, None, total=100)
    sends(plan)
    # Half of the delay at least: base 1 s at first, then the time waited so far.
    assert plan.failed(job, 0, 100.0, Failure.UNREACHABLE, message="r") == Retry(100.5, 0)
    assert plan.failed(job, 1, 103.0, Failure.UNREACHABLE, message="r") == Retry(104.5, 0)


def test_jobs_fan_out_in_the_order_of_their_configs_whichever_probe_came_back_first() -> None:
    plan = schedule()
    first = plan.add_job(10, None)
    second = plan.add_job(10, None)
    assert sends(plan) == [(first, 0), (second, 0)]
    answer(plan, second, 0, total=30)
    answer(plan, first, 0, total=30)
    assert sends(plan) == [(first, 1), (first, 2), (second, 1), (second, 2)]
