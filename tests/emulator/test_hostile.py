"""Hostile answers: echoed credentials, long messages, bombs, huge and deep bodies, trickles,
non-object and pretty items, a huge total_count."""

from __future__ import annotations

import base64
import time
import zlib
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest

from intersect_batch.emulator import EmulatorSettings, FaultSettings, PinnedFault, running_emulator

from .support import BASIC, PATH, Api, serve, url_of

pytestmark = pytest.mark.anyio

TARGETS = {"1": "example.com"}
TASK = {"targets": TARGETS, "limit": 20}
SIZES = {"example.com": 100}


async def normal_answer(offset: int = 0, limit: int = 20) -> dict[str, Any]:
    """What a fault-free emulator answers, with the parts that vary per call blanked."""
    async with serve(sizes=SIZES) as api:
        reply = await api.query(targets=TARGETS, offset=offset, limit=limit)
    return comparable(reply.json)


def comparable(envelope: dict[str, Any]) -> dict[str, Any]:
    envelope["time"] = envelope["tasks"][0]["time"] = envelope["tasks"][0]["id"] = ""
    return envelope


# -- credentials and long messages ---------------------------------------------------------


@pytest.mark.parametrize("route", ["dfs", "aisa"])
async def test_echo_credentials_quotes_the_header_decoded_and_url_encoded(route):
    password = "p@ss:w0rd/é"
    async with serve(
        sizes=SIZES, password=password, api_key="k3y/+=", faults=FaultSettings(echo_credentials=1)
    ) as api:
        if route == "dfs":
            header = "Basic " + base64.b64encode(f"demo:{password}".encode()).decode()
            reply = await api.dfs([TASK], auth=header)
            secret, encoded = f"demo:{password}", "demo%3Ap%40ss%3Aw0rd%2F%C3%A9"
        else:
            header = "Bearer k3y/+="
            reply = await api.aisa(TASK, auth=header)
            secret, encoded = "k3y/+=", "k3y%2F%2B%3D"
    assert reply.status == 200 and reply.task["status_code"] == 40501
    message = reply.task["status_message"]
    assert header in message and secret in message and encoded in message
    (call,) = api.emu.calls()
    assert (call.fault, call.status_code, call.cost) == ("echo_credentials", 40501, 0)
    logged = msgspec.json.encode(api.emu.calls())
    assert password.encode() not in logged and b"k3y" not in logged


async def test_echo_credentials_as_an_http_500():
    faults = FaultSettings(echo_credentials=1.0, hostile_error_code=50000)
    async with serve(sizes=SIZES, faults=faults) as api:
        reply = await api.dfs([TASK])
    assert reply.status == 500 and reply.json["status_code"] == 50000
    assert reply.json["tasks"] == []
    assert BASIC in reply.json["status_message"]
    assert "demo:demo-password" in reply.json["status_message"]


async def test_long_message_has_exactly_the_size_asked():
    size = 5 * 1024 * 1024
    async with serve(sizes=SIZES, faults=FaultSettings(long_message=1.0)) as api:
        reply = await api.dfs([TASK])
    assert reply.status == 200 and int(reply.headers["Content-Length"]) == len(reply.body)
    assert len(reply.body) > size
    message = reply.task["status_message"]
    assert reply.task["status_code"] == 40501 and reply.task["result"] is None
    assert len(message) == size
    assert message.startswith("The request could not be processed in full. The request")
    assert reply.task["data"]["targets"] == TARGETS  # the rest of the envelope is intact


# -- big bodies ------------------------------------------------------------------------------


async def test_gzip_bomb_is_small_on_the_wire_and_inflates_to_the_size_asked():
    size = 64 * 1024 * 1024
    expected = await normal_answer()
    settings = EmulatorSettings(
        sizes=SIZES, faults=FaultSettings(gzip_bomb=1.0, gzip_bomb_size=size)
    )
    async with (
        running_emulator(settings) as emu,
        aiohttp.ClientSession(auto_decompress=False) as session,
    ):
        api = Api(emu, session)
        headers = {"Authorization": BASIC, "Accept-Encoding": "identity"}
        reply = await api.raw(emu.dataforseo_base + PATH, msgspec.json.encode([TASK]), headers)
    assert reply.status == 200 and reply.headers["Content-Encoding"] == "gzip"
    assert int(reply.headers["Content-Length"]) == len(reply.body) < size // 500
    inflater = zlib.decompressobj(31)  # checks the CRC-32 and length trailer too
    inflated, piece, spaces = 0, b"", True
    data = reply.body
    while data:
        piece = inflater.decompress(data, 1024 * 1024)
        data = inflater.unconsumed_tail
        inflated += len(piece)
        if inflated < size - 1024 * 1024:
            spaces = spaces and piece.strip(b" ") == b""
    tail = piece + inflater.flush()
    assert inflater.eof and inflater.unused_data == b""
    assert inflated == size and spaces
    answer = comparable(msgspec.json.decode(tail[tail.index(b'{"version"') :]))
    assert answer == expected


@pytest.mark.parametrize("chunked", [False, True])
async def test_huge_body_is_padding_then_the_answer(chunked):
    size = 8 * 1024 * 1024
    expected = await normal_answer()
    faults = FaultSettings(huge_body=1.0, huge_body_size=size, huge_body_chunked=chunked)
    async with serve(sizes=SIZES, faults=faults) as api:
        reply = await api.dfs([TASK])
    assert reply.status == 200 and len(reply.body) == size
    assert "Content-Encoding" not in reply.headers  # never compressed, whatever was asked
    if chunked:
        assert "Content-Length" not in reply.headers
        assert reply.headers["Transfer-Encoding"] == "chunked"
    else:
        assert int(reply.headers["Content-Length"]) == size
    assert comparable(reply.json) == expected
    (call,) = api.emu.calls()
    assert (call.fault, call.items, call.status_code) == ("huge_body", 20, 20000)


async def test_deep_nesting_puts_n_nested_arrays_in_the_first_item():
    async with serve(sizes=SIZES, faults=FaultSettings(deep_nesting=1.0)) as api:
        deep = await api.dfs([TASK])
    assert b'"nested":' + b"[" * 100_000 + b"]" * 100_000 + b"}," in deep.body
    async with serve(sizes=SIZES, faults=FaultSettings(deep_nesting=1.0, nesting_depth=7)) as api:
        items = (await api.dfs([TASK])).items
    value = items[0]["nested"]
    for _ in range(6):
        (value,) = value
    assert value == [] and all("nested" not in item for item in items[1:])
    assert len(items) == 20


# -- slow bodies ------------------------------------------------------------------------------


async def test_trickle_sends_the_answer_a_few_bytes_at_a_time():
    pause = 0.01
    expected = await normal_answer(limit=1)
    faults = FaultSettings(trickle=1.0, trickle_bytes=64, trickle_pause=pause)
    timeout = aiohttp.ClientTimeout(sock_read=1.0)
    async with serve(sizes=SIZES, faults=faults) as api:
        headers = {"Authorization": BASIC, "Accept-Encoding": "gzip"}
        url = api.emu.dataforseo_base + PATH
        started = time.perf_counter()
        body = {**TASK, "limit": 1}
        reads: list[bytes] = []
        async with api.session.post(
            url, data=msgspec.json.encode([body]), headers=headers, timeout=timeout
        ) as response:
            while piece := await response.content.readany():
                reads.append(piece)
        elapsed = time.perf_counter() - started
    whole = b"".join(reads)
    writes = -(-len(whole) // 64)
    assert "Content-Encoding" not in response.headers
    assert int(response.headers["Content-Length"]) == len(whole)
    assert comparable(msgspec.json.decode(whole)) == expected
    assert len(reads) >= 3 and elapsed >= (writes - 1) * pause
    assert api.emu.calls()[0].fault == "trickle"


async def test_a_trickle_does_not_hold_up_shutdown():
    faults = FaultSettings(trickle=1.0, trickle_bytes=8, trickle_pause=3600.0)
    async with aiohttp.ClientSession() as session:
        with anyio.fail_after(10):
            async with running_emulator(EmulatorSettings(sizes=SIZES, faults=faults)) as emu:
                response = await session.post(
                    emu.dataforseo_base + PATH,
                    data=msgspec.json.encode([TASK]),
                    headers={"Authorization": BASIC},
                )
                first = await response.content.readany()
                calls_while_open = emu.calls()
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
            response.release()
    assert first == b'{"version":"0.1'[:8]
    assert calls_while_open == []  # logged once the answer is over
    (call,) = emu.calls()
    assert call.fault == "trickle" and call.http_status == 200


# -- items --------------------------------------------------------------------------------


async def test_non_object_items_replace_three_real_ones():
    expected = await normal_answer()
    async with serve(sizes=SIZES, faults=FaultSettings(non_object_items=1.0)) as api:
        reply = await api.dfs([TASK])
        small = await api.dfs([{**TASK, "limit": 3}])
    items = reply.result["items"]  # not all of them objects
    assert reply.result["items_count"] == 20 and len(items) == 20
    assert (items[5], items[10], items[15]) == (1, "a", None)
    wanted = expected["tasks"][0]["result"][0]["items"]
    kept = [n for n in range(20) if n not in (5, 10, 15)]
    assert [items[n] for n in kept] == [wanted[n] for n in kept]
    assert all(isinstance(i, dict) for i in small.items)  # too few items to hide junk among
    assert [c.fault for c in api.emu.calls()] == ["non_object_items", None]


@pytest.mark.parametrize("kind", ["pretty_items", "multiline_items"])
async def test_pretty_items_hold_the_same_values(kind):
    pins = (PinnedFault(offset=0, kind=kind, times=1),)
    async with serve(sizes=SIZES, faults=FaultSettings(pinned=pins)) as api:
        pretty = await api.dfs([TASK])
        plain = await api.dfs([TASK])
    assert pretty.items == plain.items and pretty.body != plain.body
    assert b'{"version":"' in pretty.body  # the envelope stays compact
    assert b'{"page_intersection":{' in plain.body
    if kind == "pretty_items":
        assert b'{"page_intersection": {"1": [{"type": "backlinks_page_intersection", ' in (
            pretty.body
        )
        assert b"\n" not in pretty.body
    else:
        assert b'{\n  "page_intersection": {\n    "1": [\n' in pretty.body
    assert [c.fault for c in api.emu.calls()] == [kind, None]


async def test_huge_total_keeps_page_0_and_empties_every_later_page():
    expected = await normal_answer()
    async with serve(sizes=SIZES, faults=FaultSettings(huge_total=1.0)) as api:
        first = await api.dfs([TASK])
        later = [await api.dfs([{**TASK, "offset": offset}]) for offset in (20, 5000, 10**8)]
    assert first.result["total_count"] == 10**9
    assert [url_of(i) for i in first.items] == [
        url_of(i) for i in expected["tasks"][0]["result"][0]["items"]
    ]
    for reply in later:
        assert reply.result["total_count"] == 10**9
        assert reply.result["items"] == [] and reply.result["items_count"] == 0
    assert [(c.total_count, c.items) for c in api.emu.calls()] == [
        (10**9, 20), (10**9, 0), (10**9, 0), (10**9, 0),
    ]  # fmt: skip
