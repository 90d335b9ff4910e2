"""The figures of a report, gathered from a run folder's files alone.

Each job's JSONL file and diff file are streamed once; what is kept is bounded by the
job's referring domains (one small record each, grouped by registrable domain), the
distinct countries and platform types, and the rank buckets: never the items themselves.

``run.json`` and the manifests are read tolerantly: a field that is missing or of
another type than expected is left out, never the whole file. Both the run.json that
totals one invocation at its top level and the one with ``night`` / ``invocation``
blocks are understood; the blocks win when present.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import types
import typing
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from intersect_batch.diff import DiffCounts, diff_path, earlier_run_dirs, previous_complete_run
from intersect_batch.durable import jsonl_lines
from intersect_batch.report.domains import host_of, normal_host, registrable_domain

__all__ = [
    "BUCKETS",
    "MAX_HOSTS",
    "UNKNOWN",
    "Attention",
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
    "attention",
    "collect_run",
    "decode_tolerantly",
    "rank_bucket_edges",
    "top_domains",
]

UNKNOWN = "(unknown)"

#: Host names remembered per referring domain (``www.x.org``, ``x.org``, ``blog.x.org``...).
MAX_HOSTS = 4


# --- Tolerant decoding of the run's own JSON files. ---

S = TypeVar("S", bound=msgspec.Struct)

_raw_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_MISSING = object()


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct class of ``tp`` or of ``tp | None``, else ``None``."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        structs = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(structs) == 1:
            return _struct_of(structs[0])
    return None


def _field_value(tp: Any, raw: msgspec.Raw) -> Any:
    struct = _struct_of(tp)
    if struct is not None:
        if bytes(raw).strip() == b"null":
            return None
        value = decode_tolerantly(struct, raw)
        return _MISSING if value is None else value
    if typing.get_origin(tp) is list:
        [inner] = typing.get_args(tp)
        inner_struct = _struct_of(inner)
        if inner_struct is not None:
            try:
                elements = _raw_list.decode(raw)
            except msgspec.DecodeError:
                return _MISSING
            decoded = (decode_tolerantly(inner_struct, e) for e in elements)
            return [e for e in decoded if e is not None]
    try:
        return msgspec.json.decode(raw, type=tp, strict=False)
    except msgspec.DecodeError:
        return _MISSING


def decode_tolerantly(cls: type[S], data: bytes | msgspec.Raw) -> S | None:
    """``data`` (a JSON object) as ``cls``, leaving out each field that does not fit.

    ``None`` when ``data`` is not a JSON object or lacks a required field. Nested Structs
    and lists of Structs are decoded the same way, element by element.
    """
    try:
        raw = _raw_object.decode(data)
    except msgspec.DecodeError:
        return None
    values: dict[str, Any] = {}
    for info in msgspec.structs.fields(cls):
        found = raw.get(info.encode_name)
        if found is None:
            continue
        value = _field_value(info.type, found)
        if value is not _MISSING:
            values[info.name] = value
    try:
        return cls(**values)
    except TypeError:  # a required field is missing
        return None


def _read(path: Path, cls: type[S]) -> S | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return decode_tolerantly(cls, data)


# --- What is read of a manifest and of run.json. ---


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


# --- What is decoded of an item: only the fields the report uses (items are untrusted). ---


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


class _Change(msgspec.Struct):
    change: str
    key: str | None = None
    item: _Item | None = None


_item_decoder = msgspec.json.Decoder(_Item)
_change_decoder = msgspec.json.Decoder(_Change)


@dataclass(slots=True)
class _Page:
    """One referring page, as the first backlink (and all of them) describe it."""

    host: str | None
    url: str | None
    rank: float | None
    page_rank: float | None
    first_seen: str | None
    mask: int
    country: str | None
    platforms: set[str]
    dofollow: bool


def _page(item: _Item, key: str | None = None) -> _Page:
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
    url = next((b.url_from for b in backlinks if b.url_from), None) or key
    host = first.domain_from or (host_of(url) if url else None)
    return _Page(
        host=host,
        url=url,
        rank=next((b.domain_from_rank for b in backlinks if b.domain_from_rank is not None), None),
        page_rank=next((b.page_from_rank for b in backlinks if b.page_from_rank is not None), None),
        first_seen=min((b.first_seen for b in backlinks if b.first_seen), default=None),
        mask=mask,
        country=first.domain_from_country,
        platforms={p for b in backlinks for p in (b.domain_from_platform_type or ())},
        dofollow=any(b.dofollow for b in backlinks),
    )


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

    def add(self, page: _Page) -> None:
        """Count one more page of the domain."""
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
        host = normal_host(page.host) if page.host else None
        if host is not None and host not in self.hosts:
            if len(self.hosts) < MAX_HOSTS:
                self.hosts.append(host)
            else:
                self.more_hosts = True


def _add(domains: dict[str, DomainStats], page: _Page) -> None:
    name = (registrable_domain(page.host) if page.host else "") or UNKNOWN
    stats = domains.get(name)
    if stats is None:
        stats = domains[name] = DomainStats(name)
    stats.add(page)


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
    """A job's (or a run date's) figures on one run date."""

    run_date: str
    status: str
    items: int
    cost_usd: float


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
    for line in jsonl_lines(path):
        try:
            item = _item_decoder.decode(line)
        except msgspec.DecodeError:
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
        _add(report.domains, page)


def aggregate_changes(report: JobReport, path: Path) -> None:
    """Stream a job's diff file once into ``report.new_domains`` / ``report.lost_domains``.

    Call it after :func:`aggregate_items`: a referring domain is then marked new
    (``new_since``) when every page it has tonight is new and none of its pages was lost,
    that is when it did not link at all on the previous run; a lost one is marked
    ``gone`` when no page of it links any more.
    """
    report.has_changes = True
    for line in jsonl_lines(path):
        try:
            change = _change_decoder.decode(line)
        except msgspec.DecodeError:
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
        _add(groups, _page(change.item or _Item(), change.key))
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
    on_disk = sorted(p.name.removesuffix(".manifest.json") for p in run_dir.glob("*.manifest.json"))
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
    path = diff_path(run_dir, view.job_id)
    if not path.is_file():
        return
    if report.diff is None:
        # An older manifest without diff counts: date the diff the way diff_job does.
        found = None if date is None else previous_complete_run(run_dir.parent, date, view.job_id)
        report.diff = DiffCounts(previous_run=found[0].name if found else None)
    aggregate_changes(report, path)
    if view.diff is None:
        report.diff = DiffCounts(
            previous_run=report.diff.previous_run, new=report.new_pages, lost=report.lost_pages
        )


def collect_run(run_dir: Path, *, history: int = 14) -> RunReport:
    """Gather a run folder's report: every job's aggregates and the last ``history`` runs."""
    run = _read(run_dir / "run.json", RunView)
    run_date = run.run_date if run is not None else run_dir.name
    try:
        date = dt.date.fromisoformat(run_dir.name)
    except ValueError:
        date = None
    earlier = earlier_run_dirs(run_dir.parent, date)[: max(0, history - 1)] if date else []
    folders = [*reversed(earlier), (date, run_dir)]
    lines = {line.job_id: line for line in run.jobs} if run is not None else {}

    jobs: list[JobReport] = []
    for job_id in _job_ids(run_dir, run):
        view = _read(run_dir / f"{job_id}.manifest.json", JobView)
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
        output = run_dir / (view.output or f"{job_id}.jsonl")
        if view.status == "complete" and output.is_file():
            aggregate_items(report, output)
        _changes(run_dir, date, report)
        for _, folder in folders:
            past = _read(folder / f"{job_id}.manifest.json", JobView)
            if past is not None:
                report.history.append(
                    HistoryPoint(folder.name, past.status, past.items_written, past.cost_usd)
                )
        jobs.append(report)

    points: list[HistoryPoint] = []
    for _, folder in folders:
        summary = run if folder == run_dir else _read(folder / "run.json", RunView)
        if summary is not None:
            status = "complete" if summary.exit_code == 0 else "needs attention"
            items, cost = summary.date_items(), summary.date_cost()
            points.append(HistoryPoint(folder.name, status, items or 0, cost or 0.0))
    return RunReport(run_dir=run_dir, run_date=run_date, run=run, jobs=jobs, history=points)


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
                has_section=True,
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
