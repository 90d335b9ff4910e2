"""The envelope, the item shape, determinism and offset/limit slicing, over real HTTP."""

from __future__ import annotations

import re
import uuid

import pytest

import intersect_batch.emulator as emulator_pkg

from .support import BASIC, serve, url_of

pytestmark = pytest.mark.anyio

T2 = {"1": "example.com", "2": "https://shop.example.org/page"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \+00:00$")
TIME = re.compile(r"^\d+\.\d{4} sec\.$")
# In the order of the endpoint's reference page (its backlink fields, docs/api.md).
BACKLINK_FIELDS = """
type domain_from url_from url_from_https domain_to url_to url_to_https tld_from is_new is_lost
backlink_spam_score rank page_from_rank domain_from_rank domain_from_platform_type
domain_from_is_ip domain_from_ip domain_from_country page_from_external_links
page_from_internal_links page_from_size page_from_encoding page_from_language page_from_title
page_from_status_code first_seen prev_seen last_seen item_type attributes dofollow original alt
anchor text_pre text_post semantic_location links_count group_count is_broken
url_to_status_code url_to_spam_score url_to_redirect_target is_indirect_link indirect_link_path
""".split()  # noqa: SIM905 (the doc's word list, easier to compare as text)


def test_public_names():
    assert emulator_pkg.__all__ == sorted(emulator_pkg.__all__)
    public = {n for n in dir(emulator_pkg) if not n.startswith("_")}
    modules = {
        "answers", "app", "cli", "codes", "faults", "filters", "graph", "gzipbomb", "hashing",
        "hostile", "limits", "oddities", "pages", "query", "records", "resultset", "schema",
        "sending", "server", "settings", "streaming", "words", "annotations", "timeline",
    }  # fmt: skip
    assert public - modules == set(emulator_pkg.__all__)


async def test_envelope_shape():
    async with serve(sizes={"example.com": 7}) as api:
        reply = await api.query(targets=T2, limit=5, tag="job-1")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    env = reply.json
    assert list(env) == [
        "version", "status_code", "status_message", "time", "cost",
        "tasks_count", "tasks_error", "tasks",
    ]  # fmt: skip
    assert env["status_code"] == 20000 and env["status_message"] == "Ok."
    assert TIME.match(env["time"])
    assert env["tasks_count"] == 1 and env["tasks_error"] == 0
    assert env["cost"] == pytest.approx(0.02015)
    task = env["tasks"][0]
    uuid.UUID(task["id"])
    assert task["status_code"] == 20000 and TIME.match(task["time"])
    assert task["cost"] == env["cost"] and task["result_count"] == 1
    assert task["path"] == ["v3", "backlinks", "page_intersection", "live"]
    assert task["data"] == {
        "api": "backlinks",
        "function": "page_intersection",
        "targets": T2,
        "offset": 0,
        "limit": 5,
        "internal_list_limit": 10,
        "include_subdomains": True,
        "include_indirect_links": True,
        "exclude_internal_backlinks": True,
        "intersection_mode": "all",
        "rank_scale": "one_thousand",
        "backlinks_status_type": "live",
        "tag": "job-1",
    }
    result = task["result"][0]
    assert result["targets"] == T2
    assert result["total_count"] == 7 and result["items_count"] == 5 == len(result["items"])


async def test_every_backlink_field_is_present_and_consistent():
    async with serve(sizes={"example.com": 300}) as api:
        items = (await api.query(targets=T2, limit=300)).items
    seen_types = set()
    for item in items:
        assert list(item) == ["page_intersection", "summary"]
        assert set(item["page_intersection"]) == {"1", "2"}
        assert item["summary"] == {"intersections_count": 2}
        urls = set()
        for key, links in item["page_intersection"].items():
            assert len(links) == 1
            b = links[0]
            assert list(b) == BACKLINK_FIELDS
            assert b["type"] == "backlinks_page_intersection"
            scheme, host = re.match(r"^(https?)://([^/]+)/", b["url_from"]).groups()  # type: ignore[union-attr]
            assert b["domain_from"] == host
            assert b["url_from_https"] == (scheme == "https")
            assert host.endswith("." + b["tld_from"])
            if key == "2":
                assert b["url_to"] == T2["2"] and b["domain_to"] == "shop.example.org"
            else:
                assert b["domain_to"].endswith("example.com")
                assert b["url_to"].startswith(f"https://{b['domain_to']}/")
            assert b["url_to_https"] == b["url_to"].startswith("https://")
            for name in ("first_seen", "prev_seen", "last_seen"):
                assert DATE.match(b[name]), b[name]
            assert b["first_seen"] <= b["prev_seen"] <= b["last_seen"]
            for name in ("rank", "page_from_rank", "domain_from_rank"):
                assert 0 <= b[name] <= 1000
            assert b["rank"] <= b["page_from_rank"]
            assert (b["alt"] is not None) == (b["item_type"] == "image")
            assert (b["indirect_link_path"] is not None) == b["is_indirect_link"]
            if b["indirect_link_path"]:
                assert set(b["indirect_link_path"][0]) == {"type", "status_code", "url"}
            assert b["is_broken"] == (
                b["url_to_status_code"] is not None and b["url_to_status_code"] >= 400
            )
            assert (b["url_to_spam_score"] is None) == (b["url_to_status_code"] is None)
            assert (b["url_to_redirect_target"] is not None) == (
                b["url_to_status_code"] in (301, 302)
            )
            assert (b["attributes"] is not None) == (not b["dofollow"])
            assert b["is_lost"] is False
            seen_types.add(b["item_type"])
            urls.add(b["url_from"])
        assert len(urls) == 1  # one referring page per item
    assert {"anchor", "image"} <= seen_types
    assert len({url_of(i) for i in items}) == len(items)


async def test_same_query_same_items_and_seed_changes_them():
    async with serve(sizes={"example.com": 50}) as api:
        first = (await api.query(targets=T2, limit=50)).items
        second = (await api.query(targets=T2, limit=50)).items
    async with serve(sizes={"example.com": 50}, seed=1) as api:
        other = (await api.query(targets=T2, limit=50)).items
    assert first == second
    assert [url_of(i) for i in first] != [url_of(i) for i in other]


async def test_default_order_is_page_rank_descending():
    async with serve(sizes={"example.com": 400}) as api:
        items = await api.all_items(targets=T2, page=100)
    ranks = [i["page_intersection"]["1"][0]["page_from_rank"] for i in items]
    assert ranks == sorted(ranks, reverse=True)
    assert ranks[0] > ranks[-1]


async def test_pages_concatenate_to_one_big_page_and_past_the_end_is_empty():
    async with serve(sizes={"example.com": 250}) as api:
        big = await api.query(targets=T2, limit=1000)
        pages = await api.all_items(targets=T2, page=60)
        past = await api.query(targets=T2, offset=250, limit=10)
        far = await api.query(targets=T2, offset=10_000, limit=10)
        tail = await api.query(targets=T2, offset=240, limit=100)
    assert big.result["total_count"] == 250 == len(big.items)
    assert pages == big.items
    for reply in (past, far):
        assert reply.result["total_count"] == 250
        assert reply.result["items"] == [] and reply.result["items_count"] == 0
        assert reply.task["cost"] == pytest.approx(0.02)
    assert tail.items == big.items[240:]


async def test_sizes_and_default_range():
    async with serve(sizes={"big.com": 200_000}, size_min=3, size_max=9) as api:
        big = await api.query(targets={"1": "big.com", "2": "x.org"}, limit=1)
        counts = [
            (await api.query(targets={"1": f"site{n}.com"}, limit=1)).result["total_count"]
            for n in range(40)
        ]
    assert big.result["total_count"] == 200_000
    assert all(c == 0 or 3 <= c <= 9 for c in counts)
    assert 0 in counts and len(set(counts)) > 2


async def test_no_intersections_is_ok_with_an_empty_result():
    async with serve(sizes={"none.com": 0}) as api:
        reply = await api.query(targets={"1": "none.com", "2": "b.com"})
    assert reply.task["status_code"] == 20000
    assert reply.result["total_count"] == 0 and reply.result["items"] == []


async def test_unknown_paths_get_the_404_envelope():
    async with serve() as api:
        async with api.session.get(api.emu.url + "/v3/backlinks/summary/live") as r:
            status, body = r.status, await r.json()
        live = api.emu.dataforseo_base + "/backlinks/page_intersection/live"
        async with api.session.get(live) as r:
            get_status = r.status
    assert status == 404 == get_status
    assert body["status_code"] == 40400 and body["tasks"] == []
    assert [c.route for c in api.emu.calls()] == ["other", "other"]


async def test_gzip_when_asked_and_off_when_disabled():
    body = b'[{"targets": {"1": "example.com"}, "limit": 50}]'
    for gzip_on, expected in ((True, "gzip"), (False, None)):
        async with serve(sizes={"example.com": 50}, gzip=gzip_on) as api:
            url = api.emu.dataforseo_base + "/backlinks/page_intersection/live"
            headers = {"Authorization": BASIC, "Accept-Encoding": "gzip"}
            async with api.session.post(url, data=body, headers=headers) as r:
                assert r.headers.get("Content-Encoding") == expected
                assert len((await r.json())["tasks"][0]["result"][0]["items"]) == 50
