"""A job's durable output: pages appended in offset order, checkpointed, renamed when done.

Layout under the run folder::

    <id>.jsonl                    the complete result (appears only when complete)
    .state/<id>.part              pages 0..next_page-1, in order, deduplicated
    .state/<id>.checkpoint.json   what of the part file and the spool is durable
    .state/<id>.spool/<k>.jsonl   pages that arrived before the pages in front of them

Every page goes to disk the moment it arrives: the next one in order is appended to the
part file, one that arrived early waits in the spool. The data is fsync'd before the
checkpoint that points past it is (atomically) replaced, so after kill -9 or power loss
:meth:`JobStore.open` truncates the part file to the checkpoint's length and resumes:
no page on disk is fetched again, and no line is torn. Duplicate items (the same
referring page seen twice because live data shifted a page boundary) are dropped as pages
are appended in offset order, so a resumed run writes the same bytes as an uninterrupted
one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

import msgspec

from intersect_batch.durable import atomic_write, fsync_dir
from intersect_batch.errors import OutputError
from intersect_batch.keyset import KeySet
from intersect_batch.wire import item_key

__all__ = [
    "Checkpoint",
    "JobStore",
    "PageIn",
    "SpooledPage",
    "remove_state_dir_if_empty",
    "state_dir",
]


class PageIn(NamedTuple):
    """A page to make durable: its number, its item lines, the total_count it reported."""

    page: int
    lines: list[bytes]
    total_count: int | None


class SpooledPage(msgspec.Struct, kw_only=True):
    """A page on disk in the spool, waiting for the pages in front of it."""

    size: int
    items: int


class Checkpoint(msgspec.Struct, kw_only=True):
    """What of a job is durable; the part file may hold more, which is cut off on resume."""

    fingerprint: str
    started_at: str
    next_page: int = 0
    part_bytes: int = 0
    items_written: int = 0
    items_received: int = 0
    duplicates_dropped: int = 0
    spooled: dict[int, SpooledPage] = msgspec.field(default_factory=dict)
    total_first: int | None = None
    total_last: int | None = None
    total_min: int | None = None
    total_max: int | None = None
    cost_usd: float = 0.0
    calls: int = 0
    retries: int = 0
    finalized: bool = False


_checkpoint_decoder = msgspec.json.Decoder(Checkpoint)
_encoder = msgspec.json.Encoder()


def state_dir(run_dir: Path) -> Path:
    """Where a run date keeps the progress of its unfinished jobs."""
    return run_dir / ".state"


def remove_state_dir_if_empty(run_dir: Path) -> None:
    """Leave no empty state folder behind after a run whose jobs all finished."""
    with contextlib.suppress(OSError):
        state_dir(run_dir).rmdir()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class JobStore:
    """The files of one job in one run folder. Blocking I/O: call from a worker thread."""

    def __init__(self, run_dir: Path, job_id: str) -> None:
        self.job_id = job_id
        self.run_dir = run_dir
        state = state_dir(run_dir)
        self.final_path = run_dir / f"{job_id}.jsonl"
        self.part_path = state / f"{job_id}.part"
        self.checkpoint_path = state / f"{job_id}.checkpoint.json"
        self.spool_dir = state / f"{job_id}.spool"
        self.checkpoint: Checkpoint | None = None
        self._keys = KeySet()

    # -- opening and resuming -------------------------------------------------------------

    def open(self, fingerprint: str) -> Checkpoint:
        """Resume the job's durable progress, or start it anew.

        Progress made under another fingerprint (the job's parameters changed) is thrown
        away: old and new pages never mix.
        """
        try:
            return self._open(fingerprint)
        except OSError as exc:
            raise self._output_error("cannot open its progress", exc) from None

    def _open(self, fingerprint: str) -> Checkpoint:
        state = state_dir(self.run_dir)
        state.mkdir(parents=True, exist_ok=True)
        checkpoint = self._read_checkpoint()
        if checkpoint is not None and checkpoint.fingerprint != fingerprint:
            checkpoint = None
        if checkpoint is None:
            # Nothing is durable yet: the first page writes the first checkpoint.
            self.discard()
            checkpoint = Checkpoint(fingerprint=fingerprint, started_at=_now())
            self.checkpoint = checkpoint
            self._keys = KeySet()
            return checkpoint
        self.checkpoint = checkpoint
        if checkpoint.finalized:
            return checkpoint
        self.spool_dir.mkdir(exist_ok=True)
        # Cut off what was appended after the last checkpoint, then re-learn the keys
        # of what stays, a line at a time.
        with open(self.part_path, "r+b") as part:
            part.truncate(checkpoint.part_bytes)
            part.seek(0)
            self._keys = KeySet()
            for line in part:
                if line.strip():
                    self._keys.add(item_key(line.rstrip(b"\n")))
        # Spool files the checkpoint does not vouch for were cut short by the crash.
        for path in self.spool_dir.iterdir():
            page = self._spool_index(path)
            expected = checkpoint.spooled.get(page) if page is not None else None
            if expected is None or path.stat().st_size != expected.size:
                path.unlink()
        for page in list(checkpoint.spooled):
            if not self._spool_path(page).exists():
                del checkpoint.spooled[page]
        return checkpoint

    def _read_checkpoint(self) -> Checkpoint | None:
        try:
            data = self.checkpoint_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            checkpoint = _checkpoint_decoder.decode(data)
        except msgspec.DecodeError:
            return None
        if not checkpoint.finalized and not self.part_path.exists():
            return None
        return checkpoint

    def discard(self) -> None:
        """Throw away every unfinished file of the job (the final file stays)."""
        for path in (self.checkpoint_path, self.part_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        shutil.rmtree(self.spool_dir, ignore_errors=True)

    # -- pages ----------------------------------------------------------------------------

    @property
    def pages_done(self) -> set[int]:
        """Pages already durable: never fetch these again."""
        checkpoint = self._require()
        return set(range(checkpoint.next_page)) | set(checkpoint.spooled)

    def put(self, page: int, lines: list[bytes], *, counters: dict[str, float]) -> None:
        """Make one page durable: appended if it is next in order, spooled otherwise.

        ``counters`` (calls, retries, cost_usd, and the page's total_count) are recorded
        in the same checkpoint.
        """
        total = counters.get("total_count")
        self.put_many(
            [PageIn(page, lines, None if total is None else int(total))], counters=counters
        )

    def put_many(self, pages: Sequence[PageIn], *, counters: dict[str, float]) -> None:
        """Make several pages durable with one checkpoint (a group commit).

        Pages already durable are ignored; ``counters`` are as for :meth:`put`, their
        total_count aside (each page brings its own).
        """
        checkpoint = self._require()
        fresh = sorted(
            (
                p
                for p in pages
                if p.page >= checkpoint.next_page and p.page not in checkpoint.spooled
            ),
            key=lambda p: p.page,
        )
        if not fresh:
            return
        try:
            self._put_many(checkpoint, fresh, counters)
        except OSError as exc:
            numbers = ", ".join(str(p.page) for p in fresh)
            raise self._output_error(f"cannot write page {numbers}", exc) from None

    def _put_many(
        self, checkpoint: Checkpoint, pages: list[PageIn], counters: dict[str, float]
    ) -> None:
        state_dir(self.run_dir).mkdir(parents=True, exist_ok=True)
        # The checkpoint always has a part file beside it, even an empty one.
        self.part_path.touch(exist_ok=True)
        self._record(checkpoint, {k: v for k, v in counters.items() if k != "total_count"})
        merged: list[int] = []
        with open(self.part_path, "ab") as part:
            appended = False
            for page in pages:
                checkpoint.items_received += len(page.lines)
                self._record_total(checkpoint, page.total_count)
                if page.page != checkpoint.next_page:
                    self._spool(checkpoint, page)
                    continue
                self._append(part, checkpoint, page.lines)
                appended = True
                while checkpoint.next_page in checkpoint.spooled:
                    spooled = self._spool_path(checkpoint.next_page).read_bytes()
                    merged.append(checkpoint.next_page)
                    del checkpoint.spooled[checkpoint.next_page]
                    self._append(part, checkpoint, spooled.split(b"\n")[:-1])
            if appended:
                part.flush()
                os.fsync(part.fileno())
                checkpoint.part_bytes = part.tell()
        self._write_checkpoint(checkpoint)
        for done in merged:
            with contextlib.suppress(FileNotFoundError):
                self._spool_path(done).unlink()

    def _spool(self, checkpoint: Checkpoint, page: PageIn) -> None:
        data = b"\n".join([*page.lines, b""])
        self.spool_dir.mkdir(exist_ok=True)
        with open(self._spool_path(page.page), "wb") as spool:
            spool.write(data)
            spool.flush()
            os.fsync(spool.fileno())
        checkpoint.spooled[page.page] = SpooledPage(size=len(data), items=len(page.lines))

    def _append(self, part: BinaryIO, checkpoint: Checkpoint, lines: list[bytes]) -> None:
        keys = self._keys
        kept = []
        for line in lines:
            if keys.add(item_key(line)):
                kept.append(line)
            else:
                checkpoint.duplicates_dropped += 1
        if kept:
            # Two writes, not "joined + newline": that would copy the whole page again.
            part.write(b"\n".join(kept))
            part.write(b"\n")
        checkpoint.items_written += len(kept)
        checkpoint.next_page += 1

    @staticmethod
    def _record(checkpoint: Checkpoint, counters: dict[str, float]) -> None:
        checkpoint.calls = int(counters.get("calls", checkpoint.calls))
        checkpoint.retries = int(counters.get("retries", checkpoint.retries))
        checkpoint.cost_usd = float(counters.get("cost_usd", checkpoint.cost_usd))
        total = counters.get("total_count")
        JobStore._record_total(checkpoint, None if total is None else int(total))

    @staticmethod
    def _record_total(checkpoint: Checkpoint, total: int | None) -> None:
        if total is None:
            return
        if checkpoint.total_first is None:
            checkpoint.total_first = total
        checkpoint.total_last = total
        checkpoint.total_min = min(total, checkpoint.total_min or total)
        checkpoint.total_max = max(total, checkpoint.total_max or total)

    def save(self, counters: dict[str, float]) -> None:
        """Record the counters (calls, retries, cost) without a new page.

        A job with no durable page has no checkpoint to update: nothing is written.
        """
        checkpoint = self._require()
        self._record(checkpoint, counters)
        if checkpoint.next_page == 0 and not checkpoint.spooled:
            return
        try:
            self._write_checkpoint(checkpoint)
        except OSError as exc:
            raise self._output_error("cannot write its checkpoint", exc) from None

    # -- finishing ------------------------------------------------------------------------

    def finalize(self) -> Path:
        """Rename the complete part file to the final name, atomically; return that path.

        Call only when every page is appended. Safe to call again after a crash.
        """
        checkpoint = self._require()
        try:
            if not checkpoint.finalized:
                checkpoint.finalized = True
                self._write_checkpoint(checkpoint)
            if self.part_path.exists():
                os.replace(self.part_path, self.final_path)
                fsync_dir(self.run_dir)
        except OSError as exc:
            raise self._output_error("cannot move its result into place", exc) from None
        return self.final_path

    def close(self) -> None:
        """Forget the checkpoint of a finalized job."""
        self.discard()

    # -- helpers --------------------------------------------------------------------------

    def _require(self) -> Checkpoint:
        if self.checkpoint is None:
            raise RuntimeError("JobStore.open() must come first")
        return self.checkpoint

    def _write_checkpoint(self, checkpoint: Checkpoint) -> None:
        atomic_write(self.checkpoint_path, _encoder.encode(checkpoint))

    def _spool_path(self, page: int) -> Path:
        return self.spool_dir / f"{page}.jsonl"

    @staticmethod
    def _spool_index(path: Path) -> int | None:
        stem, _, suffix = path.name.partition(".")
        if suffix != "jsonl" or not stem.isdigit():
            return None
        return int(stem)

    def _output_error(self, what: str, exc: OSError) -> OutputError:
        reason = exc.strerror or type(exc).__name__
        where = exc.filename or self.run_dir
        return OutputError(f"job {self.job_id!r}: {what}: {reason} ({where})")
