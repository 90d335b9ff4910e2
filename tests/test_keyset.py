"""The compact key set behaves as a set, across its merges."""

from __future__ import annotations

import random
import tracemalloc

from intersect_batch.keyset import KeySet


def test_it_agrees_with_a_set_across_merges() -> None:
    seed = 20261129
    rng = random.Random(seed)
    keys = KeySet(flush_at=64)
    reference: set[int] = set()
    pool = [rng.getrandbits(64) for _ in range(3000)] + [0, 2**64 - 1]
    for _ in range(10_000):
        key = rng.choice(pool)
        assert keys.add(key) == (key not in reference), seed
        reference.add(key)
    assert len(keys) == len(reference)
    for key in pool:
        assert (key in keys) == (key in reference)
    assert "not an int" not in keys


def test_it_holds_200k_keys_in_a_few_megabytes() -> None:
    rng = random.Random(7)
    tracemalloc.start()
    try:
        keys = KeySet()
        for _ in range(200_000):
            keys.add(rng.getrandbits(64))
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(keys) == 200_000
    # A Python set of the same ints takes about 12 MB.
    assert current < 3_000_000
