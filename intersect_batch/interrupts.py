"""SIGINT / SIGTERM: the process owns the handlers, at every stage of a run.

While the crawl sends calls, a signal is handed to its
:class:`~intersect_batch.stop.CrawlControl`: the first lets the calls in flight end
within ``--grace``, a second abandons them. Before the crawl (configs loading, the lock
being taken) and after it (the diff, run.json, the report, retention) a signal ends the
run at once with 130 / 143 and no traceback
(:func:`~intersect_batch.runfile.record_ending` makes a run.json this invocation wrote
say so).

Whatever the process is doing, it ends within ``--grace`` (and :data:`MARGIN`) of the
first signal, and within :data:`MARGIN` of a second: a worker thread blocked in a file
operation (a FIFO where a file was expected, a hung network mount) cannot be
cancelled, so a watchdog ends the process then, as a signalled one. What is durable
stays durable: the files are written so that even kill -9 loses nothing committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import anyio

from intersect_batch.stop import CrawlControl

__all__ = ["MARGIN", "Interrupts"]

#: Seconds past its deadline (``--grace`` after a first signal, now after a second) at
#: which the process ends even if a worker thread is blocked.
MARGIN = 3.0


class Interrupts:
    """SIGINT / SIGTERM for the whole run: a crawl stops cleanly, anything else at once.

    ``grace`` is the seconds the calls in flight get after a first signal.
    """

    def __init__(self, grace: float = 30.0) -> None:
        self.grace = grace
        #: The first signal that came outside the crawl (the crawl reports its own).
        self.signum: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scope: anyio.CancelScope | None = None
        self._control: CrawlControl | None = None
        self._signals = 0
        self._watchdog: threading.Timer | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        self._arm(signum, self.grace + MARGIN if self._signals == 1 else MARGIN)
        control = self._control
        if self._loop is not None and control is not None and control.running:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(control.signal, signum)
            return
        if self.signum is None:
            self.signum = signum
        if self._loop is not None and self._scope is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._scope.cancel)

    def _arm(self, signum: int, seconds: float) -> None:
        """End the process ``seconds`` from now, unless it has ended by then."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = threading.Timer(seconds, _exit_now, (signum,))
        self._watchdog.daemon = True
        self._watchdog.start()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {signum: signal.signal(signum, self._handle) for signum in handled}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self._watchdog is not None:
                self._watchdog.cancel()

    @contextlib.contextmanager
    def cancelling(
        self, scope: anyio.CancelScope, control: CrawlControl | None = None
    ) -> Iterator[None]:
        """While inside, a signal cancels ``scope`` (at once if one came already).

        While ``control`` is attached to a running crawl, a signal goes to it instead.
        """
        self._loop = loop = asyncio.get_running_loop()
        self._scope = scope
        self._control = control
        if self.signum is not None:
            scope.cancel()
        # While the loop runs, it takes the signals itself: a signal the kernel hands to a
        # worker thread (one blocked in a file operation) still wakes the loop at once.
        handled = (signal.SIGINT, signal.SIGTERM)
        for signum in handled:
            loop.add_signal_handler(signum, self._handle, signum, None)
        try:
            yield
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
                signal.signal(signum, self._handle)
            self._loop = self._scope = self._control = None


def _exit_now(signum: int) -> None:
    """The process did not end in time after a signal: end it now, as a signalled one."""
    name = signal.Signals(signum).name
    message = (
        f"{name}: a file operation did not end in time; stopping now. Progress is saved "
        "up to the last durable page; run the same command to continue\n"
    )
    with contextlib.suppress(OSError):
        os.write(2, message.encode())
    os._exit(128 + signum)
