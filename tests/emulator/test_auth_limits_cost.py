"""Auth on both routes, extra tasks, cost, the balance, and the two per-credential limits."""

from __future__ import annotations

import aiohttp
import anyio
import pytest

from intersect_batch.emulator.app import EMULATOR_KEY
from intersect_batch.emulator.records import credential_id

from .support import BASIC, FakeClock, serve

pytestmark = pytest.mark.anyio

TASK = {"targets": {"1": "example.com", "2": "b.org"}, "limit": 7}
SIZES = {"example.com": 20}


@pytest.mark.parametrize(
    "auth",
    [
        None,
        aiohttp.encode_basic_auth("demo", "wrong"),
        aiohttp.encode_basic_auth("someone", "demo-password"),
        "Basic !!!notbase64",
        "Bearer demo-key",
    ],
)
async def test_dataforseo_auth_failures(auth):
    async with serve() as api:
        reply = await api.dfs([TASK], auth=auth)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    assert reply.json["status_code"] == 40100 and reply.json["tasks"] == []
    record = api.emu.calls()[-1]
    assert record.http_status == 401 and record.status_code == 40100 and record.cost == 0


@pytest.mark.parametrize("auth", [None, "Bearer wrong-key", BASIC, "Bearer "])
async def test_aisa_auth_failures(auth):
    async with serve() as api:
        reply = await api.aisa(TASK, auth=auth)
    assert reply.status == 401
    error = reply.json["error"]
    assert set(error) == {"type", "code", "message", "request_id"}
    assert error["type"] == "authentication_error"


async def test_custom_credentials_and_both_body_shapes_on_aisa():
    async with serve(login="me", password="pw", api_key="k-123", sizes=SIZES) as api:
        basic = await api.dfs([TASK], auth=aiohttp.encode_basic_auth("me", "pw"))
        as_object = await api.aisa(TASK, auth="Bearer k-123")
        as_array = await api.aisa([TASK], auth="Bearer k-123")
    assert basic.result["items_count"] == 7
    assert as_object.status == as_array.status == 200
    assert as_object.items == as_array.items == basic.items
    assert as_object.headers["X-AISA-Price-USD"] == "0.02021"


async def test_extra_tasks_are_40000_at_no_cost():
    async with serve(sizes=SIZES) as api:
        reply = await api.dfs([TASK, {"targets": {"1": "x.com"}}, "junk"])
    env = reply.json
    assert env["tasks_count"] == 3 and env["tasks_error"] == 2
    assert env["tasks"][0]["status_code"] == 20000
    for extra in env["tasks"][1:]:
        assert extra["status_code"] == 40000
        assert extra["status_message"] == "You can set only one task at a time."
        assert extra["cost"] == 0
    assert env["cost"] == env["tasks"][0]["cost"] == pytest.approx(0.02 + 7 * 0.00003)
    assert env["tasks"][1]["data"]["targets"] == {"1": "x.com"}
    assert len({t["id"] for t in env["tasks"]}) == 3


@pytest.mark.parametrize(("limit", "cost"), [(1, 0.02003), (100, 0.023), (1000, 0.05)])
async def test_cost_per_call_and_item(limit, cost):
    async with serve(sizes={"example.com": 5000}) as api:
        reply = await api.query(targets={"1": "example.com"}, limit=limit)
    assert reply.json["cost"] == reply.task["cost"] == cost
    assert api.emu.calls()[-1].cost == cost


async def test_balance_runs_out_with_402_40210():
    # 0.02021 per call: 0.05 covers two calls, not a third.
    async with serve(sizes=SIZES, balance_usd=0.05) as api:
        replies = [await api.dfs([TASK]) for _ in range(3)]
        left = api.emu.balance_usd
        small = await api.dfs([{**TASK, "limit": 1, "offset": 19}])
    assert [r.status for r in replies] == [200, 200, 402]
    assert replies[2].json["status_code"] == 40210
    assert replies[2].json["status_message"] == "Insufficient funds."
    assert replies[2].json["cost"] == 0
    assert left == pytest.approx(0.05 - 2 * 0.02021)
    assert small.status == 402  # 0.00958 left, less than any call's 0.02


async def test_rate_limit_window_with_a_fake_clock():
    clock = FakeClock()
    async with serve(sizes=SIZES, rate_per_minute=3, clock=clock) as api:
        codes = [(await api.dfs([TASK])).task["status_code"] for _ in range(3)]
        over = await api.dfs([TASK])
        clock.advance(59.9)
        still = await api.dfs([TASK])
        clock.advance(0.2)  # the first three calls leave the window
        again = await api.dfs([TASK])
        other = await api.aisa(TASK)  # another credential, its own window
    assert codes == [20000] * 3
    assert over.status == 200
    assert over.json["status_code"] == 20000 and over.json["tasks_error"] == 1
    assert over.task["status_code"] == 40202
    assert over.task["status_message"] == "The rate-limit per minute has been exceeded."
    assert over.task["cost"] == 0
    assert still.task["status_code"] == 40202
    assert again.task["status_code"] == 20000
    assert other.status == 200
    log = api.emu.calls()
    assert [c.t for c in log] == pytest.approx([1000.0] * 4 + [1059.9, 1060.1, 1060.1])
    assert [c.status_code for c in log] == [20000] * 3 + [40202, 40202, 20000, 20000]


async def test_aisa_rate_limit_is_429_with_retry_after():
    clock = FakeClock()
    async with serve(sizes=SIZES, rate_per_minute=2, clock=clock) as api:
        for _ in range(2):
            assert (await api.aisa(TASK)).status == 200
        clock.advance(20)
        over = await api.aisa(TASK)
    assert over.status == 429
    assert over.headers["Retry-After"] == "40"
    assert over.headers["X-RateLimit-Limit"] == "2"
    assert over.headers["X-RateLimit-Remaining"] == "0"
    assert over.json["error"]["code"] == "rate_limit_exceeded"
    assert api.emu.calls()[-1].status_code == 40202


async def test_concurrency_limit_with_held_requests():
    async with serve(sizes=SIZES, max_concurrent=2, latency_median=0.3) as api:
        results: dict[str, int] = {}
        emulator = api.emu.app[EMULATOR_KEY]

        async def call(name: str) -> None:
            results[name] = (await api.dfs([TASK])).task["status_code"]

        async def aisa_call() -> None:
            reply = await api.aisa(TASK)
            results["aisa"] = reply.status
            results["aisa-retry"] = int(reply.headers.get("Retry-After", 0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a")
            tg.start_soon(call, "b")
            with anyio.fail_after(5):
                # The server offers no hook for "a call holds its slot": poll it briefly.
                while emulator.limits.in_flight("demo") < 2:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            await call("c")
            assert emulator.limits.in_flight("demo") == 2
        after = (await api.dfs([TASK])).task["status_code"]
    assert results["a"] == results["b"] == 20000
    assert results["c"] == 40209
    assert after == 20000


async def test_aisa_concurrency_limit_is_429():
    async with serve(sizes=SIZES, max_concurrent=1, latency_median=0.3) as api:
        emulator = api.emu.app[EMULATOR_KEY]
        statuses: list[int] = []

        async def call() -> None:
            statuses.append((await api.aisa(TASK)).status)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(5):
                key_id = credential_id(api_key="demo-key")
                assert key_id is not None
                while emulator.limits.in_flight(key_id) < 1:  # noqa: ASYNC110 (as above)
                    await anyio.sleep(0.005)
            over = await api.aisa(TASK)
    assert statuses == [200]
    assert over.status == 429 and over.headers["Retry-After"] == "1"
    assert over.json["error"]["code"] == "concurrency_limit_exceeded"
