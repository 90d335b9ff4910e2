"""What a job and a run report: ``<id>.manifest.json`` and ``run.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec

from intersect_batch.durable import atomic_write

__all__ = [
    "CallError",
    "ConfigProblem",
    "DiffCounts",
    "JobManifest",
    "JobStatus",
    "RunSummary",
    "TotalCount",
    "read_manifest",
    "write_json",
]

JobStatus = Literal["complete", "failed", "partial"]


class CallError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One failed call, as the API or the network answered it."""

    kind: str
    message: str
    offset: int | None = None
    http_status: int | None = None
    status_code: int | None = None


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
    #: ``"no earlier complete run"``, ``"parameters changed since <date>"``, or ``None``.
    skipped: str | None = None


class JobManifest(msgspec.Struct, kw_only=True):
    """``<id>.manifest.json``: everything about one job's run."""

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
    pages: int
    pages_planned: int | None
    calls: int
    retries: int
    cost_usd: float
    started_at: str
    finished_at: str
    resumed_pages: int = 0
    errors: list[CallError] = msgspec.field(default_factory=list)
    #: New and lost items since the last complete run (complete jobs only).
    diff: DiffCounts | None = None


class ConfigProblem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A job that could not run because its config is invalid."""

    file: str
    message: str
    job: str | None = None
    field: str | None = None
    line: int | None = None


class JobLine(msgspec.Struct, kw_only=True):
    """One job's line in run.json."""

    job_id: str
    status: JobStatus
    reason: str | None
    items: int
    pages: int
    calls: int
    retries: int
    cost_usd: float
    duration_s: float
    output: str | None
    diff: DiffCounts | None = None


class RunSummary(msgspec.Struct, kw_only=True):
    """``run.json``: the run at a glance, for dashboards and cron mail."""

    version: str
    run_date: str
    started_at: str
    finished_at: str
    duration_s: float
    exit_code: int
    needs_attention: bool
    stop_reason: str | None
    jobs_by_status: dict[str, int]
    calls: int
    retries: int
    items: int
    cost_usd: float
    calls_per_minute: float
    #: Items new and lost since each job's last complete run, summed over the jobs.
    new_items: int
    lost_items: int
    jobs: list[JobLine]
    config_errors: list[ConfigProblem]
    settings: dict[str, Any]


_encoder = msgspec.json.Encoder()
_manifest_decoder = msgspec.json.Decoder(JobManifest)


def write_json(path: Path, value: msgspec.Struct) -> None:
    """Write a manifest or run summary atomically, indented for people to read."""
    atomic_write(path, msgspec.json.format(_encoder.encode(value), indent=2) + b"\n")


def read_manifest(path: Path) -> JobManifest | None:
    """A job's manifest, or ``None`` if there is none or it cannot be read."""
    try:
        return _manifest_decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
