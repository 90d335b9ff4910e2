"""Small durable-file primitives: what is written here survives kill -9 and power loss.

Files inside the output folder are opened without following symlinks, and temporary files
are created exclusively: a symlink planted in the folder makes the write fail, it never
redirects it to another file. Only regular files are ever opened: a FIFO, a socket or a
device in a file's place is refused (:class:`NotRegularFile`) without waiting for a
writer or a reader, so no file of the folder can make a run hang. JSONL files are read a
line at a time with a cap on a line's length (:data:`MAX_LINE_BYTES`), so a damaged file
costs a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import functools
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import anyio

__all__ = [
    "MAX_LINE_BYTES",
    "LineTooLong",
    "NotRegularFile",
    "UnreadableFile",
    "atomic_file",
    "atomic_write",
    "fsync_dir",
    "in_thread",
    "jsonl_lines",
    "open_nofollow",
    "read_file",
    "shown",
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


#: The longest line read from a JSONL file of a run folder: the largest answer the crawl
#: accepts (``AnswerCaps.max_inflated_bytes``, 64 MiB), so no item it wrote is longer.
#: A longer line means the file is damaged (a tail without a newline, another file in its
#: place): reading stops there, having held at most this much of it. The run's JSON files
#: (manifests, run.json, checkpoints) are read whole up to the same size.
MAX_LINE_BYTES = 64 * 2**20

# C0 and C1 controls, DEL: a path in a message must not forge a log line or steer a terminal.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(path: Path | str) -> str:
    """``path`` as a message shows it: control characters escaped (``\\n``, ``\\x1b``)."""
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], str(path))


class UnreadableFile(OSError):
    """A file of the output folder the run will not read: the message names it and why.

    ``strerror`` holds the whole message (path included), so every caller that reports
    ``exc.strerror`` names the file.
    """

    def __init__(self, message: str) -> None:
        super().__init__(errno.EINVAL, message)

    def __str__(self) -> str:
        return str(self.strerror)


class NotRegularFile(UnreadableFile):
    """A FIFO, socket, device or folder where a regular file belongs: never opened."""


class LineTooLong(UnreadableFile):
    """A JSONL line, or a whole JSON file, past :data:`MAX_LINE_BYTES`: the file is damaged."""


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def _not_regular(path: Path, mode: int | None) -> NotRegularFile:
    kind = next((name for test, name in _KINDS if mode is not None and test(mode)), None)
    if kind is None:
        return NotRegularFile(f"{shown(path)} is not a regular file")
    return NotRegularFile(f"{shown(path)} is {kind}, not a regular file")


def open_nofollow(path: Path, flags: int, mode: int = 0o666) -> BinaryIO:
    """Open ``path`` as a binary file, refusing a symlink (``ELOOP``) or a non-regular file.

    ``flags`` are ``os.O_*`` flags; the file is opened for reading and writing when they
    include ``O_RDWR``, else for writing only when they include ``O_WRONLY``.

    The open itself never blocks: it is made with ``O_NONBLOCK`` (a FIFO then opens, or
    fails with ``ENXIO``, at once), the file it gave is checked to be regular, and only
    then is ``O_NONBLOCK`` cleared. A FIFO, socket, device or folder in the file's place
    raises :class:`NotRegularFile` naming the path. Two system calls per open, none per
    read or write.
    """
    try:
        nowait = os.O_NONBLOCK | os.O_NOCTTY  # a terminal in its place must not become ours
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | nowait, mode)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        # A FIFO without a reader (opened to write), or a socket: say what is there.
        try:
            found: int | None = os.lstat(path).st_mode
        except OSError:
            found = None
        raise _not_regular(path, found) from None
    try:
        found = os.fstat(fd).st_mode
        if not stat.S_ISREG(found):
            raise _not_regular(path, found)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & os.O_APPEND)
    except BaseException:
        os.close(fd)
        raise
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


def read_file(path: Path, *, max_bytes: int = MAX_LINE_BYTES) -> bytes:
    """The whole of a regular file of the output folder (see :func:`open_nofollow`).

    For the run's JSON files (manifests, run.json, checkpoints), each one document on
    one line as far as the cap goes: past ``max_bytes`` the file is damaged, and
    :class:`LineTooLong` is raised having read no more than that.
    """
    with open_nofollow(path, os.O_RDONLY) as handle:
        # The size first: read(max_bytes + 1) would set that much memory aside each time.
        size = os.fstat(handle.fileno()).st_size
        data = handle.read() if size <= max_bytes else b""
    if max(size, len(data)) > max_bytes:
        raise LineTooLong(
            f"{shown(path)} is larger than {_size(max_bytes)} (the largest file of its kind "
            "a run writes): the file is damaged"
        )
    return data


def jsonl_lines(path: Path, *, max_line: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The non-empty lines of a JSONL file, without their newline, read in buffered chunks.

    Raises :class:`LineTooLong` at the first line longer than ``max_line`` bytes (having
    read no more than that of it), :class:`NotRegularFile` when ``path`` is not a
    regular file.
    """
    with open_nofollow(path, os.O_RDONLY) as handle:
        for number, raw in enumerate(iter(functools.partial(handle.readline, max_line + 1), b"")):
            if len(raw) > max_line and not raw.endswith(b"\n"):
                raise LineTooLong(
                    f"{shown(path)}: line {number + 1} is longer than {_size(max_line)} "
                    "(the longest line a run writes): the file is damaged"
                )
            line = raw.rstrip(b"\r\n")
            if line:
                yield line


def _size(count: int) -> str:
    return f"{count / 2**20:g} MiB" if count >= 2**20 else f"{count:,} bytes"


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
