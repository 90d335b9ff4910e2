"""What the night spent before this invocation: its ledger, checked against its other records.

The ledger (:mod:`intersect_batch.ledger`) is the night's account, but not its only
record: each job's manifest and each unfinished job's checkpoint keep the cost of that
job's calls over the night. A ledger deleted, damaged or set implausible (negative, not
finite) between two invocations is rebuilt from them; a readable one is lifted to them
when they say more. The night's spend is never reset to zero while its records say
otherwise.
"""

from __future__ import annotations

import logging

import msgspec

from intersect_batch.checkpoint import Counters, read_checkpoint
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger, find_ledger
from intersect_batch.manifest import read_manifest

__all__ = ["night_ledger", "night_records"]

log = logging.getLogger("intersect_batch")


def night_records(folder: RunFolder) -> Counters:
    """The night's calls, retries and cost by its jobs' own records, the larger per job."""
    per_job: dict[str, Counters] = {}
    for job_id in folder.job_ids():
        manifest = read_manifest(folder.manifest(job_id))
        if manifest is not None:
            per_job[job_id] = Counters(
                calls=manifest.calls, retries=manifest.retries, cost_usd=manifest.cost_usd
            )
    for job_id in folder.unfinished_job_ids():
        checkpoint = read_checkpoint(folder, job_id)
        if checkpoint is not None:
            known = per_job.get(job_id, Counters())
            per_job[job_id] = known.latest(checkpoint.counters)
    return Counters(
        calls=sum(c.calls for c in per_job.values()),
        retries=sum(c.retries for c in per_job.values()),
        cost_usd=round(sum(_usd(c.cost_usd) for c in per_job.values()), 8),
    )


def _usd(amount: float) -> float:
    # A record is outside text too: only an amount >= 0 counts. It is always finite:
    # msgspec decodes no non-finite number from JSON (1e999 is an error).
    return max(0.0, amount)


def night_ledger(folder: RunFolder) -> Ledger:
    """What earlier invocations of the date spent: the ledger, never below the records."""
    records = night_records(folder)
    problem: str | None = None
    try:
        ledger = find_ledger(folder.ledger)
    except (OSError, msgspec.DecodeError) as exc:
        ledger, problem = None, f"cannot be read ({exc})"
    if ledger is None:
        if problem is None and not records.calls:
            return Ledger()
        log.warning(
            "the night's ledger %s: counting %.5f USD from the night's manifests and checkpoints",
            problem or "is missing",
            records.cost_usd,
        )
        return Ledger(
            spent_usd=records.cost_usd,
            cost_usd=records.cost_usd,
            calls=records.calls,
            retries=records.retries,
        )
    if records.cost_usd > ledger.committed_usd + 1e-9:
        # An uncapped invocation killed between two writes of its ledger leaves it behind
        # its checkpoints: nothing to warn about.
        log.info(
            "the night's ledger says %.5f USD were spent, its jobs' records %.5f USD: "
            "counting the larger",
            ledger.committed_usd,
            records.cost_usd,
        )
        return msgspec.structs.replace(
            ledger,
            spent_usd=records.cost_usd,
            cost_usd=max(ledger.cost_usd, records.cost_usd),
            calls=max(ledger.calls, records.calls),
            retries=max(ledger.retries, records.retries),
        )
    return ledger
