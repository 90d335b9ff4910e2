"""What in a run needs a person: its stop reason, invalid configs, jobs that did not complete."""

from __future__ import annotations

from dataclasses import dataclass

from intersect_batch.report.data import RunReport

__all__ = ["Attention", "attention"]


@dataclass(frozen=True, slots=True)
class Attention:
    """One thing of the run a person must look at: an invalid config, a job that did not
    complete, a run that stopped."""

    #: ``"stopped"``, ``"invalid"``, ``"failed"`` or ``"partial"``.
    kind: str
    message: str
    job_id: str | None = None
    #: ``file:line`` of the job's config, when known.
    where: str | None = None
    #: True when the job has a section of its own in the report.
    has_section: bool = False


def _where(file: str | None, line: int | None) -> str | None:
    if not file:
        return None
    return file if line is None else f"{file}:{line}"


def attention(report: RunReport) -> list[Attention]:
    """What needs a person: the stop reason, invalid configs, jobs that did not complete.

    Invalid configs come from run.json's ``config_errors`` and from its job lines whose
    status is ``invalid`` (each job once); jobs that did not complete from their manifests
    and from run.json's job lines.
    """
    run = report.run
    found: list[Attention] = []
    if run is not None and run.stop_reason:
        found.append(Attention(kind="stopped", message=run.stop_reason))
    errors = run.config_errors if run is not None else []
    named = {e.job for e in errors if e.job is not None}
    for error in errors:
        message = error.message if error.field is None else f"{error.field}: {error.message}"
        found.append(
            Attention(
                kind="invalid", message=message or "invalid", job_id=error.job, where=error.where
            )
        )
    sections = {job.job_id: job for job in report.jobs}
    found.extend(
        Attention(
            kind="invalid",
            message=line.reason or "invalid config",
            job_id=line.job_id,
            where=_where(line.config_file, line.config_line),
        )
        for line in (run.jobs if run is not None else [])
        if line.status == "invalid" and line.job_id not in named
    )
    unfinished: dict[str, Attention] = {}
    for job in report.jobs:
        if job.view.status != "complete":
            line = job.line
            unfinished[job.job_id] = Attention(
                kind=job.view.status or "partial",
                message=job.view.reason or (line.reason if line else None) or job.view.status,
                job_id=job.job_id,
                where=_where(job.view.config_file, job.view.config_line)
                or (_where(line.config_file, line.config_line) if line else None),
                has_section=job.detailed,
            )
    for line in run.jobs if run is not None else []:
        if line.job_id in unfinished or line.job_id in sections:
            continue
        if line.status in ("failed", "partial"):
            unfinished[line.job_id] = Attention(
                kind=line.status,
                message=line.reason or line.status,
                job_id=line.job_id,
                where=_where(line.config_file, line.config_line),
            )
    order = {"failed": 0, "partial": 1}
    found.extend(sorted(unfinished.values(), key=lambda a: order.get(a.kind, 2)))
    return found
