"""``intersect-batch status``: the last nights of an output folder at a glance.

:func:`collect_status` reads the run folders (through :func:`~intersect_batch.layout.earlier_runs`,
the one walk, and the report's tolerant readers of run.json and the manifests) into a
:class:`Status`; :func:`render_status` lays it out for a terminal. Nothing is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import msgspec

from intersect_batch.layout import RunFolder, earlier_runs
from intersect_batch.report.condition import CONDITION_LABELS, jobs_by_status, night_condition
from intersect_batch.report.runfiles import JobView, RunView
from intersect_batch.report.tolerant import read_tolerantly

__all__ = ["JobRow", "NightRow", "Status", "collect_status", "render_status"]

#: The order statuses are counted in, the worst last.
_STATUS_ORDER = ("complete", "partial", "failed", "invalid")


class NightRow(msgspec.Struct, kw_only=True):
    """One run date: how it ended and what it holds (``None``: its files do not say)."""

    date: str
    #: ``complete``, ``attention``, ``partial``, ``unreached`` or ``unfinished``
    #: (:mod:`intersect_batch.report.condition`).
    condition: str
    jobs_by_status: dict[str, int]
    items: int | None
    #: ``None`` when no job of the night was compared with an earlier night (none
    #: completed, or none had an earlier complete run of the same request): no diff.
    new_items: int | None
    lost_items: int | None
    cost_usd: float | None
    invocations: int | None
    exit_code: int | None


class JobRow(msgspec.Struct, kw_only=True):
    """One job: its status on the newest night that has it, and its last complete night."""

    job_id: str
    status: str
    night: str
    last_complete: str | None


class Status(msgspec.Struct, kw_only=True):
    """The output folder's last nights, newest first, and every job they hold."""

    out_dir: str
    nights: list[NightRow]
    jobs: list[JobRow]


def _from_manifests(folder: RunFolder) -> tuple[dict[str, str], NightRow]:
    """A folder without run.json: each job's status, and the night its manifests tell."""
    statuses: dict[str, str] = {}
    items, cost, new, lost, compared = 0, 0.0, 0, 0, False
    for job_id in folder.job_ids():
        view = read_tolerantly(folder.manifest(job_id), JobView)
        if view is None:
            continue
        statuses[view.job_id] = view.status
        cost += view.cost_usd
        if view.status != "complete":
            continue
        items += view.items_written
        if view.diff is not None and view.diff.skipped is None:
            compared = True
            new, lost = new + view.diff.new, lost + view.diff.lost
    row = NightRow(
        date=folder.name,
        condition=night_condition(None),
        jobs_by_status=_counted(list(statuses.values())),
        items=items,
        new_items=new if compared else None,
        lost_items=lost if compared else None,
        cost_usd=round(cost, 6),
        invocations=None,
        exit_code=None,
    )
    return statuses, row


def _compared(folder: RunFolder, statuses: dict[str, str]) -> bool:
    """True when some complete job of the night was compared with an earlier night."""
    for job_id, status in statuses.items():
        if status != "complete":
            continue
        view = read_tolerantly(folder.manifest(job_id), JobView)
        if view is not None and view.diff is not None and view.diff.skipped is None:
            return True
    return False


def _counted(statuses: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def _night(folder: RunFolder) -> tuple[NightRow, dict[str, str]]:
    run = read_tolerantly(folder.run_json, RunView)
    if run is None:
        statuses, row = _from_manifests(folder)
        return row, statuses
    by_status = jobs_by_status(run)
    statuses = {line.job_id: line.status for line in run.jobs if line.status}
    compared = _compared(folder, statuses)
    night = run.night
    new = night.new_items if night is not None else run.new_items
    lost = night.lost_items if night is not None else run.lost_items
    row = NightRow(
        date=folder.name,
        condition=night_condition(run),
        jobs_by_status=by_status,
        items=run.date_items(),
        new_items=new if compared else None,
        lost_items=lost if compared else None,
        cost_usd=run.date_cost(),
        invocations=night.invocations if night is not None else None,
        exit_code=run.exit_code,
    )
    return row, statuses


def collect_status(out_dir: Path, *, nights: int = 7) -> Status:
    """The last ``nights`` run folders of ``out_dir``, newest first, and every job of any
    run folder there with its newest status and the last night it was complete."""
    folders = earlier_runs(out_dir, dt.date.max)
    rows: list[NightRow] = []
    jobs: dict[str, JobRow] = {}
    for index, folder in enumerate(folders):
        row, statuses = _night(folder)
        if index < nights:
            rows.append(row)
        for job_id, status in statuses.items():
            known = jobs.get(job_id)
            if known is None:
                known = jobs[job_id] = JobRow(
                    job_id=job_id, status=status, night=folder.name, last_complete=None
                )
            if status == "complete" and known.last_complete is None:
                known.last_complete = folder.name
    return Status(
        out_dir=str(out_dir), nights=rows, jobs=sorted(jobs.values(), key=lambda j: j.job_id)
    )


def _statuses(counts: dict[str, int]) -> str:
    order = [s for s in _STATUS_ORDER if s in counts] + sorted(set(counts) - set(_STATUS_ORDER))
    return ", ".join(f"{counts[s]} {s}" for s in order) or "no job"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _number(value: int | None, sign: str = "") -> str:
    return "?" if value is None else f"{sign}{value}"


def render_status(status: Status) -> str:
    """The nights, then the jobs, as two aligned tables of plain text."""
    if not status.nights:
        return f"no run folder in {status.out_dir}/ yet"
    night_rows = []
    for night in status.nights:
        if night.new_items is None and night.lost_items is None:
            changes = ("no diff", "")
        else:
            changes = (_number(night.new_items, "+"), _number(night.lost_items, "-"))
        cost = "?" if night.cost_usd is None else f"{night.cost_usd:.4f}"
        night_rows.append(
            [
                night.date,
                CONDITION_LABELS.get(night.condition, night.condition),
                _statuses(night.jobs_by_status),
                _number(night.items),
                *changes,
                cost,
            ]
        )
    lines = _table(
        ["night", "state", "jobs", "items", "new", "lost", "cost USD"], night_rows, {3, 4, 5, 6}
    )
    job_rows = [
        [job.job_id, job.status, job.night, job.last_complete or "never"] for job in status.jobs
    ]
    lines.append("")
    lines.extend(_table(["job", "last status", "night", "last complete"], job_rows, set()))
    return "\n".join(lines)
