"""One run per output folder at a time, enforced by the kernel (flock).

The kernel drops the lock when the process ends, however it ends (kill -9 included),
so there is never a stale lock to clean up and no PID to guess about. The lock file is
opened without following symlinks and only when it is a regular file: a symlink planted
in its place is refused, never truncated through, and a FIFO is refused without waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from intersect_batch.durable import open_nofollow, shown
from intersect_batch.errors import LockError, OutputError
from intersect_batch.layout import lock_path

__all__ = ["output_lock"]


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[Path]:
    """Hold the output folder's lock; raise LockError at once if another run holds it."""
    path = lock_path(out_dir)
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise NotADirectoryError(20, "is a file, not a folder", str(out_dir))
        out_dir.mkdir(parents=True, exist_ok=True)
        handle = open_nofollow(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(
            f"cannot use the output folder {shown(out_dir)}: {exc.strerror or exc}"
            + (" (the lock file is a symlink)" if path.is_symlink() else "")
        ) from None
    fd = handle.fileno()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            if not holder.isdigit():
                holder = "unknown"
            raise LockError(
                f"another intersect-batch run (pid {holder}) is using {out_dir}; "
                "this run did nothing. Wait for it to finish, or use another --out."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        handle.close()
