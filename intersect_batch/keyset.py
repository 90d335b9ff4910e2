"""A set of 64-bit item keys in about eight bytes each, for de-duplicating large jobs.

A Python ``set`` of ints costs some 60 bytes a key: 12 MB for a 200,000-item job, more
than the pages in flight. Here the keys live in a sorted ``array('Q')``; new keys wait
in a small set, merged into the array when it fills, so each merge is amortized.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left

__all__ = ["KeySet"]


class KeySet:
    """Membership of 64-bit keys; ``add`` says whether a key was new."""

    __slots__ = ("_flush_at", "_recent", "_sorted")

    def __init__(self, *, flush_at: int = 16_384) -> None:
        self._sorted = array("Q")
        self._recent: set[int] = set()
        self._flush_at = flush_at

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __contains__(self, key: object) -> bool:
        if key in self._recent:
            return True
        if not isinstance(key, int):
            return False
        keys = self._sorted
        index = bisect_left(keys, key)
        return index < len(keys) and keys[index] == key

    def add(self, key: int) -> bool:
        """Add ``key``; True if it was not there yet."""
        if key in self:
            return False
        self._recent.add(key)
        if len(self._recent) >= self._flush_at:
            self._merge()
        return True

    def add_new(self, keys: set[int]) -> None:
        """Add keys known to be absent (checked against this set before), unchecked."""
        self._recent |= keys
        if len(self._recent) >= self._flush_at:
            self._merge()

    def _merge(self) -> None:
        self._sorted = array("Q", heapq.merge(self._sorted, sorted(self._recent)))
        self._recent.clear()
