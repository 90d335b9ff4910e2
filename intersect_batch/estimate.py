"""The dry run: what a full run would cost, before it costs anything.

With a probe, each job's total_count comes from one cheapest call (``limit: 1``, costing
about 0.02 USD) and the figures are exact for a result that does not change before the
run. Without one, a previous run's count is used where there is one, and bounds
otherwise. Pages already on disk for the run date are not counted: a real run would not
fetch them again.

Probes are money spent on the run date like any other call: a probing dry run holds the
output folder's lock, counts its probes in the night's ledger, and keeps the night's
``--budget-usd`` (a job whose probe the budget does not allow is estimated without one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec

from intersect_batch.checkpoint import read_checkpoint
from intersect_batch.config import JobEntry, LoadResult, load_jobs
from intersect_batch.crawl import Call, Fetch, page_of
from intersect_batch.durable import in_thread
from intersect_batch.errors import ApiError, RunFatalApiError, UnreachableApiError, UsageError
from intersect_batch.incremental import parent_of
from intersect_batch.layout import RunFolder
from intersect_batch.lock import output_lock
from intersect_batch.manifest import is_complete, previous_total
from intersect_batch.money import NightMoney
from intersect_batch.night import night_ledger
from intersect_batch.pacing import Pacer, price, price_list
from intersect_batch.plan import fingerprint, items_wanted, page_count, select_jobs
from intersect_batch.providers import Credentials, Provider
from intersect_batch.proxies import Proxy, proxy_for
from intersect_batch.refresh import Refresh
from intersect_batch.settings import RunSettings
from intersect_batch.transport import sender

__all__ = ["DryRun", "DryRunOutcome", "Estimate", "dry_run", "estimate"]

log = logging.getLogger("intersect_batch")


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
    #: What the probes cost as the budget counts it: reported costs, plus the worst case
    #: of a probe whose answer was lost after the API may have billed it.
    probe_cost_usd: float
    calls: int | None
    cost_usd: float | None
    calls_min: int
    cost_min_usd: float
    calls_max: int | None
    cost_max_usd: float | None
    #: What the run date has spent over all its invocations, this dry run's probes included.
    night_spent_usd: float = 0.0
    #: The night's cap (``--budget-usd``), if any.
    budget_usd: float | None = None
    #: Why some jobs were not probed: the night's budget did not allow it.
    budget_stop: str | None = None
    #: The jobs estimated without a probe because of ``budget_stop``.
    not_probed: list[str] = msgspec.field(default_factory=list)
    #: The API's words when it refused the credentials (then no job could be estimated).
    credentials_refused: str | None = None


def _refused_credentials(error: ApiError) -> bool:
    """Whether the API refused the login and password (or the key) themselves."""
    return isinstance(error, RunFatalApiError) and (
        error.status_code == 40100 or error.http_status in (401, 403)
    )


def _cost(calls: int, items: int) -> float:
    return round(price(calls, items), 6)


def _progress(folder: RunFolder, entry: JobEntry, print_: str) -> tuple[bool, int]:
    """(already complete, pages on disk) for this run date."""
    job = entry.job
    if is_complete(folder, job.id, print_) is not None:
        return True, 0
    checkpoint = read_checkpoint(folder, job.id)
    if checkpoint is None or checkpoint.fingerprint != print_ or checkpoint.finalized:
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


def _unprobed(entry: JobEntry, settings: RunSettings, print_: str, on_disk: int) -> Estimate:
    """A job's figures without a probe: a previous run's count, else bounds."""
    previous = previous_total(settings.out_dir, settings.run_date, entry.job.id, print_)
    if previous is not None:
        return _exact(entry, previous, "previous run", on_disk)
    return _bounds(entry, on_disk)


async def estimate(
    entries: Sequence[JobEntry],
    *,
    provider: Provider,
    credentials: Credentials | None,
    settings: RunSettings,
    probe: bool,
    fetch: Fetch | None = None,
    proxy: Proxy | None = None,
) -> DryRun:
    """Per job and in total, the calls and cost a full run would need.

    With ``probe``, holds the output folder's lock while it probes (raises LockError when
    a run holds it) and counts the probes in the night's ledger. The probes go through
    ``fetch`` (the crawl's seam, :data:`~intersect_batch.crawl.Fetch`), by default HTTP
    to ``provider`` (through ``proxy``, as the run's calls go).
    """
    results: dict[str, Estimate] = {}
    to_probe: list[tuple[JobEntry, str, int]] = []
    folder = RunFolder(settings.out_dir, settings.run_date)
    # An incremental night is priced by its requests, each a job of one probe.
    refresh = Refresh(folder, force_full=settings.full, drift_threshold=settings.drift_threshold)
    entries = await in_thread(refresh.dry_run_entries, entries)
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
        elif probe:
            to_probe.append((entry, print_, on_disk))
        else:
            results[job.id] = _unprobed(entry, settings, print_, on_disk)

    stopped: list[str] = []
    refused_credentials: list[str] = []
    not_probed: list[str] = []
    refused: list[str] = []
    money: NightMoney | None = None
    if to_probe:
        if credentials is None:
            raise RuntimeError("a probing dry run needs credentials")
        pacer = Pacer(settings.limits)
        slots = anyio.CapacityLimiter(settings.limits.concurrency)

        async def probe_one(
            fetch: Fetch, night: NightMoney, entry: JobEntry, print_: str, on_disk: int
        ) -> None:
            job = entry.job
            async with slots:
                reservation = None
                while not stopped and (reservation := await night.reserve(1)) is None:
                    if night.halt is not None or not night.in_flight:
                        break
                    # The price is not known yet, or a probe in flight may cost less
                    # than its worst case: wait for one to settle, then ask again.
                    await night.wait_settled()
                if reservation is not None and not stopped:
                    await pacer.wait()
                if stopped:
                    # The account or the network is gone, maybe while this probe waited.
                    if reservation is not None:
                        night.unsent(reservation)
                    # Not probed: why is the dry run's ``stopped``, not this job's error.
                    results[job.id] = Estimate(job_id=job.id, source="skipped")
                    return
                if reservation is None:
                    refused.append(night.refusal(1))
                    not_probed.append(job.id)
                    results[job.id] = _unprobed(entry, settings, print_, on_disk)
                    return
                call = Call(
                    job_id=job.id,
                    task={**job.api_params(), "offset": 0, "limit": 1},
                    offset=0,
                    limit=1,
                )
                where = f"job {job.id}, offset 0"
                try:
                    # Probes hold one item each: no place in memory to wait for.
                    page = await page_of(await fetch(call))
                except ApiError as exc:
                    error = exc.at(job_id=job.id, offset=0)
                    night.failed(reservation, error, where=where)
                    if isinstance(exc, RunFatalApiError | UnreachableApiError):
                        # No other probe can do better: the account or the network is out.
                        stopped.append(error.describe())
                        if _refused_credentials(exc):
                            refused_credentials.append(exc.describe())
                    results[job.id] = Estimate(
                        job_id=job.id,
                        source="probe failed",
                        error=error.describe(),
                        calls_min=1,
                        cost_min_usd=_cost(1, 0),
                    )
                    return
                night.answered(
                    reservation,
                    page.cost,
                    len(page.lines),
                    where=where,
                    result=page.total_count is not None,
                )
            results[job.id] = _exact(entry, page.total_count or 0, "probe", on_disk)

        with output_lock(settings.out_dir):
            money = NightMoney(
                folder,
                cap=settings.budget_usd,
                ledger=await in_thread(night_ledger, folder),
                prices=price_list(provider.name),
                what="a probe",
            )
            try:
                async with (
                    sender(fetch, provider, credentials, settings, proxy) as send,
                    anyio.create_task_group() as group,
                ):
                    for entry, print_, on_disk in to_probe:
                        group.start_soon(probe_one, send, money, entry, print_, on_disk)
            finally:
                if money.calls or money.written:
                    with anyio.CancelScope(shield=True):
                        await money.save(final=True)
    night_spent = (
        money.night_spent_usd
        if money is not None
        else (await in_thread(night_ledger, folder)).committed_usd
    )

    jobs = _fold([results[entry.job.id] for entry in entries])
    exact = all(item.calls is not None for item in jobs)
    bounded = all(item.calls_max is not None for item in jobs)
    return DryRun(
        jobs=jobs,
        stopped=stopped[0] if stopped else None,
        credentials_refused=refused_credentials[0] if refused_credentials else None,
        probe_calls=money.calls if money is not None else 0,
        probe_cost_usd=round(money.spent_usd, 6) if money is not None else 0.0,
        calls=sum(item.calls or 0 for item in jobs) if exact else None,
        cost_usd=round(sum(item.cost_usd or 0.0 for item in jobs), 6) if exact else None,
        calls_min=sum(item.calls_min for item in jobs),
        cost_min_usd=round(sum(item.cost_min_usd for item in jobs), 6),
        calls_max=sum(item.calls_max or 0 for item in jobs) if bounded else None,
        cost_max_usd=(
            round(sum(item.cost_max_usd or 0.0 for item in jobs), 6) if bounded else None
        ),
        night_spent_usd=round(night_spent, 6),
        budget_usd=settings.budget_usd,
        budget_stop=refused[0] if refused else None,
        not_probed=[entry.job.id for entry in entries if entry.job.id in not_probed],
    )


def _fold(rows: list[Estimate]) -> list[Estimate]:
    """One row per job: an incremental night's requests summed into their job's row."""
    folded: dict[str, Estimate] = {}
    requests: dict[str, int] = {}
    for row in rows:
        job_id = parent_of(row.job_id) or row.job_id
        if job_id == row.job_id:
            folded[job_id] = row
            continue
        requests[job_id] = requests.get(job_id, 0) + 1
        done = folded.get(job_id)
        if done is None:
            folded[job_id] = msgspec.structs.replace(row, job_id=job_id)
            continue

        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        folded[job_id] = msgspec.structs.replace(
            done,
            total_count=add(done.total_count, row.total_count),
            calls=add(done.calls, row.calls),
            cost_usd=add(done.cost_usd, row.cost_usd),
            calls_min=done.calls_min + row.calls_min,
            calls_max=add(done.calls_max, row.calls_max),
            cost_min_usd=done.cost_min_usd + row.cost_min_usd,
            cost_max_usd=add(done.cost_max_usd, row.cost_max_usd),
            pages_on_disk=done.pages_on_disk + row.pages_on_disk,
            error=done.error or row.error,
        )
    for job_id in requests:
        row = folded[job_id]
        source = f"{row.source}, incremental"
        folded[job_id] = msgspec.structs.replace(
            row,
            source=source,
            cost_usd=None if row.cost_usd is None else round(row.cost_usd, 6),
            cost_min_usd=round(row.cost_min_usd, 6),
            cost_max_usd=None if row.cost_max_usd is None else round(row.cost_max_usd, 6),
        )
    return list(folded.values())


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
        entries,
        provider=provider,
        credentials=credentials,
        settings=settings,
        probe=probe,
        proxy=proxy_for(provider.endpoint, environ) if probe else None,
    )
    return DryRunOutcome(loaded=loaded, result=result)
