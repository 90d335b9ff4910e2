"""What the report reads of a run's own files: ``run.json`` (in either of its shapes) and
``<id>.manifest.json``. Other fields are ignored; see :mod:`.tolerant` for damaged ones.

The older run.json totals the latest invocation at its top level (``calls``, ``cost_usd``,
...); the newer one has a ``night`` block (every job of the run date, all invocations)
and an ``invocation`` block (what the latest command did). The blocks win when present.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import msgspec

from intersect_batch.manifest import DiffCounts

__all__ = [
    "ConfigErrorView",
    "InvocationView",
    "JobView",
    "NightView",
    "RunJobLine",
    "RunView",
    "Totals",
]


class RefreshView(msgspec.Struct, kw_only=True):
    """A ``refresh: incremental`` job's night, from its manifest's ``refresh``."""

    mode: str = "full"
    cutoff: str | None = None
    lost: str | None = None
    missed_by_incremental: int | None = None
    missed_since: str | None = None


class JobView(msgspec.Struct, kw_only=True):
    """The part of ``<id>.manifest.json`` a report reads; other fields are ignored."""

    job_id: str
    status: str
    reason: str | None = None
    output: str | None = None
    request: dict[str, Any] = msgspec.field(default_factory=dict)
    items_written: int = 0
    calls: int = 0
    cost_usd: float = 0.0
    config_file: str | None = None
    config_line: int | None = None
    diff: DiffCounts | None = None
    refresh: RefreshView | None = None


class RunJobLine(msgspec.Struct, kw_only=True):
    """One job's line in run.json."""

    job_id: str
    status: str = ""
    reason: str | None = None
    items: int = 0
    calls: int = 0
    cost_usd: float = 0.0
    config_file: str | None = None
    config_line: int | None = None


class ConfigErrorView(msgspec.Struct, kw_only=True):
    """One invalid job config, as run.json lists it."""

    file: str = ""
    message: str = ""
    job: str | None = None
    field: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        """``file:line`` (or the file alone when the line is unknown)."""
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def describe(self) -> str:
        """``file:line: job 'id': field: message``, leaving out what is unknown."""
        parts = [self.where] if self.file else []
        if self.job is not None:
            parts.append(f"job {self.job!r}")
        if self.field is not None:
            parts.append(self.field)
        return ": ".join([*parts, self.message or "invalid"])


class NightView(msgspec.Struct, kw_only=True):
    """run.json's ``night``: every job of the run folder, all invocations of the date."""

    jobs_by_status: dict[str, int] | None = None
    jobs: int | None = None
    items: int | None = None
    calls: int | None = None
    retries: int | None = None
    cost_usd: float | None = None
    new_items: int | None = None
    lost_items: int | None = None
    invocations: int | None = None


class InvocationView(msgspec.Struct, kw_only=True):
    """run.json's ``invocation``: what the latest command did."""

    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    jobs_by_status: dict[str, int] | None = None
    calls: int | None = None
    retries: int | None = None
    cost_usd: float | None = None
    items: int | None = None
    new_items: int | None = None
    lost_items: int | None = None
    calls_per_minute: float | None = None
    jobs_run: int | None = None
    throttled_s: float | None = None


class RunView(msgspec.Struct, kw_only=True):
    """The part of ``run.json`` a report reads, in either of its shapes.

    The older shape totals the latest invocation at the top level (``calls``,
    ``cost_usd``...); the newer one has a ``night`` and an ``invocation`` block.
    """

    run_date: str
    version: str | None = None
    exit_code: int | None = None
    needs_attention: bool | None = None
    stop_reason: str | None = None
    night: NightView | None = None
    invocation: InvocationView | None = None
    jobs: list[RunJobLine] = msgspec.field(default_factory=list)
    config_errors: list[ConfigErrorView] = msgspec.field(default_factory=list)
    # The older shape's top level: what the latest invocation did.
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    jobs_by_status: dict[str, int] | None = None
    calls: int | None = None
    retries: int | None = None
    items: int | None = None
    cost_usd: float | None = None
    calls_per_minute: float | None = None
    new_items: int | None = None
    lost_items: int | None = None

    def night_totals(self) -> Totals | None:
        """The run date as a whole, when run.json totals it (``None`` otherwise)."""
        night = self.night
        if night is None:
            return None
        return Totals(
            scope="night",
            jobs_by_status=night.jobs_by_status,
            jobs=night.jobs,
            items=night.items,
            new_items=night.new_items,
            lost_items=night.lost_items,
            calls=night.calls,
            retries=night.retries,
            cost_usd=night.cost_usd,
            invocations=night.invocations,
        )

    def invocation_totals(self) -> Totals | None:
        """What the latest invocation did: the ``invocation`` block, else the top level."""
        inv = self.invocation
        if inv is not None:
            return Totals(
                scope="invocation",
                jobs_by_status=inv.jobs_by_status,
                items=inv.items,
                new_items=inv.new_items,
                lost_items=inv.lost_items,
                calls=inv.calls,
                retries=inv.retries,
                cost_usd=inv.cost_usd,
                duration_s=inv.duration_s,
                calls_per_minute=inv.calls_per_minute,
                jobs_run=inv.jobs_run,
                throttled_s=inv.throttled_s,
                started_at=inv.started_at,
                finished_at=inv.finished_at,
            )
        top = Totals(
            scope="invocation",
            jobs_by_status=self.jobs_by_status,
            items=self.items,
            new_items=self.new_items,
            lost_items=self.lost_items,
            calls=self.calls,
            retries=self.retries,
            cost_usd=self.cost_usd,
            duration_s=self.duration_s,
            calls_per_minute=self.calls_per_minute,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )
        return None if top.is_empty() else top

    def date_items(self) -> int | None:
        """The items the run date holds: the night's, else the only figure there is."""
        if self.night is not None and self.night.items is not None:
            return self.night.items
        return self.items

    def date_cost(self) -> float | None:
        """The run date's spend: the night's, else the only figure there is."""
        if self.night is not None and self.night.cost_usd is not None:
            return self.night.cost_usd
        return self.cost_usd


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    """One labelled group of run figures: the night's (``scope="night"``) or the latest
    invocation's (``scope="invocation"``). ``None``: run.json does not say."""

    scope: str
    jobs_by_status: dict[str, int] | None = None
    jobs: int | None = None
    items: int | None = None
    new_items: int | None = None
    lost_items: int | None = None
    calls: int | None = None
    retries: int | None = None
    cost_usd: float | None = None
    duration_s: float | None = None
    calls_per_minute: float | None = None
    invocations: int | None = None
    jobs_run: int | None = None
    throttled_s: float | None = None
    started_at: str | None = None
    finished_at: str | None = None

    def is_empty(self) -> bool:
        """True when not one figure is known."""
        return all(
            getattr(self, f.name) is None for f in dataclasses.fields(self) if f.name != "scope"
        )
