"""The writer's group commit: pages that queue behind a commit go to disk together."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import anyio

from intersect_batch.checkpoint import Checkpoint, Counters, PageIn
from intersect_batch.layout import RunFolder
from intersect_batch.writer import JobWriter
from tests.virtual_time import run_virtual

DATE = dt.date(2026, 11, 29)


def item(n: int) -> bytes:
    body = {"page_intersection": {"1": [{"url_from": f"https://p{n}.example/"}]}, "n": n}
    return json.dumps(body, separators=(",", ":")).encode()


def test_pages_that_arrive_together_share_one_checkpoint_with_the_highest_counters(
    tmp_path: Path,
) -> None:
    folder = RunFolder(tmp_path, DATE)
    # The counters as the crawl read them when each page arrived: each figure peaks on
    # another page, and the checkpoint keeps the highest of each.
    readings = [
        Counters(calls=1),
        Counters(calls=5, retries=1, cost_usd=0.1),
        Counters(calls=4, retries=3, cost_usd=0.2),
        Counters(calls=3, retries=2, cost_usd=0.3),
    ]

    async def main() -> tuple[list[Checkpoint | None], Checkpoint]:
        writer = JobWriter.at(folder, "job")
        await writer.open("fp")
        done: list[Checkpoint | None] = [None] * 4

        async def write(page: int) -> None:
            done[page] = await writer.write(PageIn(page, [item(page)], 4), readings[page])

        async with anyio.create_task_group() as group:
            for page in range(4):
                group.start_soon(write, page)
        await writer.finalize()
        return done, writer.durable

    done, durable = run_virtual(main)
    # The pages behind the first went to disk in one commit: one checkpoint for them all.
    assert done[1] is done[2] is done[3] is not None
    assert done[3].next_page == 4
    assert done[3].counters == Counters(calls=5, retries=3, cost_usd=0.3)
    assert durable.finalized and durable.counters == done[3].counters
    assert folder.result("job").read_bytes() == b"".join(item(n) + b"\n" for n in range(4))
