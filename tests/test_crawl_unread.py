"""Replies not yet read: the crawl reads one only once it holds a place in memory.

In virtual time against scripted answers that come back unread (as the HTTP transport's
do): a reply waiting for its place, or cut off while read, is dropped when the run stops
(over HTTP, the last test: its connection is closed at once, none is left for the
garbage collector to find open); a reply whose reading fails is one failed call, retried
as any other, and gives its place back.
"""

from __future__ import annotations

import asyncio
import gc
import random
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from aiohttp import web

from intersect_batch.answer import FetchedPage
from intersect_batch.crawl import Call, Reply, crawl
from intersect_batch.errors import TransientApiError
from intersect_batch.layout import RunFolder
from intersect_batch.providers import resolve_provider
from intersect_batch.settings import AnswerCaps, Limits, RunSettings
from intersect_batch.stop import CrawlControl
from intersect_batch.transport import http_fetch
from tests.hostile_server import MiB, Seen, serve, streamed
from tests.scripted import DATE, Crawled, ScriptedApi, job, run_crawl, settings
from tests.virtual_time import run_virtual

ENV = {"DATAFORSEO_LOGIN": "ops@night.example", "DATAFORSEO_PASSWORD": "Pw/7x+Q=k9zR"}


def test_replies_waiting_for_a_place_are_dropped_when_the_run_stops(tmp_path: Path) -> None:
    # Four probes answer at 1 s; one place in memory, and reading a reply on takes 100 s.
    # Stopped at 5 s with a grace of 10 s: at 15 s the one being read and the three
    # waiting for the place are dropped, none of them decoded.
    api = ScriptedApi(dict.fromkeys("abcd", 50), latency=1.0, unread=True, read_latency=100.0)
    ended: list[float] = []

    async def main() -> Crawled:
        control = CrawlControl()
        async with anyio.create_task_group() as group:

            async def stop_at() -> None:
                await anyio.sleep(5.0)
                control.stop("stopped by the operator")

            group.start_soon(stop_at)
            run_settings = settings(tmp_path, pages_in_memory=1, grace=10.0)
            done = await run_crawl(api, [job(n) for n in "abcd"], run_settings, control=control)
            ended.append(anyio.current_time())
        return done

    done = run_virtual(main)
    assert ended == [pytest.approx(15.0)]
    assert (len(api.sent), api.decoded, api.discarded) == (4, 0, 4)
    assert [final.status for final in done.result.jobs] == ["partial"] * 4
    assert done.result.stop is not None and done.result.stop.reason == "stopped by the operator"


def test_a_reply_whose_reading_fails_is_a_failed_call_retried(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 20}, latency=1.0)

    class CutShort:
        """A body that breaks off while read on after its place."""

        async def read(self) -> FetchedPage:
            await anyio.sleep(2.0)
            raise TransientApiError("answer cut short: broken pipe", maybe_billed=True)

        def discard(self) -> None:
            pass

    async def fetch(call: Call) -> Reply:
        page = await api(call)
        return CutShort() if len(api.sent) == 2 else page

    async def main() -> Crawled:
        return await run_crawl(api, [job("a")], settings(tmp_path, pages_in_memory=1), fetch=fetch)

    done = run_virtual(main)
    a = done.final("a")
    assert a.status == "complete"
    assert done.folder.result("a").read_bytes().count(b"\n") == 20
    # Page 1 was asked twice: its first reply broke off at 4 s, was booked and retried
    # after the first back-off (full jitter of 1 s, drawn by the seed 0).
    again = 4.0 + random.Random(0).uniform(0, 1.0)
    sent = [(s.offset, s.at) for s in api.sent]
    assert sent == [(0, 0.0), (10, 1.0), (10, pytest.approx(again))]
    assert (done.result.calls, done.result.retries) == (3, 1)
    assert [error.message for error in a.errors] == ["answer cut short: broken pipe"]


@pytest.mark.anyio
async def test_over_http_answers_cut_off_by_a_stop_close_their_connections(tmp_path: Path) -> None:
    # Three jobs' probes each get a body declared 8 MiB that trickles 1 KiB every 50 ms;
    # one place in memory. Once the three are in, the run is stopped with a grace of
    # 0.5 s: the one being read on and the two waiting for the place are dropped, their
    # connections closed at once, none left for the garbage collector to find open.
    loop = asyncio.get_running_loop()
    handler_before, debug_before = loop.get_exception_handler(), loop.get_debug()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(str(context.get("message"))))
    loop.set_debug(True)
    control = CrawlControl()
    arrived = 0
    left = 0
    all_left = anyio.Event()
    trickle = streamed(b"{", b" " * 1024, 8 * 1024, pause=0.05, length=8 * MiB + 1)

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        nonlocal arrived, left
        arrived += 1
        if arrived == 3:
            control.stop("stopped by the operator")
        try:
            return await trickle(request, seen)
        finally:
            left += 1
            if left == 3:
                all_left.set()

    run_settings = RunSettings(
        out_dir=tmp_path,
        run_date=DATE,
        limits=Limits(rate_per_minute=60_000, concurrency=3),
        caps=AnswerCaps(read_ahead_bytes=64 * 1024),
        pages_in_memory=1,
        grace=0.5,
    )
    folder = RunFolder(tmp_path, DATE)
    folder.path.mkdir(parents=True)
    try:
        async with serve(handler) as (base, seen):
            provider = resolve_provider("dataforseo", base)
            with anyio.fail_after(10):
                async with http_fetch(provider, provider.credentials(ENV), run_settings) as fetch:
                    result = await crawl(
                        [job(n) for n in "abc"],
                        fetch=fetch,
                        folder=folder,
                        settings=run_settings,
                        control=control,
                    )
                    # While the session is still open: each connection was closed by
                    # the crawl, the server's next write fails.
                    await all_left.wait()
            gc.collect()
            await anyio.lowlevel.checkpoint()
    finally:
        loop.set_exception_handler(handler_before)
        loop.set_debug(debug_before)
    assert result.stop is not None and result.stop.reason == "stopped by the operator"
    assert [final.status for final in result.jobs] == ["partial"] * 3
    assert seen.sent_bytes < 3 * 8 * MiB
    assert not [message for message in reported if "Unclosed" in message]
