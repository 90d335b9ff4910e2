"""A job's spool: the pages that arrived before the pages in front of them.

Pages come back in any order; the part file takes them only in offset order. A page that
arrives early waits here, one fsync'd file a page (``.state/<id>.spool/<k>.jsonl``),
until the pages in front of it are in the part file and it is appended too. Its own
module because it is its own folder with its own rules: the checkpoint vouches for each
file's size; a file it does not vouch for (cut short by a crash, or not a regular file)
is dropped on resume and its page fetched again, and a vouched-for page gone under a
running job is :class:`~intersect_batch.checkpoint.Lost`. The store decides when a page
goes here and when it leaves; this module only keeps the folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

import msgspec

from intersect_batch.checkpoint import Checkpoint, Lost, PageIn, SpooledPage
from intersect_batch.durable import open_nofollow, read_file
from intersect_batch.layout import RunFolder

__all__ = ["Spool"]


class Spool:
    """The spool folder of one job. Blocking I/O: call from a worker thread."""

    # One for each store open at once (thousands in a night of many jobs): no paths kept.
    __slots__ = ("_folder", "_job_id")

    def __init__(self, folder: RunFolder, job_id: str) -> None:
        self._folder = folder
        self._job_id = job_id

    @property
    def path(self) -> Path:
        """The folder of the job's early pages."""
        return self._folder.spool(self._job_id)

    def page_path(self, page: int) -> Path:
        """The file of one early page."""
        return self._folder.spooled_page(self._job_id, page)

    def resume(self, checkpoint: Checkpoint) -> Checkpoint:
        """Keep the early pages the checkpoint vouches for, drop the rest; the checkpoint
        that vouches for exactly those kept."""
        if self.path.is_symlink():
            # Not a folder this job made: never read or empty what it points to. The
            # link goes; the pages it was to hold are fetched again.
            self.path.unlink()
        self.path.mkdir(exist_ok=True)
        kept: dict[int, SpooledPage] = {}
        for path in self.path.iterdir():
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

    def write(self, page: PageIn, checkpoint: Checkpoint) -> SpooledPage:
        """Put an early page on disk, fsync'd; what the next checkpoint records of it.

        ``checkpoint`` is the durable one: while it vouches for pages in the spool, a
        spool folder removed under the job is not made again.
        """
        data = b"\n".join([*page.lines, b""])
        if self.path.is_symlink():
            raise OSError(40, "the spool folder is a symlink", str(self.path))
        if not checkpoint.spooled:
            # Made for the first early page.
            self.path.mkdir(exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with open_nofollow(self.page_path(page.page), flags) as spool:
            spool.write(data)
            spool.flush()
            os.fsync(spool.fileno())
        return SpooledPage(size=len(data), items=len(page.lines))

    def read(self, page: int, expected: SpooledPage) -> bytes:
        """An early page's lines, each ending in a newline; raises Lost if the file is
        gone or not the size its checkpoint vouches for."""
        try:
            data = read_file(self.page_path(page))
        except FileNotFoundError:
            raise Lost(f"its early page {page} is gone from the spool") from None
        if len(data) != expected.size:
            raise Lost(
                f"its early page {page} is {len(data)} bytes, its checkpoint says {expected.size}"
            )
        return data

    def remove(self, page: int) -> None:
        """Remove a page now appended to the part file; one left behind does no harm (the
        next resume drops the files the checkpoint no longer vouches for)."""
        with contextlib.suppress(OSError):
            self.page_path(page).unlink()

    def discard(self) -> None:
        """Remove the spool folder, or a symlink in its place (never what it points to)."""
        if self.path.is_symlink():
            self.path.unlink()
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def _spool_index(path: Path) -> int | None:
    stem, _, suffix = path.name.partition(".")
    if suffix != "jsonl" or not stem.isdigit():
        return None
    return int(stem)
