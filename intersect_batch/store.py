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

This module keeps the order of those steps and what the store's state is between them;
each file's own rules live with it: the checkpoint value in
:mod:`~intersect_batch.checkpoint`, the part file in :mod:`~intersect_batch.partfile`,
the spool in :mod:`~intersect_batch.spool`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from intersect_batch.checkpoint import (
    Checkpoint,
    Counters,
    Damaged,
    Lost,
    PageIn,
    resume_checkpoint,
)
from intersect_batch.durable import (
    atomic_write,
    fsync_dir,
    open_nofollow,
    shown,
    temporary_path,
)
from intersect_batch.errors import OutputError
from intersect_batch.keyset import KeySet
from intersect_batch.layout import RunFolder
from intersect_batch.partfile import (
    Appender,
    check_complete,
    check_finished,
    open_part,
    resume_part,
)
from intersect_batch.spool import Spool

__all__ = ["JobStore", "Opened"]


@dataclass(frozen=True)
class Opened:
    """A job's progress as found on disk, and what was wrong with it."""

    checkpoint: Checkpoint
    #: Damaged progress that was thrown away; its pages are fetched again.
    warnings: tuple[str, ...] = ()


_encoder = msgspec.json.Encoder()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class JobStore:
    """The files of one job in one run folder. Blocking I/O: call from a worker thread."""

    def __init__(self, folder: RunFolder, job_id: str) -> None:
        self.job_id = job_id
        self.folder = folder
        self._checkpoint: Checkpoint | None = None
        self._keys = KeySet()
        self._spool = Spool(folder, job_id)

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
        return self._spool.path

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
            checkpoint = resume_checkpoint(self.folder, self.job_id)
            if checkpoint is not None and checkpoint.fingerprint != fingerprint:
                checkpoint = None
                self.discard()
            if checkpoint is not None:
                checkpoint = self._resume(checkpoint)
        except Damaged as damage:
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

    def _resume(self, checkpoint: Checkpoint) -> Checkpoint:
        if checkpoint.finalized:
            # The crash came between the checkpoint saying "finalized" and the state
            # being removed: the part file was renamed, or is about to be.
            check_finished(self.part_path, self.final_path, checkpoint)
            return checkpoint
        self._keys = resume_part(self.part_path, checkpoint)
        return self._spool.resume(checkpoint)

    def discard(self) -> None:
        """Throw away every unfinished file of the job (the final file stays)."""
        stale = temporary_path(self.checkpoint_path)  # a checkpoint a crash cut short
        for path in (self.checkpoint_path, self.part_path, stale):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._spool.discard()

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
        except Lost as lost:
            raise self._lost_error(str(lost)) from None
        except OSError as exc:
            numbers = ", ".join(str(p.page) for p in fresh)
            raise self._output_error(f"cannot write page {numbers}", exc) from None
        # Durable: only now does the store's state move on.
        self._checkpoint = new
        self._keys.add_new(keys)
        for done in merged:
            self._spool.remove(done)
        return new

    def _commit(
        self, checkpoint: Checkpoint, pages: list[PageIn], counters: Counters
    ) -> tuple[Checkpoint, set[int], list[int]]:
        spooled = dict(checkpoint.spooled)
        staged: set[int] = set()
        merged: list[int] = []
        appender = Appender(self._keys, staged, checkpoint)
        part, size = open_part(self.part_path, checkpoint)
        with part:
            # A write that failed earlier may have left bytes past the checkpoint; fewer
            # bytes than it vouches for are progress lost (open_part raised).
            if size != checkpoint.part_bytes:
                part.truncate(checkpoint.part_bytes)
            part.seek(checkpoint.part_bytes)
            for page in pages:
                appender.receive(page)
                if page.page != appender.next_page:
                    spooled[page.page] = self._spool.write(page, checkpoint)
                    continue
                appender.append(part, page.lines)
                while appender.next_page in spooled:
                    number = appender.next_page
                    data = self._spool.read(number, spooled[number])
                    del spooled[number]
                    merged.append(number)
                    appender.append(part, data.split(b"\n")[:-1])
            part_bytes = checkpoint.part_bytes
            if appender.appended:
                part.flush()
                os.fsync(part.fileno())
                part_bytes = part.tell()
        new = appender.checkpoint(
            part_bytes=part_bytes, spooled=spooled, counters=checkpoint.counters.latest(counters)
        )
        self._write_checkpoint(new)
        return new, staged, merged

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
                check_complete(self.part_path, checkpoint)
                self._write_checkpoint(finalized)
                self._checkpoint = finalized
            if self.part_path.exists():
                os.replace(self.part_path, self.final_path)
                fsync_dir(self.folder.path)
        except Lost as lost:
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
