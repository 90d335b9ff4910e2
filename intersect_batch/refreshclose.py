"""Closing an incremental job's night: merging, the job's manifest, the full night's note.

Once every request of a night has ended, :func:`close_night` merges the items carried
from the last night with the fetched ones into ``<id>.jsonl``
(:func:`~intersect_batch.merge.merge_night`), diffs it, writes the job's manifest (its
counts summed over the requests' manifests) and forgets the requests' files in
``.state/``. A full night's manifest gets :func:`note_full_night`'s note: how many pages
the incremental nights since the last full one missed. Deciding and planning the night is
:mod:`intersect_batch.refresh`'s; this module only reads the night it was handed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil

import msgspec

from intersect_batch.diff import diff_job
from intersect_batch.durable import in_thread
from intersect_batch.incremental import REQUEST_MARK, RefreshNote
from intersect_batch.layout import RunFolder
from intersect_batch.manifest import (
    DiffCounts,
    JobManifest,
    TotalCount,
    read_manifest,
    write_json,
)
from intersect_batch.merge import count_missed, merge_night
from intersect_batch.refreshnight import JobNight

__all__ = ["close_night", "forget_requests", "lost_note", "note_full_night"]

log = logging.getLogger("intersect_batch")


def lost_note(next_full: dt.date) -> str:
    """What an incremental night says about lost pages."""
    return f"checked on full nights, next on {next_full.isoformat()}"


def forget_requests(folder: RunFolder, job_id: str) -> None:
    """Remove what incremental requests of the job left in ``.state/``."""
    prefix = job_id + REQUEST_MARK
    try:
        leftovers = [p for p in folder.state.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for path in leftovers:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


async def close_night(folder: RunFolder, night: JobNight) -> JobManifest:
    """The job's manifest once its requests have ended: merged if all are complete."""
    manifests = []
    for request in night.requests:
        manifest = night.ended.get(request.job_id)
        if manifest is None:
            manifest = await in_thread(read_manifest, folder.manifest(request.job_id))
        manifests.append((request, manifest))
    unfinished = [(r, m) for r, m in manifests if m is None or m.status != "complete"]
    if unfinished:
        request, manifest = unfinished[0]
        failed = any(m is not None and m.status == "failed" for _, m in unfinished)
        status = "failed" if failed else "partial"
        reason = manifest.reason if manifest is not None else None
        return await _write(
            folder, night, [m for _, m in manifests if m is not None], status,
            f"{request.job_id}: {reason or 'not finished'}",
        )  # fmt: skip
    done = [m for _, m in manifests if m is not None]
    job_id = night.job.job_id
    decision = night.decision
    assert decision.carried_from is not None
    carried = RunFolder(folder.out_dir, decision.carried_from).result(job_id)
    fetched = [folder.result(request.job_id) for request, _ in manifests]
    try:
        merged = await in_thread(merge_night, carried, fetched, folder.result(job_id))
        diff = await in_thread(diff_job, folder, job_id, night.job.fingerprint)
    except OSError as exc:
        return await _write(
            folder, night, done, "failed", f"cannot merge the night's pages: {exc.strerror or exc}"
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
    note = msgspec.structs.replace(
        _incremental_note(night),
        items_carried=merged.carried,
        items_fetched=merged.fetched,
        lost=lost_note(decision.next_full),
    )
    manifest = await _write(
        folder, night, done, "complete", None, items=merged.items, diff=diff, note=note
    )
    await in_thread(forget_requests, folder, job_id)
    return manifest


def _incremental_note(night: JobNight) -> RefreshNote:
    """What an incremental night's manifest says of it before its counts are known."""
    decision = night.decision
    return RefreshNote(
        mode="incremental",
        why=decision.why,
        rests_on=_iso(decision.rests_on),
        carried_from=_iso(decision.carried_from),
        cutoff=decision.cutoff,
        requests=len(night.requests),
        next_full=decision.next_full.isoformat(),
    )


async def _write(
    folder: RunFolder,
    night: JobNight,
    requests: list[JobManifest],
    status: str,
    reason: str | None,
    *,
    items: int = 0,
    diff: DiffCounts | None = None,
    note: RefreshNote | None = None,
) -> JobManifest:
    job = night.job
    if note is None:
        note = _incremental_note(night)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    manifest = JobManifest(
        job_id=job.job_id,
        config_file=str(night.entry.file),
        config_line=night.entry.line,
        fingerprint=job.fingerprint,
        request={**job.params, "page_size": job.page_size, "max_items": job.max_items},
        status=status,  # type: ignore[arg-type]
        reason=reason,
        output=folder.result(job.job_id).name if status == "complete" else None,
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
        await in_thread(write_json, folder.manifest(job.job_id), manifest)
    except OSError as exc:
        log.error("cannot write the manifest: %s", exc.strerror or exc, extra={"job": job.job_id})
    return manifest


async def note_full_night(folder: RunFolder, night: JobNight, manifest: JobManifest) -> JobManifest:
    """A full night's manifest with its note: why full, and what incremental missed."""
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
        previous = RunFolder(folder.out_dir, last.date).result(manifest.job_id)
        current = folder.result(manifest.job_id)
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
