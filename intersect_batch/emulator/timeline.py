"""An index that changes by date: pages appear, vanish and come back, day after day.

With a :class:`Timeline`, the emulator answers as of a date (``--as-of``, the
``X-Emulator-As-Of`` header, or ``POST /_emulator/as-of``). Day 0 is ``origin``: the
synthetic graph as generated, less the pages whose arrival is still to come. Each page of
a target set has one fate, drawn from a hash of the set and the page:

- **new** on day k (a share ``daily_new`` of the pages per day, k in 1..``horizon_days``):
  absent before day k; from day k on, every backlink it has is first seen on day k;
- **found again** on day k (``daily_return`` per day): absent before day k, then present
  with its old ``first_seen``: an incremental "first seen since" query never sees it;
- **vanishing** on day k (``daily_vanish`` per day): present before day k, gone from it;
- stable: always there (the rest).

Dates before ``origin`` answer as day 0, after the horizon as its last day. The graph's
own dates end in 2025, so an origin after that keeps every old ``first_seen`` older than
every new one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Literal

import msgspec
from aiohttp import web
from multidict import CIMultiDictProxy

from .hashing import text_hash
from .schema import Backlink

__all__ = ["AS_OF_HEADER", "AS_OF_PATH", "AsOf", "Timeline", "parse_as_of"]

AS_OF_HEADER = "X-Emulator-As-Of"
AS_OF_PATH = "/_emulator/as-of"
Fate = Literal["new", "return", "vanish"]
_HALF = 2.0**64


def parse_as_of(text: str) -> dt.date:
    """A ``YYYY-MM-DD`` date; ValueError otherwise."""
    return dt.date.fromisoformat(text.strip())


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """How the index moves by date; see the module's docstring."""

    origin: dt.date
    #: The date answered until told another (None: the origin).
    as_of: dt.date | None = None
    daily_new: float = 0.01
    daily_return: float = 0.0
    daily_vanish: float = 0.0
    horizon_days: int = 30

    def __post_init__(self) -> None:
        rates = (self.daily_new, self.daily_return, self.daily_vanish)
        if self.horizon_days < 1:
            raise ValueError("horizon_days must be >= 1")
        if any(rate < 0 for rate in rates) or sum(rates) * self.horizon_days > 1.0:
            raise ValueError(
                "the daily rates must be >= 0 and, times horizon_days, add up to at most 1"
            )

    def day(self, as_of: dt.date) -> int:
        """The day number of a date: 0 at the origin, within ``0..horizon_days``."""
        return min(max(0, (as_of - self.origin).days), self.horizon_days)

    def fate(self, thash: int, pid: int) -> tuple[Fate | None, int]:
        """What happens to a page, and on which day (``(None, 0)``: it is stable)."""
        u = text_hash("timeline", thash, pid) / _HALF
        for kind, rate in (
            ("new", self.daily_new),
            ("return", self.daily_return),
            ("vanish", self.daily_vanish),
        ):
            span = rate * self.horizon_days
            if u < span:
                return kind, 1 + int(u / rate)  # type: ignore[return-value]
            u -= span
        return None, 0

    def present(self, thash: int, pid: int, day: int) -> bool:
        """Whether the page is in the index on ``day``."""
        kind, when = self.fate(thash, pid)
        if kind is None:
            return True
        if kind == "vanish":
            return day < when
        return day >= when

    def first_seen(self, thash: int, pid: int) -> str | None:
        """A new page's ``first_seen`` (the day it appears, at a drawn time), else None."""
        kind, when = self.fate(thash, pid)
        if kind != "new":
            return None
        seconds = text_hash("timeline-time", thash, pid) % 86_400
        day = self.origin + dt.timedelta(days=when)
        hours, rest = divmod(seconds, 3600)
        return f"{day.isoformat()} {hours:02d}:{rest // 60:02d}:{rest % 60:02d} +00:00"

    def restamp(self, thash: int, pid: int, links: dict[str, list[Backlink]]) -> None:
        """Give a new page's backlinks the day it appeared as first, previous and last seen."""
        stamp = self.first_seen(thash, pid)
        if stamp is None:
            return
        for key, backlinks in links.items():
            links[key] = [
                msgspec.structs.replace(b, first_seen=stamp, prev_seen=stamp, last_seen=stamp)
                for b in backlinks
            ]


class AsOf:
    """The date the emulator answers as of: set by ``POST /_emulator/as-of``, or per call."""

    def __init__(self, timeline: Timeline | None) -> None:
        self.timeline = timeline
        self.date = None if timeline is None else (timeline.as_of or timeline.origin)

    def of_call(self, headers: CIMultiDictProxy[str]) -> tuple[int | None, str | None]:
        """The timeline's day for a call (its header wins), and that date as text."""
        if self.timeline is None or self.date is None:
            return None, None
        date = self.date
        asked = headers.get(AS_OF_HEADER)
        if asked is not None:
            # An unreadable header is no header: the emulator's own date holds.
            with contextlib.suppress(ValueError):
                date = parse_as_of(asked)
        return self.timeline.day(date), date.isoformat()

    async def handle(self, request: web.Request) -> web.Response:
        """``POST`` a ``YYYY-MM-DD`` body to move the date; any method answers the date."""
        if self.timeline is None:
            return web.Response(status=404, text="no timeline: start with --timeline-origin\n")
        if request.method == "POST":
            try:
                self.date = parse_as_of((await request.read()).decode("utf-8", "replace"))
            except ValueError:
                return web.Response(status=400, text="expected a date YYYY-MM-DD\n")
        assert self.date is not None
        return web.Response(text=self.date.isoformat() + "\n")
