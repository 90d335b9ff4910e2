"""Pages that repeat others: refused as they come without an echo, counted at the end.

The crawler driven through its fetch seam by scripted answers, in virtual time: a page
that comes back holding another page's items is never written as a complete job's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio

from intersect_batch.answer import FetchedPage
from intersect_batch.crawl import Call
from tests.scripted import ScriptedApi, Step, job, lines_of, run_crawl, settings
from tests.virtual_time import run_virtual


def _crawl(api: ScriptedApi, jobs: list[Any], out: Path) -> Any:
    return run_virtual(lambda: run_crawl(api, jobs, settings(out)))


def page_zero(*, echoed: bool, after: float = 3.0) -> Step:
    """The page at offset 0 again, as a caching proxy answers (after page 0 is durable)."""

    async def step(api: ScriptedApi, call: Call) -> FetchedPage | None:
        await anyio.sleep(after)
        first = api.page(dataclasses.replace(call, offset=0))
        return dataclasses.replace(first, echoed=echoed)

    return step


def test_without_an_echo_a_page_of_items_already_written_is_retried_then_fails(
    tmp_path: Path,
) -> None:
    api = ScriptedApi({"a": 300, "b": 30})
    api.script("a", 100, *[page_zero(echoed=False)] * 3)
    done = _crawl(api, [job("a", page_size=100), job("b")], tmp_path)
    a = done.final("a")
    assert a.status == "failed"
    assert a.reason == (
        "gave up after 3 attempts: job 'a' offset 100: bad answer: no echo of the request, "
        "and every item is one the job already holds: a page repeated, not the page asked for"
    )
    assert api.calls_by_page[("a", 100)] == 3
    assert a.checkpoint is not None and a.checkpoint.duplicates_dropped == 0
    assert not done.folder.result("a").exists()
    assert done.final("b").status == "complete"
    # Each repeated page was paid for, and counted.
    assert a.counters.calls == len([s for s in api.sent if s.job == "a"])


def test_a_repeated_page_that_fills_on_retry_completes_the_job(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 300})
    api.script("a", 100, page_zero(echoed=False))
    done = _crawl(api, [job("a", page_size=100)], tmp_path)
    assert done.final("a").status == "complete"
    assert done.folder.result("a").read_bytes() == lines_of("a", 300)


def test_a_job_whose_duplicates_pass_a_tenth_of_its_total_is_not_complete(
    tmp_path: Path,
) -> None:
    # The echo matched (a server that repeats pages all the same): the pages are
    # written, their items dropped as duplicates, and the job fails at the end.
    api = ScriptedApi({"a": 300, "b": 30})
    api.script("a", 100, page_zero(echoed=True))
    api.script("a", 200, page_zero(echoed=True))
    done = _crawl(api, [job("a", page_size=100), job("b")], tmp_path)
    a = done.final("a")
    assert a.status == "failed"
    assert a.reason == (
        "200 duplicate items dropped, 67% of total_count 300: pages came back holding items "
        "of other pages (over 10% and over a page's worth), so the result would miss items; "
        "run it again with --fresh"
    )
    assert a.output is None and not done.folder.result("a").exists()
    assert a.checkpoint is not None and a.checkpoint.items_written == 100
    assert done.final("b").status == "complete"
    # The same night again: nothing is sent, and the job is still not complete.
    again = ScriptedApi({"a": 300})
    second = _crawl(again, [job("a", page_size=100)], tmp_path)
    assert second.final("a").status == "failed" and again.sent == []
    assert not second.folder.result("a").exists()


def test_a_page_boundary_shifted_by_a_few_items_completes(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 300})

    async def shifted(api: ScriptedApi, call: Call) -> FetchedPage | None:
        # Five items of page 0 come again at the head of page 1 (live data moved).
        page = api.page(dataclasses.replace(call, offset=95))
        return dataclasses.replace(page, echoed=True)

    api.script("a", 100, shifted)
    done = _crawl(api, [job("a", page_size=100)], tmp_path)
    a = done.final("a")
    assert a.status == "complete"
    assert a.checkpoint is not None and a.checkpoint.duplicates_dropped == 5
