"""What a job and a run report: ``<id>.manifest.json`` and ``run.json``.

A job's manifest is built by :func:`build_manifest`, a pure function of how the job
ended (:class:`~intersect_batch.crawl.JobFinal`) and its diff, and written once.
:func:`is_complete` is the one answer to "is this job already done for the date?".
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any, Literal

import msgspec

from intersect_batch.crawl import CallError, JobFinal
from intersect_batch.durable import UnreadableFile, atomic_file, read_file
from intersect_batch.incremental import RefreshNote
from intersect_batch.layout import RunFolder, earlier_runs

__all__ = [
    "CallError",
    "ConfigProblem",
    "DiffCounts",
    "HoleRecord",
    "InvocationTotals",
    "JobLine",
    "JobManifest",
    "JobStatus",
    "NightTotals",
    "PlanJump",
    "RunSummary",
    "TotalCount",
    "build_manifest",
    "is_complete",
    "job_line",
    "previous_total",
    "read_manifest",
    "write_json",
]

log = logging.getLogger("intersect_batch")

JobStatus = Literal["complete", "failed", "partial"]
LineStatus = Literal["complete", "failed", "partial", "invalid"]


class TotalCount(msgspec.Struct, kw_only=True):
    """How the query's total_count moved while its pages were fetched."""

    first: int | None = None
    last: int | None = None
    min: int | None = None
    max: int | None = None
    #: ``(max - min) / max``: the share by which the count moved.
    drift: float = 0.0
    #: True when ``drift`` passed the run's threshold: pages may have shifted.
    flagged: bool = False


class DiffCounts(msgspec.Struct, kw_only=True):
    """How a job's items changed since ``previous_run``; ``skipped`` says why there is no diff."""

    #: The run date compared against (``YYYY-MM-DD``), or ``None`` when there was none.
    previous_run: str | None = None
    new: int = 0
    lost: int = 0
    #: ``"no earlier complete run"``, ``"parameters changed since <date>"``, ``"diff
    #: unavailable: ..."`` (with ``unavailable``), or ``None``.
    skipped: str | None = None
    #: True when the earlier run's result could not be read (damaged, not a regular file,
    #: removed meanwhile): there is no diff, and ``skipped`` says why.
    unavailable: bool = False


class HoleRecord(msgspec.Struct, kw_only=True):
    """A page inside the total that stayed empty or short: why the job is not complete."""

    offset: int
    reason: str
    attempts: int


class PlanJump(msgspec.Struct, kw_only=True):
    """A total_count far above the last complete run's: the pages planned jumped."""

    previous_total: int
    total: int


class JobManifest(msgspec.Struct, kw_only=True):
    """``<id>.manifest.json``: everything about one job's run date."""

    job_id: str
    config_file: str
    config_line: int | None
    fingerprint: str
    request: dict[str, Any]
    status: JobStatus
    reason: str | None
    output: str | None
    total_count: TotalCount
    items_written: int
    items_received: int
    duplicates_dropped: int
    #: Durable pages: in order (their items are ``items_written``) and arrived early.
    pages: int
    pages_planned: int | None
    #: Calls, retries and reported cost over every invocation of the run date.
    calls: int
    retries: int
    cost_usd: float
    started_at: str
    finished_at: str
    resumed_pages: int = 0
    errors: list[CallError] = msgspec.field(default_factory=list)
    #: Pages that stayed empty or short inside the total (a failed job's reason).
    holes: list[HoleRecord] = msgspec.field(default_factory=list)
    #: Damaged progress that was thrown away and fetched again.
    warnings: list[str] = msgspec.field(default_factory=list)
    #: Items durable in pages that arrived before the pages in front of them (an
    #: unfinished job's; they join ``items_written`` once those pages are in).
    items_waiting: int = 0
    #: New and lost items since the last complete run (complete jobs only).
    diff: DiffCounts | None = None
    #: Set when total_count jumped by orders of magnitude since the last complete run.
    plan_jump: PlanJump | None = None
    #: Items whose text was repaired to be valid UTF-8 JSON (invalid bytes or a lone
    #: surrogate escape became U+FFFD); counted as received, duplicates included.
    items_repaired: int = 0
    #: A ``refresh: incremental`` job's night: full or incremental, and its figures.
    refresh: RefreshNote | None = None


class ConfigProblem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A job that could not run because its config is invalid."""

    file: str
    message: str
    job: str | None = None
    field: str | None = None
    line: int | None = None


class JobLine(msgspec.Struct, kw_only=True):
    """One job's line in run.json: every job of the run folder, and every invalid one."""

    job_id: str
    status: LineStatus
    reason: str | None
    items: int
    pages: int
    calls: int
    retries: int
    cost_usd: float
    duration_s: float
    output: str | None
    diff: DiffCounts | None = None
    config_file: str | None = None
    config_line: int | None = None
    #: Whether this invocation ran the job (False: an earlier one of the date did).
    this_run: bool = True
    #: Items whose text was repaired to be valid UTF-8 JSON (see the manifest).
    items_repaired: int = 0
    #: A ``refresh: incremental`` job's night (see the manifest's ``refresh``).
    refresh: RefreshNote | None = None
    #: Items received twice and dropped, and items waiting in the spool (see the manifest).
    duplicates_dropped: int = 0
    items_waiting: int = 0


class NightTotals(msgspec.Struct, kw_only=True):
    """The run date as a whole: every job of its folder, every invocation of the date."""

    jobs_by_status: dict[str, int]
    jobs: int
    items: int
    calls: int
    retries: int
    #: What the API reported, summed over the night's calls.
    cost_usd: float
    new_items: int
    lost_items: int
    invocations: int
    #: What the budget counts as spent: ``cost_usd``, plus the worst case of calls whose
    #: answer was lost after the API may have billed them (the bill can be that high).
    spent_usd: float = 0.0
    #: Seconds the night's invocations were paused by rate or concurrency refusals.
    throttled_s: float = 0.0
    #: Items of the night's jobs whose text was repaired to be valid UTF-8 JSON.
    items_repaired: int = 0
    #: Why ``items`` can differ from what the invocations fetched: items received twice
    #: (dropped), and items of pages that arrived early, waiting in the spool for the
    #: pages before them (they join ``items`` once those are in).
    duplicates_dropped: int = 0
    items_waiting: int = 0


class InvocationTotals(msgspec.Struct, kw_only=True):
    """What this one command did."""

    started_at: str
    finished_at: str
    duration_s: float
    calls: int
    retries: int
    cost_usd: float
    #: Items this invocation fetched (pages it made durable), before de-duplication.
    items: int
    calls_per_minute: float
    jobs_run: int
    throttled_s: float
    #: ``cost_usd`` plus the worst case of this invocation's answers lost after billing.
    spent_usd: float = 0.0


class RunSummary(msgspec.Struct, kw_only=True):
    """``run.json``: the run date at a glance, for dashboards and cron mail."""

    version: str
    run_date: str
    exit_code: int
    needs_attention: bool
    stop_reason: str | None
    night: NightTotals
    invocation: InvocationTotals
    jobs: list[JobLine]
    config_errors: list[ConfigProblem]
    settings: dict[str, Any]
    #: Jobs this invocation never started (no call, nothing on disk): ids alone, no line.
    not_started: list[str] = msgspec.field(default_factory=list)


_encoder = msgspec.json.Encoder()
_manifest_decoder = msgspec.json.Decoder(JobManifest)


def build_manifest(
    final: JobFinal,
    *,
    config_file: str,
    config_line: int | None,
    drift_threshold: float,
    diff: DiffCounts | None,
) -> JobManifest:
    """The manifest of a job that ended as ``final``; pure."""
    job = final.job
    checkpoint = final.checkpoint
    totals = TotalCount()
    written = received = duplicates = pages = waiting = repaired = 0
    if checkpoint is not None:
        high, low = checkpoint.total_max, checkpoint.total_min
        drift = (high - low) / high if high and low is not None else 0.0
        totals = TotalCount(
            first=checkpoint.total_first,
            last=checkpoint.total_last,
            min=low,
            max=high,
            drift=round(drift, 6),
            flagged=drift > drift_threshold,
        )
        written = checkpoint.items_written
        received = checkpoint.items_received
        duplicates = checkpoint.duplicates_dropped
        repaired = checkpoint.items_repaired
        pages = checkpoint.pages
        waiting = sum(spooled.items for spooled in checkpoint.spooled.values())
    return JobManifest(
        job_id=job.job_id,
        config_file=config_file,
        config_line=config_line,
        fingerprint=job.fingerprint,
        request={**job.params, "page_size": job.page_size, "max_items": job.max_items},
        status=final.status,
        reason=final.reason,
        output=final.output.name if final.output is not None else None,
        total_count=totals,
        items_written=written,
        items_received=received,
        duplicates_dropped=duplicates,
        pages=pages,
        pages_planned=final.pages_planned,
        calls=final.counters.calls,
        retries=final.counters.retries,
        cost_usd=round(final.counters.cost_usd, 6),
        started_at=final.started_at,
        finished_at=final.finished_at,
        resumed_pages=final.resumed_pages,
        errors=list(final.errors),
        holes=[
            HoleRecord(offset=h.offset, reason=h.reason, attempts=h.attempts) for h in final.holes
        ],
        warnings=list(final.warnings),
        items_waiting=waiting,
        diff=diff if final.status == "complete" else None,
        plan_jump=(
            PlanJump(previous_total=job.previous_total, total=final.plan_jump)
            if final.plan_jump is not None and job.previous_total is not None
            else None
        ),
        items_repaired=repaired,
    )


def is_complete(folder: RunFolder, job_id: str, fingerprint: str) -> JobManifest | None:
    """The job's manifest when it is done for the date, else None.

    Done: its manifest says complete, for the same request and paging; its result file is
    there; and no later attempt of the date (``--fresh``, changed parameters) has
    progress under way.
    """
    manifest = read_manifest(folder.manifest(job_id))
    result = folder.result(job_id)
    if (
        manifest is not None
        and manifest.status == "complete"
        and manifest.fingerprint == fingerprint
        and result.is_file()
        and not result.is_symlink()
        and not folder.checkpoint(job_id).exists()
    ):
        return manifest
    return None


def job_line(manifest: JobManifest, *, this_run: bool, duration_s: float = 0.0) -> JobLine:
    """What run.json keeps of a job: one compact line, not its manifest."""
    return JobLine(
        job_id=manifest.job_id,
        status=manifest.status,
        reason=manifest.reason,
        items=manifest.items_written,
        pages=manifest.pages,
        calls=manifest.calls,
        retries=manifest.retries,
        cost_usd=manifest.cost_usd,
        duration_s=round(duration_s, 3),
        output=manifest.output,
        diff=manifest.diff,
        # One string for the jobs of a file, not a copy a job: run.json's lines stay small.
        config_file=sys.intern(manifest.config_file),
        config_line=manifest.config_line,
        this_run=this_run,
        refresh=manifest.refresh,
        items_repaired=manifest.items_repaired,
        duplicates_dropped=manifest.duplicates_dropped,
        items_waiting=manifest.items_waiting,
    )


def write_json(path: Path, value: msgspec.Struct) -> None:
    """Write a manifest or run summary atomically, indented for people to read."""
    formatted = msgspec.json.format(_encoder.encode(value), indent=2)
    with atomic_file(path) as handle:  # not "formatted + newline": a copy of a large run.json
        handle.write(formatted)
        handle.write(b"\n")


def read_manifest(path: Path) -> JobManifest | None:
    """A job's manifest, or ``None`` if there is none or it cannot be read.

    A FIFO or another non-regular file in its place is not opened: a warning names it.
    """
    try:
        return _manifest_decoder.decode(read_file(path))
    except UnreadableFile as exc:
        log.warning("a manifest is not read: %s", exc)
        return None
    except (OSError, msgspec.DecodeError):
        return None


def previous_total(out_dir: Path, before: dt.date, job_id: str, print_: str) -> int | None:
    """The total_count of the newest run of the same job and request before ``before``."""
    for folder in earlier_runs(out_dir, before):
        manifest = read_manifest(folder.manifest(job_id))
        if manifest is not None and manifest.fingerprint == print_:
            last = manifest.total_count.last
            if last is not None:
                return last
    return None
