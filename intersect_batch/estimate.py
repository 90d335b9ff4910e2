"""The dry run: what a full run would cost, before it costs anything.

With a probe, each job's total_count comes from one cheapest call (``limit: 1``, costing
about 0.02 USD) and the figures are exact for a result that does not change before the
run. Without one, a previous run's count is used where there is one, and bounds
otherwise. Pages already on disk for the run date are not counted: a real run would not
fetch them again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import msgspec

from intersect_batch.client import fetch_page
from intersect_batch.config import JobEntry, LoadResult, load_jobs
from intersect_batch.durable import in_thread
from intersect_batch.errors import ApiError, RunFatalApiError, UnreachableApiError, UsageError
from intersect_batch.layout import RunFolder
from intersect_batch.manifest import is_complete, previous_total
from intersect_batch.pacing import Pacer, price
from intersect_batch.plan import fingerprint, items_wanted, page_count, select_jobs
from intersect_batch.providers import Credentials, Provider
from intersect_batch.settings import RunSettings
from intersect_batch.store import Checkpoint

__all__ = ["DryRun", "DryRunOutcome", "Estimate", "dry_run", "estimate"]

log = logging.getLogger("intersect_batch")
_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)


class Estimate(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One job's expected calls and cost; ``*_max`` is None where no bound is known."""

    job_id: str
    source: str
    total_count: int | None = None
    calls: int | None = None
    cost_usd: float | None = None
    calls_min: int = 0
    calls_max: int | None = None
    cost_min_usd: float = 0.0
    cost_max_usd: float | None = None
    pages_on_disk: int = 0
    error: str | None = None


class DryRun(msgspec.Struct, kw_only=True):
    """The dry run's answer: per job, in total, and what the probes cost."""

    jobs: list[Estimate]
    #: Why the probes stopped early: the API refused the account or could not be reached.
    stopped: str | None
    probe_calls: int
    probe_cost_usd: float
    calls: int | None
    cost_usd: float | None
    calls_min: int
    cost_min_usd: float
    calls_max: int | None
    cost_max_usd: float | None


def _cost(calls: int, items: int) -> float:
    return round(price(calls, items), 6)


def _progress(folder: RunFolder, entry: JobEntry, print_: str) -> tuple[bool, int]:
    """(already complete, pages on disk) for this run date."""
    job = entry.job
    if is_complete(folder, job.id, print_) is not None:
        return True, 0
    try:
        checkpoint = _checkpoint_decoder.decode(folder.checkpoint(job.id).read_bytes())
    except (OSError, msgspec.DecodeError):
        return False, 0
    if checkpoint.fingerprint != print_ or checkpoint.finalized:
        return False, 0
    return False, checkpoint.pages


def _exact(entry: JobEntry, total: int, source: str, on_disk: int) -> Estimate:
    job = entry.job
    pages = page_count(total, job.page_size, job.max_items)
    calls = max(0, pages - on_disk)
    items = max(0, items_wanted(total, job.max_items) - on_disk * job.page_size)
    cost = _cost(calls, items)
    return Estimate(
        job_id=job.id,
        source=source,
        total_count=total,
        calls=calls,
        cost_usd=cost,
        calls_min=calls,
        calls_max=calls,
        cost_min_usd=cost,
        cost_max_usd=cost,
        pages_on_disk=on_disk,
    )


def _bounds(entry: JobEntry, on_disk: int) -> Estimate:
    job = entry.job
    if job.max_items is None:
        return Estimate(
            job_id=job.id,
            source="bounds",
            calls_min=1,
            cost_min_usd=_cost(1, 0),
            pages_on_disk=on_disk,
        )
    pages = page_count(job.max_items, job.page_size, job.max_items)
    calls = max(0, pages - on_disk)
    return Estimate(
        job_id=job.id,
        source="bounds",
        calls_min=min(1, calls),
        cost_min_usd=_cost(min(1, calls), 0),
        calls_max=calls,
        cost_max_usd=_cost(calls, max(0, job.max_items - on_disk * job.page_size)),
        pages_on_disk=on_disk,
    )


async def estimate(
    entries: Sequence[JobEntry],
    *,
    provider: Provider,
    credentials: Credentials | None,
    settings: RunSettings,
    probe: bool,
) -> DryRun:
    """Per job and in total, the calls and cost a full run would need."""
    results: dict[str, Estimate] = {}
    to_probe: list[JobEntry] = []
    folder = RunFolder(settings.out_dir, settings.run_date)
    for entry in entries:
        job = entry.job
        print_ = fingerprint(job.api_params(), job.page_size, job.max_items)
        complete, on_disk = _progress(folder, entry, print_)
        if complete:
            results[job.id] = Estimate(
                job_id=job.id,
                source="already complete",
                calls=0,
                cost_usd=0.0,
                calls_max=0,
                cost_max_usd=0.0,
            )
            continue
        if probe:
            to_probe.append(entry)
            continue
        previous = previous_total(settings.out_dir, settings.run_date, job.id, print_)
        if previous is not None:
            results[job.id] = _exact(entry, previous, "previous run", on_disk)
        else:
            results[job.id] = _bounds(entry, on_disk)

    probe_cost = 0.0
    probe_calls = 0
    stopped: list[str] = []
    if to_probe:
        if credentials is None:
            raise RuntimeError("a probing dry run needs credentials")
        pacer = Pacer(settings.limits)
        slots = anyio.CapacityLimiter(settings.limits.concurrency)

        async def probe_one(session: aiohttp.ClientSession, entry: JobEntry) -> None:
            nonlocal probe_cost, probe_calls
            job = entry.job
            print_ = fingerprint(job.api_params(), job.page_size, job.max_items)
            _, on_disk = _progress(folder, entry, print_)
            async with slots:
                if stopped:
                    results[job.id] = Estimate(job_id=job.id, source="skipped", error=stopped[0])
                    return
                await pacer.wait()
                try:
                    page = await fetch_page(
                        session,
                        provider,
                        credentials,
                        {**job.api_params(), "offset": 0, "limit": 1},
                        timeouts=settings.timeouts,
                        caps=settings.caps,
                        scrubber=credentials.scrubber(),
                    )
                except ApiError as exc:
                    error = exc.at(job_id=job.id, offset=0)
                    if not isinstance(exc, UnreachableApiError):
                        # It reached the API; a lost answer may have been billed.
                        probe_calls += 1
                        if exc.maybe_billed:
                            probe_cost += price(1, 1)
                    if isinstance(exc, RunFatalApiError | UnreachableApiError):
                        # No other probe can do better: the account or the network is out.
                        stopped.append(error.describe())
                    results[job.id] = Estimate(
                        job_id=job.id,
                        source="probe failed",
                        error=error.describe(),
                        calls_min=1,
                        cost_min_usd=_cost(1, 0),
                    )
                    return
            probe_calls += 1
            probe_cost += page.cost
            results[job.id] = _exact(entry, page.total_count or 0, "probe", on_disk)

        async with aiohttp.ClientSession() as session, anyio.create_task_group() as group:
            for entry in to_probe:
                group.start_soon(probe_one, session, entry)

    jobs = [results[entry.job.id] for entry in entries]
    exact = all(item.calls is not None for item in jobs)
    bounded = all(item.calls_max is not None for item in jobs)
    return DryRun(
        jobs=jobs,
        stopped=stopped[0] if to_probe and stopped else None,
        probe_calls=probe_calls,
        probe_cost_usd=round(probe_cost, 6),
        calls=sum(item.calls or 0 for item in jobs) if exact else None,
        cost_usd=round(sum(item.cost_usd or 0.0 for item in jobs), 6) if exact else None,
        calls_min=sum(item.calls_min for item in jobs),
        cost_min_usd=round(sum(item.cost_min_usd for item in jobs), 6),
        calls_max=sum(item.calls_max or 0 for item in jobs) if bounded else None,
        cost_max_usd=(
            round(sum(item.cost_max_usd or 0.0 for item in jobs), 6) if bounded else None
        ),
    )


@dataclass(frozen=True)
class DryRunOutcome:
    """A dry run of a config folder: the figures, and the folder's config problems."""

    loaded: LoadResult
    result: DryRun


async def dry_run(
    config_dir: Path,
    *,
    provider: Provider,
    environ: Mapping[str, str],
    settings: RunSettings,
    ids: Sequence[str] = (),
    patterns: Sequence[str] = (),
    probe: bool = True,
) -> DryRunOutcome:
    """What running ``config_dir`` would cost; raises UsageError when nothing can run."""
    loaded = await in_thread(load_jobs, config_dir)
    if not loaded.jobs:
        raise UsageError(f"no valid job in {config_dir}: nothing to estimate")
    entries = select_jobs(loaded.jobs, ids, patterns)
    credentials = provider.credentials(environ) if probe else None
    result = await estimate(
        entries, provider=provider, credentials=credentials, settings=settings, probe=probe
    )
    return DryRunOutcome(loaded=loaded, result=result)
