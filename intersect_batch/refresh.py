"""Incremental nights in a run: which jobs ask only for what is new, and their requests' ends.

For each ``refresh: incremental`` job, :meth:`Refresh.plan` reads the job's last night
(through :func:`~intersect_batch.layout.earlier_runs` and its manifest), asks
:func:`~intersect_batch.incremental.decide` what kind of night tonight is, and hands the
crawl either the job itself (a full night) or its incremental requests, each an ordinary
crawl job with an id of its own (``<id>+new-<n>``) whose result and manifest stay in
``.state/`` (see :mod:`intersect_batch.layout`). The budget, the ledger, the safety cap,
resuming after kill -9: all hold as for any job. :meth:`Refresh.request_ended` records
each request's end; once every request of a job has ended, the night is closed by
:mod:`intersect_batch.refreshclose` (the merge, the diff, the job's manifest), which
also notes on a full night's manifest what the incremental nights missed. Each night's
state is a :class:`~intersect_batch.refreshnight.JobNight`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence

import msgspec

from intersect_batch.config import JobEntry
from intersect_batch.crawl import CrawlJob, JobFinal
from intersect_batch.durable import in_thread
from intersect_batch.incremental import NightRecord, decide, parent_of, request_id
from intersect_batch.layout import RunFolder, earlier_runs
from intersect_batch.manifest import (
    JobManifest,
    build_manifest,
    is_complete,
    read_manifest,
    write_json,
)
from intersect_batch.plan import fingerprint
from intersect_batch.refreshclose import close_night, forget_requests, note_full_night
from intersect_batch.refreshnight import JobNight

__all__ = ["Refresh", "last_night"]

log = logging.getLogger("intersect_batch")


def last_night(folder: RunFolder, job_id: str) -> NightRecord | None:
    """The job's newest night before ``folder``'s date, as its manifest tells it."""
    for earlier in earlier_runs(folder.out_dir, folder.date):
        manifest = read_manifest(earlier.manifest(job_id))
        if manifest is None:
            continue
        note = manifest.refresh
        status: str = manifest.status
        result = earlier.result(job_id)
        if status == "complete" and (result.is_symlink() or not result.is_file()):
            status = "without its result"
        return NightRecord(
            date=earlier.date,
            status=status,
            fingerprint=manifest.fingerprint,
            mode=note.mode if note is not None else "full",
            rests_on=(
                dt.date.fromisoformat(note.rests_on) if note is not None and note.rests_on else None
            ),
            cutoff=note.cutoff if note is not None else None,
        )
    return None


class Refresh:
    """The run's ``refresh: incremental`` jobs: their plans, their requests, their ends."""

    def __init__(self, folder: RunFolder, *, force_full: bool, drift_threshold: float) -> None:
        self.folder = folder
        self.force_full = force_full
        self.drift_threshold = drift_threshold
        self.nights: dict[str, JobNight] = {}

    # -- planning (blocking I/O: call from a worker thread) -------------------------------

    def plan(self, entry: JobEntry, job: CrawlJob) -> list[CrawlJob]:
        """What the crawl runs for the job tonight: itself, or its unfinished requests."""
        if entry.job.refresh != "incremental":
            return [job]
        night = self.night_of(entry, job)
        self.nights[job.job_id] = night
        decision = night.decision
        log.info(
            "%s night: %s",
            decision.mode,
            decision.why,
            extra={"job": job.job_id, "refresh": decision.mode},
        )
        if decision.mode == "full":
            self.forget(job.job_id)
            return [job]
        todo = [
            request
            for request in night.requests
            if is_complete(self.folder, request.job_id, request.fingerprint) is None
        ]
        night.pending = {request.job_id for request in todo}
        return todo

    def night_of(self, entry: JobEntry, job: CrawlJob) -> JobNight:
        """The job's night: its kind, why, and its requests; reads, changes nothing."""
        last = last_night(self.folder, job.job_id)
        decision = decide(
            entry.job,
            self.folder.date,
            [last] if last is not None else [],
            job.fingerprint,
            force_full=self.force_full,
        )
        night = JobNight(entry=entry, job=job, decision=decision, last=last)
        for number, filters in enumerate(decision.requests, start=1):
            params = {**job.params, "filters": filters}
            night.requests.append(
                CrawlJob(
                    job_id=request_id(job.job_id, number),
                    params=params,
                    page_size=job.page_size,
                    max_items=None,
                    fingerprint=fingerprint(params, job.page_size, None),
                )
            )
        return night

    def dry_run_entries(self, entries: Sequence[JobEntry]) -> list[JobEntry]:
        """The jobs as a dry run prices them: an incremental night's job as its requests.

        Each request is a job of its own (its id ``<id>+new-<n>``, its filters, no
        ``max_items``), so that one limit-1 probe tells its total_count: the new pages.
        """
        priced: list[JobEntry] = []
        for entry in entries:
            job = entry.job
            if job.refresh != "incremental":
                priced.append(entry)
                continue
            params = job.api_params()
            crawl = CrawlJob(
                job_id=job.id,
                params=params,
                page_size=job.page_size,
                max_items=job.max_items,
                fingerprint=fingerprint(params, job.page_size, job.max_items),
            )
            night = self.night_of(entry, crawl)
            if night.decision.mode == "full" or is_complete(self.folder, job.id, crawl.fingerprint):
                priced.append(entry)
                continue
            for request in night.requests:
                filters = request.params["filters"]
                as_job = msgspec.structs.replace(
                    job, id=request.job_id, filters=filters, max_items=None
                )
                priced.append(dataclasses.replace(entry, job=as_job))
        return priced

    def forget(self, job_id: str) -> None:
        """Remove what incremental requests of the job left in ``.state/``."""
        forget_requests(self.folder, job_id)

    # -- ending ----------------------------------------------------------------------------

    def owns(self, job_id: str) -> bool:
        """Whether ``job_id`` is one of this run's incremental requests."""
        parent = parent_of(job_id)
        return parent is not None and parent in self.nights

    async def ready(self) -> list[JobManifest]:
        """Close the jobs whose every request was complete before the crawl began."""
        ready = [
            night
            for night in self.nights.values()
            if night.decision.mode == "incremental" and not night.pending
        ]
        return [await close_night(self.folder, night) for night in ready]

    async def request_ended(self, final: JobFinal) -> JobManifest | None:
        """Record a request's end; the job's manifest once its last request has ended."""
        request = final.job.job_id
        parent = parent_of(request)
        assert parent is not None
        night = self.nights[parent]
        manifest = build_manifest(
            final,
            config_file=str(night.entry.file),
            config_line=night.entry.line,
            drift_threshold=self.drift_threshold,
            diff=None,
        )
        try:
            await in_thread(write_json, self.folder.manifest(request), manifest)
        except OSError as exc:
            log.error("cannot write the manifest: %s", exc.strerror or exc, extra={"job": request})
        night.ended[request] = manifest
        night.pending.discard(request)
        log.info(
            "request %s", manifest.status, extra={"job": request, "items": manifest.items_written}
        )
        if night.pending:
            return None
        return await close_night(self.folder, night)

    async def not_started(self, job_ids: Sequence[str]) -> tuple[list[JobManifest], list[str]]:
        """The crawl never started ``job_ids``: the manifests of the jobs some of whose
        requests ran (they close now, unfinished), and the ids of the jobs, requests or
        not, of which nothing ran (named alone, no file)."""
        closed: list[JobManifest] = []
        untouched: list[str] = []
        for job_id in job_ids:
            parent = parent_of(job_id)
            if parent is None:
                untouched.append(job_id)
                continue
            night = self.nights[parent]
            night.pending.discard(job_id)
            if night.pending:
                continue
            if night.ended:
                closed.append(await close_night(self.folder, night))
            else:
                untouched.append(parent)
        return closed, untouched

    async def full_night(self, manifest: JobManifest) -> JobManifest:
        """A full night's manifest with its note: why full, and what incremental missed."""
        night = self.nights.get(manifest.job_id)
        if night is None:
            return manifest
        return await note_full_night(self.folder, night, manifest)
