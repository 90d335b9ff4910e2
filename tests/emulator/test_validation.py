"""Requests the API refuses: task-level errors in an HTTP 200, and whole-call body errors."""

from __future__ import annotations

import pytest

from .support import serve

pytestmark = pytest.mark.anyio

OK = {"targets": {"1": "example.com"}}


@pytest.mark.parametrize(
    ("task", "code", "field"),
    [
        ({}, 40501, "targets"),
        ({"targets": {}}, 40501, "targets"),
        ({"targets": ["example.com"]}, 40501, "targets"),
        ({"targets": {"0": "a.com"}}, 40501, "targets"),
        ({"targets": {"21": "a.com"}}, 40501, "targets"),
        ({"targets": {"01": "a.com"}}, 40501, "targets"),
        ({"targets": {"1": ""}}, 40501, "targets"),
        ({"targets": {str(n): f"s{n}.com" for n in range(1, 22)}}, 40501, "targets"),
        ({**OK, "exclude_targets": [f"x{n}.com" for n in range(11)]}, 40501, "exclude_targets"),
        ({**OK, "exclude_targets": "x.com"}, 40501, "exclude_targets"),
        ({**OK, "limit": 0}, 40501, "limit"),
        ({**OK, "limit": 1001}, 40501, "limit"),
        ({**OK, "limit": "10"}, 40501, "limit"),
        ({**OK, "offset": -1}, 40501, "offset"),
        ({**OK, "offset": True}, 40501, "offset"),
        ({**OK, "internal_list_limit": 0}, 40501, "internal_list_limit"),
        ({**OK, "internal_list_limit": 1001}, 40501, "internal_list_limit"),
        ({**OK, "intersection_mode": "some"}, 40501, "intersection_mode"),
        ({**OK, "rank_scale": "one_ten"}, 40501, "rank_scale"),
        ({**OK, "backlinks_status_type": "dead"}, 40501, "backlinks_status_type"),
        ({**OK, "include_subdomains": "yes"}, 40501, "include_subdomains"),
        ({**OK, "tag": "x" * 256}, 40501, "tag"),
        ({**OK, "filters": [["1.rank", ">", n] for n in range(9)][0:1] * 9}, 40501, "filters"),
        ({**OK, "filters": ["1.rank", "~", 1]}, 40501, "filters"),
        ({**OK, "filters": ["rank", ">", 1]}, 40501, "filters"),
        ({**OK, "filters": ["2.rank", ">", 1]}, 40501, "filters"),
        ({**OK, "filters": ["1.nonsense", ">", 1]}, 40501, "filters"),
        ({**OK, "filters": ["1.rank", ">", "high"]}, 40501, "filters"),
        ({**OK, "filters": [["1.rank", ">", 1], "xor", ["1.rank", "<", 9]]}, 40501, "filters"),
        ({**OK, "filters": ["1.rank", "in", 5]}, 40501, "filters"),
        ({**OK, "filters": ["1.anchor", "regex", "("]}, 40501, "filters"),
        ({**OK, "filters": "1.rank>1"}, 40501, "filters"),
        ({**OK, "order_by": ["1.rank,up"]}, 40501, "order_by"),
        ({**OK, "order_by": ["rank,desc"]}, 40501, "order_by"),
        ({**OK, "order_by": ["1.unknown,desc"]}, 40501, "order_by"),
        ({**OK, "order_by": ["1.rank,desc"] * 4}, 40501, "order_by"),
        ({**OK, "limits": 10}, 40506, "limits"),
    ],
)
async def test_invalid_task(task, code, field):
    async with serve(sizes={"example.com": 10}) as api:
        reply = await api.dfs([task])
    assert reply.status == 200
    env = reply.json
    assert env["status_code"] == 20000 and env["tasks_error"] == 1 and env["cost"] == 0
    t = env["tasks"][0]
    assert t["status_code"] == code
    assert f"'{field}'" in t["status_message"]
    assert t["result"] is None and t["cost"] == 0
    if code == 40501:
        assert t["status_message"].startswith(f"Invalid Field: '{field}'.")
    else:
        assert t["status_message"].startswith("Unknown Fields in POST Data")


async def test_eight_filters_and_three_rules_are_fine():
    eight: list[object] = [["1.rank", ">", 0]]
    for _ in range(7):
        eight += ["and", ["1.rank", ">", 0]]
    async with serve(sizes={"example.com": 10}) as api:
        reply = await api.query(
            **OK,
            filters=eight,
            order_by=["1.rank,desc", "1.anchor,asc", "intersections_count,desc"],
        )
    assert reply.task["status_code"] == 20000


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"", 40502, "POST Data Is Empty."),
        (b"   ", 40502, "POST Data Is Empty."),
        (b"[]", 40502, "POST Data Is Empty."),
        (b"[{not json", 40503, "Invalid POST Data."),
        (b'{"targets": {"1": "a.com"}}', 40503, "Invalid POST Data."),
        (b'"text"', 40503, "Invalid POST Data."),
    ],
)
async def test_bad_bodies(body, code, message):
    async with serve() as api:
        reply = await api.dfs(body)
    env = reply.json
    assert reply.status == 200
    assert env["status_code"] == code and env["status_message"] == message
    assert env["tasks"] == [] and env["cost"] == 0
    assert api.emu.calls()[-1].status_code == code


async def test_task_that_is_not_an_object():
    async with serve() as api:
        reply = await api.dfs([5])
    assert reply.task["status_code"] == 40503


async def test_null_fields_count_as_not_sent() -> None:
    # The official clients send every unset optional field as null.
    nulls = {
        "exclude_targets": None,
        "filters": None,
        "order_by": None,
        "backlinks_status_type": None,
        "tag": None,
    }
    async with serve(sizes={"example.com": 30}) as api:
        plain = (await api.dfs([OK])).json["tasks"][0]
        with_nulls = (await api.dfs([{**OK, **nulls}])).json["tasks"][0]
    assert with_nulls["status_code"] == 20000, with_nulls["status_message"]
    assert with_nulls["result"][0]["items"] == plain["result"][0]["items"]
