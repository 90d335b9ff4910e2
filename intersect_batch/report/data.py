"""The figures of a report, gathered from a run folder's files alone.

Each job's JSONL file and diff file are streamed once; what is kept is bounded by the
job's referring domains (one small record each, grouped by registrable domain), the
distinct countries and platform types, and the rank buckets: never the items themselves.

``run.json`` and the manifests are read through the report's own views of them
(:mod:`.runfiles`), tolerantly (:mod:`.tolerant`): both the run.json that totals one
invocation at its top level and the one with ``night`` / ``invocation`` blocks.

A file that cannot be read (a line past the cap, a FIFO or another non-regular file in
its place, removed meanwhile by ``--keep-days``) is left out with a warning naming it, and
the job's section says so (``JobReport.problems``); the rest of the report is made.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from intersect_batch.diff import DiffCounts, previous_complete_run
from intersect_batch.durable import MAX_LINE_BYTES, UnreadableFile, jsonl_lines, shown
from intersect_batch.layout import (
    RUN_JSON,
    RunFolder,
    diff_name,
    earlier_runs,
    job_ids_in,
    manifest_name,
    result_name,
)
from intersect_batch.report.condition import night_condition
from intersect_batch.report.domains import Sites, host_of
from intersect_batch.report.runfiles import (
    ConfigErrorView,
    InvocationView,
    JobView,
    NightView,
    RunJobLine,
    RunView,
    Totals,
)
from intersect_batch.report.tolerant import decode_tolerantly, read_tolerantly

__all__ = [
    "BUCKETS",
    "MAX_HOSTS",
    "UNKNOWN",
    "ConfigErrorView",
    "DomainStats",
    "HistoryPoint",
    "InvocationView",
    "JobReport",
    "JobView",
    "NightView",
    "RunJobLine",
    "RunReport",
    "RunView",
    "Totals",
    "aggregate_changes",
    "aggregate_items",
    "collect_run",
    "decode_tolerantly",
    "rank_bucket_edges",
    "top_domains",
]

log = logging.getLogger("intersect_batch")

UNKNOWN = "(unknown)"

#: A diff line holds an item (at most ``MAX_LINE_BYTES``) and its key.
MAX_DIFF_LINE_BYTES = 2 * MAX_LINE_BYTES

#: Host names remembered per referring domain (``www.x.org``, ``x.org``, ``blog.x.org``...).
MAX_HOSTS = 4


# --- What is decoded of an item: only the fields the report uses (items are untrusted). ---


# gc=False: the decoded items hold no cycles, and a pass decodes hundreds of thousands.
class _Backlink(msgspec.Struct, gc=False):
    url_from: str | None = None
    domain_from: str | None = None
    domain_from_rank: float | None = None
    page_from_rank: float | None = None
    domain_from_country: str | None = None
    domain_from_platform_type: list[str] | None = None
    dofollow: bool | None = None
    first_seen: str | None = None


class _Item(msgspec.Struct, gc=False):
    page_intersection: dict[str, list[_Backlink] | None] | None = None


class _Change(msgspec.Struct, gc=False):
    change: str
    key: str | None = None
    item: _Item | None = None


_item_decoder = msgspec.json.Decoder(_Item)
_change_decoder = msgspec.json.Decoder(_Change)

#: A line over 1 MiB holding more JSON values than this is not decoded, but counted as
#: unreadable: a real item holds a few thousand, while a 60 MB item of empty backlinks
#: (within the crawler's answer caps) would be twenty million objects, gigabytes.
MAX_LINE_VALUES = 500_000


def _too_many_values(line: bytes) -> bool:
    # A line under 1 MiB holds at most ~350,000 values: only long lines are counted.
    if len(line) <= 2**20:
        return False
    return line.count(b",") + line.count(b"{") + line.count(b"[") > MAX_LINE_VALUES


@dataclass(slots=True)
class _Page:
    """One referring page, as its backlinks (one per target it links to) describe it."""

    host: str | None = None
    url: str | None = None
    rank: float | None = None
    page_rank: float | None = None
    first_seen: str | None = None
    mask: int = 0
    country: str | None = None
    platforms: set[str] | None = None
    dofollow: bool = False


def _page(item: _Item, key: str | None = None) -> _Page:
    page = _Page()
    first = True
    for number, links in (item.page_intersection or {}).items():
        if not links:
            continue
        if number.isdigit() and 1 <= int(number) <= 64:
            page.mask |= 1 << (int(number) - 1)
        for b in links:
            # The referring page is the same for every target: the first backlink
            # describes it; later ones only fill what it lacks.
            if first:
                first = False
                page.host, page.country = b.domain_from, b.domain_from_country
            if page.url is None and b.url_from:
                page.url = b.url_from
            if page.rank is None:
                page.rank = b.domain_from_rank
            if page.page_rank is None:
                page.page_rank = b.page_from_rank
            if b.first_seen and (page.first_seen is None or b.first_seen < page.first_seen):
                page.first_seen = b.first_seen
            if b.domain_from_platform_type:
                if page.platforms is None:
                    page.platforms = set(b.domain_from_platform_type)
                else:
                    page.platforms.update(b.domain_from_platform_type)
            if b.dofollow:
                page.dofollow = True
    if page.url is None:
        page.url = key
    if page.host is None and page.url:
        page.host = host_of(page.url)
    return page


# --- Aggregates. ---


@dataclass(slots=True)
class DomainStats:
    """One referring domain (a registrable domain: ``www.x.org`` and ``x.org`` are one)."""

    domain: str
    rank: float | None = None
    pages: int = 0
    #: Bit ``n - 1`` set: a page of the domain links to target number ``n``.
    targets_mask: int = 0
    example_url: str | None = None
    example_page_rank: float | None = None
    #: The earliest ``first_seen`` of its backlinks: when the API first saw a link.
    first_seen: str | None = None
    #: Up to :data:`MAX_HOSTS` host names its pages were found on, in the order met.
    hosts: list[str] = field(default_factory=list)
    more_hosts: bool = False
    #: The previous run's date when the domain did not link then (a new domain).
    new_since: str | None = None
    #: In the lost list: no page of the domain links any more.
    gone: bool = False

    @property
    def targets_linked(self) -> int:
        """How many of the job's targets the domain links to."""
        return self.targets_mask.bit_count()

    def order(self) -> tuple[bool, float, int, int, str]:
        """Ascending order puts the best first: rank, then targets linked, pages, name."""
        rank = 0.0 if self.rank is None else -self.rank
        return (self.rank is None, rank, -self.targets_linked, -self.pages, self.domain)

    def add(self, page: _Page, host: str | None) -> None:
        """Count one more page of the domain, found on ``host``."""
        self.pages += 1
        self.targets_mask |= page.mask
        if page.rank is not None and (self.rank is None or page.rank > self.rank):
            self.rank = page.rank
        if page.url is not None and (
            self.example_url is None
            or (page.page_rank is not None and (self.example_page_rank or -1.0) < page.page_rank)
        ):
            self.example_url, self.example_page_rank = page.url, page.page_rank
        if page.first_seen and (self.first_seen is None or page.first_seen < self.first_seen):
            self.first_seen = page.first_seen
        if host is not None and host not in self.hosts:
            if len(self.hosts) < MAX_HOSTS:
                self.hosts.append(host)
            else:
                self.more_hosts = True


def _add(domains: dict[str, DomainStats], page: _Page, sites: Sites) -> None:
    host, name = sites(page.host) if page.host else (None, "")
    stats = domains.get(name or UNKNOWN)
    if stats is None:
        stats = domains[name or UNKNOWN] = DomainStats(name or UNKNOWN)
    stats.add(page, host)


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
    #: True once the diff file was read into ``new_domains`` and ``lost_domains``.
    has_changes: bool = False
    new_pages: int = 0
    lost_pages: int = 0
    #: The diff's new (and lost) referring pages, grouped by referring domain.
    new_domains: dict[str, DomainStats] = field(default_factory=dict)
    lost_domains: dict[str, DomainStats] = field(default_factory=dict)
    history: list[HistoryPoint] = field(default_factory=list)
    #: run.json's line for the job, when there is one.
    line: RunJobLine | None = None
    #: Files of the job that could not be read and were left out, each naming its file.
    problems: list[str] = field(default_factory=list)
    #: True when the items file could not be read: there is no CSV of the job.
    items_left_out: bool = False

    def forget_items(self) -> None:
        """Drop what an unreadable items file gave: no figure comes from half a file."""
        self.has_items, self.items_left_out = False, True
        self.items = self.unreadable_lines = self.dofollow_items = self.unranked = 0
        self.domains, self.rank_buckets = {}, []
        self.countries, self.platforms = Counter(), Counter()

    def forget_changes(self) -> None:
        """Drop what an unreadable diff file gave."""
        self.has_changes = False
        self.new_pages = self.lost_pages = 0
        self.new_domains, self.lost_domains = {}, {}

    #: False once its aggregates are let go: a row in the jobs table, no section.
    detailed: bool = True

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.view.job_id

    @property
    def since(self) -> str | None:
        """The run date the job's diff compares with, when there is a diff."""
        diff = self.diff
        if diff is None or diff.skipped is not None:
            return None
        return diff.previous_run

    @property
    def links_all_targets(self) -> bool:
        """True when every referring domain links to every target (nothing to tell apart)."""
        full = len(self.targets)
        return all(
            d.targets_linked >= full
            for group in (self.domains, self.new_domains, self.lost_domains)
            for d in group.values()
        )

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
    """A job's (or a run date's) figures on one run date.

    ``status``: a job's status (``complete``, ``partial``, ``failed``), or a run date's
    condition (:func:`~intersect_batch.report.condition.night_condition`).
    """

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
    sites = Sites()
    report.rank_buckets = [0] * BUCKETS
    for line in jsonl_lines(path, max_line=MAX_LINE_BYTES):
        try:
            item = None if _too_many_values(line) else _item_decoder.decode(line)
        except msgspec.DecodeError:
            item = None
        if item is None:
            report.unreadable_lines += 1
            continue
        page = _page(item)
        report.items += 1
        if page.rank is None:
            report.unranked += 1
        else:
            report.rank_buckets[_bucket(page.rank, report.rank_scale)] += 1
        report.countries[page.country or UNKNOWN] += 1
        for platform in page.platforms or {UNKNOWN}:
            report.platforms[platform] += 1
        if page.dofollow:
            report.dofollow_items += 1
        _add(report.domains, page, sites)


def aggregate_changes(report: JobReport, path: Path) -> None:
    """Stream a job's diff file once into ``report.new_domains`` / ``report.lost_domains``.

    Call it after :func:`aggregate_items`: a referring domain is then marked new
    (``new_since``) when every page it has tonight is new and none of its pages was lost,
    that is when it did not link at all on the previous run; a lost one is marked
    ``gone`` when no page of it links any more.
    """
    report.has_changes = True
    sites = Sites()
    for line in jsonl_lines(path, max_line=MAX_DIFF_LINE_BYTES):
        try:
            change = None if _too_many_values(line) else _change_decoder.decode(line)
        except msgspec.DecodeError:
            change = None
        if change is None:
            report.unreadable_lines += 1
            continue
        if change.change == "new":
            report.new_pages += 1
            groups = report.new_domains
        elif change.change == "lost":
            report.lost_pages += 1
            groups = report.lost_domains
        else:
            continue
        _add(groups, _page(change.item or _Item(), change.key), sites)
    since = report.since
    for name, new in report.new_domains.items():
        now = report.domains.get(name)
        if now is not None and now.pages == new.pages and name not in report.lost_domains:
            new.new_since = now.new_since = since or "the previous run"
    for name, lost in report.lost_domains.items():
        lost.gone = report.has_items and name not in report.domains


def top_domains(report: JobReport, count: int) -> list[DomainStats]:
    """The ``count`` best referring domains (see :meth:`DomainStats.order`)."""
    return heapq.nsmallest(count, report.domains.values(), key=DomainStats.order)


def _job_ids(run_dir: Path, run: RunView | None) -> list[str]:
    on_disk = job_ids_in(run_dir)
    if run is None:
        return on_disk
    listed = [line.job_id for line in run.jobs if line.job_id in on_disk]
    return listed + [job_id for job_id in on_disk if job_id not in listed]


def _rank_scale(request: Mapping[str, Any]) -> int:
    # The API's default scale is one_thousand.
    return 100 if request.get("rank_scale") == "one_hundred" else 1000


def _changes(run_dir: Path, date: dt.date | None, report: JobReport) -> None:
    """Read the job's diff file, when the manifest does not say there is none."""
    view = report.view
    if view.status != "complete" or (view.diff is not None and view.diff.skipped is not None):
        return
    path = run_dir / diff_name(view.job_id)
    if not _there(path):
        return
    if report.diff is None:
        # An older manifest without diff counts: date the diff the way diff_job does.
        found = (
            None
            if date is None
            else previous_complete_run(RunFolder(run_dir.parent, date), view.job_id)
        )
        report.diff = DiffCounts(previous_run=found[0].name if found else None)
    try:
        aggregate_changes(report, path)
    except OSError as exc:
        report.forget_changes()
        _left_out(report, "its changes", exc, path)
        return
    if view.diff is None:
        report.diff = DiffCounts(
            previous_run=report.diff.previous_run, new=report.new_pages, lost=report.lost_pages
        )


def _there(path: Path) -> bool:
    """Whether anything is at ``path`` (a FIFO too: reading it is refused with a warning)."""
    return path.exists() and not path.is_symlink()


def _left_out(report: JobReport, what: str, exc: OSError, path: Path) -> None:
    """Say that a file of the job could not be read, naming it; the report goes on."""
    if isinstance(exc, UnreadableFile):
        why = str(exc)
    else:
        why = f"{exc.strerror or type(exc).__name__} ({shown(exc.filename or path)})"
    problem = f"{what} are left out: {why}"
    log.warning("report of job %s: %s", shown(report.job_id), problem)
    report.problems.append(problem)


def _rank_for_section(job: JobReport) -> tuple[bool, int, int]:
    """Higher first: a job that needs attention, then the most new items, then items."""
    new = job.diff.new if job.diff is not None and job.diff.skipped is None else 0
    return (job.view.status != "complete", new, job.items)


def brief(job: JobReport) -> None:
    """Let a job's aggregates go: it keeps its row in the jobs table, not its section."""
    job.detailed = False
    job.domains, job.new_domains, job.lost_domains = {}, {}, {}
    job.countries, job.platforms, job.rank_buckets = Counter(), Counter(), []


def collect_run(
    run_dir: Path,
    *,
    history: int = 14,
    on_job: Callable[[JobReport], None] | None = None,
    detailed: int | None = None,
) -> RunReport:
    """Gather a run folder's report: every job's aggregates and the last ``history`` runs.

    ``on_job`` sees each job once its aggregates are complete (its CSV is written then).
    ``detailed``: keep the aggregates of at most that many jobs (those that need
    attention, then those with the most new items); the others are :func:`brief`, so a
    folder of many jobs is held in memory a row a job.
    """
    kept: list[tuple[tuple[bool, int, int], int, JobReport]] = []
    run = read_tolerantly(run_dir / RUN_JSON, RunView)
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
    lines = {line.job_id: line for line in run.jobs} if run is not None else {}

    jobs: list[JobReport] = []
    for job_id in _job_ids(run_dir, run):
        view = read_tolerantly(run_dir / manifest_name(job_id), JobView)
        if view is None:
            continue
        exclude = view.request.get("exclude_targets") or []
        report = JobReport(
            view=view,
            targets=_targets(view.request),
            exclude_targets=[str(e) for e in exclude] if isinstance(exclude, list) else [],
            rank_scale=_rank_scale(view.request),
            diff=view.diff,
            line=lines.get(job_id),
        )
        output = run_dir / (view.output or result_name(job_id))
        if view.status == "complete" and _there(output):
            try:
                aggregate_items(report, output)
            except OSError as exc:
                report.forget_items()
                _left_out(report, "its items", exc, output)
        _changes(run_dir, date, report)
        for _, folder in folders:
            # The run folder's own manifest was read above: once a job is enough.
            past = (
                view
                if folder == run_dir
                else read_tolerantly(folder / manifest_name(job_id), JobView)
            )
            if past is not None:
                report.history.append(
                    HistoryPoint(folder.name, past.status, past.items_written, past.cost_usd)
                )
        jobs.append(report)
        if on_job is not None:
            on_job(report)
        if detailed is not None:
            heapq.heappush(kept, (_rank_for_section(report), -len(jobs), report))
            if len(kept) > detailed:
                brief(heapq.heappop(kept)[2])

    points: list[HistoryPoint] = []
    for _, folder in folders:
        summary = run if folder == run_dir else read_tolerantly(folder / RUN_JSON, RunView)
        if summary is not None:
            # complete, attention, partial or unreached (report.condition).
            status = night_condition(summary)
            items, cost = summary.date_items(), summary.date_cost()
            points.append(HistoryPoint(folder.name, status, items or 0, cost or 0.0))
    return RunReport(run_dir=run_dir, run_date=run_date, run=run, jobs=jobs, history=points)
