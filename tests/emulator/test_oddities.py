"""Answers that are not the page asked for: a proxy, no echo, a page past its limit, odd text."""

from __future__ import annotations

import json

import pytest

from intersect_batch.emulator import AnswerOddities
from intersect_batch.emulator.cli import settings_from_args

from .support import serve, url_of

pytestmark = pytest.mark.anyio

T2 = {"1": "example.com", "2": "other.org"}
#: Every field a job can send, each with a value other than the default.
FULL_TASK = {
    "targets": T2,
    "exclude_targets": ["excluded.net"],
    "filters": [["1.rank", ">", 10], "and", ["1.dofollow", "=", True]],
    "order_by": ["1.rank,desc"],
    "backlinks_status_type": "all",
    "internal_list_limit": 5,
    "include_subdomains": False,
    "include_indirect_links": False,
    "exclude_internal_backlinks": False,
    "intersection_mode": "partial",
    "rank_scale": "one_hundred",
    "tag": "night",
    "offset": 20,
    "limit": 10,
}


async def test_the_echo_is_the_request_as_sent_with_the_defaults_filled_in() -> None:
    async with serve(sizes={"example.com": 400}) as api:
        full = await api.query(**FULL_TASK)
        bare = await api.query(targets=T2)
    assert full.task["data"] == {"api": "backlinks", "function": "page_intersection", **FULL_TASK}
    assert bare.task["data"] == {
        "api": "backlinks",
        "function": "page_intersection",
        "targets": T2,
        "offset": 0,
        "limit": 100,
        "internal_list_limit": 10,
        "include_subdomains": True,
        "include_indirect_links": True,
        "exclude_internal_backlinks": True,
        "intersection_mode": "all",
        "rank_scale": "one_thousand",
        "backlinks_status_type": "live",
    }


async def test_a_first_page_proxy_answers_every_offset_with_page_0() -> None:
    async with serve(sizes={"example.com": 300}) as plain:
        first = await plain.query(targets=T2, offset=0, limit=100)
    async with serve(
        sizes={"example.com": 300}, oddities=AnswerOddities(first_page_proxy=True)
    ) as api:
        later = await api.query(targets=T2, offset=200, limit=100)
        logged = api.emu.calls()
    assert [url_of(i) for i in later.items] == [url_of(i) for i in first.items]
    assert later.task["data"]["offset"] == 0
    assert later.result["total_count"] == 300
    assert [(c.offset, c.limit) for c in logged] == [(200, 100)]  # the log keeps what was asked


async def test_no_echo_leaves_the_data_out() -> None:
    async with serve(sizes={"example.com": 30}, oddities=AnswerOddities(no_echo=True)) as api:
        reply = await api.query(targets=T2)
    assert "data" not in reply.task
    assert len(reply.items) == 30


async def test_page_items_carries_more_than_the_limit_and_bills_them() -> None:
    oddities = AnswerOddities(page_items=1000)
    async with serve(sizes={"example.com": 1500}, oddities=oddities) as api:
        first = await api.query(targets=T2, offset=0, limit=100)
        last = await api.query(targets=T2, offset=1400, limit=100)
    assert len(first.items) == 1000 and first.result["items_count"] == 1000
    assert first.task["cost"] == pytest.approx(0.02 + 1000 * 0.00003)
    assert first.task["data"]["limit"] == 100
    assert len(last.items) == 100  # what is left of the total


async def test_odd_text_goes_into_the_titles_at_the_positions_given() -> None:
    oddities = AnswerOddities(surrogate_at=frozenset({3}), bad_utf8_at=frozenset({5, 12}))
    async with serve(sizes={"example.com": 20}, oddities=oddities) as api:
        reply = await api.query(targets=T2, offset=0, limit=10)
    body = reply.body
    assert body.count(b'"page_from_title":"\\ud800') == 1
    assert body.count(b'"page_from_title":"\xff\xfe') == 1  # position 12 is on the next page
    # Python's json reads a lone surrogate escape; the raw bytes are not UTF-8 at all.
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    titles = json.loads(body.replace(b"\xff\xfe", b""))["tasks"][0]["result"][0]["items"]
    assert titles[3]["page_intersection"]["1"][0]["page_from_title"].startswith("\ud800")


def test_the_command_line_sets_every_oddity() -> None:
    settings = settings_from_args(
        [
            "--first-page-proxy", "--no-echo", "--page-items", "1000",
            "--surrogate-at", "150", "--bad-utf8-at", "5", "--bad-utf8-at", "205",
        ]
    )  # fmt: skip
    assert settings.oddities == AnswerOddities(
        first_page_proxy=True,
        no_echo=True,
        page_items=1000,
        surrogate_at=frozenset({150}),
        bad_utf8_at=frozenset({5, 205}),
    )
    assert settings_from_args([]).oddities == AnswerOddities()
    with pytest.raises(SystemExit):
        settings_from_args(["--page-items", "1001"])


async def test_the_aisa_route_passes_the_echo_through_and_a_proxy_in_front_of_it_too() -> None:
    task = {"targets": T2, "offset": 100, "limit": 50}
    async with serve(sizes={"example.com": 300}) as api:
        plain = await api.aisa(task)
    async with serve(
        sizes={"example.com": 300}, oddities=AnswerOddities(first_page_proxy=True)
    ) as api:
        proxied = await api.aisa(task)
    assert plain.status == proxied.status == 200
    assert plain.task["data"]["offset"] == 100 and plain.task["data"]["limit"] == 50
    assert proxied.task["data"]["offset"] == 0
