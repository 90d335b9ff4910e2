"""A job's part file: its pages in offset order, one item a line, each item once.

The store keeps the order of a commit's steps (data fsync'd, then the checkpoint, then
its own state); this module knows the file itself, in one place:

- appending pages in order while dropping duplicate items, and the figures the next
  checkpoint records (:class:`Appender`);
- opening it to append, never re-creating or extending what the checkpoint vouches for
  (:func:`open_part`), and checking it holds exactly that before the rename
  (:func:`check_complete`);
- when a job opens after a crash, cutting off its torn tail and learning the keys of what
  stays (:func:`resume_part`), or checking a finished job's result (:func:`check_finished`).

What it finds wrong is :class:`~intersect_batch.checkpoint.Damaged` when a job opens
(its pages are fetched again), :class:`~intersect_batch.checkpoint.Lost` under a
running job (the job stops).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import msgspec

from intersect_batch.checkpoint import Checkpoint, Counters, Damaged, Lost, PageIn, SpooledPage
from intersect_batch.durable import UnreadableFile, open_nofollow
from intersect_batch.keyset import KeySet
from intersect_batch.wire import item_key

__all__ = ["Appender", "check_complete", "check_finished", "open_part", "resume_part"]


class _AnyObject(msgspec.Struct):
    """Any JSON object: decoding one checks the whole line is JSON, keeping nothing."""


_object_decoder = msgspec.json.Decoder(_AnyObject)


def _is_object(line: bytes) -> bool:
    try:
        _object_decoder.decode(line)
    except msgspec.DecodeError:
        return False
    return True


def resume_part(path: Path, checkpoint: Checkpoint) -> KeySet:
    """Cut the part file to the checkpoint's length; the keys of the items that stay.

    Raises Damaged when the file is missing, unreadable, shorter than the checkpoint, or
    holds a line that is not an item, or not as many items as the checkpoint says.
    """
    try:
        part = open_nofollow(path, os.O_RDWR)
    except FileNotFoundError:
        raise Damaged("its checkpoint has no part file") from None
    except UnreadableFile as exc:
        raise Damaged(f"its part file cannot be read ({exc})") from None
    with part:
        size = os.fstat(part.fileno()).st_size
        if size < checkpoint.part_bytes:
            raise Damaged(
                f"its part file is shorter than its checkpoint "
                f"({size} of {checkpoint.part_bytes} bytes)"
            )
        # Cut off what was appended after the last checkpoint, then re-learn the keys
        # of what stays, a line at a time, checking that each line is an item.
        part.truncate(checkpoint.part_bytes)
        part.seek(0)
        keys = KeySet()
        lines = 0
        for line in part:
            if not line.endswith(b"\n") or not _is_object(line):
                raise Damaged(f"line {lines + 1} of its part file is not an item")
            keys.add(item_key(line[:-1]))
            lines += 1
        if lines != checkpoint.items_written:
            raise Damaged(
                f"its part file holds {lines} items, its checkpoint says {checkpoint.items_written}"
            )
    return keys


def check_finished(part: Path, final: Path, checkpoint: Checkpoint) -> None:
    """Check a finished job's result, renamed from its part file or about to be.

    The crash came between the checkpoint saying "finalized" and the state being
    removed. Raises Damaged when neither file is there, or the first found is a symlink
    or not the size the checkpoint says.
    """
    for path in (part, final):
        try:
            size = path.lstat().st_size
        except FileNotFoundError:
            continue
        if path.is_symlink() or size != checkpoint.part_bytes:
            raise Damaged(
                f"its finished result {path.name} is {size} bytes, "
                f"its checkpoint says {checkpoint.part_bytes}"
            )
        return
    raise Damaged("its checkpoint says it is finished, but its result is missing")


def open_part(path: Path, checkpoint: Checkpoint) -> tuple[BinaryIO, int]:
    """The part file, opened to append, and its size; raises Lost when it lacks durable bytes.

    It is created only while the checkpoint vouches for no byte of it: a part file
    removed under the job is never re-created (nor the state folder around it).
    """
    flags = os.O_RDWR | (os.O_CREAT if checkpoint.part_bytes == 0 else 0)
    try:
        part = open_nofollow(path, flags)
    except FileNotFoundError:
        if checkpoint.part_bytes == 0:
            raise  # the state folder itself is gone: nothing durable is lost
        raise Lost(
            f"its part file is gone, its checkpoint vouches for {checkpoint.part_bytes} bytes"
        ) from None
    size = os.fstat(part.fileno()).st_size
    if size < checkpoint.part_bytes:
        part.close()
        raise Lost(
            f"its part file is shorter than its checkpoint "
            f"({size} of {checkpoint.part_bytes} bytes)"
        )
    return part, size


def check_complete(path: Path, checkpoint: Checkpoint) -> None:
    """Check the part file holds exactly what the checkpoint vouches for, before it is
    renamed into place; raises Lost if not. A job of no page at all gets an empty file,
    made here when there is none."""
    part, size = open_part(path, checkpoint)
    with part:
        if size != checkpoint.part_bytes:
            raise Lost(
                f"its part file is {size} bytes, its checkpoint says {checkpoint.part_bytes}"
            )


class Appender:
    """Appends pages in order, dropping duplicate items, and counts every page received;
    its figures become the next checkpoint (:meth:`checkpoint`).

    New keys are staged, not added to the store's keys: they count only once the
    checkpoint that vouches for them is durable.
    """

    def __init__(self, keys: KeySet, staged: set[int], checkpoint: Checkpoint) -> None:
        self.keys = keys
        self.staged = staged
        self.totals = checkpoint
        self.next_page = checkpoint.next_page
        self.written = checkpoint.items_written
        self.received = checkpoint.items_received
        self.duplicates = checkpoint.duplicates_dropped
        self.repaired = checkpoint.items_repaired
        self.appended = False

    def receive(self, page: PageIn) -> None:
        """Count a page received (its items, repairs, total_count), appended or spooled."""
        self.received += len(page.lines)
        self.repaired += page.repaired
        self.totals = self.totals.seen_total(page.total_count)

    def append(self, part: BinaryIO, lines: list[bytes]) -> None:
        """Append one page's lines (the next page in order), but for items seen before."""
        kept = []
        for line in lines:
            key = item_key(line)
            if key in self.staged or key in self.keys:
                self.duplicates += 1
                continue
            self.staged.add(key)
            kept.append(line)
        if kept:
            # Two writes, not "joined + newline": that would copy the whole page again.
            part.write(b"\n".join(kept))
            part.write(b"\n")
        self.written += len(kept)
        self.next_page += 1
        self.appended = True

    def checkpoint(
        self, *, part_bytes: int, spooled: dict[int, SpooledPage], counters: Counters
    ) -> Checkpoint:
        """The checkpoint that vouches for the pages appended and spooled, with these figures."""
        return msgspec.structs.replace(
            self.totals,
            next_page=self.next_page,
            part_bytes=part_bytes,
            items_written=self.written,
            items_received=self.received,
            duplicates_dropped=self.duplicates,
            items_repaired=self.repaired,
            spooled=spooled,
            counters=counters,
        )
