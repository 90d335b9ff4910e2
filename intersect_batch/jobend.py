"""What the run does as each job ends: its diff, its manifest, one record that closes it.

:class:`Night` is handed to the crawl as its ``on_job_end``; it keeps a line of
each of the run date's jobs for run.json (:mod:`intersect_batch.runfile`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from intersect_batch.config import JobEntry
from intersect_batch.crawl import JobFinal
from intersect_batch.diff import diff_job
from intersect_batch.durable import in_thread
from intersect_batch.layout import RunFolder
from intersect_batch.manifest import (
    DiffCounts,
    JobLine,
    JobManifest,
    build_manifest,
    job_line,
    write_json,
)
from intersect_batch.refresh import Refresh
from intersect_batch.settings import RunSettings

__all__ = ["Night"]

log = logging.getLogger("intersect_batch")


@dataclass
class Night:
    """What the runner learns about the date's jobs while the crawl goes on."""

    folder: RunFolder
    settings: RunSettings
    entries: dict[str, JobEntry]
    refresh: Refresh
    #: What run.json needs of each job that ended, or was found complete, in this
    #: invocation: one compact line a job, kept until the run ends (not its manifest).
    lines: dict[str, JobLine] = field(default_factory=dict)

    async def job_ended(self, final: JobFinal) -> None:
        """Diff a complete job against its last complete run, then write its manifest."""
        job_id = final.job.job_id
        if self.refresh.owns(job_id):
            # One of an incremental night's requests: its job closes with its last one.
            closed = await self.refresh.request_ended(final)
            if closed is not None:
                self.closed(closed)
            return
        diff = None
        if final.status == "complete":
            diff = await self._diff(final)
        entry = self.entries[job_id]
        manifest = build_manifest(
            final,
            config_file=str(entry.file),
            config_line=entry.line,
            drift_threshold=self.settings.drift_threshold,
            diff=diff,
        )
        manifest = await self.refresh.full_night(manifest)
        if manifest.total_count.flagged:
            log.warning(
                "total_count moved by %.1f%% while paging",
                manifest.total_count.drift * 100,
                extra={"job": job_id},
            )
        try:
            await in_thread(write_json, self.folder.manifest(job_id), manifest)
        except OSError as exc:
            log.error("cannot write the manifest: %s", exc.strerror or exc, extra={"job": job_id})
        self.closed(manifest, duration_s=final.duration_s)

    def closed(self, manifest: JobManifest, *, duration_s: float = 0.0) -> None:
        """Keep a job's line for run.json, and log how the job ended."""
        job_id = manifest.job_id
        self.lines[job_id] = job_line(manifest, this_run=True, duration_s=duration_s)
        level = logging.INFO if manifest.status == "complete" else logging.WARNING
        text = f"job {manifest.status}" + (f": {manifest.reason}" if manifest.reason else "")
        if manifest.status == "failed":
            # The failure itself was logged the moment it happened: this closes the job.
            level, text = logging.INFO, "job ended: failed"
        log.log(
            level,
            "%s",
            text,
            extra={
                "job": job_id,
                "status": manifest.status,
                "reason": manifest.reason,
                "items": manifest.items_written,
                "pages": manifest.pages,
                "calls": manifest.calls,
                "retries": manifest.retries,
                "cost_usd": manifest.cost_usd,
            },
        )

    async def _diff(self, final: JobFinal) -> DiffCounts:
        job = final.job
        try:
            diff = await in_thread(diff_job, self.folder, job.job_id, job.fingerprint)
        except OSError as exc:
            diff = DiffCounts(skipped=f"could not write the diff: {exc.strerror or exc}")
        log.info(
            "diff: %s",
            diff.skipped or f"{diff.new} new, {diff.lost} lost since {diff.previous_run}",
            extra={"job": job.job_id},
        )
        return diff
