"""Incremental nights in a run: which jobs ask only for what is new, and closing them.

For each ``refresh: incremental`` job, :meth:`Refresh.plan` reads the job's last night
(through :func:`~intersect_batch.layout.earlier_runs` and its manifest), asks
:func:`~intersect_batch.incremental.decide` what kind of night tonight is, and hands the
crawl either the job itself (a full night) or its incremental requests, each an ordinary
crawl job with an id of its own (``<id>+new-<n>``) whose result and manifest stay in
``.state/`` (see :mod:`intersect_batch.layout`). The budget, the ledger, the safety cap,
resuming after kill -9: all hold as for any job. Once every request of a job is complete,
:meth:`Refresh.request_ended` merges the last night's items and the fetched ones into
``<id>.jsonl`` (:func:`~intersect_batch.merge.merge_night`), diffs it, writes the job's
manifest and forgets the requests. A full night gets :meth:`Refresh.full_night`'s note:
how many pages the incremental nights since the last full one missed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from intersect_batch.config import JobEntry
from intersect_batch.crawl import CrawlJob, JobFinal
from intersect_batch.diff import diff_job
from intersect_batch.durable import in_thread
from intersect_batch.incremental import (
    REQUEST_MARK,
    Decision,
    NightRecord,
    RefreshNote,
    decide,
    parent_of,
    request_id,
)
from intersect_batch.layout import RunFolder, earlier_runs
from intersect_batch.manifest import (
    DiffCounts,
    JobManifest,
    TotalCount,
    build_manifest,
    is_complete,
    read_manifest,
    write_json,
)
from intersect_batch.merge import count_missed, merge_night
from intersect_batch.plan import fingerprint

__all__ = ["Refresh", "last_night", "lost_note"]

log = logging.getLogger("intersect_batch")


def lost_note(next_full: dt.date) -> str:
    """What an incremental night says about lost pages."""
    return f"checked on full nights, next on {next_full.isoformat()}"


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


@dataclass
class _JobNight:
    """One ``refresh: incremental`` job's night in this run."""

    entry: JobEntry
    job: CrawlJob
    decision: Decision
    last: NightRecord | None
    requests: list[CrawlJob] = field(default_factory=list)
    #: Requests this invocation crawls that have not ended yet.
    pending: set[str] = field(default_factory=set)
    ended: dict[str, JobManifest] = field(default_factory=dict)


class Refresh:
    """The run's ``refresh: incremental`` jobs: their plans, their requests, their ends."""

    def __init__(self, folder: RunFolder, *, force_full: bool, drift_threshold: float) -> None:
        self.folder = folder
        self.force_full = force_full
        self.drift_threshold = drift_threshold
        self.nights: dict[str, _JobNight] = {}

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

    def night_of(self, entry: JobEntry, job: CrawlJob) -> _JobNight:
        """The job's night: its kind, why, and its requests; reads, changes nothing."""
        last = last_night(self.folder, job.job_id)
        decision = decide(
            entry.job,
            self.folder.date,
            [last] if last is not None else [],
            job.fingerprint,
            force_full=self.force_full,
        )
        night = _JobNight(entry=entry, job=job, decision=decision, last=last)
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
        prefix = job_id + REQUEST_MARK
        try:
            leftovers = [p for p in self.folder.state.iterdir() if p.name.startswith(prefix)]
        except OSError:
            return
        for path in leftovers:
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()

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
        return [await self._close(night) for night in ready]

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
        return await self._close(night)

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
                closed.append(await self._close(night))
            else:
                untouched.append(parent)
        return closed, untouched

    async def _close(self, night: _JobNight) -> JobManifest:
        manifests = []
        for request in night.requests:
            manifest = night.ended.get(request.job_id)
            if manifest is None:
                manifest = await in_thread(read_manifest, self.folder.manifest(request.job_id))
            manifests.append((request, manifest))
        unfinished = [(r, m) for r, m in manifests if m is None or m.status != "complete"]
        if unfinished:
            request, manifest = unfinished[0]
            failed = any(m is not None and m.status == "failed" for _, m in unfinished)
            status = "failed" if failed else "partial"
            reason = manifest.reason if manifest is not None else None
            return await self._write(
                night, [m for _, m in manifests if m is not None], status,
                f"{request.job_id}: {reason or 'not finished'}",
            )  # fmt: skip
        done = [m for _, m in manifests if m is not None]
        job_id = night.job.job_id
        decision = night.decision
        assert decision.carried_from is not None
        carried = RunFolder(self.folder.out_dir, decision.carried_from).result(job_id)
        fetched = [self.folder.result(request.job_id) for request, _ in manifests]
        try:
            merged = await in_thread(merge_night, carried, fetched, self.folder.result(job_id))
            diff = await in_thread(diff_job, self.folder, job_id, night.job.fingerprint)
        except OSError as exc:
            return await self._write(
                night, done, "failed", f"cannot merge the night's pages: {exc.strerror or exc}"
            )
        log.info(
            "merged: %d items carried from %s, %d new of %d fetched; lost: %s",
            merged.carried,
            decision.carried_from,
            merged.new,
            merged.fetched,
            lost_note(decision.next_full),
            extra={"job": job_id},
        )
        note = RefreshNote(
            mode="incremental",
            why=decision.why,
            rests_on=_iso(decision.rests_on),
            carried_from=_iso(decision.carried_from),
            cutoff=decision.cutoff,
            requests=len(night.requests),
            items_carried=merged.carried,
            items_fetched=merged.fetched,
            lost=lost_note(decision.next_full),
            next_full=decision.next_full.isoformat(),
        )
        manifest = await self._write(
            night, done, "complete", None, items=merged.items, diff=diff, note=note
        )
        await in_thread(self.forget, job_id)
        return manifest

    async def _write(
        self,
        night: _JobNight,
        requests: list[JobManifest],
        status: str,
        reason: str | None,
        *,
        items: int = 0,
        diff: DiffCounts | None = None,
        note: RefreshNote | None = None,
    ) -> JobManifest:
        job, decision = night.job, night.decision
        if note is None:
            note = RefreshNote(
                mode="incremental",
                why=decision.why,
                rests_on=_iso(decision.rests_on),
                carried_from=_iso(decision.carried_from),
                cutoff=decision.cutoff,
                requests=len(night.requests),
                next_full=decision.next_full.isoformat(),
            )
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        manifest = JobManifest(
            job_id=job.job_id,
            config_file=str(night.entry.file),
            config_line=night.entry.line,
            fingerprint=job.fingerprint,
            request={**job.params, "page_size": job.page_size, "max_items": job.max_items},
            status=status,  # type: ignore[arg-type]
            reason=reason,
            output=self.folder.result(job.job_id).name if status == "complete" else None,
            total_count=TotalCount(),
            items_written=items,
            items_received=sum(m.items_received for m in requests),
            duplicates_dropped=sum(m.duplicates_dropped for m in requests),
            pages=sum(m.pages for m in requests),
            pages_planned=sum(m.pages_planned or 0 for m in requests),
            calls=sum(m.calls for m in requests),
            retries=sum(m.retries for m in requests),
            cost_usd=round(sum(m.cost_usd for m in requests), 6),
            started_at=min((m.started_at for m in requests), default=now),
            finished_at=now,
            resumed_pages=sum(m.resumed_pages for m in requests),
            errors=[error for m in requests for error in m.errors],
            holes=[hole for m in requests for hole in m.holes],
            warnings=[warning for m in requests for warning in m.warnings],
            diff=diff if status == "complete" else None,
            refresh=note,
        )
        try:
            await in_thread(write_json, self.folder.manifest(job.job_id), manifest)
        except OSError as exc:
            log.error(
                "cannot write the manifest: %s", exc.strerror or exc, extra={"job": job.job_id}
            )
        return manifest

    async def full_night(self, manifest: JobManifest) -> JobManifest:
        """A full night's manifest with its note: why full, and what incremental missed."""
        night = self.nights.get(manifest.job_id)
        if night is None:
            return manifest
        decision, last = night.decision, night.last
        note = RefreshNote(mode="full", why=decision.why, next_full=decision.next_full.isoformat())
        if (
            manifest.status == "complete"
            and last is not None
            and last.mode == "incremental"
            and last.status == "complete"
            and last.cutoff is not None
            and last.fingerprint == manifest.fingerprint
        ):
            previous = RunFolder(self.folder.out_dir, last.date).result(manifest.job_id)
            current = self.folder.result(manifest.job_id)
            try:
                missed = await in_thread(count_missed, current, previous, last.cutoff)
            except OSError as exc:
                log.warning(
                    "cannot count what the incremental nights missed: %s",
                    exc.strerror or exc,
                    extra={"job": manifest.job_id},
                )
            else:
                note = msgspec.structs.replace(
                    note, missed_by_incremental=missed, missed_since=_iso(last.rests_on)
                )
                log.info(
                    "missed by the incremental nights since %s: %d pages",
                    last.rests_on,
                    missed,
                    extra={"job": manifest.job_id},
                )
        return msgspec.structs.replace(manifest, refresh=note)


def _iso(date: dt.date | None) -> str | None:
    return None if date is None else date.isoformat()
