"""Run-wide knobs and their defaults, decided in one place.

The CLI, the tests and the library read every default from here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from intersect_batch.layout import RunFolder

__all__ = [
    "AnswerCaps",
    "Limits",
    "ProgressSettings",
    "ReportSettings",
    "RetryPolicy",
    "RunOptions",
    "RunSettings",
    "Timeouts",
    "check_keep_days",
]


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """How long one call may take, in seconds.

    ``connect=10.0``: opening the connection, short, since the host either answers or not.
    ``read=130.0``: the longest wait for the next bytes of the answer; the API gives up on
    a live call at 120 s (50401), so this never cuts short a call the API still works on.
    ``deadline=150.0``: the whole call, from sending to the answer's last byte (headers and
    body): a body that trickles in a byte at a time, each within ``read``, ends here.
    """

    connect: float = 10.0
    read: float = 130.0
    deadline: float = 150.0


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How transient failures are retried: exponential back-off with full jitter.

    ``attempts=6``: calls per page at most, the first included.
    ``base=1.0`` and ``cap=60.0`` seconds: the n-th retry waits a random time in
    ``[0, min(cap, base * 2**n))``, or the server's Retry-After (at most ``cap``) when it
    sends one.
    ``slowdown=5.0`` seconds: how long the whole run pauses sending after a rate or
    concurrency refusal (40202, 40209, HTTP 429 without Retry-After); refusals that follow
    each other double it, up to ``cap``. Refusals cost a page none of its attempts.
    ``patience=1800.0`` seconds: a run paused by such refusals for this long in all stops
    (its jobs partial), with a reason that says which limit to lower.
    ``unreachable_after=120.0`` seconds: a run whose calls have reached nothing (connection
    refused, no DNS answer) for this long stops; those failures cost no attempt either.
    """

    attempts: int = 6
    base: float = 1.0
    cap: float = 60.0
    slowdown: float = 5.0
    patience: float = 1800.0
    unreachable_after: float = 120.0


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The account's limits, shared by every job of a run.

    ``rate_per_minute=2000``: calls per quota window (DataForSEO's default; raise it if your
    account has more). ``concurrency=30``: calls in flight at once.
    ``rate_period=60.0``: the quota window in seconds (one minute on the real API).
    ``burst=4``: calls that may go out back to back, so a call that wakes a little late
    does not cost the run its place; the steady rate is lowered by as much, so that no
    window ever holds more than the quota.
    ``safety=0.99``: the share of the quota the run plans to use, leaving room for the
    network's jitter so the server never counts more than the quota in any window.
    """

    rate_per_minute: int = 2000
    concurrency: int = 30
    rate_period: float = 60.0
    burst: int = 4
    safety: float = 0.99

    @property
    def interval(self) -> float:
        """Seconds between two sends at the steady rate.

        A window holds at most ``burst`` + ``rate_period / interval`` calls, which is at
        most ``safety`` x the quota.
        """
        usable = max(1.0, self.rate_per_minute * self.safety - self.burst)
        return self.rate_period / usable

    @property
    def bound_per_minute(self) -> float:
        """The calls per minute this run may make at most, at the steady rate."""
        return 60.0 / self.interval


def _today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Everything one run needs besides its jobs and its provider.

    ``out_dir=Path("out")``: results go to ``out_dir/run_date/``.
    ``run_date``: default today in UTC; a re-run for the same date resumes.
    ``budget_usd=None``: no cap; otherwise no call starts whose worst case would pass it.
    ``fresh=False``: ``True`` throws away the run date's progress and starts over.
    ``full=False``: ``True`` makes the night full for every job (``refresh: incremental``
    ones too).
    ``pages_ahead=64``: how far past the writer's position a job's pages may be fetched.
    ``pages_in_memory=2``: answers read and not yet on disk at once; the other calls'
    answers wait in their sockets, so memory does not grow with ``concurrency``.
    ``drift_threshold=0.05``: a job whose total_count moved more than this share between
    its first and its last page is flagged in its manifest.
    ``grace=30.0``: seconds in-flight calls get to finish after SIGINT / SIGTERM.
    ``max_calls=None``: a safety cap on the calls of one run (also without a budget), so
    that a total_count gone wild cannot run up a bill; None lets the runner choose it
    (:func:`intersect_batch.plan.safety_cap`), 0 means no cap.
    """

    out_dir: Path = Path("out")
    run_date: dt.date = field(default_factory=_today_utc)
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    caps: AnswerCaps = field(default_factory=lambda: AnswerCaps())
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget_usd: float | None = None
    fresh: bool = False
    full: bool = False
    pages_ahead: int = 64
    pages_in_memory: int = 2
    drift_threshold: float = 0.05
    grace: float = 30.0
    max_calls: int | None = None

    @property
    def folder(self) -> RunFolder:
        """The files of this run date (see :mod:`intersect_batch.layout`)."""
        return RunFolder(self.out_dir, self.run_date)

    @property
    def run_dir(self) -> Path:
        """The folder of this run date's results."""
        return self.folder.path


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What a run does besides crawling with its settings: which jobs, and what follows.

    ``job_ids=()`` and ``patterns=()``: only the jobs of these ids, or whose id matches
    one of these globs; both empty: every job. ``keep_days=None``: keep every earlier
    run folder; N: after a run whose every job is complete, remove the run folders this
    tool made more than N days before the run date (:func:`check_keep_days`).
    ``report=False``: also write the run folder's HTML report and opportunity CSVs.
    ``metrics_file=None``: also write the run's figures there, in Prometheus text format.
    """

    job_ids: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    keep_days: int | None = None
    report: bool = False
    metrics_file: Path | None = None


def check_keep_days(keep_days: int, run_date: dt.date) -> str | None:
    """Why ``keep_days`` cannot be used with ``run_date``, or None.

    Retention counts back from the run date (or today, the earlier): a count that
    reaches before the first day of year 1 names no date at all.
    """
    if keep_days < 1:
        return f"--keep-days must be at least 1, got {keep_days}"
    since = min(run_date, _today_utc())
    most = (since - dt.date.min).days
    if keep_days > most:
        return (
            f"--keep-days {keep_days} reaches back before the year 1 from {since.isoformat()}; "
            f"use at most {most}"
        )
    return None


@dataclass(frozen=True, kw_only=True)
class ProgressSettings:
    """How a run shows its progress.

    ``interval=30.0`` seconds: without a terminal, a ``progress`` log record this often.
    """

    interval: float = 30.0


@dataclass(frozen=True, kw_only=True)
class ReportSettings:
    """What the HTML report shows.

    ``history=14``: the runs in the spend and item charts. ``top=25``: the referring
    domains listed per job.
    """

    history: int = 14
    top: int = 25


@dataclass(frozen=True, kw_only=True)
class AnswerCaps:
    """How much of one answer is read, inflated and quoted, at most.

    ``max_body_bytes=64 MiB``: the body as received (still compressed); reading stops
    past it and the job fails, naming the size.
    ``max_inflated_bytes=64 MiB``: the body once inflated (or as received, when it came
    uncompressed); inflating stops past it, so a small gzip that would inflate to
    gigabytes costs no more memory than this.
    ``read_ahead_bytes=4 MiB``: how much of a body a call reads before it takes one of
    the run's places in memory (``RunSettings.pages_in_memory``); a larger body waits for
    a place before it is read on. So at most ``concurrency x read_ahead_bytes`` plus the
    pages in memory are held at once, whatever every call's server sends: without it,
    30 calls each sent a 60 MB body would hold 1.8 GB. A page of the API is well under
    it (2.5 MB compressed for 1000 items of 20 targets), so the calls' reads never wait
    on each other.
    ``max_message_chars=500``: outside text (a status message, a gateway's error, a quoted
    body, an exception string) kept in an error, after scrubbing; the rest is cut, and
    the cut is marked.

    How the sizes were chosen: an item of the emulator is ~1.2 kB per target it links
    to, whatever its ``internal_list_limit`` (10 or 1000 give the same bytes: one
    backlink per target, short lists): 2,470 B on average for 2 targets, 24,250 B for 20.
    A page of 1000 items is then 2.5 MB for 2 targets and 24.2 MB for 20, the largest
    page the API can be asked for; gzip (level 1) makes them 0.33 MB and 2.5 MB. 64 MiB
    is 2.8 times the largest page: room for real items that carry several backlinks per
    target (67 kB an item on average, ~55 backlinks), while a hostile answer costs the
    process at most 64 MiB (a 2 GB gzip bomb peaks at ~120 MB RSS in all, a 500 MB body
    at ~105 MB). Both sizes are one value because an answer sent uncompressed is its
    own inflated body.
    """

    max_body_bytes: int = 64 * 2**20
    max_inflated_bytes: int = 64 * 2**20
    read_ahead_bytes: int = 4 * 2**20
    max_message_chars: int = 500
