"""Seeded fault and latency draws: a hash of the request, not a shared random stream."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from .hashing import normal, uniform
from .settings import EmulatorSettings

__all__ = ["Draw", "FaultDecider"]

# Tried in this order; the first that fires is the call's fault ("slow" adds to any).
_ORDER = (
    "drop_connection",
    "http_500",
    "truncated_body",
    "timeout",
    "internal_error",
    "task_failed",
)


@dataclass(frozen=True, slots=True)
class Draw:
    """What happens to one call: its fault (or None), a forced status code, and its delay."""

    fault: str | None
    status_code: int | None
    delay: float


class FaultDecider:
    """Draws each call's fate from ``(seed, request, times this request was seen before)``.

    So the same sequence of requests meets the same faults whatever the interleaving, and a
    retried request gets a fresh draw.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        self._seed = settings.seed
        self._faults = settings.faults
        self._median = settings.latency_median
        self._spread = settings.latency_spread
        self._seen: Counter[bytes] = Counter()

    def draw(self, request_key: bytes) -> Draw:
        nth = self._seen[request_key]
        self._seen[request_key] = nth + 1
        key = (self._seed, request_key, nth)
        f = self._faults
        fault: str | None = None
        code: int | None = None
        for name in _ORDER:
            p = getattr(f, name)
            if p > 0 and uniform(*key, name) < p:
                fault = name
                break
        if fault is None:
            for status, p in sorted(f.status_codes.items()):
                if p > 0 and uniform(*key, "status", status) < p:
                    fault, code = "status_code", status
                    break
        delay = 0.0
        if self._median > 0:
            delay = self._median * math.exp(self._spread * normal(*key, "latency"))
        if fault == "timeout":
            delay = f.timeout_delay
        slow = f.slow > 0 and uniform(*key, "slow") < f.slow
        if slow:
            delay += f.slow_seconds
            fault = fault or "slow"
        return Draw(fault=fault, status_code=code, delay=delay)
