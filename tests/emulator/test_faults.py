"""Every fault knob (probability 1.0 or seeded draws), latency, and live-data churn."""

from __future__ import annotations

import itertools
import time

import aiohttp
import msgspec
import pytest

from intersect_batch.emulator import FaultSettings

from .support import serve, url_of

pytestmark = pytest.mark.anyio

TASK = {"targets": {"1": "example.com"}, "limit": 20}
SIZES = {"example.com": 100}


@pytest.mark.parametrize(
    ("faults", "code", "message"),
    [
        (FaultSettings(internal_error=1.0), 50000, "Internal Error."),
        (FaultSettings(task_failed=1.0), 40103, "Task execution failed. Please resubmit the task."),
        (FaultSettings(timeout=1.0, timeout_delay=0.0), 50401, "Timeout exceeded."),
        (FaultSettings(status_codes={50301: 1.0}), 50301, "Third party service is unavailable."),
        (
            FaultSettings(status_codes={40202: 1.0}),
            40202,
            "The rate-limit per minute has been exceeded.",
        ),
    ],
)  # fmt: skip
async def test_task_level_faults(faults, code, message):
    async with serve(sizes=SIZES, faults=faults) as api:
        reply = await api.dfs([TASK])
    assert reply.status == 200
    assert reply.json["status_code"] == 20000 and reply.json["tasks_error"] == 1
    assert reply.task["status_code"] == code and reply.task["status_message"] == message
    assert reply.task["cost"] == 0 and reply.task["result"] is None
    assert api.emu.calls()[-1].fault is not None


async def test_forced_whole_call_codes_use_their_http_status():
    async with serve(sizes=SIZES, faults=FaultSettings(status_codes={40210: 1.0})) as api:
        reply = await api.dfs([TASK])
    assert reply.status == 402 and reply.json["status_code"] == 40210


async def test_http_500_on_both_routes():
    async with serve(sizes=SIZES, faults=FaultSettings(http_500=1.0)) as api:
        dfs = await api.dfs([TASK])
        aisa = await api.aisa(TASK)
    assert dfs.status == 500 and dfs.json["status_code"] == 50000
    assert aisa.status == 500
    assert set(aisa.json["error"]) == {"type", "code", "message", "request_id"}
    assert [c.fault for c in api.emu.calls()] == ["http_500", "http_500"]


async def test_timeout_answers_after_the_delay():
    async with serve(sizes=SIZES, faults=FaultSettings(timeout=1.0, timeout_delay=0.05)) as api:
        started = time.perf_counter()
        reply = await api.dfs([TASK])
    assert time.perf_counter() - started >= 0.05
    assert reply.task["status_code"] == 50401


async def test_slow_adds_its_delay_to_a_normal_answer():
    async with serve(sizes=SIZES, faults=FaultSettings(slow=1.0, slow_seconds=0.05)) as api:
        started = time.perf_counter()
        reply = await api.dfs([TASK])
    assert time.perf_counter() - started >= 0.05
    assert reply.result["items_count"] == 20
    record = api.emu.calls()[-1]
    assert record.fault == "slow" and record.latency >= 0.05


async def test_dropped_connection_raises_a_client_error():
    async with serve(sizes=SIZES, faults=FaultSettings(drop_connection=1.0)) as api:
        with pytest.raises(aiohttp.ClientError):
            await api.dfs([TASK])
        record = api.emu.calls()[-1]
    assert record.fault == "drop_connection"


async def test_truncated_body_arrives_whole_but_does_not_decode():
    async with serve(sizes=SIZES, faults=FaultSettings(truncated_body=1.0)) as api:
        reply = await api.dfs([TASK])
    assert reply.status == 200 and int(reply.headers["Content-Length"]) == len(reply.body)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(reply.body)


async def test_fault_draws_are_reproducible_and_retries_get_fresh_draws():
    faults = FaultSettings(internal_error=0.5)

    async def run(order: list[int]) -> dict[int, list[int]]:
        async with serve(sizes=SIZES, faults=faults, seed=7) as api:
            out: dict[int, list[int]] = {}
            for offset in order:
                reply = await api.dfs([{**TASK, "offset": offset}])
                out.setdefault(offset, []).append(reply.task["status_code"])
            return out

    forward = await run([0, 20, 40, 60, 80] * 4)
    backward = await run([80, 60, 40, 20, 0] * 4)
    assert forward == backward  # per request: the same faults whatever the order
    assert any(len(set(codes)) == 2 for codes in forward.values())  # retries draw afresh
    all_codes = [c for codes in forward.values() for c in codes]
    assert 20000 in all_codes and 50000 in all_codes


async def test_latency_model_delays_calls():
    async with serve(sizes=SIZES, latency_median=0.02, latency_spread=0.5) as api:
        for offset in range(0, 100, 20):
            await api.dfs([{**TASK, "offset": offset}])
    latencies = [c.latency for c in api.emu.calls()]
    assert min(latencies) > 0.002 and len(set(latencies)) == 5
    assert sorted(latencies)[2] < 0.2


async def test_live_data_shifts_pages_and_moves_total_count():
    async with serve(sizes={"example.com": 2000}, live_data=0.05) as api:
        replies = [await api.dfs([{**TASK, "limit": 100}]) for _ in range(6)]
    totals = [r.result["total_count"] for r in replies]
    pages = [[url_of(i) for i in r.items] for r in replies]
    assert len(set(totals)) > 1
    assert all(1500 < t < 2000 for t in totals)
    assert any(a != b for a, b in itertools.pairwise(pages))


async def test_without_live_data_nothing_moves():
    async with serve(sizes={"example.com": 2000}) as api:
        replies = [await api.dfs([{**TASK, "limit": 100}]) for _ in range(3)]
    assert {r.result["total_count"] for r in replies} == {2000}
    assert replies[0].items == replies[2].items
