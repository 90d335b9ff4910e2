"""Sustained throttling: a window of the handed-in clock in which every call is refused."""

from __future__ import annotations

import pytest

from intersect_batch.emulator import FaultSettings

from .support import FakeClock, serve

pytestmark = pytest.mark.anyio

TASK = {"targets": {"1": "example.com"}, "limit": 10}
SIZES = {"example.com": 100}


async def test_dataforseo_route_refuses_with_a_task_level_40202_during_the_window():
    clock = FakeClock(1000.0)
    faults = FaultSettings(throttle_for=30.0, throttle_after=5.0)
    async with serve(sizes=SIZES, faults=faults, clock=clock, balance_usd=1.0) as api:
        before = await api.dfs([TASK])  # t = 1000: the window opens at 1005
        clock.advance(5.0)
        opened = await api.dfs([TASK, TASK])
        clock.advance(29.9)
        still = await api.dfs([TASK])
        clock.advance(0.1)
        after = await api.dfs([TASK])
        left = api.emu.balance_usd
    assert before.result["items_count"] == 10 and after.result["items_count"] == 10
    for reply in (opened, still):
        assert reply.status == 200 and reply.json["status_code"] == 20000
        assert reply.task["status_code"] == 40202
        assert reply.task["status_message"] == "The rate-limit per minute has been exceeded."
        assert reply.task["result"] is None and reply.json["cost"] == 0
    assert [t["status_code"] for t in opened.json["tasks"]] == [40202, 40000]
    calls = api.emu.calls()
    assert [(c.t, c.status_code, c.fault, c.cost) for c in calls] == [
        (1000.0, 20000, None, pytest.approx(0.0203)),
        (1005.0, 40202, "throttle", 0),
        (1034.9, 40202, "throttle", 0),
        (1035.0, 20000, None, pytest.approx(0.0203)),
    ]
    assert left == pytest.approx(1.0 - 2 * 0.0203)


async def test_aisa_route_answers_429_with_the_seconds_left_as_retry_after():
    clock = FakeClock(0.0)
    faults = FaultSettings(throttle_for=30.0, throttle_code=40209)
    async with serve(sizes=SIZES, faults=faults, clock=clock) as api:
        first = await api.aisa(TASK)
        clock.advance(10.5)
        second = await api.aisa(TASK)
        dfs = await api.dfs([TASK])
        clock.advance(19.5)
        after = await api.aisa(TASK)
    assert first.status == 429 and first.headers["Retry-After"] == "30"
    assert second.status == 429 and second.headers["Retry-After"] == "20"
    assert first.json["error"]["code"] == "concurrency_limit_exceeded"
    assert dfs.task["status_code"] == 40209
    assert after.status == 200 and after.result["items_count"] == 10
    calls = api.emu.calls()
    assert [(c.http_status, c.status_code, c.fault, c.cost) for c in calls] == [
        (429, 40209, "throttle", 0),
        (429, 40209, "throttle", 0),
        (200, 40209, "throttle", 0),
        (200, 20000, None, pytest.approx(0.0203)),
    ]


async def test_without_a_window_nothing_is_throttled():
    clock = FakeClock(0.0)
    async with serve(sizes=SIZES, clock=clock, faults=FaultSettings(throttle_after=0.0)) as api:
        replies = [await api.dfs([TASK]) for _ in range(3)]
    assert [r.task["status_code"] for r in replies] == [20000] * 3


def test_throttle_code_must_be_a_limit_code():
    with pytest.raises(ValueError, match="40202 or 40209"):
        FaultSettings(throttle_for=1.0, throttle_code=50000)
