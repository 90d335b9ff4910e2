"""A job's writer on the event loop: group commits to its durable store, off the loop.

Pages of a job that arrive while one of its commits is under way wait for it; then the
first of them commits them all, with one fsync and one checkpoint. Every call returns the
:class:`~intersect_batch.checkpoint.Checkpoint` that made its page durable (a frozen value),
or raises the OutputError that kept it from being so; nothing outside reads the store.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from intersect_batch.checkpoint import Checkpoint, Counters, PageIn
from intersect_batch.durable import in_thread
from intersect_batch.errors import OutputError
from intersect_batch.keyset import KeySet
from intersect_batch.layout import RunFolder
from intersect_batch.store import JobStore, Opened

__all__ = ["JobWriter"]


@dataclass(eq=False)
class _Pending:
    page: PageIn
    counters: Counters
    done: Checkpoint | None = None
    error: OutputError | None = None


@dataclass(eq=False)
class JobWriter:
    """The one way to a job's files during a run."""

    _store: JobStore
    _lock: anyio.Lock | None = field(init=False, default=None)
    _pending: list[_Pending] = field(init=False, default_factory=list)

    @classmethod
    def at(cls, folder: RunFolder, job_id: str) -> JobWriter:
        """The writer of a job's own files in ``folder``."""
        return cls(JobStore(folder, job_id))

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """One commit of the job at a time.

        The lock lives only while a commit is under way or waited for: a job between two
        pages holds none (a night of many jobs holds thousands of writers open at once).
        """
        lock = self._lock
        if lock is None:
            lock = self._lock = anyio.Lock()
        try:
            async with lock:
                yield
        finally:
            if self._lock is lock and not lock.locked() and not lock.statistics().tasks_waiting:
                self._lock = None

    @property
    def durable(self) -> Checkpoint:
        """What of the job is durable now."""
        return self._store.checkpoint

    @property
    def seen(self) -> KeySet:
        """The keys of the items durable in order (read-only: the store adds to it)."""
        return self._store.keys

    async def open(self, fingerprint: str) -> Opened:
        """Resume the job's progress (see :meth:`JobStore.open`)."""
        return await in_thread(self._store.open, fingerprint)

    def begin(self, fingerprint: str) -> Checkpoint:
        """Start a job that has nothing on disk (see :meth:`JobStore.begin`); no I/O."""
        return self._store.begin(fingerprint)

    async def write(self, page: PageIn, counters: Counters) -> Checkpoint:
        """Make one page durable (with the pages that queue behind a commit under way)."""
        entry = _Pending(page, counters)
        self._pending.append(entry)
        async with self._exclusive():
            if entry.done is None and entry.error is None:
                batch, self._pending = self._pending, []
                latest = batch[0].counters
                for item in batch[1:]:
                    latest = latest.latest(item.counters)
                try:
                    done = await in_thread(
                        self._store.commit, [item.page for item in batch], latest
                    )
                except OutputError as exc:
                    for item in batch:
                        item.error = exc
                else:
                    for item in batch:
                        item.done = done
        if entry.error is not None:
            raise entry.error
        assert entry.done is not None
        return entry.done

    async def save(self, counters: Counters) -> Checkpoint:
        """Record the counters without a new page."""
        async with self._exclusive():
            return await in_thread(self._store.save, counters)

    async def finalize(self) -> Path:
        """Move the complete result into place (see :meth:`JobStore.finalize`)."""
        async with self._exclusive():
            return await in_thread(self._store.finalize)

    async def close(self) -> None:
        """Forget the progress of a finished job."""
        async with self._exclusive():
            await in_thread(self._store.close)
