"""The rate and the money, in virtual time: exact figures, no real sleep."""

from __future__ import annotations

import itertools

import anyio
import pytest

from intersect_batch.ledger import next_booking
from intersect_batch.pacing import CLOCK_SLACK, Budget, Pacer, price
from intersect_batch.settings import Limits
from tests.virtual_time import run_virtual


def _send_times(
    limits: Limits, calls: int, *, pause: tuple[float, float] | None = None
) -> list[float]:
    async def main() -> list[float]:
        until = [0.0]
        pacer = Pacer(limits, lambda: until[0])
        times: list[float] = []
        for n in range(calls):
            if pause is not None and n == int(pause[0]):
                until[0] = anyio.current_time() + pause[1]
            await pacer.wait()
            times.append(anyio.current_time())
        return times

    return run_virtual(main)


def _busiest(times: list[float], window: float) -> int:
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_price_is_a_call_plus_its_items() -> None:
    assert price(1, 5) == pytest.approx(0.02015)
    assert price(3, 2500) == pytest.approx(0.06 + 0.075)
    assert price(0, 0) == 0


def test_the_busiest_minute_holds_the_burst_and_the_steady_rate_never_the_quota() -> None:
    limits = Limits(rate_per_minute=120, burst=4, safety=0.99)
    interval = 60 / (120 * 0.99 - 4)
    times = _send_times(limits, 300)
    # Four at once, then one per interval: 4 + floor(60 / interval) = 118 in any minute.
    assert times[:4] == [0.0, 0.0, 0.0, 0.0]
    assert times[4:8] == pytest.approx([interval * k for k in (1, 2, 3, 4)], abs=1e-5)
    assert _busiest(times, 60.0) == 118
    assert _busiest(times, 60.0) <= limits.rate_per_minute


def test_calls_are_spread_a_burst_at_most() -> None:
    limits = Limits(rate_per_minute=2000, burst=4)
    times = _send_times(limits, 400)
    # After the first burst, no two calls closer than the steady interval (rounded to
    # the virtual clock's microsecond).
    gaps = [b - a for a, b in itertools.pairwise(times[4:])]
    assert min(gaps) == pytest.approx(limits.interval, abs=2e-6)
    assert _busiest(times, limits.interval * 4) <= 4 + 4


def test_a_pause_holds_every_call_until_it_ends() -> None:
    limits = Limits(rate_per_minute=60_000, burst=1)
    times = _send_times(limits, 6, pause=(2, 5.0))
    assert times[2] == pytest.approx(times[1] + 5.0, abs=1e-5)
    assert times[3] - times[2] == pytest.approx(limits.interval, abs=2e-6)


def test_a_pause_that_begins_while_a_call_waits_for_its_token_holds_it_too() -> None:
    async def main() -> float:
        until = [0.0]
        pacer = Pacer(Limits(rate_per_minute=60, burst=1, safety=1.0), lambda: until[0])
        await pacer.wait()  # the bucket is now empty for about a second
        async with anyio.create_task_group() as group:
            done: list[float] = []

            async def call() -> None:
                await pacer.wait()
                done.append(anyio.current_time())

            group.start_soon(call)
            await anyio.sleep(0.1)
            until[0] = anyio.current_time() + 10.0
        return done[0]

    assert run_virtual(main) == pytest.approx(10.1, abs=1e-5)


def test_the_budget_reserves_the_worst_case_and_settles_the_real_cost() -> None:
    budget = Budget(0.2)
    first = budget.reserve(1000)
    assert first is not None and first == pytest.approx(0.05)
    assert budget.committed == pytest.approx(0.05)
    budget.settle(first, 0.0215, 50)
    assert budget.spent == pytest.approx(0.0215)
    assert budget.reserved == 0
    # 0.0215 + 3 x 0.05 = 0.1715 fits; a fourth would not.
    held = [budget.reserve(1000) for _ in range(3)]
    assert all(amount == pytest.approx(0.05) for amount in held)
    assert budget.reserve(1000) is None
    # A small call still fits under the cap.
    assert budget.reserve(1) == pytest.approx(0.02003)


def test_until_the_price_is_known_a_capped_run_sends_one_call_at_a_time() -> None:
    budget = Budget(10.0)
    first = budget.reserve(100)
    assert first is not None
    assert budget.reserve(100) is None  # the first call has not told the price yet
    # The provider billed five times the documented price.
    budget.settle(first, 5 * price(1, 100), 100)
    assert budget.worst_case(100) == pytest.approx(5 * price(1, 100))
    assert budget.reserve(100) == pytest.approx(5 * price(1, 100))
    assert budget.reserve(100) is not None  # the price is known: calls go out together


def test_a_call_whose_answer_was_lost_keeps_its_worst_case_as_spent() -> None:
    budget = Budget(1.0)
    amount = budget.reserve(1000)
    assert amount is not None
    budget.settle(amount, None)
    assert budget.spent == pytest.approx(0.05)
    assert budget.reserved == 0


def test_a_night_starts_from_what_earlier_runs_spent() -> None:
    budget = Budget(1.0, spent_before=0.97)
    assert budget.reserve(1000) is None
    assert budget.reserve(10) == pytest.approx(0.0203)


def test_without_a_cap_every_call_is_reserved_and_the_price_is_still_learned() -> None:
    budget = Budget(None)
    amounts = [budget.reserve(1000) for _ in range(50)]
    assert all(a == pytest.approx(0.05) for a in amounts)
    for a in amounts:
        assert a is not None
        budget.settle(a, 0.1, 1000)
    assert budget.spent == pytest.approx(5.0)
    assert budget.worst_case(1000) == pytest.approx(0.1)


def test_a_pause_under_a_second_holds_the_call_to_the_instant() -> None:
    async def main() -> float:
        pacer = Pacer(Limits(rate_per_minute=60, burst=1, safety=1.0), lambda: 0.25)
        await pacer.wait()
        return anyio.current_time()

    assert run_virtual(main) == pytest.approx(0.25, abs=1e-5)


def test_the_cap_holds_calls_that_add_up_to_it_exactly() -> None:
    # 3 x 0.05 is 0.15000000000000002 in floating point: still within a 0.15 cap.
    budget = Budget(0.15)
    first = budget.reserve(1000)
    assert first is not None
    budget.settle(first, 0.05, 1000)
    assert budget.reserve(1000) == pytest.approx(0.05)
    assert budget.reserve(1000) == pytest.approx(0.05)
    assert budget.reserve(1) is None
    assert budget.committed == pytest.approx(0.15)


def test_a_call_that_ended_lets_the_next_one_go_while_the_price_is_unknown() -> None:
    budget = Budget(10.0)
    first = budget.reserve(100)
    assert first is not None
    budget.settle(first, None)  # lost: the price is still unknown
    second = budget.reserve(100)
    assert second is not None
    assert budget.reserve(100) is None
    # A free answer (a refusal costs nothing) does not tell the price either.
    budget.settle(second, 0.0, 0)
    assert budget.reserve(100) is not None
    assert budget.reserve(100) is None


def test_an_answer_billed_without_items_tells_the_price_of_a_call() -> None:
    budget = Budget(10.0)
    first = budget.reserve(100)
    assert first is not None
    budget.settle(first, 2 * price(1, 0))  # an error answer, billed twice the call price
    assert budget.worst_case(100) == pytest.approx(2 * price(1, 100))
    assert budget.spent == pytest.approx(0.04)


def test_without_a_cap_the_calls_in_flight_are_committed() -> None:
    budget = Budget(None, spent_before=1.0)
    assert budget.reserve(1000) == pytest.approx(0.05)
    assert budget.reserve(1000) == pytest.approx(0.05)
    assert budget.committed == pytest.approx(1.1)


def test_a_capped_run_books_a_chunk_ahead_of_its_spend_never_past_the_cap() -> None:
    assert next_booking(None, 5.0, 0.0) is None
    assert next_booking(1.0, 0.02, 0.0) == pytest.approx(0.07)
    # What is booked covers the next call: no ledger write.
    assert next_booking(1.0, 0.07, 0.07) is None
    assert next_booking(1.0, 0.0701, 0.07) == pytest.approx(0.1201)
    assert next_booking(1.0, 0.98, 0.97) == 1.0


def test_a_pause_ending_within_the_clocks_slack_holds_nothing() -> None:
    # A pause that ends a microsecond from now is over: the call goes now, not a
    # microsecond later (and the calls after it are not shifted by it either).
    async def main() -> float:
        pacer = Pacer(Limits(rate_per_minute=60, burst=1, safety=1.0), lambda: CLOCK_SLACK)
        await pacer.wait()
        return anyio.current_time()

    assert run_virtual(main) == 0.0


def test_a_call_that_takes_the_night_to_its_cap_and_its_tolerance_exactly_goes() -> None:
    # A billionth spent before, a cap of one call's price: the night would end at the cap
    # plus its tolerance of a billionth, exactly, which is still within it.
    budget = Budget(price(1, 100), spent_before=1e-9)
    assert budget.committed + price(1, 100) == price(1, 100) + 1e-9
    assert budget.reserve(100) == price(1, 100)
    assert budget.reserve(1) is None
