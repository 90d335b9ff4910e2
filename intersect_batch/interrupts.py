"""SIGINT / SIGTERM outside the crawl: a run stops at once, at any stage, without a traceback.

The crawl handles the signals while it runs (a grace for the calls in flight, a second
signal to stop at once). Before it (configs loading, the lock being taken) and after it
(the diff, run.json, the report, retention) these hooks end the run with 130 / 143, and
:func:`record_interrupted` makes a run.json this invocation wrote say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import anyio
import msgspec

from intersect_batch.durable import read_file
from intersect_batch.layout import RunFolder
from intersect_batch.manifest import RunSummary, write_json

__all__ = ["Interrupts", "file_state", "record_interrupted"]


class Interrupts:
    """SIGINT / SIGTERM outside the crawl (which handles its own): stop the run at once.

    Installed before anything runs, so a signal while configs load, while the lock is
    taken, or while run.json and the report are written ends the run with 130 / 143 and
    no traceback. The crawl takes the signals over while it runs and hands them back.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scope: anyio.CancelScope | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self._loop is not None and self._scope is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._scope.cancel)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self._handle) for signum in handled}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def cancelling(self, scope: anyio.CancelScope) -> Iterator[None]:
        """While inside, a signal cancels ``scope`` (at once if one came already)."""
        self._loop = asyncio.get_running_loop()
        self._scope = scope
        if self.signum is not None:
            scope.cancel()
        try:
            yield
        finally:
            self._loop = self._scope = None


def file_state(path: Path) -> tuple[int, int] | None:
    """A file's identity and time of change, to tell whether a run wrote it; None if absent."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def record_interrupted(
    folder: RunFolder, before: tuple[int, int] | None, signum: int
) -> RunSummary | None:
    """run.json made true to a run stopped by ``signum`` after writing it; None if it did not."""
    if file_state(folder.run_json) in (None, before):
        return None
    try:
        summary = msgspec.json.decode(read_file(folder.run_json), type=RunSummary)
    except (OSError, msgspec.DecodeError):
        return None
    code = 128 + signum
    if summary.exit_code != code:
        name = signal.Signals(signum).name
        summary.exit_code = code
        summary.needs_attention = True
        summary.stop_reason = summary.stop_reason or f"interrupted by {name} after the crawl"
        with contextlib.suppress(OSError):
            write_json(folder.run_json, summary)
    return summary
