"""Holes inside the total (empty, no results, short), drawn or pinned to offsets."""

from __future__ import annotations

import pytest

from intersect_batch.emulator import FaultSettings, PinnedFault

from .support import serve, url_of

pytestmark = pytest.mark.anyio

TARGETS = {"1": "example.com"}
OTHER = {"1": "other.org", "2": "example.com"}
SIZES = {"example.com": 100, "other.org": 100}


async def reference_page(offset: int, limit: int = 20) -> list[str]:
    """The referring pages a fault-free emulator answers at ``offset``."""
    async with serve(sizes=SIZES) as api:
        reply = await api.query(targets=TARGETS, offset=offset, limit=limit)
    return [url_of(item) for item in reply.items]


async def test_empty_page_is_a_200_with_no_items_and_the_right_total():
    async with serve(sizes=SIZES, faults=FaultSettings(empty_page=1.0)) as api:
        first = await api.query(targets=TARGETS, offset=0, limit=20)
        hole = await api.query(targets=TARGETS, offset=20, limit=20)
        past = await api.query(targets=TARGETS, offset=100, limit=20)
    assert first.result["items_count"] == 20  # never drawn at offset 0
    assert hole.json["status_code"] == 20000 and hole.json["tasks_error"] == 0
    assert hole.task["status_code"] == 20000
    assert hole.result["items"] == [] and hole.result["items_count"] == 0
    assert hole.result["total_count"] == 100
    assert past.result["items"] == [] and past.result["total_count"] == 100
    faults = [(c.offset, c.fault, c.items, c.total_count, c.cost) for c in api.emu.calls()]
    assert faults == [
        (0, None, 20, 100, pytest.approx(0.0206)),
        (20, "empty_page", 0, 100, 0.02),
        (100, None, 0, 100, 0.02),  # past the end an empty page is the true answer
    ]


async def test_no_results_is_40102_with_a_null_result_inside_the_total():
    async with serve(sizes=SIZES, faults=FaultSettings(no_results=1.0)) as api:
        first = await api.query(targets=TARGETS, offset=0, limit=20)
        hole = await api.query(targets=TARGETS, offset=60, limit=20)
        past = await api.query(targets=TARGETS, offset=120, limit=20)
    assert first.result["items_count"] == 20
    assert hole.json["status_code"] == 20000 and hole.json["tasks_error"] == 1
    assert hole.task["status_code"] == 40102
    assert hole.task["status_message"] == "No Search Results."
    assert hole.task["result"] is None and hole.task["cost"] == 0
    assert past.result["items"] == []
    calls = api.emu.calls()
    assert [(c.fault, c.status_code, c.cost) for c in calls] == [
        (None, 20000, pytest.approx(0.0206)),
        ("no_results", 40102, 0),
        (None, 20000, 0.02),
    ]


@pytest.mark.parametrize("offset", [20, 80])
async def test_short_page_holds_the_first_half_of_the_page(offset):
    expected = await reference_page(offset)
    async with serve(sizes=SIZES, faults=FaultSettings(short_page=1.0)) as api:
        reply = await api.query(targets=TARGETS, offset=offset, limit=20)
    assert reply.result["items_count"] == 10 and reply.result["total_count"] == 100
    assert [url_of(i) for i in reply.items] == expected[:10]
    (call,) = api.emu.calls()
    assert (call.fault, call.items) == ("short_page", 10)
    assert call.cost == pytest.approx(0.0203)


async def test_holes_are_seeded_per_request_and_retries_draw_afresh():
    faults = FaultSettings(empty_page=0.3, short_page=0.3)

    async def run(order: list[int]) -> dict[int, list[int]]:
        async with serve(sizes=SIZES, faults=faults, seed=11) as api:
            out: dict[int, list[int]] = {}
            for offset in order:
                reply = await api.query(targets=TARGETS, offset=offset, limit=20)
                out.setdefault(offset, []).append(reply.result["items_count"])
            return out

    forward = await run([0, 20, 40, 60, 80] * 4)
    backward = await run([80, 60, 40, 20, 0] * 4)
    assert forward == backward
    assert forward[0] == [20] * 4
    counts = {n for offset in (20, 40, 60, 80) for n in forward[offset]}
    assert counts == {0, 10, 20}
    assert any(len(set(forward[offset])) > 1 for offset in (20, 40, 60, 80))


async def test_a_pinned_hole_answers_its_first_times_then_normally():
    pins = (PinnedFault(offset=40, kind="empty_page", times=2),)
    async with serve(sizes=SIZES, faults=FaultSettings(pinned=pins)) as api:
        at_40 = [await api.query(targets=TARGETS, offset=40, limit=20) for _ in range(3)]
        at_20 = await api.query(targets=TARGETS, offset=20, limit=20)
        other_job = await api.query(targets=OTHER, offset=40, limit=20)
    assert [r.result["items_count"] for r in at_40] == [0, 0, 20]
    assert at_20.result["items_count"] == 20
    assert other_job.result["items_count"] == 0  # counted per request: each job meets it
    faults = [c.fault for c in api.emu.calls()]
    assert faults == ["empty_page", "empty_page", None, None, "empty_page"]


async def test_a_hole_pinned_at_offset_0_or_always_stays():
    pins = (PinnedFault(offset=0, kind="no_results"),)
    async with serve(sizes=SIZES, faults=FaultSettings(pinned=pins)) as api:
        replies = [await api.query(targets=TARGETS, limit=20) for _ in range(3)]
    assert [r.task["status_code"] for r in replies] == [40102] * 3


async def test_pins_take_turns_name_status_codes_and_can_be_scoped_to_a_target():
    pins = (
        PinnedFault(offset=20, kind="http_500", times=1),
        PinnedFault(offset=20, kind="short_page", times=1),
        PinnedFault(offset=20, kind=50301, times=1),
        PinnedFault(offset=40, kind="empty_page", target="other.org"),
    )
    async with serve(sizes=SIZES, faults=FaultSettings(pinned=pins)) as api:
        turns = [await api.dfs([{"targets": TARGETS, "offset": 20, "limit": 20}]) for _ in range(4)]
        scoped = await api.query(targets=OTHER, offset=40, limit=20)
        unscoped = await api.query(targets=TARGETS, offset=40, limit=20)
    assert turns[0].status == 500 and turns[0].json["status_code"] == 50000
    assert turns[1].result["items_count"] == 10
    assert turns[2].task["status_code"] == 50301
    assert turns[3].result["items_count"] == 20
    assert scoped.result["items_count"] == 0 and unscoped.result["items_count"] == 20
    faults = [c.fault for c in api.emu.calls()]
    assert faults == ["http_500", "short_page", "status_code", None, "empty_page", None]


async def test_a_hole_pinned_outside_the_total_answers_normally():
    pins = (PinnedFault(offset=100, kind="no_results"),)
    async with serve(sizes=SIZES, faults=FaultSettings(pinned=pins)) as api:
        reply = await api.query(targets=TARGETS, offset=100, limit=20)
    assert reply.result["items"] == [] and reply.result["total_count"] == 100
    assert api.emu.calls()[0].fault is None


@pytest.mark.parametrize(
    ("text", "pin"),
    [
        ("200=empty_page", PinnedFault(offset=200, kind="empty_page")),
        ("0=short_page:3", PinnedFault(offset=0, kind="short_page", times=3)),
        ("40=50301:1@https://a.com/x@y", PinnedFault(
            offset=40, kind=50301, times=1, target="https://a.com/x@y"
        )),
    ],
)  # fmt: skip
def test_pin_text_form(text, pin):
    assert PinnedFault.parse(text) == pin


@pytest.mark.parametrize(
    "text", ["200", "x=empty_page", "200=nonsense", "200=empty_page:0", "200=empty_page:",
             "-1=empty_page", "200=empty_page@", "200=99"],
)  # fmt: skip
def test_bad_pins_are_refused(text):
    with pytest.raises(ValueError):
        PinnedFault.parse(text)
