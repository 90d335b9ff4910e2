"""A whole run: configs in, files and an exit status out. The CLI is a thin shell over this.

The steps, in order: load and select the jobs, read the credentials, lock the output
folder, read the night's ledger, skip the jobs already complete for the date, crawl the
others (each job's diff and manifest are written as it ends: :mod:`~intersect_batch.jobend`),
then ``run.json`` and the metrics (:mod:`~intersect_batch.runfile`), the report and
retention, and the last line (:mod:`~intersect_batch.closing`). Exit statuses:
:mod:`intersect_batch.exitcode`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import logging
import random
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from intersect_batch.closing import closing_line, not_started_text
from intersect_batch.config import JobEntry, load_jobs
from intersect_batch.crawl import CrawlJob, CrawlObserver, Fetch, crawl
from intersect_batch.durable import in_thread
from intersect_batch.errors import IntersectBatchError, UsageError, printable
from intersect_batch.exitcode import ExitCode, exit_code_for_run
from intersect_batch.jobend import Night
from intersect_batch.layout import RunFolder, discard_state
from intersect_batch.lock import output_lock
from intersect_batch.logs import scrubbed_logs
from intersect_batch.manifest import (
    JobManifest,
    RunSummary,
    is_complete,
    job_line,
    previous_total,
)
from intersect_batch.night import night_ledger
from intersect_batch.openfiles import fit_open_files
from intersect_batch.pacing import price_list
from intersect_batch.plan import fingerprint, page_count, safety_cap, select_jobs
from intersect_batch.providers import Provider
from intersect_batch.proxies import proxy_for
from intersect_batch.refresh import Refresh
from intersect_batch.report import write_report
from intersect_batch.retention import mark_run_dir, prune_runs
from intersect_batch.runfile import build_summary, write_record
from intersect_batch.settings import RunOptions, RunSettings, check_keep_days
from intersect_batch.stop import CrawlControl
from intersect_batch.store import JobStore
from intersect_batch.transport import sender

__all__ = [
    "RunOutcome",
    "crawl_job",
    "run_batch",
]

log = logging.getLogger("intersect_batch")


@dataclass(frozen=True)
class RunOutcome:
    """What a run ends with: its exit status, its summary, and the lines for the person."""

    exit_code: ExitCode
    summary: RunSummary | None
    message: str


def crawl_job(entry: JobEntry, folder: RunFolder) -> CrawlJob:
    """What the crawl needs of a job config, with its last complete run's total_count."""
    job = entry.job
    params = job.api_params()
    print_ = fingerprint(params, job.page_size, job.max_items)
    return CrawlJob(
        job_id=job.id,
        params=params,
        page_size=job.page_size,
        max_items=job.max_items,
        fingerprint=print_,
        previous_total=previous_total(folder.out_dir, folder.date, job.id, print_),
    )


def _plan_jobs(
    entries: Sequence[JobEntry], folder: RunFolder, fresh: bool, refresh: Refresh
) -> tuple[list[CrawlJob], list[JobManifest]]:
    """The jobs to crawl, and the manifests of those already complete for the date."""
    todo: list[CrawlJob] = []
    done: list[JobManifest] = []
    for entry in entries:
        job = crawl_job(entry, folder)
        manifest = None if fresh else is_complete(folder, job.job_id, job.fingerprint)
        if manifest is not None:
            # A crash after the manifest, before the job's progress files went, left
            # files that nothing reads again: they go now.
            with contextlib.suppress(OSError):
                JobStore(folder, job.job_id).discard()
            refresh.forget(job.job_id)
            done.append(manifest)
        else:
            todo.extend(refresh.plan(entry, job))
    return todo, done


def _expected_calls(job: CrawlJob) -> int | None:
    if job.previous_total is not None:
        return page_count(job.previous_total, job.page_size, job.max_items)
    if job.max_items is not None:
        return page_count(job.max_items, job.page_size, job.max_items)
    return None


def with_safety_cap(settings: RunSettings, jobs: Sequence[CrawlJob]) -> RunSettings:
    """The settings with ``max_calls`` resolved: the automatic cap when it is None."""
    if settings.max_calls is not None:
        return settings
    cap = safety_cap([_expected_calls(job) for job in jobs])
    return dataclasses.replace(settings, max_calls=cap)


async def run_batch(
    config_dir: Path,
    *,
    provider: Provider,
    environ: Mapping[str, str],
    settings: RunSettings,
    options: RunOptions | None = None,
    observer: CrawlObserver | None = None,
    control: CrawlControl | None = None,
    rng: random.Random | None = None,
    fetch: Fetch | None = None,
) -> RunOutcome:
    """Load, select, lock, crawl, summarize. Raises UsageError / LockError before any call.

    ``options``: which jobs, and what follows the crawl (retention, the report, the
    metrics file): :class:`~intersect_batch.settings.RunOptions`. ``fetch``: send calls
    another way than HTTP to ``provider`` (tests).
    """
    options = options or RunOptions()
    if options.keep_days is not None:
        problem = check_keep_days(options.keep_days, settings.run_date)
        if problem is not None:
            raise UsageError(problem)
    loaded = await in_thread(load_jobs, config_dir)
    for error in loaded.errors:
        log.error("invalid config: %s", error.describe(), extra={"file": printable(error.file)})
    for warning in loaded.warnings:
        log.warning("config: %s", warning.describe(), extra={"file": printable(warning.file)})
    if not loaded.jobs:
        raise UsageError(f"no valid job in {config_dir}: nothing to run")
    entries = select_jobs(loaded.jobs, options.job_ids, options.patterns)
    credentials = provider.credentials(environ)
    proxy = proxy_for(provider.endpoint, environ)
    settings = fit_open_files(settings)
    folder = RunFolder(settings.out_dir, settings.run_date)
    report = options.report
    with scrubbed_logs(credentials.scrubber()), output_lock(settings.out_dir):
        await in_thread(mark_run_dir, folder)
        if settings.fresh:
            await in_thread(discard_state, folder)
        ledger = await in_thread(night_ledger, folder)
        refresh = Refresh(
            folder, force_full=settings.full, drift_threshold=settings.drift_threshold
        )
        night = Night(folder, settings, {entry.job.id: entry for entry in entries}, refresh)
        todo, done = await in_thread(_plan_jobs, entries, folder, settings.fresh, refresh)
        for manifest in done:
            line = job_line(manifest, this_run=False)
            line.reason = "already complete"
            night.lines[manifest.job_id] = line
            log.info("job already complete: skipped", extra={"job": manifest.job_id})
        del done
        for manifest in await refresh.ready():
            night.closed(manifest)
        log.info(
            "run starting",
            extra={
                "jobs": len(entries),
                "run_date": settings.run_date.isoformat(),
                "provider": provider.name,
            },
        )
        settings = with_safety_cap(settings, todo)
        if proxy is not None:
            log.info(
                "calls go through a proxy", extra={"proxy": proxy.shown, "from": proxy.variable}
            )
        async with sender(fetch, provider, credentials, settings, proxy) as send:
            result = await crawl(
                todo,
                fetch=send,
                folder=folder,
                settings=settings,
                ledger=ledger,
                observer=observer,
                on_job_end=night.job_ended,
                control=control,
                rng=rng,
                endpoint=provider.base_url,
                prices=price_list(provider.name),
            )
        # An incremental job's requests the crawl never reached: the job closes unfinished
        # if some of its requests ran, and is named as not started if none did.
        closed, untouched = await refresh.not_started(result.not_started)
        for manifest in closed:
            night.closed(manifest)
        result = dataclasses.replace(result, not_started=tuple(untouched))
        # What the crawl kept a job (in reference cycles) goes before run.json is built,
        # not at the collector's next pass: the run's peak memory stays the crawl's own.
        gc.collect()
        ledger_now = await in_thread(night_ledger, folder)
        await in_thread(functools.partial(discard_state, only_if_empty=True), folder)
        exit_code = exit_code_for_run(
            interrupted_by=result.interrupted_by,
            account_stopped=result.run_fatal is not None,
            statuses=[
                night.lines[e.job.id].status if e.job.id in night.lines else "partial"
                for e in entries
            ],
            invalid_configs=len(loaded.errors),
        )
        summary = build_summary(result, night, loaded, settings, provider, exit_code, ledger_now)
        # The summary's lines are what is left to say of the jobs: their configs and ends
        # go before run.json is encoded (the end of a night of many jobs is its peak).
        result = dataclasses.replace(result, jobs=())
        del todo, entries, loaded, night
        if summary.not_started:
            count = len(summary.not_started)
            log.warning("%s", not_started_text(count), extra={"not_started": count})
        await write_record(folder, summary, metrics_file=options.metrics_file, ledger=ledger_now)
        if report:
            try:
                path = await in_thread(write_report, folder.path)
            except (OSError, IntersectBatchError) as exc:
                # The crawl's results stand; only the report is missing.
                log.error("cannot write the report: %s", exc)
                report = False
            else:
                log.info("report written", extra={"path": str(path)})
        if options.keep_days is not None and exit_code == ExitCode.OK:
            await in_thread(prune_runs, folder, options.keep_days)
    # Details first: the last line always says where the results are.
    lines = []
    if result.run_fatal is not None and result.stop is not None:
        lines.append(result.stop.reason)
    if result.interrupted_by is not None:
        name = signal.Signals(result.interrupted_by).name
        lines.append(f"{name}: progress is saved; run the same command to continue")
    lines.append(closing_line(summary, folder, report))
    return RunOutcome(exit_code=exit_code, summary=summary, message="\n".join(lines))
