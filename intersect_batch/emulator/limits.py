"""Per-credential limits: calls in a rolling 60 s window, and requests at once."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

__all__ = ["WINDOW_SECONDS", "CredentialLimits"]

WINDOW_SECONDS = 60.0


class CredentialLimits:
    """Counts, per credential, the calls of the last minute and the calls in flight.

    Every authenticated call counts toward the minute, also the ones refused for being
    over a limit (as the real API is believed to do).
    """

    def __init__(self, *, per_minute: int, max_concurrent: int, clock: Callable[[], float]):
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

    def admit_rate(self, credential: str, now: float) -> float | None:
        """Count a call at ``now``; None if it is within the limit, else seconds to wait."""
        window = self._windows.setdefault(credential, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        over = len(window) >= self.per_minute
        wait = window[0] + WINDOW_SECONDS - now if over else None
        window.append(now)
        return wait

    def remaining(self, credential: str) -> int:
        return max(0, self.per_minute - len(self._windows.get(credential, ())))

    def reset_in(self, credential: str, now: float) -> int:
        window = self._windows.get(credential)
        return math.ceil(window[0] + WINDOW_SECONDS - now) if window else 0

    def try_enter(self, credential: str) -> bool:
        """Take an in-flight slot; False when ``max_concurrent`` are already taken."""
        n = self._in_flight.get(credential, 0)
        if n >= self.max_concurrent:
            return False
        self._in_flight[credential] = n + 1
        return True

    def leave(self, credential: str) -> None:
        self._in_flight[credential] -= 1

    def in_flight(self, credential: str) -> int:
        return self._in_flight.get(credential, 0)
