"""What changed since the last run: ``<id>.diff.jsonl``, one line per new or lost item.

A job's items are compared with those of the most recent earlier run date whose manifest
says the same job completed. Items are matched by :func:`~intersect_batch.wire.item_key`
(the referring page's url_from), the key the crawl de-duplicates by. Both files are
streamed: memory grows with the number of keys (a set of 64-bit ints), never with items.

The earlier result is read with the line cap of :func:`~intersect_batch.durable.jsonl_lines`
(the longest line a run writes). When it cannot be read (a line past the cap, a FIFO or
another non-regular file in its place, removed meanwhile by ``--keep-days``) there is no
diff: a warning names the file, and the counts say the diff is ``unavailable``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec

from intersect_batch.durable import UnreadableFile, atomic_file, jsonl_lines, shown
from intersect_batch.keyset import KeySet
from intersect_batch.layout import RunFolder, earlier_runs
from intersect_batch.manifest import DiffCounts, JobManifest, read_manifest
from intersect_batch.wire import item_key, item_url

__all__ = [
    "DiffCounts",
    "diff_job",
    "previous_complete_run",
    "read_diff_counts",
    "write_diff",
]

log = logging.getLogger("intersect_batch")

#: Lines gathered before one write call: blocking I/O in bulk, not per line.
_BATCH_BYTES = 1 << 20


class _Change(msgspec.Struct, kw_only=True):
    change: str


_change_decoder = msgspec.json.Decoder(_Change)
_encoder = msgspec.json.Encoder()


def diff_job(folder: RunFolder, job_id: str, fingerprint: str) -> DiffCounts:
    """Compare a completed job with its last complete run; write ``<id>.diff.jsonl``.

    The previous run is the most recent earlier run date whose manifest for ``job_id`` has
    status ``complete``. When its fingerprint is not ``fingerprint`` (the request or the
    paging changed) no diff is written. Whenever no diff is written, a diff file left by an
    earlier attempt of the same run date is removed so that it cannot be mistaken for this
    run's. The diff lists new items in the current file's order, then lost items in the
    previous file's order; it is renamed into place only once whole and fsync'd.

    Raises ``OSError`` when a file cannot be read or written.
    """
    target = folder.diff(job_id)
    found = previous_complete_run(folder, job_id)
    if found is None:
        _remove_stale(target)
        return DiffCounts(skipped="no earlier complete run")
    previous_folder, previous = found
    if previous.fingerprint != fingerprint:
        _remove_stale(target)
        return DiffCounts(
            previous_run=previous_folder.name,
            skipped=f"parameters changed since {previous_folder.name}",
        )
    try:
        new, lost = write_diff(previous_folder.result(job_id), folder.result(job_id), target)
    except _EarlierUnreadable as damaged:
        _remove_stale(target)
        reason = f"the result of {previous_folder.name} cannot be read: {damaged}"
        log.warning("no diff: %s", reason, extra={"job": job_id})
        return DiffCounts(
            previous_run=previous_folder.name,
            skipped=f"diff unavailable: {reason}",
            unavailable=True,
        )
    return DiffCounts(previous_run=previous_folder.name, new=new, lost=lost)


class _EarlierUnreadable(Exception):
    """The earlier result cannot be read; the message says why, naming the file."""


def _earlier_lines(path: Path) -> Iterator[bytes]:
    try:
        yield from jsonl_lines(path)
    except UnreadableFile as exc:
        raise _EarlierUnreadable(str(exc)) from None
    except OSError as exc:
        where = shown(exc.filename or path)
        raise _EarlierUnreadable(f"{exc.strerror or exc} ({where})") from None


def previous_complete_run(folder: RunFolder, job_id: str) -> tuple[RunFolder, JobManifest] | None:
    """The most recent run folder before ``folder`` where ``job_id`` completed, and its manifest."""
    for earlier in earlier_runs(folder.out_dir, folder.date):
        previous = read_manifest(earlier.manifest(job_id))
        if previous is not None and previous.status == "complete":
            return earlier, previous
    return None


def write_diff(previous: Path, current: Path, target: Path) -> tuple[int, int]:
    """Write the changes from ``previous`` to ``current`` (two JSONL files) to ``target``.

    Returns ``(new, lost)``. Each file is read line by line; what is kept in memory is
    one 64-bit key per item of each file. Raises ``_EarlierUnreadable`` when ``previous``
    cannot be read, ``OSError`` when ``current`` or ``target`` cannot.
    """
    previous_keys = KeySet()
    for line in _earlier_lines(previous):
        previous_keys.add(item_key(line))
    current_keys = KeySet()
    new = lost = 0
    with atomic_file(target) as handle:
        batch = bytearray()
        for line in jsonl_lines(current):
            key = item_key(line)
            if not current_keys.add(key):
                continue
            if key not in previous_keys:
                new += 1
                batch += _change_line(b"new", line)
                if len(batch) >= _BATCH_BYTES:
                    handle.write(batch)
                    batch.clear()
        del previous_keys
        reported = KeySet()
        for line in _earlier_lines(previous):
            key = item_key(line)
            if key in current_keys or not reported.add(key):
                continue
            lost += 1
            batch += _change_line(b"lost", line)
            if len(batch) >= _BATCH_BYTES:
                handle.write(batch)
                batch.clear()
        handle.write(batch)
    return new, lost


def read_diff_counts(path: Path) -> tuple[int, int] | None:
    """``(new, lost)`` counted from a diff file, or ``None`` when there is none."""
    new = lost = 0
    try:
        for line in jsonl_lines(path):
            try:
                change = _change_decoder.decode(line).change
            except msgspec.DecodeError:
                continue
            if change == "new":
                new += 1
            elif change == "lost":
                lost += 1
    except FileNotFoundError:
        return None
    return new, lost


def _change_line(change: bytes, line: bytes) -> bytes:
    url = item_url(line)
    # The item is passed through as the bytes the crawl wrote: no field is lost.
    return b'{"change":"%s","key":%s,"item":%s}\n' % (change, _encoder.encode(url), line)


def _remove_stale(target: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
