"""Pages the crawl holds in memory: never more than ``pages_in_memory`` in the writer.

A fake's reply is the page itself, already decoded: the crawl takes its place in memory
before it hands the page on, so however many calls come back at once, the pages in the
writer's commits at once stay within the places. A store of the test's (the seam the
crawl is handed) watches them, in virtual time; its commits take 10 ms of real time in
worker threads, so that answers pile up behind them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.errors import TransientApiError
from intersect_batch.settings import Limits
from intersect_batch.store import JobStore
from tests.scripted import ScriptedApi, fail, job, lines_of, run_crawl, settings
from tests.virtual_time import run_virtual


def _most_in_the_writer(tmp_path: Path, api: ScriptedApi, places: int = 2) -> int:
    """Crawl jobs a, b, c (100 items each) with ten slots and ``places`` in memory; the
    most pages the writer's commits held at once."""
    lock = threading.Lock()
    writing = 0
    most = 0

    class Watched(JobStore):
        def commit(self, pages: Any, counters: Any) -> Any:
            nonlocal writing, most
            with lock:
                writing += len(pages)
                most = max(most, writing)
            time.sleep(0.01)  # a slow disk (in real time): answers pile up behind it
            try:
                return super().commit(pages, counters)
            finally:
                with lock:
                    writing -= len(pages)

    run_settings = settings(tmp_path, limits=Limits(concurrency=10), pages_in_memory=places)
    done = run_virtual(lambda: run_crawl(api, [job(n) for n in "abc"], run_settings, store=Watched))
    for name in "abc":
        assert done.folder.result(name).read_bytes() == lines_of(name, 100)
    return most


@pytest.mark.parametrize("places", [1, 2])
def test_the_pages_in_the_writer_at_once_stay_within_the_places_in_memory(
    tmp_path: Path, places: int
) -> None:
    # Ten calls at once, their answers all back at the same instant.
    api = ScriptedApi(dict.fromkeys("abc", 100), latency=1.0)
    assert _most_in_the_writer(tmp_path, api, places) == places


def test_calls_that_failed_before_their_answer_give_back_no_place_they_did_not_take(
    tmp_path: Path,
) -> None:
    # Six of the first calls fail without an answer: they never took a place in memory,
    # so none is given back for them, and there are still two.
    api = ScriptedApi(dict.fromkeys("abc", 100), latency=1.0)
    for name, offset in [("a", 0), ("b", 0), ("c", 0), ("a", 10), ("b", 10), ("c", 10)]:
        api.script(name, offset, fail(TransientApiError("connection reset"), 0.5))
    assert _most_in_the_writer(tmp_path, api) == 2
