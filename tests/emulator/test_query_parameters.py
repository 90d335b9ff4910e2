"""Each query parameter changes the result as documented, consistently across pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from .support import serve, url_of

pytestmark = pytest.mark.anyio

T2 = {"1": "example.com", "2": "other.org"}
SIZES = {"example.com": 300}


def links(item: dict[str, Any], key: str = "1") -> dict[str, Any]:
    return item["page_intersection"][key][0]  # type: ignore[no-any-return]


async def test_exclude_targets_shrink_the_set():
    async with serve(sizes=SIZES) as api:
        base = await api.all_items(targets=T2, page=1000)
        one = await api.all_items(targets=T2, exclude_targets=["bad.com"], page=1000)
        two = await api.all_items(targets=T2, exclude_targets=["bad.com", "worse.net"], page=1000)
        own = await api.query(targets=T2, exclude_targets=["other.org"])
    urls = [url_of(i) for i in base]
    one_urls = [url_of(i) for i in one]
    two_urls = [url_of(i) for i in two]
    assert len(urls) > len(one_urls) > len(two_urls) > 0
    assert set(two_urls) <= set(one_urls) <= set(urls)
    assert one_urls == [u for u in urls if u in set(one_urls)]  # same order, items removed
    assert own.result["total_count"] == 0


async def test_filters_really_filter():
    IL = ("image", "link")

    def rank(i: dict[str, Any]) -> int:
        return links(i)["rank"]  # type: ignore[no-any-return]

    def first_seen(i: dict[str, Any]) -> str:
        return links(i)["first_seen"]  # type: ignore[no-any-return]

    def www(i: dict[str, Any]) -> bool:
        return bool(links(i)["domain_from"][:4] == "www.")

    is_new = ["1.is_new", "=", True]
    cases: list[tuple[Any, Callable[[dict[str, Any]], bool]]] = [
        (["1.rank", ">", 300], lambda i: links(i)["rank"] > 300),
        (["1.dofollow", "=", "false"], lambda i: links(i)["dofollow"] is False),
        (["2.item_type", "in", ["image", "link"]], lambda i: links(i, "2")["item_type"] in IL),
        (["1.anchor", "like", "%more%"], lambda i: "more" in (links(i)["anchor"] or "")),
        (["1.anchor", "ilike", "READ%"], lambda i: (links(i)["anchor"] or "")[:4] == "read"),
        (["1.domain_from", "regex", "^www\\."], lambda i: links(i)["domain_from"][:4] == "www."),
        (["1.domain_from", "not_regex", "^www\\."], lambda i: www(i) is False),
        (["1.attributes", "=", "nofollow"], lambda i: "nofollow" in (links(i)["attributes"] or [])),
        (["1.url_to_status_code", "<>", 200], lambda i: links(i)["url_to_status_code"] != 200),
        (["1.first_seen", ">=", "2023-01-01 00:00:00 +00:00"], lambda i: first_seen(i) >= "2023"),
        (["1.anchor", "match", "official"], lambda i: "official" in (links(i)["anchor"] or "")),
        (
            [["1.rank", ">", 200], "and", [["2.dofollow", "=", True], "or", is_new]],
            lambda i: links(i)["rank"] > 200 and (links(i, "2")["dofollow"] or links(i)["is_new"]),
        ),
        (
            [["1.rank", "<", 50], "or", ["1.rank", ">", 800], "and", ["2.original", "=", False]],
            lambda i: rank(i) < 50 or (rank(i) > 800 and not links(i, "2")["original"]),
        ),
    ]  # fmt: skip
    async with serve(sizes=SIZES) as api:
        base = await api.all_items(targets=T2, page=1000)
        for condition, holds in cases:
            got = await api.all_items(targets=T2, filters=condition, page=1000)
            expected = [url_of(i) for i in base if holds(i)]
            assert [url_of(i) for i in got] == expected, condition
            assert 0 < len(got) < len(base), condition


async def test_filter_on_intersections_count_in_partial_mode():
    async with serve(sizes=SIZES) as api:
        got = await api.all_items(
            targets=T2,
            intersection_mode="partial",
            filters=["intersections_count", "<", 2],
            page=1000,
        )
    assert got and all(i["summary"]["intersections_count"] == 1 for i in got)
    assert all(len(i["page_intersection"]) == 1 for i in got)


async def test_order_by_really_orders_and_stays_consistent_across_pages():
    async with serve(sizes=SIZES) as api:
        big = (await api.query(targets=T2, order_by=["1.domain_from_rank,asc"], limit=1000)).items
        paged = await api.all_items(targets=T2, order_by=["1.domain_from_rank,asc"], page=70)
        multi = (
            await api.query(
                targets=T2, order_by=["2.item_type,desc", "1.backlink_spam_score,asc"], limit=1000
            )
        ).items
    ranks = [links(i)["domain_from_rank"] for i in big]
    assert ranks == sorted(ranks) and ranks[0] < ranks[-1]
    assert paged == big
    keys = [(links(i, "2")["item_type"], -links(i)["backlink_spam_score"]) for i in multi]
    assert keys == sorted(keys, reverse=True)
    assert len(multi) == 300


async def test_backlinks_status_type():
    async with serve(sizes=SIZES) as api:
        live = await api.all_items(targets=T2, page=1000)
        lost = await api.all_items(targets=T2, backlinks_status_type="lost", page=1000)
        both = await api.all_items(targets=T2, backlinks_status_type="all", page=1000)
    assert len(live) == 300 and 0 < len(lost) < len(live)
    assert len(both) == len(live) + len(lost)
    assert all(not links(i)["is_lost"] for i in live)
    assert all(links(i)["is_lost"] and links(i, "2")["is_lost"] for i in lost)
    assert {url_of(i) for i in both} == {url_of(i) for i in live} | {url_of(i) for i in lost}
    ranks = [links(i)["page_from_rank"] for i in both]
    assert ranks == sorted(ranks, reverse=True)


async def test_intersection_mode_partial_adds_pages_linking_to_some_targets():
    async with serve(sizes=SIZES) as api:
        full = await api.all_items(targets=T2, page=1000)
        partial = await api.all_items(targets=T2, intersection_mode="partial", page=1000)
    assert all(i["summary"]["intersections_count"] == 2 for i in full)
    assert len(partial) > len(full)
    some = [i for i in partial if i["summary"]["intersections_count"] == 1]
    assert some
    for i in some:
        assert len(i["page_intersection"]) == 1 and set(i["page_intersection"]) <= {"1", "2"}


async def test_include_subdomains_false_drops_subdomain_links():
    async with serve(sizes=SIZES) as api:
        incl = await api.all_items(targets=T2, page=1000)
        excl = await api.all_items(targets=T2, include_subdomains=False, page=1000)
    sub = re.compile(r"^[a-z]+\.(example\.com|other\.org)$")
    assert any(sub.match(links(i)["domain_to"]) for i in incl)
    assert not any(sub.match(links(i, k)["domain_to"]) for i in excl for k in ("1", "2"))
    assert len(excl) < len(incl)


async def test_include_indirect_links_false_drops_indirect_links():
    async with serve(sizes=SIZES) as api:
        incl = await api.all_items(targets=T2, page=1000)
        excl = await api.all_items(targets=T2, include_indirect_links=False, page=1000)
    assert any(links(i, k)["is_indirect_link"] for i in incl for k in ("1", "2"))
    assert not any(links(i, k)["is_indirect_link"] for i in excl for k in ("1", "2"))


async def test_rank_scale_scales_ranks():
    async with serve(sizes=SIZES) as api:
        thousand = (await api.query(targets=T2, limit=300)).items
        hundred = (await api.query(targets=T2, limit=300, rank_scale="one_hundred")).items
    assert [url_of(i) for i in thousand] == [url_of(i) for i in hundred]
    for a, b in zip(thousand, hundred, strict=True):
        for name in ("rank", "page_from_rank", "domain_from_rank"):
            assert 0 <= links(b)[name] <= 100
            assert abs(links(b)[name] - links(a)[name] / 10) <= 0.5 + 1e-9
    assert max(links(a)["page_from_rank"] for a in thousand) > 100


async def test_internal_list_limit_truncates_arrays():
    async with serve(sizes=SIZES) as api:
        items = (await api.query(targets=T2, limit=300, internal_list_limit=1)).items
        wide = (await api.query(targets=T2, limit=300)).items
    assert all(len(links(i)["domain_from_platform_type"]) <= 1 for i in items)
    assert any(len(links(i)["domain_from_platform_type"]) > 1 for i in wide)
