"""Whether an answer answers the question asked, and what its odd text becomes.

The CPU step (``read_answer``) on answers built here: the request's echo held against
the task sent, a page past its limit, lone surrogate escapes and bytes that are not
UTF-8. The command-line tests (tests/test_hostile_pages.py) meet the same through the
emulator.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from intersect_batch.answer import Answer, BadAnswerError, FetchedPage, read_answer
from intersect_batch.errors import JobFatalApiError, TransientApiError
from intersect_batch.scrub import Scrubber
from intersect_batch.settings import AnswerCaps
from intersect_batch.suspicion import duplicate_share, echo_mismatch, only_seen
from intersect_batch.wire import item_key, mask_lone_surrogates
from tests.hostile_server import encode, envelope

SENT: dict[str, Any] = {
    "targets": {"1": "a.example", "2": "b.example"},
    "exclude_targets": ["mine.example"],
    "filters": [["1.rank", ">", 10]],
    "order_by": ["1.rank,desc"],
    "intersection_mode": "partial",
    "offset": 200,
    "limit": 100,
}
#: What the API echoes for SENT: the same, with its defaults filled in.
ECHO: dict[str, Any] = {
    "api": "backlinks",
    "function": "page_intersection",
    **SENT,
    "internal_list_limit": 10,
    "include_subdomains": True,
    "include_indirect_links": True,
    "exclude_internal_backlinks": True,
    "rank_scale": "one_thousand",
    "backlinks_status_type": "live",
}


def _item(n: int, title: str = "t") -> dict[str, Any]:
    backlink = {"url_from": f"https://p.example/{n}", "page_from_title": title}
    return {"page_intersection": {"1": [backlink]}}


ABSENT = object()


def _body(items: list[Any], data: Any = ABSENT, *, cost: float = 0.02003) -> bytes:
    answer = envelope(items=items, total_count=900, cost=cost)
    if data is not ABSENT:
        answer["tasks"][0]["data"] = data
    return encode(answer)


def _read(body: bytes, asked: dict[str, Any] | None = SENT) -> FetchedPage:
    answer = Answer(200, {}, body, asked=asked)
    return read_answer(answer, caps=AnswerCaps(), scrubber=Scrubber(["s3cret"]))


def _bad(body: bytes, asked: dict[str, Any] | None = SENT) -> BadAnswerError:
    with pytest.raises(BadAnswerError) as caught:
        _read(body, asked)
    return caught.value


# -- the echo -----------------------------------------------------------------------------


def test_an_echo_of_the_request_with_its_defaults_is_the_page() -> None:
    page = _read(_body([_item(1), _item(2)], ECHO))
    assert page.echoed is True and page.items_count == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("offset", 0),
        ("limit", 1000),
        ("targets", {"1": "a.example"}),
        ("targets", {"1": "a.example", "2": "c.example"}),
        ("exclude_targets", []),
        ("filters", [["1.rank", ">", 100]]),
        ("order_by", ["1.rank,asc"]),
        ("intersection_mode", "all"),
        ("offset", "200"),
        ("offset", True),
    ],
)
def test_an_echo_that_contradicts_a_field_sent_is_a_bad_answer(field: str, value: Any) -> None:
    error = _bad(_body([_item(1)], {**ECHO, field: value}, cost=0.02003))
    asked, came = (
        json.dumps(SENT[field], separators=(",", ":")),
        json.dumps(value, separators=(",", ":")),
    )
    assert error.message == (
        f"bad answer: an answer to another request: the request asked {field} {asked}, "
        f"the answer's echo (tasks[].data) says {field} {came}"
    )
    # Retried like any transient failure; what it carried and cost is kept for the books.
    assert isinstance(error, TransientApiError)
    assert (error.items, error.cost, error.maybe_billed) == (1, 0.02003, False)
    located = error.at(job_id="crm", offset=200)
    assert type(located) is BadAnswerError and located.items == 1 and located.cost == 0.02003
    assert located.describe().startswith("job 'crm' offset 200: [20000] bad answer: ")


def test_defaults_numbers_and_letter_case_are_no_mismatch() -> None:
    echo = {
        **ECHO,
        "targets": {"1": "A.Example ", "2": "b.example"},
        "limit": 100.0,
        "tag": "added by a proxy",
    }
    assert _read(_body([_item(1)], echo)).echoed is True
    # A field left out of the echo is not checked; a field sent as null is not sent.
    partial = {k: v for k, v in ECHO.items() if k != "filters"}
    assert _read(_body([_item(1)], partial)).echoed is True
    assert echo_mismatch({**SENT, "tag": None}, ECHO) is None


@pytest.mark.parametrize("data", [ABSENT, None, {}, {"targets": SENT["targets"]}])
def test_without_an_echo_of_the_offset_the_page_is_not_echoed(data: Any) -> None:
    page = _read(_body([_item(1)], data))
    assert page.echoed is False and page.items_count == 1


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ([1, 2], "is not an object"),
        ({"offset": 200, "x": "y" * 70_000}, "is 70,021 bytes long"),
    ],
)
def test_an_echo_that_is_no_request_is_a_bad_answer(data: Any, why: str) -> None:
    error = _bad(_body([_item(1)], data))
    assert error.message == f"bad answer: its echo of the request (tasks[].data) {why}"


def test_a_quoted_echo_is_scrubbed_and_cut() -> None:
    error = _bad(_body([_item(1)], {**ECHO, "order_by": ["s3cret," + "x" * 500]}))
    assert "s3cret" not in error.message and "***" in error.message
    assert len(error.message) < 400


def test_an_answer_read_without_the_request_is_not_checked() -> None:
    page = _read(_body([_item(1)] * 3, {**ECHO, "offset": 0, "limit": 1}), asked=None)
    assert page.echoed is False and page.items_count == 3


# -- more items than the limit asked ------------------------------------------------------


def test_more_items_than_the_limit_asked_is_a_bad_answer_that_says_what_it_carried() -> None:
    items = [_item(n) for n in range(12)]
    error = _bad(_body(items, {**ECHO, "limit": 10}, cost=0.02036), {**SENT, "limit": 10})
    assert error.message == "bad answer: the page holds 12 items, more than the limit of 10 asked"
    assert (error.items, error.cost) == (12, 0.02036)
    page = _read(_body(items[:10], {**ECHO, "limit": 10}), {**SENT, "limit": 10})
    assert page.items_count == 10


def test_more_items_than_a_page_can_hold_counts_what_was_decoded() -> None:
    error = _bad(_body([{}] * 1001, ECHO))
    assert "more than 1000 items" in error.message
    assert error.items == 1001


def test_an_error_answer_is_judged_by_its_code_not_its_echo() -> None:
    body = encode(envelope(task_code=40501, task_message="Invalid Field: 'filters'."))
    with pytest.raises(JobFatalApiError):
        _read(body)


# -- odd text -----------------------------------------------------------------------------


def test_a_lone_surrogate_escape_becomes_u_fffd_and_the_page_is_kept() -> None:
    items = [_item(1, "café"), _item(2, "x"), _item(3, "😀")]
    body = _body(items, ECHO)
    body = body.replace(b'"x"', b'"x\\ud800y"')
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(body)  # what the fast path meets
    page = _read(body)
    assert page.items_repaired == 1 and page.items_count == 3
    assert [json.loads(line) for line in page.lines] == [
        _item(1, "café"),
        _item(2, "x\ufffdy"),
        _item(3, "😀"),
    ]
    assert item_key(page.lines[1]) == item_key(encode(_item(2)))


def test_surrogate_pairs_and_escaped_backslashes_are_left_alone() -> None:
    text = b'{"a":"\\ud83d\\ude00","b":"\\\\ud800","c":"\\udc00\\ud800x","d":"\\uD800"}'
    masked = mask_lone_surrogates(text)
    assert masked is not None
    fixed, where = masked
    assert fixed == b'{"a":"\\ud83d\\ude00","b":"\\\\ud800","c":"\\ufffd\\ufffdx","d":"\\ufffd"}'
    assert where == [text.index(b"\\udc00"), text.index(b"\\ud800x"), text.index(b"\\uD800")]
    assert mask_lone_surrogates(b'{"a":"\\ud83d\\ude00"}') is None


def test_bytes_that_are_not_utf8_become_u_fffd_and_are_counted() -> None:
    body = _body([_item(1, "AAAA"), _item(2, "ok é"), _item(3, "BBBB")], ECHO)
    body = body.replace(b"AAAA", b"A\xff\xfeA").replace(b"BBBB", b"B\xc3B")
    page = _read(body)
    assert page.items_repaired == 2
    titles = [
        json.loads(line)["page_intersection"]["1"][0]["page_from_title"] for line in page.lines
    ]
    assert titles == ["A\ufffd\ufffdA", "ok é", "B\ufffdB"]


def test_an_item_with_both_oddities_counts_once() -> None:
    body = _body([_item(1, "AAAA"), _item(2, "x")], ECHO).replace(b"AAAA", b"\\udc00\xff")
    page = _read(body)
    assert page.items_repaired == 1
    assert (
        json.loads(page.lines[0])["page_intersection"]["1"][0]["page_from_title"] == "\ufffd\ufffd"
    )


def test_valid_text_is_written_byte_for_byte() -> None:
    items = [_item(1, "Bücher – “quoted” 😀"), _item(2, "plain")]
    body = encode(envelope(items=items, total_count=2), ensure_ascii=False)
    page = _read(body, asked=None)
    assert page.items_repaired == 0
    assert page.lines == [encode(item, ensure_ascii=False) for item in items]


# -- the suspicions -----------------------------------------------------------------------


def test_a_page_is_only_seen_when_it_has_items_and_all_are_known() -> None:
    lines = [encode(_item(n)) for n in range(3)]
    seen = {item_key(line) for line in lines}
    assert only_seen(lines, item_key, seen) is True
    assert only_seen([*lines, encode(_item(9))], item_key, seen) is False
    assert only_seen([], item_key, seen) is False


@pytest.mark.parametrize(
    ("duplicates", "total", "page_size", "fails"),
    [
        (200, 300, 100, True),
        (100, 300, 100, False),  # a page's worth at most: never
        (101, 300, 100, True),
        (30, 300, 10, False),  # 10 % at most: never
        (31, 300, 10, True),
        (5000, None, 100, False),
    ],
)
def test_duplicates_past_a_tenth_of_the_total_and_a_page_fail_the_job(
    duplicates: int, total: int | None, page_size: int, fails: bool
) -> None:
    reason = duplicate_share(duplicates, total, page_size)
    assert (reason is not None) is fails
    if reason is not None and total == 300 and duplicates == 200:
        assert reason.startswith("200 duplicate items dropped, 67% of total_count 300")
