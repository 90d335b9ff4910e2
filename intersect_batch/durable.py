"""Small durable-file primitives: what is written here survives kill -9 and power loss."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write", "fsync_dir", "jsonl_lines"]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: Path, *, sync_dir: bool = True) -> Iterator[BinaryIO]:
    """A file to write that replaces ``path`` only once it is whole and durable.

    Readers see the old file or the new one, never a part; on an error the temporary
    file is removed and ``path`` is untouched. The folder is fsync'd after the rename
    unless ``sync_dir`` is off.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and durably (see :func:`atomic_file`)."""
    with atomic_file(path, sync_dir=sync_dir) as handle:
        handle.write(data)


def jsonl_lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a JSONL file, without their newline, read in buffered chunks."""
    with open(path, "rb") as handle:
        for raw in handle:
            line = raw.rstrip(b"\r\n")
            if line:
                yield line
