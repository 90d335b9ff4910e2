"""An index that changes by date: new pages, pages found again, pages that vanish."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from intersect_batch.emulator.timeline import AS_OF_HEADER, AS_OF_PATH, Timeline

from .support import BASIC, PATH, serve, url_of

pytestmark = pytest.mark.anyio

ORIGIN = dt.date(2026, 12, 1)
TARGETS = {"1": "alpha.example", "2": "beta.example"}
SIZE = 600
LINE = Timeline(origin=ORIGIN, daily_new=0.01, daily_return=0.004, daily_vanish=0.002)


def _pid(item: dict[str, Any]) -> int:
    return int(url_of(item).rsplit("-", 1)[1])


def test_every_page_has_one_fate_within_the_horizon() -> None:
    fates = [LINE.fate(12345, pid) for pid in range(20_000)]
    kinds = {kind: sum(1 for k, _ in fates if k == kind) for kind in ("new", "return", "vanish")}
    # 30 days of 1 %, 0.4 % and 0.2 % of the pages: 30 %, 12 % and 6 %, give or take the draw.
    assert abs(kinds["new"] - 6000) < 300
    assert abs(kinds["return"] - 2400) < 200
    assert abs(kinds["vanish"] - 1200) < 150
    assert {day for kind, day in fates if kind} == set(range(1, 31))
    assert all(day == 0 for kind, day in fates if kind is None)
    assert LINE.day(ORIGIN - dt.timedelta(days=5)) == 0
    assert LINE.day(ORIGIN + dt.timedelta(days=3)) == 3
    assert LINE.day(ORIGIN + dt.timedelta(days=99)) == 30


def test_rates_that_cannot_fit_the_horizon_are_refused() -> None:
    with pytest.raises(ValueError, match="add up to at most 1"):
        Timeline(origin=ORIGIN, daily_new=0.03, daily_return=0.01)
    with pytest.raises(ValueError, match="horizon_days"):
        Timeline(origin=ORIGIN, horizon_days=0)


async def test_the_index_of_a_day_is_yesterdays_plus_arrivals_less_departures() -> None:
    async with serve(sizes={"alpha.example": SIZE}, timeline=LINE) as api:
        days: dict[int, dict[int, dict[str, Any]]] = {}
        for day in (0, 1, 2, 3):
            date = (ORIGIN + dt.timedelta(days=day)).isoformat()
            reply = await api.raw(
                api.emu.url + AS_OF_PATH, date.encode(), {"Content-Type": "text/plain"}
            )
            assert (reply.status, reply.body) == (200, f"{date}\n".encode())
            days[day] = {_pid(i): i for i in await api.all_items(targets=TARGETS, page=1000)}
        thash = api.emu.emulator.store.universe(_query()).thash
        kinds = set()
        for day in (1, 2, 3):
            came = set(days[day]) - set(days[day - 1])
            went = set(days[day - 1]) - set(days[day])
            fates = {pid: LINE.fate(thash, pid) for pid in came | went}
            assert came == {p for p, (k, d) in fates.items() if k in ("new", "return") and d == day}
            assert went == {p for p, (k, d) in fates.items() if k == "vanish" and d == day}
            kinds |= {fates[pid][0] for pid in came | went}
            for pid in came:
                seen = {
                    links[0]["first_seen"] for links in days[day][pid]["page_intersection"].values()
                }
                if fates[pid][0] == "new":
                    assert {s[:10] for s in seen} == {(ORIGIN + dt.timedelta(days=day)).isoformat()}
                else:  # found again: its old first_seen, long before the origin
                    assert max(seen) < "2025-07-01"
        assert kinds == {"new", "return", "vanish"}  # each kind happens within three days


def _query() -> Any:
    from intersect_batch.emulator.query import parse_task

    return parse_task({"targets": TARGETS})


async def test_first_seen_filters_select_the_new_pages_and_nine_conditions_are_refused() -> None:
    as_of = (ORIGIN + dt.timedelta(days=4)).isoformat()
    async with serve(sizes={"alpha.example": SIZE}, timeline=LINE) as api:
        headers = {"Authorization": BASIC, AS_OF_HEADER: as_of}
        everything = []
        offset = 0
        while True:
            body = [{"targets": TARGETS, "offset": offset, "limit": 1000}]
            async with api.session.post(
                api.emu.dataforseo_base + PATH, json=body, headers=headers
            ) as r:
                result = (await r.json())["tasks"][0]["result"][0]
            everything += result["items"]
            offset += 1000
            if offset >= result["total_count"]:
                break
        cut = (ORIGIN + dt.timedelta(days=2)).isoformat() + " 00:00:00 +00:00"
        new = [["1.first_seen", ">", cut], "or", ["2.first_seen", ">", cut]]
        body = [{"targets": TARGETS, "filters": new, "limit": 1000}]
        async with api.session.post(
            api.emu.dataforseo_base + PATH, json=body, headers=headers
        ) as r:
            fresh = (await r.json())["tasks"][0]["result"][0]["items"]
        nine = [["1.rank", ">", n] if n % 2 == 0 else "and" for n in range(17)]
        refused = await api.query(targets=TARGETS, filters=nine)
        calls = api.emu.calls()
    expected = [
        url_of(i)
        for i in everything
        if any(links[0]["first_seen"] > cut for links in i["page_intersection"].values())
    ]
    assert len(expected) > 5
    assert [url_of(i) for i in fresh] == expected
    assert refused.task["status_code"] == 40501
    assert "At most 8 filters, got 9" in refused.task["status_message"]
    assert [c.conditions for c in calls][-2:] == [2, 9]
    assert calls[-2].as_of == as_of
    # Without the header, the emulator's own date: the origin.
    assert calls[-1].as_of == ORIGIN.isoformat()


async def test_the_date_endpoint_refuses_what_is_not_a_date_and_needs_a_timeline() -> None:
    async with serve(timeline=LINE) as api:
        reply = await api.raw(api.emu.url + AS_OF_PATH, b"tomorrow", {})
        assert reply.status == 400
    async with serve() as api:
        reply = await api.raw(api.emu.url + AS_OF_PATH, b"2026-12-02", {})
        assert reply.status == 404
        await api.query(targets=TARGETS)
        assert api.emu.calls()[-1].as_of is None
