"""The figures of a report, gathered from a run folder's files alone.

Each job's JSONL file is streamed once; what is kept is bounded by the job's referring
domains (one small record each), the distinct countries and platform types, and the
rank buckets: never the items themselves.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from intersect_batch.diff import (
    DiffCounts,
    previous_complete_run,
    read_diff_counts,
)
from intersect_batch.durable import jsonl_lines
from intersect_batch.layout import RunFolder, earlier_runs

__all__ = [
    "BUCKETS",
    "UNKNOWN",
    "DomainStats",
    "HistoryPoint",
    "JobReport",
    "JobView",
    "RunReport",
    "RunView",
    "aggregate_items",
    "collect_run",
    "rank_bucket_edges",
    "top_domains",
]

UNKNOWN = "(unknown)"


# --- What is decoded: only the fields the report uses (items are untrusted text). ---


class _Backlink(msgspec.Struct):
    url_from: str | None = None
    domain_from: str | None = None
    domain_from_rank: float | None = None
    page_from_rank: float | None = None
    domain_from_country: str | None = None
    domain_from_platform_type: list[str] | None = None
    dofollow: bool | None = None
    first_seen: str | None = None


class _Item(msgspec.Struct):
    page_intersection: dict[str, list[_Backlink] | None] | None = None


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
    diff: DiffCounts | None = None


class _JobLineView(msgspec.Struct):
    job_id: str
    status: str = ""
    items: int = 0
    cost_usd: float = 0.0


class _NightView(msgspec.Struct, kw_only=True):
    jobs_by_status: dict[str, int] = msgspec.field(default_factory=dict)
    calls: int = 0
    items: int = 0
    cost_usd: float = 0.0


class _InvocationView(msgspec.Struct, kw_only=True):
    duration_s: float | None = None


class RunView(msgspec.Struct, kw_only=True):
    """The part of ``run.json`` a report reads (the night's totals where there are any)."""

    run_date: str
    exit_code: int | None = None
    duration_s: float | None = None
    jobs_by_status: dict[str, int] = msgspec.field(default_factory=dict)
    calls: int = 0
    items: int = 0
    cost_usd: float = 0.0
    jobs: list[_JobLineView] = msgspec.field(default_factory=list)
    night: _NightView | None = None
    invocation: _InvocationView | None = None

    def __post_init__(self) -> None:
        if self.night is not None:
            self.jobs_by_status = self.night.jobs_by_status
            self.calls, self.items = self.night.calls, self.night.items
            self.cost_usd = self.night.cost_usd
        if self.invocation is not None:
            self.duration_s = self.invocation.duration_s


_item_decoder = msgspec.json.Decoder(_Item)
_job_decoder = msgspec.json.Decoder(JobView)
_run_decoder = msgspec.json.Decoder(RunView)


# --- Aggregates. ---


@dataclass(slots=True)
class DomainStats:
    """One referring domain of a job: its best rank, its pages, the targets it links to."""

    domain: str
    rank: float | None = None
    pages: int = 0
    #: Bit ``n - 1`` set: a page of the domain links to target number ``n``.
    targets_mask: int = 0
    example_url: str | None = None
    example_page_rank: float | None = None
    first_seen: str | None = None

    @property
    def targets_linked(self) -> int:
        """How many of the job's targets the domain links to."""
        return self.targets_mask.bit_count()

    def order(self) -> tuple[bool, float, int, int, str]:
        """Ascending order puts the best first: rank, then targets linked, pages, name."""
        rank = 0.0 if self.rank is None else -self.rank
        return (self.rank is None, rank, -self.targets_linked, -self.pages, self.domain)


@dataclass(slots=True)
class JobReport:
    """Everything shown about one job."""

    view: JobView
    targets: dict[str, str]
    exclude_targets: list[str]
    rank_scale: int
    has_items: bool = False
    items: int = 0
    unreadable_lines: int = 0
    dofollow_items: int = 0
    domains: dict[str, DomainStats] = field(default_factory=dict)
    rank_buckets: list[int] = field(default_factory=list)
    unranked: int = 0
    countries: Counter[str] = field(default_factory=Counter)
    platforms: Counter[str] = field(default_factory=Counter)
    diff: DiffCounts | None = None
    history: list[HistoryPoint] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.view.job_id

    def linked_targets(self, domain: DomainStats) -> list[str]:
        """The targets a referring domain links to, as the job's request names them."""
        mask = domain.targets_mask
        return [
            self.targets.get(str(n), f"target {n}")
            for n in range(1, mask.bit_length() + 1)
            if mask >> (n - 1) & 1
        ]


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """A job's (or a run's) figures on one run date."""

    run_date: str
    status: str
    items: int
    cost_usd: float


@dataclass(slots=True)
class RunReport:
    """Everything shown about a run folder."""

    run_dir: Path
    run_date: str
    run: RunView | None
    jobs: list[JobReport]
    history: list[HistoryPoint]


#: Rank buckets per chart; bucket ``i`` holds ranks in ``[i * width, (i + 1) * width)``.
BUCKETS = 10


def rank_bucket_edges(rank_scale: int) -> list[tuple[int, int]]:
    """The ``(low, high)`` rank range of each bucket; the last includes the scale's top."""
    width = rank_scale // BUCKETS
    return [
        (i * width, (i + 1) * width - 1 if i < BUCKETS - 1 else rank_scale) for i in range(BUCKETS)
    ]


def _bucket(rank: float, rank_scale: int) -> int:
    width = rank_scale / BUCKETS
    return max(0, min(BUCKETS - 1, int(rank // width)))


def _targets(request: Mapping[str, Any]) -> dict[str, str]:
    raw = request.get("targets")
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {str(i): str(v) for i, v in enumerate(raw, start=1)}
    return {}


def aggregate_items(report: JobReport, path: Path) -> None:
    """Stream a job's JSONL file once into ``report``'s bounded aggregates."""
    report.has_items = True
    report.rank_buckets = [0] * BUCKETS
    domains = report.domains
    for line in jsonl_lines(path):
        try:
            item = _item_decoder.decode(line)
        except msgspec.DecodeError:
            report.unreadable_lines += 1
            continue
        report.items += 1
        backlinks: list[_Backlink] = []
        mask = 0
        for number, links in (item.page_intersection or {}).items():
            if not links:
                continue
            backlinks.extend(links)
            if number.isdigit() and 1 <= int(number) <= 64:
                mask |= 1 << (int(number) - 1)
        # The referring page is the same for every target: the first backlink describes it.
        first = backlinks[0] if backlinks else _Backlink()
        rank = next((b.domain_from_rank for b in backlinks if b.domain_from_rank is not None), None)
        if rank is None:
            report.unranked += 1
        else:
            report.rank_buckets[_bucket(rank, report.rank_scale)] += 1
        report.countries[first.domain_from_country or UNKNOWN] += 1
        platforms = {p for b in backlinks for p in (b.domain_from_platform_type or ())}
        for platform in platforms or {UNKNOWN}:
            report.platforms[platform] += 1
        if any(b.dofollow for b in backlinks):
            report.dofollow_items += 1

        name = first.domain_from or UNKNOWN
        stats = domains.get(name)
        if stats is None:
            stats = domains[name] = DomainStats(name)
        stats.pages += 1
        stats.targets_mask |= mask
        if rank is not None and (stats.rank is None or rank > stats.rank):
            stats.rank = rank
        page_rank = next(
            (b.page_from_rank for b in backlinks if b.page_from_rank is not None), None
        )
        url = next((b.url_from for b in backlinks if b.url_from), None)
        if url is not None and (
            stats.example_url is None
            or (page_rank is not None and (stats.example_page_rank or -1.0) < page_rank)
        ):
            stats.example_url, stats.example_page_rank = url, page_rank
        for b in backlinks:
            if b.first_seen and (stats.first_seen is None or b.first_seen < stats.first_seen):
                stats.first_seen = b.first_seen


def top_domains(report: JobReport, count: int) -> list[DomainStats]:
    """The ``count`` best referring domains (see :meth:`DomainStats.order`)."""
    return heapq.nsmallest(count, report.domains.values(), key=DomainStats.order)


def _read(path: Path, decoder: msgspec.json.Decoder[Any]) -> Any:
    try:
        return decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


def _job_ids(run_dir: Path, run: RunView | None) -> list[str]:
    on_disk = sorted(p.name.removesuffix(".manifest.json") for p in run_dir.glob("*.manifest.json"))
    if run is None:
        return on_disk
    listed = [line.job_id for line in run.jobs if line.job_id in on_disk]
    return listed + [job_id for job_id in on_disk if job_id not in listed]


def _rank_scale(request: Mapping[str, Any]) -> int:
    # The API's default scale is one_thousand.
    return 100 if request.get("rank_scale") == "one_hundred" else 1000


def _diff(run_dir: Path, date: dt.date | None, view: JobView) -> DiffCounts | None:
    """The manifest's diff counts; else those of the diff file, dated like diff_job does."""
    if view.diff is not None:
        return view.diff
    counts = read_diff_counts(run_dir / f"{view.job_id}.diff.jsonl")
    if counts is None:
        return None
    found = (
        None
        if date is None
        else previous_complete_run(RunFolder(run_dir.parent, date), view.job_id)
    )
    return DiffCounts(previous_run=found[0].name if found else None, new=counts[0], lost=counts[1])


def collect_run(run_dir: Path, *, history: int = 14) -> RunReport:
    """Gather a run folder's report: every job's aggregates and the last ``history`` runs."""
    run = _read(run_dir / "run.json", _run_decoder)
    run_date = run.run_date if run is not None else run_dir.name
    try:
        date = dt.date.fromisoformat(run_dir.name)
    except ValueError:
        date = None
    earlier = (
        [(f.date, f.path) for f in earlier_runs(run_dir.parent, date)][: max(0, history - 1)]
        if date
        else []
    )
    folders = [*reversed(earlier), (date, run_dir)]

    jobs: list[JobReport] = []
    for job_id in _job_ids(run_dir, run):
        view = _read(run_dir / f"{job_id}.manifest.json", _job_decoder)
        if view is None:
            continue
        exclude = view.request.get("exclude_targets") or []
        report = JobReport(
            view=view,
            targets=_targets(view.request),
            exclude_targets=[str(e) for e in exclude] if isinstance(exclude, list) else [],
            rank_scale=_rank_scale(view.request),
            diff=_diff(run_dir, date, view),
        )
        output = run_dir / (view.output or f"{job_id}.jsonl")
        if view.status == "complete" and output.is_file():
            aggregate_items(report, output)
        for _, folder in folders:
            past = _read(folder / f"{job_id}.manifest.json", _job_decoder)
            if past is not None:
                report.history.append(
                    HistoryPoint(folder.name, past.status, past.items_written, past.cost_usd)
                )
        jobs.append(report)

    points: list[HistoryPoint] = []
    for _, folder in folders:
        summary = run if folder == run_dir else _read(folder / "run.json", _run_decoder)
        if summary is not None:
            status = "complete" if summary.exit_code == 0 else "needs attention"
            points.append(HistoryPoint(folder.name, status, summary.items, summary.cost_usd))
    return RunReport(run_dir=run_dir, run_date=run_date, run=run, jobs=jobs, history=points)
