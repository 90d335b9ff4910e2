"""How long the run waits after a failed call, and when it has waited long enough.

:class:`Backoff` judges failures over time, for the whole run:

- **a page's retry** waits with exponential back-off and full jitter, or the server's
  Retry-After, capped;
- **a rate or concurrency refusal** pauses every call, the pause growing while refusals
  follow each other; a refusal of a call sent before the last one is of the same wave and
  sets nothing new; each second of pause is counted once, and a run paused for longer
  than its patience has waited enough;
- **calls that reach nothing** are retried after a delay that grows with the time the
  API has been unreachable, until ``unreachable_after`` seconds have passed.

It is apart from :mod:`intersect_batch.schedule` because it knows no job and no page:
only the policy, the random draws, the time it is told and the streaks it keeps. The
schedule holds one and asks it; like the schedule, it does no I/O and reads no clock.
"""

from __future__ import annotations

import math
import random

from intersect_batch.settings import RetryPolicy

__all__ = ["Backoff"]


class Backoff:
    """The run's clock of failures: retry delays, the pause, the unreachable window."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng
        #: Seconds the run spent paused by the API's rate or concurrency refusals.
        self.throttled_seconds = 0.0
        #: The loop time until which the API asked the run to hold its calls.
        self.paused_until = 0.0
        self._throttle_streak = 0
        self._throttled_at = -math.inf
        self._unreachable_since: float | None = None

    def reached(self) -> None:
        """A call reached the API (an answer, a refusal, an error): it is not unreachable."""
        self._unreachable_since = None

    def went_through(self, sent_at: float | None) -> None:
        """A call was answered; one sent since the last refusal ends the refusals' streak.

        ``sent_at``: when the call went out (None: it counts as sent since).
        """
        self.reached()
        if sent_at is None or sent_at >= self._throttled_at:
            self._throttle_streak = 0

    def retry_delay(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before a page that failed ``attempts`` times goes out again."""
        policy = self.policy
        if retry_after is not None:
            return min(max(0.0, retry_after), policy.cap)
        return self.rng.uniform(0, min(policy.cap, policy.base * 2 ** (attempts - 1)))

    def throttled(
        self, now: float, retry_after: float | None, sent_at: float | None
    ) -> float | None:
        """A rate or concurrency refusal at ``now``: the end of the pause it asks for.

        None when the call went out before the last refusal (``sent_at``): one of the same
        wave, it does not lengthen the pause. Either way calls wait for :attr:`paused_until`.
        """
        self.reached()
        if sent_at is not None and sent_at < self._throttled_at:
            return None
        policy = self.policy
        self._throttle_streak += 1
        self._throttled_at = now
        if retry_after is not None:
            pause = min(max(0.0, retry_after), policy.cap)
        else:
            growth = policy.slowdown * 2 ** (self._throttle_streak - 1)
            pause = min(max(policy.cap, policy.slowdown), growth)
        until = now + pause
        # Count each second of pause once, however many refusals overlap.
        self.throttled_seconds += max(0.0, until - max(now, self.paused_until))
        self.paused_until = max(self.paused_until, until)
        return until

    def out_of_patience(self) -> str | None:
        """Why the run has been paused too long to go on, or None while within its patience."""
        policy = self.policy
        if self.throttled_seconds < policy.patience:
            return None
        return (
            f"the API refused calls for rate or concurrency for "
            f"{self.throttled_seconds:.0f} s in all (patience {policy.patience:.0f} s)"
        )

    def unreachable(self, now: float) -> float | None:
        """A call reached nothing at ``now``: seconds before it goes again, None to stop."""
        policy = self.policy
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= policy.unreachable_after:
            return None
        waited = now - self._unreachable_since
        delay = min(policy.cap, max(policy.base, waited))
        return self.rng.uniform(delay / 2, delay)
