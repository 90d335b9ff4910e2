"""The night's money, one owner: the budget, the bookings in the ledger, what each answer cost.

A crawl and a probing dry run spend the same night's money under the same rules, through
one :class:`NightMoney`:

- no call starts whose worst case would take the night's spend over ``--budget-usd``
  (:class:`~intersect_batch.pacing.Budget`); while the price is unknown, one call at a time;
- a capped invocation books money in the ledger before a call can spend it
  (:func:`~intersect_batch.ledger.next_booking`): a crash cannot make the night forget it;
- each call is settled by its outcome: never sent (nothing), answered (the larger of what
  the answer claims and what the provider's price list says for the items it carried),
  lost after it may have been billed (its worst case);
- an answer's claim is outside text: a claim that is missing, negative or not a finite
  number, or below the price list, is booked at the list and logged once per run; a claim
  over :data:`IMPLAUSIBLE_FACTOR` times the documented price of the call stops the
  spending (``halt``), naming the job and offset, and is booked at that ceiling, so that
  every sum stays a finite amount of money.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from intersect_batch.durable import in_thread
from intersect_batch.errors import ApiError, UnreachableApiError
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger, next_booking, write_ledger
from intersect_batch.pacing import Budget, PriceList, price
from intersect_batch.retention import mark_run_dir

__all__ = ["IMPLAUSIBLE_FACTOR", "NightMoney", "Reservation", "Settled"]

log = logging.getLogger("intersect_batch")

#: A claimed cost over this many times the documented price of the call stops the spending.
IMPLAUSIBLE_FACTOR = 100


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money set aside for one call: its worst case, for the ``limit`` it asks."""

    amount: float
    limit: int


@dataclass(frozen=True, slots=True)
class Settled:
    """What a call's outcome did to the money: what it cost, and whether it was a call."""

    #: The cost booked for the answer (0 for a call never sent or an answer lost).
    cost_usd: float
    #: False when the call never reached the API: it is not counted as a call.
    called: bool


_MISSING = (
    "an answer did not say what it cost, or said it in a form that is no amount of money "
    "(%s): booked at the price list, %.5f USD"
)
_BELOW = (
    "an answer claimed %.5f USD, below the price list's %.5f USD for its %d items (%s): "
    "booked at the list"
)
_COUNTED = "; the night's spend counts the larger of claim and list"

#: The night's retries and throttled seconds, for the ledger (the crawl's own figures).
Activity = Callable[[], tuple[int, float]]


class NightMoney:
    """The night's budget and ledger, as one invocation spends them.

    ``ledger`` is what earlier invocations of the night spent (see
    :func:`intersect_batch.night.night_ledger`); ``prices`` the provider's price list;
    ``what`` names a call in messages ("the next call", "a probe"); ``activity`` gives the
    invocation's retries and throttled seconds when the ledger is written.
    """

    def __init__(
        self,
        folder: RunFolder,
        *,
        cap: float | None,
        ledger: Ledger,
        prices: PriceList,
        what: str = "the next call",
        activity: Activity | None = None,
    ) -> None:
        self.folder = folder
        self.cap = cap
        self.base = ledger
        self.prices = prices
        self.what = what
        self.activity = activity
        self.budget = Budget(cap, spent_before=ledger.committed_usd)
        self.booked = ledger.booked_usd
        #: Calls that reached the API, and what their answers were booked at.
        self.calls = 0
        self.cost_usd = 0.0
        #: Reservations not settled yet.
        self.in_flight = 0
        #: Why no more money may be spent (an implausible claim, a booking refused).
        self.halt: str | None = None
        self.written = False
        self._oddities: set[str] = set()
        self._booking = anyio.Lock()
        self._settled = anyio.Event()

    # -- reserving ------------------------------------------------------------------------

    @property
    def spent_usd(self) -> float:
        """What this invocation spent, as the budget counts it."""
        return self.budget.spent - self.base.committed_usd

    @property
    def night_spent_usd(self) -> float:
        """What the night spent, this invocation included."""
        return self.budget.spent

    async def reserve(self, limit: int) -> Reservation | None:
        """Money for one call of ``limit`` items, booked in the ledger; None when refused.

        None while calls are in flight (``in_flight``) may turn into a reservation once
        they settle; with none in flight, or with ``halt`` set, the money has run out
        (:meth:`refusal` says why).
        """
        if self.halt is not None:
            return None
        amount = self.budget.reserve(limit)
        if amount is None:
            return None
        self.in_flight += 1
        reservation = Reservation(amount, limit)
        async with self._booking:
            booking = next_booking(self.cap, self.budget.committed, self.booked)
            if booking is not None:
                # Book the money before the call can spend it: a crash now cannot make
                # the night forget it (see intersect_batch.ledger).
                before, self.booked = self.booked, booking
                error = await self.save()
                if error is not None:
                    # Money not booked on disk would be spent again by the night's next
                    # invocation (a full disk, then space again).
                    self.booked = before
                    self._release(reservation)
                    self.halt = (
                        f"budget: the night's spend cannot be booked in {self.folder.ledger} "
                        f"({error}); a capped run sends no call it cannot book"
                    )
                    return None
        return reservation

    def refusal(self, limit: int) -> str:
        """Why no call of ``limit`` items may start, with none in flight."""
        if self.halt is not None:
            return self.halt
        return (
            f"budget: {self.what} could cost {self.budget.worst_case(limit):.5f} USD and "
            f"{self.budget.spent:.5f} of {self.cap} USD are spent tonight"
        )

    async def wait_settled(self) -> None:
        """Return once a call in flight has settled."""
        await self._settled.wait()

    # -- settling -------------------------------------------------------------------------

    def unsent(self, reservation: Reservation) -> Settled:
        """The call was never sent: its reservation goes back."""
        self._release(reservation)
        return Settled(0.0, called=False)

    def answered(
        self,
        reservation: Reservation,
        claim: float | None,
        items: int,
        *,
        where: str,
        result: bool = True,
    ) -> Settled:
        """A page came: book the larger of its claim and the price list for ``items``.

        ``result=False``: the answer holds no result (40102 "no search results", a null
        result), which the list prices at nothing, as it does a failed task.
        """
        listed = self.prices.of(items) if result else 0.0
        if claim is None:
            self._oddity(_MISSING, where, listed)
            cost = listed
        elif claim < listed - 1e-9:
            self._oddity(_BELOW, claim, listed, items, where)
            cost = listed
        else:
            cost = claim
        return self._book(reservation, cost, items, where=where)

    def failed(self, reservation: Reservation, error: ApiError, *, where: str) -> Settled:
        """A call ended in ``error``: what it cost depends on how far it went."""
        if isinstance(error, UnreachableApiError):
            return self.unsent(reservation)
        if error.cost is not None:
            # An error answer carries no items: its claim is booked (the list's price of
            # a failed task is nothing).
            return self._book(reservation, error.cost, where=where)
        if error.maybe_billed:
            return self.lost(reservation)
        return self._book(reservation, 0.0, where=where)

    def lost(self, reservation: Reservation) -> Settled:
        """Sent, and maybe billed with no word of the price: the worst case counts."""
        self._settle(reservation, None)
        return Settled(0.0, called=True)

    def _book(
        self, reservation: Reservation, cost: float, items: int = 0, *, where: str
    ) -> Settled:
        ceiling = IMPLAUSIBLE_FACTOR * price(1, max(items, reservation.limit))
        if not cost <= ceiling:
            log.error("an answer claimed %.6g USD (%s): implausible", cost, where)
            self.halt = self.halt or (
                f"budget: an answer claimed more than {IMPLAUSIBLE_FACTOR} times the "
                f"documented price of its call ({ceiling:.5f} USD; {where}); no more calls "
                "are sent: compare the account's bill with the night's ledger"
            )
            cost = ceiling
        self.cost_usd += cost
        self._settle(reservation, cost, items)
        return Settled(cost, called=True)

    def _settle(self, reservation: Reservation, cost: float | None, items: int = 0) -> None:
        """A call that reached the API ended, at ``cost`` (None: its worst case)."""
        self.calls += 1
        self.in_flight -= 1
        self.budget.settle(reservation.amount, cost, items, limit=reservation.limit)
        self._notify()

    def _release(self, reservation: Reservation) -> None:
        self.in_flight -= 1
        self.budget.settle(reservation.amount, 0.0)
        self._notify()

    def _notify(self) -> None:
        self._settled.set()
        self._settled = anyio.Event()

    def _oddity(self, template: str, *args: object) -> None:
        """Log a protocol oddity the first time this run meets its kind (its words)."""
        if template not in self._oddities:
            self._oddities.add(template)
            log.warning(template + _COUNTED, *args)

    # -- the ledger -----------------------------------------------------------------------

    def ledger(self, *, final: bool = False) -> Ledger:
        """The night's ledger as of now; ``final`` releases the money booked ahead."""
        base = self.base
        retries, throttled = (0, 0.0) if self.activity is None else self.activity()
        spent = round(self.budget.spent, 8)
        return Ledger(
            spent_usd=spent,
            cost_usd=round(base.cost_usd + self.cost_usd, 8),
            calls=base.calls + self.calls,
            retries=base.retries + retries,
            throttled_s=round(base.throttled_s + throttled, 3),
            invocations=base.invocations + 1,
            booked_usd=0.0 if final or not self.booked else round(max(self.booked, spent), 8),
        )

    async def save(self, *, final: bool = False) -> str | None:
        """Write the night's ledger; the reason it could not be written, else None."""
        ledger = self.ledger(final=final)
        try:
            if not self.written:
                await in_thread(mark_run_dir, self.folder)
            await in_thread(write_ledger, self.folder.ledger, ledger)
        except OSError as exc:
            log.error("cannot write the night's ledger: %s", exc.strerror or exc)
            return str(exc.strerror or exc)
        self.written = True
        return None
