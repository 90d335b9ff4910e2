"""A job's durable output: pages appended in offset order, checkpointed, renamed when done.

The files (named by :class:`~intersect_batch.layout.RunFolder`): ``.state/<id>.part``
holds pages ``0..next_page-1`` in order, de-duplicated; ``.state/<id>.spool/<k>.jsonl``
holds pages that arrived before the pages in front of them; ``.state/<id>.checkpoint.json``
says what of both is durable. When the job is complete the part file is renamed to
``<id>.jsonl``.

Every page goes to disk the moment it arrives: the next one in order is appended to the
part file, one that arrived early waits in the spool. The data is fsync'd before the
checkpoint that points past it is (atomically) replaced, and the store's own state
advances only after that: a write that fails (disk full, too many open files) leaves
every record as it was, and the next write starts again from the checkpoint's length.

After kill -9 or power loss :meth:`JobStore.open` truncates the part file to the
checkpoint's length and resumes: no page on disk is fetched again, and no line is torn.
State that cannot be trusted (a part file shorter than its checkpoint, lines that are not
items, a checkpoint that does not decode or claims a result that is not there, a FIFO or
another non-regular file in a file's place) is thrown away with a warning, and its pages
are fetched again: a damaged folder costs money, never data. Duplicate items (the same
referring page seen twice because live data shifted a page boundary) are dropped as pages
are appended in offset order, so a resumed run writes the same bytes as an uninterrupted
one.

The state folder is made once, when a job opens; nothing re-creates it, or a part file
the checkpoint vouches for, afterwards. Progress removed or cut short under a running job
(``.state`` deleted, a part file shorter than its checkpoint) stops that job with an
error: a part file is never extended to its checkpoint's length (that would write NUL
bytes into the result), and the next run fetches the job's pages again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import msgspec

from intersect_batch.durable import (
    UnreadableFile,
    atomic_write,
    fsync_dir,
    open_nofollow,
    read_file,
    shown,
    temporary_path,
)
from intersect_batch.errors import OutputError
from intersect_batch.keyset import KeySet
from intersect_batch.layout import RunFolder
from intersect_batch.wire import item_key

__all__ = [
    "Checkpoint",
    "Counters",
    "JobStore",
    "Opened",
    "PageIn",
    "SpooledPage",
    "read_checkpoint",
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


@dataclass(frozen=True)
class Opened:
    """A job's progress as found on disk, and what was wrong with it."""

    checkpoint: Checkpoint
    #: Damaged progress that was thrown away; its pages are fetched again.
    warnings: tuple[str, ...] = ()


class _AnyObject(msgspec.Struct):
    """Any JSON object: decoding one checks the whole line is JSON, keeping nothing."""


_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)
_object_decoder = msgspec.json.Decoder(_AnyObject)


def _is_object(line: bytes) -> bool:
    try:
        _object_decoder.decode(line)
    except msgspec.DecodeError:
        return False
    return True


_encoder = msgspec.json.Encoder()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class _Damaged(Exception):
    """Progress on disk that cannot be trusted; the message says what is wrong."""


class _Lost(Exception):
    """Durable progress gone or cut short while the job runs; the message says which."""


def read_checkpoint(folder: RunFolder, job_id: str) -> Checkpoint | None:
    """A job's checkpoint as it is on disk, for readers; None if absent or unreadable."""
    try:
        return _checkpoint_decoder.decode(read_file(folder.checkpoint(job_id)))
    except (OSError, msgspec.DecodeError):
        return None


class JobStore:
    """The files of one job in one run folder. Blocking I/O: call from a worker thread."""

    def __init__(self, folder: RunFolder, job_id: str) -> None:
        self.job_id = job_id
        self.folder = folder
        self._checkpoint: Checkpoint | None = None
        self._keys = KeySet()
        #: The part file's size when :meth:`_open_part` last opened it.
        self._part_size = 0

    # The paths are made when used, not kept: a night of many jobs holds thousands of
    # stores open at once (each job between its first page and its last).

    @property
    def final_path(self) -> Path:
        """The complete result."""
        return self.folder.result(self.job_id)

    @property
    def part_path(self) -> Path:
        """The durable pages, in order."""
        return self.folder.part(self.job_id)

    @property
    def checkpoint_path(self) -> Path:
        """What of the part file and the spool is durable."""
        return self.folder.checkpoint(self.job_id)

    @property
    def spool_dir(self) -> Path:
        """The pages that arrived before the pages in front of them."""
        return self.folder.spool(self.job_id)

    @property
    def checkpoint(self) -> Checkpoint:
        """What is durable now (a frozen value)."""
        if self._checkpoint is None:
            raise RuntimeError("JobStore.open() must come first")
        return self._checkpoint

    @property
    def keys(self) -> KeySet:
        """The keys of the items appended in order (those of spooled pages are not yet in)."""
        return self._keys

    # -- opening and resuming -------------------------------------------------------------

    def open(self, fingerprint: str) -> Opened:
        """Resume the job's durable progress, or start it anew.

        Progress made under another fingerprint (the job's parameters changed) is thrown
        away silently: old and new pages never mix. Damaged progress is thrown away with
        a warning.
        """
        try:
            return self._open(fingerprint)
        except OSError as exc:
            raise self._output_error("cannot open its progress", exc) from None

    def _open(self, fingerprint: str) -> Opened:
        # The one place the state folder is made: before the job has any progress.
        self.folder.state.mkdir(parents=True, exist_ok=True)
        try:
            checkpoint = self._read_checkpoint()
            if checkpoint is not None and checkpoint.fingerprint != fingerprint:
                checkpoint = None
                self.discard()
            if checkpoint is not None:
                checkpoint = self._resume(checkpoint)
        except _Damaged as damage:
            self.discard()
            return Opened(self._start(fingerprint), (f"{damage}: its pages are fetched again",))
        if checkpoint is None:
            return Opened(self._start(fingerprint))
        self._checkpoint = checkpoint
        return Opened(checkpoint)

    def begin(self, fingerprint: str) -> Checkpoint:
        """Start a job known to have nothing on disk, without I/O: its first page makes its
        files (see :func:`~intersect_batch.statefolder.names_in_state`)."""
        return self._start(fingerprint)

    def _start(self, fingerprint: str) -> Checkpoint:
        # Nothing is durable yet: the first page writes the first checkpoint.
        self._keys = KeySet()
        self._checkpoint = Checkpoint(fingerprint=fingerprint, started_at=_now())
        return self._checkpoint

    def _read_checkpoint(self) -> Checkpoint | None:
        try:
            data = read_file(self.checkpoint_path)
        except FileNotFoundError:
            if self.part_path.exists() or self.spool_dir.exists():
                raise _Damaged("progress without its checkpoint") from None
            return None
        except UnreadableFile as exc:
            raise _Damaged(f"its checkpoint cannot be read ({exc})") from None
        try:
            return _checkpoint_decoder.decode(data)
        except msgspec.DecodeError:
            raise _Damaged("its checkpoint does not decode") from None

    def _resume(self, checkpoint: Checkpoint) -> Checkpoint:
        if checkpoint.finalized:
            return self._resume_finalized(checkpoint)
        try:
            part = open_nofollow(self.part_path, os.O_RDWR)
        except FileNotFoundError:
            raise _Damaged("its checkpoint has no part file") from None
        except UnreadableFile as exc:
            raise _Damaged(f"its part file cannot be read ({exc})") from None
        with part:
            size = os.fstat(part.fileno()).st_size
            if size < checkpoint.part_bytes:
                raise _Damaged(
                    f"its part file is shorter than its checkpoint "
                    f"({size} of {checkpoint.part_bytes} bytes)"
                )
            # Cut off what was appended after the last checkpoint, then re-learn the keys
            # of what stays, a line at a time, checking that each line is an item.
            part.truncate(checkpoint.part_bytes)
            part.seek(0)
            self._keys = KeySet()
            lines = 0
            for line in part:
                if not line.endswith(b"\n") or not _is_object(line):
                    raise _Damaged(f"line {lines + 1} of its part file is not an item")
                self._keys.add(item_key(line[:-1]))
                lines += 1
            if lines != checkpoint.items_written:
                raise _Damaged(
                    f"its part file holds {lines} items, its checkpoint says "
                    f"{checkpoint.items_written}"
                )
        return self._resume_spool(checkpoint)

    def _resume_spool(self, checkpoint: Checkpoint) -> Checkpoint:
        if self.spool_dir.is_symlink():
            # Not a folder this job made: never read or empty what it points to. The
            # link goes; the pages it was to hold are fetched again.
            self.spool_dir.unlink()
        self.spool_dir.mkdir(exist_ok=True)
        kept: dict[int, SpooledPage] = {}
        for path in self.spool_dir.iterdir():
            page = _spool_index(path)
            expected = checkpoint.spooled.get(page) if page is not None else None
            # A spool file the checkpoint does not vouch for was cut short by the crash;
            # one that differs from what it vouches for (or is not a regular file: a
            # symlink, a FIFO) is fetched again.
            found = path.lstat()
            if (
                expected is None
                or not stat.S_ISREG(found.st_mode)
                or found.st_size != expected.size
            ):
                if stat.S_ISDIR(found.st_mode):
                    shutil.rmtree(path)
                else:
                    path.unlink()
                continue
            assert page is not None
            kept[page] = expected
        if len(kept) == len(checkpoint.spooled):
            return checkpoint
        return msgspec.structs.replace(checkpoint, spooled=kept)

    def _resume_finalized(self, checkpoint: Checkpoint) -> Checkpoint:
        # The crash came between the checkpoint saying "finalized" and the state being
        # removed: the part file was renamed, or is about to be.
        for path in (self.part_path, self.final_path):
            try:
                size = path.lstat().st_size
            except FileNotFoundError:
                continue
            if path.is_symlink() or size != checkpoint.part_bytes:
                raise _Damaged(
                    f"its finished result {path.name} is {size} bytes, "
                    f"its checkpoint says {checkpoint.part_bytes}"
                )
            return checkpoint
        raise _Damaged("its checkpoint says it is finished, but its result is missing")

    def discard(self) -> None:
        """Throw away every unfinished file of the job (the final file stays)."""
        stale = temporary_path(self.checkpoint_path)  # a checkpoint a crash cut short
        for path in (self.checkpoint_path, self.part_path, stale):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if self.spool_dir.is_symlink():
            self.spool_dir.unlink()
        else:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    # -- pages ----------------------------------------------------------------------------

    def commit(self, pages: Sequence[PageIn], counters: Counters) -> Checkpoint:
        """Make pages durable with one checkpoint (a group commit); the new checkpoint.

        Pages already durable are ignored. ``counters`` are recorded in the same
        checkpoint. On an OutputError nothing changed: not the checkpoint on disk, not
        this store's state, not its keys.
        """
        checkpoint = self.checkpoint
        fresh = sorted(
            (
                p
                for p in pages
                if p.page >= checkpoint.next_page and p.page not in checkpoint.spooled
            ),
            key=lambda p: p.page,
        )
        if not fresh:
            return checkpoint
        try:
            new, keys, merged = self._commit(checkpoint, fresh, counters)
        except _Lost as lost:
            raise self._lost_error(str(lost)) from None
        except OSError as exc:
            numbers = ", ".join(str(p.page) for p in fresh)
            raise self._output_error(f"cannot write page {numbers}", exc) from None
        # Durable: only now does the store's state move on.
        self._checkpoint = new
        self._keys.add_new(keys)
        for done in merged:
            with contextlib.suppress(OSError):
                self._spool_path(done).unlink()
        return new

    def _commit(
        self, checkpoint: Checkpoint, pages: list[PageIn], counters: Counters
    ) -> tuple[Checkpoint, set[int], list[int]]:
        spooled = dict(checkpoint.spooled)
        staged: set[int] = set()
        merged: list[int] = []
        appender = _Appender(self._keys, staged, checkpoint)
        with self._open_part(checkpoint) as part:
            # A write that failed earlier may have left bytes past the checkpoint; fewer
            # bytes than it vouches for are progress lost (_open_part raised).
            if self._part_size != checkpoint.part_bytes:
                part.truncate(checkpoint.part_bytes)
            part.seek(checkpoint.part_bytes)
            totals = checkpoint
            repaired = checkpoint.items_repaired
            for page in pages:
                appender.received += len(page.lines)
                repaired += page.repaired
                totals = totals.seen_total(page.total_count)
                if page.page != appender.next_page:
                    spooled[page.page] = self._spool(page)
                    continue
                appender.append(part, page.lines)
                while appender.next_page in spooled:
                    number = appender.next_page
                    data = self._read_spooled(number, spooled[number])
                    del spooled[number]
                    merged.append(number)
                    appender.append(part, data.split(b"\n")[:-1])
            part_bytes = checkpoint.part_bytes
            if appender.appended:
                part.flush()
                os.fsync(part.fileno())
                part_bytes = part.tell()
        new = msgspec.structs.replace(
            totals,
            next_page=appender.next_page,
            part_bytes=part_bytes,
            items_written=appender.written,
            items_received=appender.received,
            duplicates_dropped=appender.duplicates,
            items_repaired=repaired,
            spooled=spooled,
            counters=checkpoint.counters.latest(counters),
        )
        self._write_checkpoint(new)
        return new, staged, merged

    def _open_part(self, checkpoint: Checkpoint) -> BinaryIO:
        """The part file, opened to append; raises _Lost when it lacks durable bytes.

        It is created only while the checkpoint vouches for no byte of it: a part file
        removed under the job is never re-created (nor the state folder around it).
        """
        flags = os.O_RDWR | (os.O_CREAT if checkpoint.part_bytes == 0 else 0)
        try:
            part = open_nofollow(self.part_path, flags)
        except FileNotFoundError:
            if checkpoint.part_bytes == 0:
                raise  # the state folder itself is gone: nothing durable is lost
            raise _Lost(
                f"its part file is gone, its checkpoint vouches for {checkpoint.part_bytes} bytes"
            ) from None
        self._part_size = os.fstat(part.fileno()).st_size
        if self._part_size < checkpoint.part_bytes:
            part.close()
            raise _Lost(
                f"its part file is shorter than its checkpoint "
                f"({self._part_size} of {checkpoint.part_bytes} bytes)"
            )
        return part

    def _read_spooled(self, page: int, expected: SpooledPage) -> bytes:
        try:
            data = read_file(self._spool_path(page))
        except FileNotFoundError:
            raise _Lost(f"its early page {page} is gone from the spool") from None
        if len(data) != expected.size:
            raise _Lost(
                f"its early page {page} is {len(data)} bytes, its checkpoint says {expected.size}"
            )
        return data

    def _spool(self, page: PageIn) -> SpooledPage:
        data = b"\n".join([*page.lines, b""])
        if self.spool_dir.is_symlink():
            raise OSError(40, "the spool folder is a symlink", str(self.spool_dir))
        if not self.checkpoint.spooled:
            # Made for the first early page; while the checkpoint vouches for pages in
            # it, a spool folder removed under the job is not made again.
            self.spool_dir.mkdir(exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with open_nofollow(self._spool_path(page.page), flags) as spool:
            spool.write(data)
            spool.flush()
            os.fsync(spool.fileno())
        return SpooledPage(size=len(data), items=len(page.lines))

    def save(self, counters: Counters) -> Checkpoint:
        """Record the counters (calls, retries, cost) without a new page.

        A job that has no durable page yet gets a checkpoint (and an empty part file)
        too: the calls it paid for count the next time it runs the same night.
        """
        checkpoint = self.checkpoint
        new = msgspec.structs.replace(checkpoint, counters=checkpoint.counters.latest(counters))
        try:
            if checkpoint.pages == 0:
                with open_nofollow(self.part_path, os.O_WRONLY | os.O_CREAT):
                    pass
            self._write_checkpoint(new)
        except OSError as exc:
            raise self._output_error("cannot write its checkpoint", exc) from None
        self._checkpoint = new
        return new

    # -- finishing ------------------------------------------------------------------------

    def finalize(self) -> Path:
        """Rename the complete part file to the final name, atomically; return that path.

        Call only when every page is appended. Safe to call again after a crash.
        """
        checkpoint = self.checkpoint
        try:
            if not checkpoint.finalized:
                finalized = msgspec.structs.replace(checkpoint, finalized=True)
                # The part file must hold exactly what the checkpoint vouches for (a job
                # of no page at all: an empty file, made here when there is none).
                with self._open_part(checkpoint):
                    if self._part_size != checkpoint.part_bytes:
                        raise _Lost(
                            f"its part file is {self._part_size} bytes, its checkpoint "
                            f"says {checkpoint.part_bytes}"
                        )
                self._write_checkpoint(finalized)
                self._checkpoint = finalized
            if self.part_path.exists():
                os.replace(self.part_path, self.final_path)
                fsync_dir(self.folder.path)
        except _Lost as lost:
            raise self._lost_error(str(lost)) from None
        except OSError as exc:
            raise self._output_error("cannot move its result into place", exc) from None
        return self.final_path

    def close(self) -> None:
        """Forget the progress of a finalized job (its result stays)."""
        self.discard()

    # -- helpers --------------------------------------------------------------------------

    def _write_checkpoint(self, checkpoint: Checkpoint) -> None:
        atomic_write(self.checkpoint_path, _encoder.encode(checkpoint))

    def _spool_path(self, page: int) -> Path:
        return self.folder.spooled_page(self.job_id, page)

    def _lost_error(self, what: str) -> OutputError:
        return OutputError(
            f"job {self.job_id!r}: its progress was removed or damaged while it ran ({what}); "
            f"nothing of it is finished, and the next run fetches its pages again "
            f"({shown(self.folder.state)})"
        )

    def _output_error(self, what: str, exc: OSError) -> OutputError:
        reason = exc.strerror or type(exc).__name__
        where = exc.filename or self.folder.path
        return OutputError(f"job {self.job_id!r}: {what}: {reason} ({where})")


class _Appender:
    """Appends pages in order, dropping duplicate items; its figures become the checkpoint's.

    New keys are staged, not added to the store's keys: they count only once the
    checkpoint that vouches for them is durable.
    """

    def __init__(self, keys: KeySet, staged: set[int], checkpoint: Checkpoint) -> None:
        self.keys = keys
        self.staged = staged
        self.next_page = checkpoint.next_page
        self.written = checkpoint.items_written
        self.received = checkpoint.items_received
        self.duplicates = checkpoint.duplicates_dropped
        self.appended = False

    def append(self, part: BinaryIO, lines: list[bytes]) -> None:
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


def _spool_index(path: Path) -> int | None:
    stem, _, suffix = path.name.partition(".")
    if suffix != "jsonl" or not stem.isdigit():
        return None
    return int(stem)
