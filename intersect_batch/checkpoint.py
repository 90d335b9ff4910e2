"""A job's checkpoint: the one value that says what of its pages is durable.

Its own module because more than the store reads it: the crawl, the night's money and
the dry run read a job's checkpoint (its pages, totals and counters) and never write a
page, so they need the value, not the files behind it. It is read back in two ways:
leniently for those readers (:func:`read_checkpoint`), strictly for the store that
resumes from it (:func:`resume_checkpoint`). Here too are the two ways progress on disk
can disagree with its checkpoint, shared by the store, its part file and its spool:
:class:`Damaged` (found when a job opens: its pages are fetched again) and :class:`Lost`
(gone under a running job: the job stops with an error).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from intersect_batch.durable import UnreadableFile, read_file
from intersect_batch.layout import RunFolder

__all__ = [
    "Checkpoint",
    "Counters",
    "Damaged",
    "Lost",
    "PageIn",
    "SpooledPage",
    "read_checkpoint",
    "resume_checkpoint",
]


class PageIn(NamedTuple):
    """A page to make durable: its number, its item lines, the total_count it reported."""

    page: int
    lines: list[bytes]
    total_count: int | None
    #: How many of its items had their text repaired to be valid UTF-8 JSON.
    repaired: int = 0


class Counters(msgspec.Struct, frozen=True, kw_only=True):
    """A job's calls, retries and reported cost, over every invocation of the run date."""

    calls: int = 0
    retries: int = 0
    cost_usd: float = 0.0

    def latest(self, other: Counters) -> Counters:
        """The later of two readings (counters only grow)."""
        return Counters(
            calls=max(self.calls, other.calls),
            retries=max(self.retries, other.retries),
            cost_usd=max(self.cost_usd, other.cost_usd),
        )


class SpooledPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page on disk in the spool, waiting for the pages in front of it."""

    size: int
    items: int


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """What of a job is durable; the part file may hold more, which is cut off on resume.

    A value: every change makes a new one, so one handed out never moves under its reader.
    """

    fingerprint: str
    started_at: str
    next_page: int = 0
    part_bytes: int = 0
    items_written: int = 0
    items_received: int = 0
    duplicates_dropped: int = 0
    #: Items received whose text was repaired (see ``FetchedPage.items_repaired``).
    items_repaired: int = 0
    spooled: dict[int, SpooledPage] = msgspec.field(default_factory=dict)
    total_first: int | None = None
    total_last: int | None = None
    total_min: int | None = None
    total_max: int | None = None
    counters: Counters = msgspec.field(default_factory=Counters)
    finalized: bool = False

    @property
    def pages_done(self) -> frozenset[int]:
        """Pages durable (in order or spooled): never fetch these again."""
        return frozenset(range(self.next_page)) | frozenset(self.spooled)

    @property
    def pages(self) -> int:
        """How many pages are durable."""
        return self.next_page + len(self.spooled)

    def seen_total(self, total: int | None) -> Checkpoint:
        """The checkpoint with one more total_count reading."""
        if total is None:
            return self
        return msgspec.structs.replace(
            self,
            total_first=self.total_first if self.total_first is not None else total,
            total_last=total,
            total_min=total if self.total_min is None else min(total, self.total_min),
            total_max=total if self.total_max is None else max(total, self.total_max),
        )


class Damaged(Exception):
    """Progress on disk that cannot be trusted; the message says what is wrong."""


class Lost(Exception):
    """Durable progress gone or cut short while the job runs; the message says which."""


_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)


def resume_checkpoint(folder: RunFolder, job_id: str) -> Checkpoint | None:
    """A job's checkpoint, for its store to resume from; None if the job has no progress.

    Raises Damaged when it cannot be trusted: unreadable, not a checkpoint, or missing
    while a part file or a spool is there.
    """
    try:
        data = read_file(folder.checkpoint(job_id))
    except FileNotFoundError:
        if folder.part(job_id).exists() or folder.spool(job_id).exists():
            raise Damaged("progress without its checkpoint") from None
        return None
    except UnreadableFile as exc:
        raise Damaged(f"its checkpoint cannot be read ({exc})") from None
    try:
        return _checkpoint_decoder.decode(data)
    except msgspec.DecodeError:
        raise Damaged("its checkpoint does not decode") from None


def read_checkpoint(folder: RunFolder, job_id: str) -> Checkpoint | None:
    """A job's checkpoint as it is on disk, for readers; None if absent or unreadable."""
    try:
        return _checkpoint_decoder.decode(read_file(folder.checkpoint(job_id)))
    except (OSError, msgspec.DecodeError):
        return None
