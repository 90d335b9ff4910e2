"""A 200,000-item query is served page by page without memory growing with the items."""

from __future__ import annotations

import gc
import tracemalloc
from array import array

import pytest

from intersect_batch.emulator.app import EMULATOR_KEY

from .support import serve

pytestmark = pytest.mark.anyio

BIG = {"1": "big.com", "2": "other.org"}
ONE = {"1": "big.com"}
SIZE = 200_000


async def test_paging_a_200k_query_keeps_memory_flat():
    async with serve(sizes={"big.com": SIZE}, item_cache_size=1000, gzip=False) as api:
        store = api.emu.app[EMULATOR_KEY].store
        offsets = iter(range(0, SIZE, SIZE // 20))  # pages of 1000 spread over the query

        async def fetch(pages: int) -> None:
            for _ in range(pages):
                offset = next(offsets)
                reply = await api.dfs([{"targets": ONE, "limit": 1000, "offset": offset}])
                assert reply.status == 200 and len(reply.body) > 1_000_000

        await fetch(2)
        tracemalloc.start()
        try:
            await fetch(2)  # caches full of objects allocated under tracing
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            await fetch(10)
            gc.collect()
            growth = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        selections = store.selections.values()
    # 10 more pages are 10,000 items (~13 MB encoded); none of them may stay behind.
    assert growth < 1_500_000, growth
    assert len(store.items) == 1000
    assert selections == [range(0, SIZE)]
    calls = api.emu.calls()
    assert all(c.total_count == SIZE and c.items == 1000 for c in calls)


async def test_a_narrowed_200k_query_keeps_only_a_compact_id_array():
    async with serve(sizes={"big.com": SIZE}) as api:
        reply = await api.dfs([{"targets": BIG, "exclude_targets": ["x.com"], "limit": 10}])
        store = api.emu.app[EMULATOR_KEY].store
        (ids,) = store.selections.values()
    assert isinstance(ids, array) and ids.itemsize == 4
    assert len(ids) == reply.result["total_count"]
    assert 0.8 * SIZE < len(ids) < 0.9 * SIZE
