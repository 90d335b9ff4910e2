"""Seeded fault and latency draws: a hash of the request, not a shared random stream."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from .hashing import normal, uniform
from .query import Query
from .settings import FAULT_NAMES, HOLE_NAMES, EmulatorSettings, PinnedFault

__all__ = ["Draw", "FaultDecider"]

# Tried in this order; the first that fires is the call's fault. "slow" is drawn on its
# own and adds to any; status codes come between the server faults and the rest, as they
# always did, so adding knobs changed no earlier draw.
_FIRST = (
    "drop_connection",
    "http_500",
    "truncated_body",
    "timeout",
    "internal_error",
    "task_failed",
)
_THEN = tuple(n for n in FAULT_NAMES if n not in _FIRST and n != "slow")


@dataclass(frozen=True, slots=True)
class Draw:
    """What happens to one call: its fault (or None), a forced status code, and its delay."""

    fault: str | None
    status_code: int | None
    delay: float


class FaultDecider:
    """Draws each call's fate from ``(seed, request, times this request was seen before)``.

    So the same sequence of requests meets the same faults whatever the interleaving, and a
    retried request gets a fresh draw. Pinned offsets answer their fault before any draw.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        self._seed = settings.seed
        self._faults = settings.faults
        self._median = settings.latency_median
        self._spread = settings.latency_spread
        self._seen: Counter[bytes] = Counter()

    def draw(self, query: Query) -> Draw:
        request_key = query.request_key
        nth = self._seen[request_key]
        self._seen[request_key] = nth + 1
        key = (self._seed, request_key, nth)
        f = self._faults
        pin = self._pin(query, nth)
        fault: str | None = None
        code: int | None = None
        if pin is not None:
            if isinstance(pin.kind, int):
                fault, code = "status_code", pin.kind
            else:
                fault = pin.kind
        else:
            fault, code = self._drawn(key, query.offset)
        delay = 0.0
        if self._median > 0:
            delay = self._median * math.exp(self._spread * normal(*key, "latency"))
        if fault == "timeout":
            delay = f.timeout_delay
        if fault == "slow":
            delay += f.slow_seconds
        elif pin is None and f.slow > 0 and uniform(*key, "slow") < f.slow:
            delay += f.slow_seconds
            fault = fault or "slow"
        return Draw(fault=fault, status_code=code, delay=delay)

    def _drawn(self, key: tuple[int, bytes, int], offset: int) -> tuple[str | None, int | None]:
        f = self._faults
        for name in _FIRST:
            p = getattr(f, name)
            if p > 0 and uniform(*key, name) < p:
                return name, None
        for status, p in sorted(f.status_codes.items()):
            if p > 0 and uniform(*key, "status", status) < p:
                return "status_code", status
        for name in _THEN:
            if offset == 0 and name in HOLE_NAMES:
                continue
            p = getattr(f, name)
            if p > 0 and uniform(*key, name) < p:
                return name, None
        return None, None

    def _pin(self, query: Query, nth: int) -> PinnedFault | None:
        """The pin this request's ``nth`` sighting answers, if any (pins take turns)."""
        used = 0
        for pin in self._faults.pinned:
            if pin.offset != query.offset:
                continue
            if pin.target is not None and pin.target != query.targets[0]:
                continue
            if pin.times is None or nth < used + pin.times:
                return pin
            used += pin.times
        return None
