"""One call, one verdict: the status table, and items passed through byte for byte."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from intersect_batch.client import fetch_page
from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    RunFatalApiError,
    ThrottledApiError,
    TransientApiError,
)
from intersect_batch.providers import resolve_provider
from intersect_batch.settings import AnswerCaps, Timeouts
from intersect_batch.status import classify

TRANSIENT = [40103, 50000, 50301, 50303, 50304, 50401, 50402, 50999]
THROTTLED = [40202, 40209]
RUN_FATAL = [40100, 40104, 40200, 40201, 40203, 40204, 40207, 40210, 40400]
JOB_FATAL = [40000, 40205, 40206, 40401, 40402, 40499, 40501, 40502, 40503, 40506, 50100]


@pytest.mark.parametrize("code", TRANSIENT)
def test_transient_codes(code: int) -> None:
    assert classify(200, 20000, code) is TransientApiError


@pytest.mark.parametrize("code", THROTTLED)
def test_limit_codes_throttle_the_run(code: int) -> None:
    assert classify(200, 20000, code) is ThrottledApiError
    assert issubclass(ThrottledApiError, TransientApiError)


@pytest.mark.parametrize("code", RUN_FATAL)
def test_run_fatal_codes(code: int) -> None:
    assert classify(200, 20000, code) is RunFatalApiError
    assert classify(200, code, None) is RunFatalApiError


@pytest.mark.parametrize("code", JOB_FATAL)
def test_job_fatal_codes(code: int) -> None:
    assert classify(200, 20000, code) is JobFatalApiError


@pytest.mark.parametrize(
    ("http", "expected"),
    [
        (401, RunFatalApiError),
        (402, RunFatalApiError),
        (403, RunFatalApiError),
        # No envelope: the base URL is wrong, and every call of the run would get it.
        (404, RunFatalApiError),
        (408, TransientApiError),
        (429, ThrottledApiError),
        (500, TransientApiError),
        (502, TransientApiError),
        (503, TransientApiError),
        (400, JobFatalApiError),
    ],
)
def test_http_statuses_without_a_body_code(http: int, expected: type[ApiError]) -> None:
    assert classify(http, None, None) is expected


def test_ok_and_no_results_are_usable() -> None:
    assert classify(200, 20000, 20000) is None
    assert classify(200, 20000, 40102) is None


def test_a_404_envelope_is_judged_by_its_code() -> None:
    # The path is wrong for every call; another 404xx is about what this job asked.
    assert classify(404, 40400, None) is RunFatalApiError
    assert classify(404, 20000, 40401) is JobFatalApiError
    assert classify(429, 20000, 20000) is ThrottledApiError


# -- over real HTTP, against answers the emulator does not give ---------------------------

TOMORROW_ITEM = {
    "page_intersection": {
        "1": [
            {
                "type": "backlinks_page_intersection",
                "url_from": "https://news.example/a",
                "a_field_added_tomorrow": {"nested": [1, 2.5, None, "ü"]},
            }
        ]
    },
    "summary": {"intersections_count": 1},
    "new_top_level": True,
}


def _envelope(task_code: int = 20000, items: list[Any] | None = None) -> dict[str, Any]:
    result = None
    if items is not None:
        result = [{"total_count": 7, "items_count": len(items), "items": items}]
    return {
        "version": "0.1",
        "status_code": 20000,
        "status_message": "Ok.",
        "cost": 0.02003,
        "tasks_count": 1,
        "tasks_error": 0 if task_code == 20000 else 1,
        "tasks": [
            {
                "id": "x",
                "status_code": task_code,
                "status_message": "msg",
                "cost": 0.02003,
                "result": result,
            }
        ],
    }


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[bytes]]]:
    answers: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        body = answers.pop(0)
        if body.startswith(b"HTTP"):
            status, _, rest = body.partition(b" ")[2].partition(b" ")
            return web.Response(status=int(status), body=rest, content_type="application/json")
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v3/backlinks/page_intersection/live", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v3", answers
    finally:
        await runner.cleanup()


async def _fetch(base: str) -> Any:
    provider = resolve_provider("dataforseo", base)
    credentials = provider.credentials(
        {"DATAFORSEO_LOGIN": "ops@shop.example", "DATAFORSEO_PASSWORD": "0f3c9a77d1e2b4c8"}
    )
    async with aiohttp.ClientSession() as session:
        return await fetch_page(
            session,
            provider,
            credentials,
            {"targets": {"1": "a.example"}},
            timeouts=Timeouts(),
            caps=AnswerCaps(),
            scrubber=credentials.scrubber(),
        )


@pytest.mark.anyio
async def test_unknown_fields_pass_through_and_pretty_items_are_compacted(
    api: tuple[str, list[bytes]],
) -> None:
    base, answers = api
    compact = json.dumps(TOMORROW_ITEM, separators=(",", ":"), ensure_ascii=False).encode()
    pretty = json.dumps(_envelope(items=[TOMORROW_ITEM, TOMORROW_ITEM]), indent=2).encode()
    answers.append(
        json.dumps(
            _envelope(items=[TOMORROW_ITEM]), separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    answers.append(pretty)
    first = await _fetch(base)
    second = await _fetch(base)
    assert first.total_count == 7
    assert json.loads(first.lines[0]) == TOMORROW_ITEM
    # Byte for byte as the API sent it, the field added tomorrow included.
    assert first.lines[0] == compact
    # Pretty-printed items become one compact line each, with nothing lost.
    assert len(second.lines) == 2
    for line in second.lines:
        assert b"\n" not in line
        assert json.loads(line) == TOMORROW_ITEM


@pytest.mark.anyio
async def test_answers_are_judged_at_every_level(api: tuple[str, list[bytes]]) -> None:
    base, answers = api
    answers.append(json.dumps(_envelope(40102)).encode())
    page = await _fetch(base)
    # No result: the caller decides whether an empty page is a hole.
    assert page.lines == [] and page.total_count is None and page.items_count == 0

    answers.append(json.dumps(_envelope(40501)).encode())
    with pytest.raises(JobFatalApiError) as job_fatal:
        await _fetch(base)
    assert job_fatal.value.status_code == 40501
    # The envelope said what the call cost: nothing is unknown about the bill.
    assert job_fatal.value.maybe_billed is False and job_fatal.value.cost == 0.02003

    answers.append(json.dumps(_envelope(items=[TOMORROW_ITEM])).encode()[:-40])
    with pytest.raises(TransientApiError, match="undecodable") as cut:
        await _fetch(base)
    assert cut.value.maybe_billed is True

    answers.append(b'HTTP 401 {"error": {"type": "auth", "message": "bad key"}}')
    with pytest.raises(RunFatalApiError, match="bad key"):
        await _fetch(base)

    answers.append(b"HTTP 502 <html>bad gateway</html>")
    with pytest.raises(TransientApiError, match="HTTP 502: <html>bad gateway</html>") as bad:
        await _fetch(base)
    assert bad.value.maybe_billed is True

    answers.append(b"HTTP 404 <html>no such page</html>")
    with pytest.raises(RunFatalApiError, match="no such page"):
        await _fetch(base)

    whole = {"status_code": 40210, "status_message": "Insufficient funds.", "tasks": []}
    answers.append(b"HTTP 402 " + json.dumps(whole).encode())
    with pytest.raises(RunFatalApiError, match="add funds") as funds:
        await _fetch(base)
    assert funds.value.status_code == 40210
