"""An incremental night's set, and what a full night finds the incremental ones missed.

:func:`merge_night` writes a job's result from the last night's items (carried) and the
items each incremental request fetched: every key once, carried ones first in their
order, then the new ones in request and offset order. The file is written whole under a
temporary name, fsync'd and renamed, so a crash leaves the old file or the new one, and
merging the same inputs again gives the same bytes. :func:`count_missed` compares a full
night with the incremental night before it. Both stream their files: memory grows with
the number of keys, not items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from intersect_batch.durable import atomic_file, jsonl_lines
from intersect_batch.keyset import KeySet
from intersect_batch.wire import item_key

__all__ = ["Merged", "count_missed", "merge_night", "newest_first_seen"]

#: Bytes gathered before one write call: blocking I/O in bulk, not per line.
_BATCH_BYTES = 1 << 20
#: An item larger than this is not decoded for its dates (real items are 1-70 kB).
_DECODE_LIMIT = 1 << 20


@dataclass(frozen=True)
class Merged:
    """What :func:`merge_night` wrote."""

    #: Items of the last night kept.
    carried: int
    #: Items the requests returned, every copy counted.
    fetched: int
    #: Fetched items whose key the set did not hold yet: tonight's new pages.
    new: int

    @property
    def items(self) -> int:
        """Lines of the merged file."""
        return self.carried + self.new


def merge_night(carried: Path, fetched: Sequence[Path], target: Path) -> Merged:
    """Write ``target``: ``carried``'s items, then each fetched item not yet there, once.

    Raises ``OSError`` when a file cannot be read or written (``target`` is then as it was).
    """
    keys = KeySet()
    kept = got = new = 0
    with atomic_file(target) as handle:
        batch = bytearray()
        sources = [(carried, True), *((path, False) for path in fetched)]
        for path, is_carried in sources:
            for line in jsonl_lines(path):
                got += not is_carried
                if not keys.add(item_key(line)):
                    continue
                if is_carried:
                    kept += 1
                else:
                    new += 1
                batch += line + b"\n"
                if len(batch) >= _BATCH_BYTES:
                    handle.write(batch)
                    batch.clear()
        handle.write(batch)
    return Merged(carried=kept, fetched=got, new=new)


class _Link(msgspec.Struct):
    first_seen: str | None = None


class _Dates(msgspec.Struct):
    page_intersection: dict[str, list[_Link] | None] = {}


_dates_decoder = msgspec.json.Decoder(_Dates)


def newest_first_seen(line: bytes) -> str | None:
    """The latest ``first_seen`` of an item's backlinks (to any target), or None."""
    if len(line) > _DECODE_LIMIT:
        return None
    try:
        item = _dates_decoder.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    seen = [
        link.first_seen
        for links in item.page_intersection.values()
        for link in links or ()
        if link.first_seen is not None
    ]
    return max(seen, default=None)


def count_missed(current: Path, previous: Path, cutoff: str) -> int:
    """Items of ``current`` not in ``previous`` whose every backlink is first seen by ``cutoff``.

    ``previous`` is an incremental night's set and ``cutoff`` its ``first_seen`` bound: such
    an item is one the incremental nights could not see (a link found again, a page that
    qualifies after dropping a link to an excluded target). Dates compare as text, as the
    API compares them (``yyyy-mm-dd hh:mm:ss +00:00``).
    """
    known = KeySet()
    for line in jsonl_lines(previous):
        known.add(item_key(line))
    missed = 0
    counted = KeySet()
    for line in jsonl_lines(current):
        key = item_key(line)
        if key in known or not counted.add(key):
            continue
        newest = newest_first_seen(line)
        if newest is None or newest <= cutoff:
            missed += 1
    return missed
