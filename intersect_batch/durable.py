"""Small durable-file primitives: what is written here survives kill -9 and power loss.

Files inside the output folder are opened without following symlinks, and temporary files
are created exclusively: a symlink planted in the folder makes the write fail, it never
redirects it to another file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import anyio

__all__ = [
    "atomic_file",
    "atomic_write",
    "fsync_dir",
    "in_thread",
    "jsonl_lines",
    "open_nofollow",
    "temporary_path",
]

T = TypeVar("T")


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_nofollow(path: Path, flags: int, mode: int = 0o666) -> BinaryIO:
    """Open ``path`` as a binary file, refusing a symlink in its place (``ELOOP``).

    ``flags`` are ``os.O_*`` flags; the file is opened for reading and writing when they
    include ``O_RDWR``, else for writing only when they include ``O_WRONLY``.
    """
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    if flags & os.O_RDWR:
        how = "r+b"
    elif flags & os.O_WRONLY:
        how = "ab" if flags & os.O_APPEND else "wb"
    else:
        how = "rb"
    return cast(BinaryIO, os.fdopen(fd, how))


def temporary_path(path: Path) -> Path:
    """Where :func:`atomic_file` writes ``path`` before renaming it (left by a crash)."""
    return path.with_name(f".{path.name}.tmp")


@contextlib.contextmanager
def atomic_file(
    path: Path, *, sync_dir: bool = True, mode: int = 0o666, sync: bool = True
) -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` only once it is whole and durable.

    Readers see the old file or the new one, never a part; on an error the temporary
    file is removed and ``path`` is untouched. The temporary file is created exclusively
    (a stale one, or a symlink planted in its place, is removed first, never followed).
    The folder is fsync'd after the rename unless ``sync_dir`` is off; the file before
    it unless ``sync`` is off (a file made again from others, such as the report's).
    """
    tmp = temporary_path(path)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        with open_nofollow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode) as handle:
            yield handle
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write(
    path: Path, data: bytes, *, sync_dir: bool = True, mode: int = 0o666, sync: bool = True
) -> None:
    """Replace ``path`` with ``data`` atomically and durably (see :func:`atomic_file`)."""
    with atomic_file(path, sync_dir=sync_dir, mode=mode, sync=sync) as handle:
        handle.write(data)


def jsonl_lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a JSONL file, without their newline, read in buffered chunks."""
    with open_nofollow(path, os.O_RDONLY) as handle:
        for raw in handle:
            line = raw.rstrip(b"\r\n")
            if line:
                yield line


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run blocking file work in the loop's worker threads, to the end, uncancelled.

    A file operation cut off halfway would leave the caller's view and the disk apart, so
    a cancellation waits for it (like ``anyio.to_thread.run_sync``). It goes through the
    loop's executor, so that a loop with a virtual clock knows work is under way.
    """
    loop = asyncio.get_running_loop()
    with anyio.CancelScope(shield=True):
        result = await loop.run_in_executor(_workers(), functools.partial(function, *args))
    return result


#: Threads for blocking work: what runs at once is bounded anyway (the pages in memory
#: being decoded and written, a manifest, the ledger), and every extra thread costs the
#: process a malloc arena that big pages leave fragmented.
WORKER_THREADS = 2
_executor: concurrent.futures.ThreadPoolExecutor | None = None


def _workers() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=WORKER_THREADS, thread_name_prefix="intersect-batch"
        )
    return _executor


def _forget_workers() -> None:
    """A forked child has none of its parent's threads: it starts workers of its own.

    (Kept, the parent's executor would queue the child's work for threads that do not
    exist there, and every ``in_thread`` would wait for ever.)
    """
    global _executor
    _executor = None


os.register_at_fork(after_in_child=_forget_workers)
