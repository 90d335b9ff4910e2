"""The run's pace and its money: the rate of calls, and the budget they are paid from.

:func:`price` is the one price function: the budget, the dry run and the manifests all
read it. :class:`Pacer` spreads calls under the account's per-minute quota and holds
every call while the API asks the run to slow down. :class:`Budget` never lets a call
start whose worst case would take the spend over the cap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from intersect_batch.settings import Limits

__all__ = [
    "CALL_PRICE_USD",
    "ITEM_PRICE_USD",
    "PRICE_LISTS",
    "Budget",
    "Pacer",
    "PriceList",
    "price",
    "price_list",
]

#: The documented price of one call, whatever it returns.
CALL_PRICE_USD = 0.02
#: The documented price of one returned item.
ITEM_PRICE_USD = 0.00003


def price(calls: int, items: int) -> float:
    """What ``calls`` calls returning ``items`` items in all cost at the documented price."""
    return calls * CALL_PRICE_USD + items * ITEM_PRICE_USD


@dataclass(frozen=True, slots=True)
class PriceList:
    """What a provider bills for one answered call: a price per call and per item."""

    call_usd: float
    item_usd: float

    def of(self, items: int) -> float:
        """The listed price of one answer carrying ``items`` items."""
        return self.call_usd + items * self.item_usd


#: Each provider's price list. AIsa passes DataForSEO's price on; the sandbox is free.
PRICE_LISTS = {
    "dataforseo": PriceList(CALL_PRICE_USD, ITEM_PRICE_USD),
    "aisa": PriceList(CALL_PRICE_USD, ITEM_PRICE_USD),
    "sandbox": PriceList(0.0, 0.0),
}


def price_list(provider: str) -> PriceList:
    """The price list of the provider named ``provider`` (an unknown one pays DataForSEO's)."""
    return PRICE_LISTS.get(provider, PRICE_LISTS["dataforseo"])


#: Seconds within which a call is due: a clock's rounding can wake a sleep this early.
CLOCK_SLACK = 1e-6


class Pacer:
    """The run's rate: spread calls, a small burst at most, and a shared pause on refusals.

    A leaky bucket that holds ``burst`` calls and drains one per interval, so no quota
    window ever holds more than the quota (see :class:`~intersect_batch.settings.Limits`).
    When the API refuses a call for rate or concurrency, every call waits until the pause
    is over: ``paused_until`` reads it from its owner
    (:attr:`~intersect_batch.schedule.Schedule.paused_until`).

    Calls pass in the order they asked, one at a time: a call woken by the end of a pause
    or by the bucket's drain never loses its place to one that asked later, so a job's
    pages leave in the order the schedule handed them out.
    """

    def __init__(self, limits: Limits, paused_until: Callable[[], float] = lambda: 0.0) -> None:
        burst = max(1, min(limits.burst, limits.rate_per_minute))
        self._interval = limits.interval
        #: How far ahead of the steady rate a call may go: the burst, less the call itself.
        self._slack = (burst - 1) * self._interval
        #: The loop time at which the bucket is empty again (the calls sent so far drained).
        self._drained = -math.inf
        self._turn = anyio.Lock()
        #: The pause's one owner (the schedule, which decides it): the loop time until
        #: which the API asked the run to hold its calls.
        self._paused_until = paused_until

    async def wait(self) -> None:
        """Return when the next call may be sent; calls return in the order they asked."""
        async with self._turn:
            while True:
                now = anyio.current_time()
                # The bucket has room once it drained to ``burst - 1`` calls.
                due = max(self._paused_until(), self._drained - self._slack)
                if due <= now + CLOCK_SLACK:
                    break
                await anyio.sleep(due - now)
            self._drained = max(self._drained, now) + self._interval


class Budget:
    """A spending cap: no call starts whose worst case would take the spend over it.

    The worst case of a call is the documented price for its ``limit``, scaled up by the
    highest price the provider has charged so far relative to the documented one. While
    that price is unknown (no call has been billed yet), a capped run sends one call at a
    time, so a provider that charges five times the documented price cannot overrun the
    cap with its first wave of calls. ``spent_before`` is what earlier invocations of the
    same night spent: the cap holds for the night, not per invocation.
    """

    def __init__(self, limit_usd: float | None, *, spent_before: float = 0.0) -> None:
        self.limit_usd = limit_usd
        self.spent = spent_before
        self.reserved = 0.0
        self._outstanding = 0
        self._price_factor = 1.0
        self._price_known = False

    @property
    def committed(self) -> float:
        """Spent plus reserved: what the night may have cost once the calls in flight end."""
        return self.spent + self.reserved

    def worst_case(self, limit: int) -> float:
        """What one call for ``limit`` items can cost, at the highest price seen so far."""
        return price(1, limit) * self._price_factor

    def reserve(self, limit: int) -> float | None:
        """Set aside a call's worst case; ``None`` when the cap does not allow it now.

        ``None`` while calls are in flight may turn into a reservation once they settle
        (they may cost less than their worst case, or tell the price); ``None`` with no
        call in flight means the money has run out.
        """
        amount = self.worst_case(limit)
        if self.limit_usd is not None:
            if not self._price_known and self._outstanding:
                return None
            if self.committed + amount > self.limit_usd + 1e-9:
                return None
        self._outstanding += 1
        self.reserved += amount
        return amount

    def settle(
        self, reservation: float, cost: float | None, items: int = 0, *, limit: int | None = None
    ) -> None:
        """Replace a reservation by what the call cost.

        ``cost=None``: the outcome is unknown (the answer was lost or cut short after the
        server may have billed it), so the worst case is kept as spent. The price learned
        is the cost over the documented price of what was asked: of ``items``, at most
        ``limit`` (a page carrying more items than it asked for raises the worst case of
        the calls after it).
        """
        self._outstanding = max(0, self._outstanding - 1)
        self.reserved = max(0.0, self.reserved - reservation)
        if cost is None:
            self.spent += reservation
            return
        self.spent += cost
        if cost > 0:
            self._price_known = True
            documented = price(1, items if limit is None else min(items, limit))
            if cost > documented:
                self._price_factor = max(self._price_factor, cost / documented)
