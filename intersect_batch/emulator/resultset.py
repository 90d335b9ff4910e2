"""The pages a query selects, in order, as compact ids; and their encoded items, cached.

Memory: a query keeps at most one ``array('I')`` of page ids (4 bytes a page; none at all
for a default query, whose ids are a ``range``) in a small LRU, and encoded items live in a
bounded LRU. Nothing grows with the number of items served.
"""

from __future__ import annotations

import heapq
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar

from .graph import Segment, Universe, default_size
from .hashing import text_hash
from .query import Query
from .schema import ENCODER, Item
from .timeline import Timeline

__all__ = ["LIVE_GAP", "LRU", "ResultStore"]

K = TypeVar("K")
V = TypeVar("V")

LIVE_GAP = 0.1
"""In live-data mode, the share of a query's candidate pages that is absent at any time."""


class LRU(Generic[K, V]):
    """A dict that forgets its least recently used entries beyond ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self.capacity <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def values(self) -> list[V]:
        return list(self._data.values())


class ResultStore:
    """Answers "which pages, in which order" and "what do they look like" for queries."""

    def __init__(
        self,
        *,
        seed: int,
        sizes: Mapping[str, int],
        size_min: int,
        size_max: int,
        item_cache_size: int,
        query_cache_size: int,
        timeline: Timeline | None = None,
    ) -> None:
        self.seed = seed
        self.timeline = timeline
        self._sizes = dict(sizes)
        self._size_min = size_min
        self._size_max = size_max
        self._universes: LRU[tuple[tuple[str, ...], tuple[str, ...]], Universe] = LRU(64)
        self.selections: LRU[tuple[bytes, int], Sequence[int]] = LRU(query_cache_size)
        self.items: LRU[tuple[int, int, bool, int], bytes] = LRU(item_cache_size)

    def universe(self, query: Query) -> Universe:
        key = (query.keys, query.targets)
        u = self._universes.get(key)
        if u is None:
            first = query.targets[0]
            size = self._sizes.get(first)
            if size is None:
                size = default_size(self.seed, query.targets, self._size_min, self._size_max)
            u = Universe(self.seed, query.keys, query.targets, size)
            u.timeline = self.timeline
            self._universes.put(key, u)
        return u

    def select(
        self, query: Query, epoch: int | None = None, churn: float = 0.0, day: int | None = None
    ) -> Sequence[int]:
        """The ids of the pages ``query`` selects, in result order.

        ``epoch`` and ``churn`` (live-data mode): a page is absent while
        ``frac(u_page + epoch * churn) < LIVE_GAP``, ``u_page`` a hash of the page.
        ``day``: the timeline's day the index is taken on (with a timeline only).
        """
        live = epoch is not None and churn > 0
        dated = day is not None and self.timeline is not None
        cache_key = (
            query.selection_key + (b"@%d" % day if dated and day is not None else b""),
            epoch if live and epoch is not None else -1,
        )
        cached = self.selections.get(cache_key)
        if cached is not None:
            return cached
        u = self.universe(query)
        status = query.backlinks_status_type
        segments = [
            s
            for s in u.segments
            if s.length
            and (status == "all" or s.lost == (status == "lost"))
            and (query.intersection_mode == "partial" or not s.partial)
        ]
        simple = not (
            query.exclude_targets
            or not query.include_subdomains
            or not query.include_indirect_links
            or query.predicate is not None
            or query.order
            or live
            or dated
        )
        result: Sequence[int]
        if simple and not segments:
            result = range(0)
        elif simple and len(segments) == 1:
            result = range(segments[0].start, segments[0].start + segments[0].length)
        else:
            ids = self._default_order(u, segments)
            checks = self._cheap_checks(u, query, epoch if live else None, churn)
            if dated and self.timeline is not None and day is not None:
                present, thash = self.timeline.present, u.thash
                checks.append(lambda pid: present(thash, pid, day))
            if checks:
                ids = (pid for pid in ids if all(check(pid) for check in checks))
            needs_item = bool(query.predicate or query.order or not query.include_indirect_links)
            result = self._by_items(u, query, ids) if needs_item else array("I", ids)
        self.selections.put(cache_key, result)
        return result

    @staticmethod
    def _default_order(u: Universe, segments: list[Segment]) -> Iterator[int]:
        """Ids by ``page_from_rank desc, id asc``: a merge of the segments (each sorted)."""
        if len(segments) == 1:
            yield from range(segments[0].start, segments[0].start + segments[0].length)
            return

        def keyed(seg: Segment) -> Iterator[tuple[int, int]]:
            for pid in range(seg.start, seg.start + seg.length):
                yield -u.page_rank(pid, seg), pid

        for _, pid in heapq.merge(*(keyed(s) for s in segments)):
            yield pid

    @staticmethod
    def _cheap_checks(
        u: Universe, query: Query, epoch: int | None, churn: float
    ) -> list[Callable[[int], bool]]:
        """Tests on a page id alone (no item built): excludes, subdomains, live data."""
        checks: list[Callable[[int], bool]] = []
        for target in query.exclude_targets:
            if target in query.targets:
                checks.append(lambda pid: False)  # every page links to its own targets
                continue
            ehash = text_hash("exclude", target)
            checks.append(lambda pid, e=ehash: not u.links_to(pid, e))  # type: ignore[misc]
        if not query.include_subdomains:
            checks.append(lambda pid: not u.via_subdomain(pid))
        if epoch is not None:
            shift = epoch * churn
            checks.append(
                lambda pid: (text_hash("live", u.thash, pid) / 2.0**64 + shift) % 1.0 >= LIVE_GAP
            )
        return checks

    @staticmethod
    def _by_items(u: Universe, query: Query, ids: Iterator[int]) -> array[int]:
        """Ids that pass the item-level tests, sorted by ``order_by`` (stable on the default)."""
        predicate = query.predicate
        order = query.order
        kept: list[tuple[int, tuple[object, ...]]] = []
        for pid in ids:
            item: Item = u.item(pid, query.scale100, query.internal_list_limit)
            if not query.include_indirect_links and any(
                links[0].is_indirect_link for links in item.page_intersection.values()
            ):
                continue
            if predicate is not None and not predicate(item):
                continue
            kept.append((pid, tuple(key(item) for key, _ in order)))
        for i in range(len(order) - 1, -1, -1):
            kept.sort(key=lambda entry, i=i: entry[1][i], reverse=order[i][1])  # type: ignore[misc]
        return array("I", (pid for pid, _ in kept))

    def page(self, query: Query, ids: Sequence[int]) -> list[bytes]:
        """The encoded items of ``query``'s page ``ids[offset:offset+limit]``."""
        u = self.universe(query)
        scale100 = query.scale100
        list_limit = query.internal_list_limit
        out: list[bytes] = []
        cache = self.items
        for pid in ids[query.offset : query.offset + query.limit]:
            key = (u.thash, pid, scale100, list_limit)
            encoded = cache.get(key)
            if encoded is None:
                encoded = ENCODER.encode(u.item(pid, scale100, list_limit))
                cache.put(key, encoded)
            out.append(encoded)
        return out
