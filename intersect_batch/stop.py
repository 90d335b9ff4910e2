"""Why a crawl stopped sending, as one value, and the handle that stops it from outside.

A run stops for one reason, set once (:class:`Stop`): the API refused the account, the
API could not be reached, it kept throttling, the budget or the safety cap ran out, or
a signal asked it to. A signal that comes after another stop keeps that reason and adds
itself (``signum``): the process then exits as a signalled one (130 / 143).

The crawl is stopped from outside through a :class:`CrawlControl`, as scrapy's engine is
through ``stop()`` and ``close_spider(reason)``: the process owns the signal handlers
(:mod:`intersect_batch.interrupts`) and calls :meth:`CrawlControl.signal`; a library
caller calls :meth:`CrawlControl.stop` or :meth:`CrawlControl.abandon`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from intersect_batch.errors import ApiError

__all__ = ["CrawlControl", "Stop", "StopKind"]

StopKind = Literal["run_fatal", "throttled", "unreachable", "budget", "signal", "cap"]

#: Stops that only stop handing out calls: the calls already handed out still go.
SOFT_KINDS: frozenset[StopKind] = frozenset({"budget", "cap"})


@dataclass(frozen=True)
class Stop:
    """Why the run stopped sending before its jobs were done."""

    kind: StopKind
    reason: str
    #: The API's error, for a stop the account or the network caused.
    error: ApiError | None = None
    #: The signal that interrupted the run (also after a stop of another kind).
    signum: int | None = None

    @property
    def hard(self) -> bool:
        """Whether the calls waiting for their rate token are held back too."""
        return self.kind not in SOFT_KINDS or self.signum is not None

    def then(self, later: Stop) -> Stop:
        """This stop once ``later`` came too: the first reason stays, a signal is added."""
        if later.signum is None or self.signum is not None:
            return self
        return replace(self, signum=later.signum)


class CrawlControl:
    """Stop or abandon a running crawl from outside; the crawl attaches itself while it runs.

    Call its methods on the crawl's event loop (a signal handler hands them over with
    ``loop.call_soon_threadsafe``). Before the crawl has started and after it ended they
    do nothing but record the signals seen.
    """

    def __init__(self) -> None:
        self._stop: Callable[[Stop], None] | None = None
        self._abandon: Callable[[], None] | None = None
        #: The signals received while the crawl ran.
        self.signals = 0

    @property
    def running(self) -> bool:
        """Whether a crawl is attached (it listens to stop and abandon)."""
        return self._stop is not None

    def attach(self, stop: Callable[[Stop], None], abandon: Callable[[], None]) -> None:
        """The crawl starts listening (called by the crawl)."""
        self._stop, self._abandon = stop, abandon

    def detach(self) -> None:
        """The crawl stops listening (called by the crawl)."""
        self._stop = self._abandon = None

    def stop(self, reason: str, *, signum: int | None = None) -> None:
        """Send no more calls; those in flight get ``settings.grace`` seconds to end."""
        if self._stop is not None:
            self._stop(Stop("signal", reason, signum=signum))

    def abandon(self) -> None:
        """Abandon the calls in flight now (their pages are fetched again next time)."""
        if self._abandon is not None:
            self._abandon()

    def signal(self, signum: int) -> None:
        """A signal: the first stops the crawl within its grace, a second abandons it."""
        self.signals += 1
        if self.signals == 1:
            self.stop(f"interrupted by {signal.Signals(signum).name}", signum=signum)
        else:
            self.abandon()
