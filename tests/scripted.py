"""A scripted API for the crawler's seam: answers chosen per (job, offset), no server.

Each job has a total_count and items of its own; a script can make one call of a page
slow, fail, or come back empty. Calls are recorded with their virtual send time, and the
fake watches what the crawler promises: never more calls at once than its slots; with
``unread``, its answers come back undecoded (as over HTTP) and it watches that no more
pages are decoded and not yet durable than the crawl's memory allows.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from intersect_batch.answer import FetchedPage
from intersect_batch.crawl import (
    Call,
    CrawlJob,
    CrawlObserver,
    CrawlResult,
    Fetch,
    JobFinal,
    Reply,
    crawl,
)
from intersect_batch.errors import ApiError
from intersect_batch.jobs import StoreFactory
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger
from intersect_batch.pacing import price
from intersect_batch.settings import Limits, RetryPolicy, RunSettings
from intersect_batch.stop import CrawlControl
from intersect_batch.store import JobStore

DATE = dt.date(2026, 11, 29)

#: What a script returns for one call: an answer, an error to raise, or None (normal).
Step = Callable[["ScriptedApi", Call], Awaitable[FetchedPage | None]]


def item(job: str, n: int) -> bytes:
    """The n-th item of a job, compact."""
    body = {"page_intersection": {"1": [{"url_from": f"https://{job}.example/{n}"}]}, "n": n}
    return json.dumps(body, separators=(",", ":")).encode()


def lines_of(job: str, total: int) -> bytes:
    """A complete result file of a job."""
    return b"".join(item(job, n) + b"\n" for n in range(total))


@dataclass
class Sent:
    job: str
    offset: int
    limit: int
    at: float


@dataclass
class ScriptedApi:
    """The fake API: totals per job, default latency, scripts per (job, offset)."""

    totals: dict[str, int]
    latency: float = 1.0
    price_factor: float = 1.0
    scripts: dict[tuple[str, int], list[Step]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    #: Answer with an :class:`Unread` reply, decoded when the crawl reads it (as the
    #: HTTP transport does), instead of the page itself.
    unread: bool = False
    #: With ``unread``: the most pages decoded and not yet durable at once, by
    #: ``durable_pages`` (what the test's store made durable so far).
    decoded_not_durable_max: int = 0
    decoded: int = 0
    durable_pages: Callable[[], int] = lambda: 0
    #: With ``unread``: how long reading a reply on takes (a large body after its place).
    read_latency: float = 0.0
    #: With ``unread``: replies dropped without being read.
    discarded: int = 0
    billed: float = 0.0
    #: Calls answered with an error (scripted).
    failures: int = 0
    calls_by_page: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))

    def script(self, job: str, offset: int, *steps: Step) -> None:
        """The next calls of this page take these steps, one per call, then answer normally."""
        self.scripts.setdefault((job, offset), []).extend(steps)

    def page(
        self, call: Call, *, items: int | None = None, total: int | None = None
    ) -> FetchedPage:
        """The normal answer to a call (or one with fewer items / another total)."""
        whole = self.totals[call.job_id]
        count = max(0, min(call.limit, whole - call.offset)) if items is None else items
        lines = [item(call.job_id, call.offset + k) for k in range(count)]
        cost = price(1, count) * self.price_factor
        return FetchedPage(
            total_count=whole if total is None else total,
            items_count=count,
            lines=lines,
            cost=cost,
            task_id=None,
        )

    async def __call__(self, call: Call) -> FetchedPage:
        self.sent.append(Sent(call.job_id, call.offset, call.limit, anyio.current_time()))
        self.calls_by_page[(call.job_id, call.offset)] += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            steps = self.scripts.get((call.job_id, call.offset))
            answer = None
            if steps:
                try:
                    answer = await steps.pop(0)(self, call)
                except ApiError:
                    self.failures += 1
                    raise
            else:
                await anyio.sleep(self.latency)
            if answer is None:
                answer = self.page(call)
        finally:
            self.in_flight -= 1
        self.billed += answer.cost or 0.0
        return answer

    async def reply(self, call: Call) -> Reply:
        """The answer to a call as the crawl is handed it: unread, with ``unread``."""
        page = await self(call)
        return ScriptedUnread(self, page) if self.unread else page


@dataclass(eq=False)
class ScriptedUnread:
    """An answer not yet decoded: reading it counts a decoded page in the fake's watch."""

    api: ScriptedApi
    page: FetchedPage
    read_: bool = False

    async def read(self) -> FetchedPage:
        api = self.api
        if api.read_latency:
            await anyio.sleep(api.read_latency)
        self.read_ = True
        api.decoded += 1
        api.decoded_not_durable_max = max(
            api.decoded_not_durable_max, api.decoded - api.durable_pages()
        )
        return self.page

    def discard(self) -> None:
        if not self.read_:
            self.api.discarded += 1
            self.read_ = True


def slow(seconds: float) -> Step:
    async def step(api: ScriptedApi, call: Call) -> FetchedPage | None:
        await anyio.sleep(seconds)
        return None

    return step


def fail(error: ApiError, after: float = 0.5) -> Step:
    async def step(api: ScriptedApi, call: Call) -> FetchedPage | None:
        await anyio.sleep(after)
        raise error

    return step


def empty(after: float = 0.5) -> Step:
    async def step(api: ScriptedApi, call: Call) -> FetchedPage | None:
        await anyio.sleep(after)
        return api.page(call, items=0)

    return step


def settings(out: Path, **overrides: Any) -> RunSettings:
    values: dict[str, Any] = {
        "out_dir": out,
        "run_date": DATE,
        "limits": Limits(rate_per_minute=60_000, concurrency=4),
        "retry": RetryPolicy(attempts=3, base=1.0, cap=8.0, slowdown=5.0),
        "pages_ahead": 8,
        "pages_in_memory": 2,
    }
    values.update(overrides)
    return RunSettings(**values)


def job(job_id: str, page_size: int = 10, max_items: int | None = None) -> CrawlJob:
    return CrawlJob(
        job_id=job_id,
        params={"targets": {"1": f"{job_id}.example"}},
        page_size=page_size,
        max_items=max_items,
        fingerprint=f"fp-{job_id}-{page_size}-{max_items}",
    )


@dataclass
class Crawled:
    result: CrawlResult
    ended: list[JobFinal]
    folder: RunFolder

    def final(self, job_id: str) -> JobFinal:
        return next(f for f in self.result.jobs if f.job.job_id == job_id)


async def run_crawl(
    api: ScriptedApi,
    jobs: list[CrawlJob],
    run_settings: RunSettings,
    *,
    ledger: Ledger | None = None,
    control: CrawlControl | None = None,
    started: Callable[[], None] | None = None,
    store: StoreFactory = JobStore,
    seed: int = 0,
    observer: CrawlObserver | None = None,
    fetch: Fetch | None = None,
) -> Crawled:
    folder = RunFolder(run_settings.out_dir, run_settings.run_date)
    folder.path.mkdir(parents=True, exist_ok=True)
    ended: list[JobFinal] = []

    async def job_ended(final: JobFinal) -> None:
        ended.append(final)

    if started is not None:
        started()

    result = await crawl(
        jobs,
        fetch=fetch or api.reply,
        folder=folder,
        settings=run_settings,
        ledger=ledger,
        control=control,
        store=store,
        rng=random.Random(seed),
        observer=observer,
        on_job_end=job_ended,
        endpoint="https://api.test/v3",
    )
    return Crawled(result, ended, folder)
