"""Hostile answers over real HTTP: slow, huge, deep, odd, or echoing the credentials.

Each test starts its own loopback server (tests/hostile_server.py) and calls the real
client; what is asserted is what the caller gets: the page, or the error, its class, its
text and whether the call may have been billed.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import zlib
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import anyio
import anyio.lowlevel
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.http import SERVER_SOFTWARE

from intersect_batch import client
from intersect_batch._version import __version__
from intersect_batch.answer import Answer, BadAnswerError, FetchedPage, read_answer
from intersect_batch.client import fetch_page, send_task
from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    RunFatalApiError,
    ThrottledApiError,
    TransientApiError,
    UnreachableApiError,
)
from intersect_batch.providers import Credentials, Provider, resolve_provider
from intersect_batch.scrub import Scrubber
from intersect_batch.settings import AnswerCaps, Timeouts
from tests.hostile_server import (
    MiB,
    encode,
    envelope,
    fixed,
    gzip_bomb,
    serve,
    streamed,
)

pytestmark = pytest.mark.anyio

LOGIN = "ops@shop.example"
# Characters that every encoding writes differently: URL-reserved, JSON-escaped, non-ASCII.
PASSWORD = 'p@ss/w+rd:é&x y"q\\9'
KEY = "sk-live/4f2a+9b1c==7e"
ENV = {"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD, "AISA_API_KEY": KEY}
TASK = {"targets": {"1": "a.example", "2": "b.example"}}
ITEM = {
    "page_intersection": {
        "1": [
            {
                "type": "backlinks_page_intersection",
                "url_from": "https://news.example/a",
                "anchor": 'Hello, world: a "quoted" title',
                "tomorrow": {"nested": [1, 2.5, None, "ü"]},
            }
        ]
    },
    "summary": {"intersections_count": 1},
}
COMPACT_ITEM = encode(ITEM, ensure_ascii=False)


def _credentials(provider: Provider) -> Credentials:
    return provider.credentials(ENV)


async def _fetch(
    base: str,
    *,
    provider_name: str = "dataforseo",
    timeouts: Timeouts | None = None,
    caps: AnswerCaps | None = None,
    session: aiohttp.ClientSession | None = None,
) -> FetchedPage:
    provider = resolve_provider(provider_name, base)
    credentials = _credentials(provider)
    async with aiohttp.ClientSession() as own:
        return await fetch_page(
            session or own,
            provider,
            credentials,
            TASK,
            timeouts=timeouts or Timeouts(),
            caps=caps or AnswerCaps(),
            scrubber=credentials.scrubber(),
        )


async def _error(base: str, **options: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await _fetch(base, **options)
    return caught.value


# -- the network step ---------------------------------------------------------------------


async def test_every_call_says_who_is_calling() -> None:
    async with serve(fixed(encode(envelope(items=[ITEM])))) as (base, seen):
        await _fetch(base)
    agent = seen.headers[0]["User-Agent"]
    assert agent == f"intersect-batch/{__version__} {SERVER_SOFTWARE}"
    assert seen.headers[0]["Accept-Encoding"] == "gzip, deflate"


async def test_a_trickling_body_ends_at_the_deadline() -> None:
    # One byte every 100 ms: the read timeout (5 s between bytes) never fires.
    handler = streamed(b'{"status_code":20000,', b" ", 10_000, pause=0.1)
    async with serve(handler) as (base, seen):
        error = await _error(base, timeouts=Timeouts(connect=5, read=5, deadline=0.5))
        with anyio.fail_after(5):
            await seen.client_left.wait()
    assert type(error) is TransientApiError
    assert "0.5 s deadline" in error.message
    assert error.maybe_billed is True
    # The client hung up: the server stopped long before its 10,000 bytes.
    assert seen.sent_bytes < 100


async def test_a_silent_server_ends_at_the_read_timeout() -> None:
    handler = streamed(b"{", b"}", 1, pause=3.0)
    async with serve(handler) as (base, _):
        error = await _error(base, timeouts=Timeouts(connect=5, read=0.3, deadline=10))
    assert type(error) is TransientApiError
    assert "nothing received for 0.3 s" in error.message
    assert error.maybe_billed is True


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_refused_connection_is_unreachable_and_not_billed() -> None:
    error = await _error(f"http://127.0.0.1:{_closed_port()}/v3")
    assert type(error) is UnreachableApiError
    assert isinstance(error, TransientApiError)
    assert "cannot reach the API at 127.0.0.1" in error.message
    assert error.maybe_billed is False


class _NoSuchHost(AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        raise OSError(-2, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_a_host_that_does_not_resolve_is_unreachable() -> None:
    connector = aiohttp.TCPConnector(resolver=_NoSuchHost())
    async with aiohttp.ClientSession(connector=connector) as session:
        error = await _error("https://api.nowhere.example/v3", session=session)
    assert type(error) is UnreachableApiError
    assert "api.nowhere.example" in error.message and "not known" in error.message
    assert error.maybe_billed is False


async def test_a_declared_body_over_the_cap_is_not_read() -> None:
    handler = streamed(b"[", b" " * MiB, 8, length=8 * MiB + 1)
    async with serve(handler) as (base, _):
        error = await _error(base, caps=AnswerCaps(max_body_bytes=MiB))
    assert type(error) is JobFatalApiError
    assert "declares 8,388,609 bytes, over the cap of 1,048,576" in error.message
    assert "AnswerCaps.max_body_bytes" in error.message
    assert error.maybe_billed is True


async def test_a_streamed_body_over_the_cap_stops_being_read() -> None:
    handler = streamed(b"[", b" " * 65536, 10_000)  # 655 MB, chunked, no length
    async with serve(handler) as (base, seen):
        error = await _error(base, caps=AnswerCaps(max_body_bytes=MiB))
        with anyio.fail_after(5):
            await seen.client_left.wait()
    assert type(error) is JobFatalApiError
    assert "passed 1,048,576 bytes, the cap" in error.message
    assert "AnswerCaps.max_body_bytes" in error.message
    # What the kernel's buffers took, not what the server meant to send.
    assert seen.sent_bytes < 64 * MiB


# -- the CPU step: size, depth, shape -----------------------------------------------------


async def test_a_gzip_bomb_stops_at_the_inflated_cap() -> None:
    first, block, blocks = gzip_bomb(b'{"status_code":20000,"tasks":[', 2048 * MiB)
    handler = streamed(first, block, blocks, headers={"Content-Encoding": "gzip"})
    async with serve(handler) as (base, seen):
        error = await _error(base, caps=AnswerCaps(max_inflated_bytes=4 * MiB))
    assert seen.sent_bytes < 3 * MiB  # the whole bomb, compressed
    assert type(error) is JobFatalApiError
    assert "inflates past 4,194,304 bytes, the cap" in error.message
    assert "AnswerCaps.max_inflated_bytes" in error.message


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_answers_are_inflated(encoding: str) -> None:
    body = encode(envelope(items=[ITEM, ITEM]), ensure_ascii=False)
    if encoding == "gzip":
        data = gzip.compress(body)
    else:
        wbits = 15 if encoding == "deflate" else -15
        compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
        data = compressor.compress(body) + compressor.flush()
    header = "gzip" if encoding == "gzip" else "deflate"
    async with serve(fixed(data, headers={"Content-Encoding": header})) as (base, _):
        page = await _fetch(base)
    assert page.lines == [COMPACT_ITEM, COMPACT_ITEM]


async def test_a_cut_short_gzip_body_is_transient_and_maybe_billed() -> None:
    data = gzip.compress(encode(envelope(items=[ITEM] * 50)))[:-200]
    async with serve(fixed(data, headers={"Content-Encoding": "gzip"})) as (base, _):
        error = await _error(base)
    assert type(error) is TransientApiError
    assert "cut short" in error.message and error.maybe_billed is True


async def test_an_encoding_not_asked_for_is_undecodable() -> None:
    async with serve(fixed(b"\x00\x01", headers={"Content-Encoding": "br"})) as (base, _):
        error = await _error(base)
    assert type(error) is TransientApiError
    assert "undecodable answer" in error.message and "'br'" in error.message


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # Deep inside an item, deep where the envelope should be, deep in an error.
        (200, encode(envelope(items=[])).replace(b'"items":[]', f'"items":[{DEEP}]'.encode())),
        (200, DEEP.encode()),
        (200, ('{"error":' * 100_000 + "1" + "}" * 100_000).encode()),
        (500, DEEP.encode()),
    ],
    ids=["item", "top", "gateway", "http-500"],
)
async def test_deep_nesting_is_an_undecodable_answer(status: int, body: bytes) -> None:
    async with serve(fixed(body, status=status)) as (base, _):
        error = await _error(base)
    assert type(error) is TransientApiError
    if status == 200:
        assert error.message.startswith("undecodable answer")
        assert error.maybe_billed is True
    assert len(error.message) < 700


@pytest.mark.parametrize("item", [1, "a", None, [], True, 2.5])
async def test_an_item_that_is_not_an_object_is_a_bad_answer(item: Any) -> None:
    async with serve(fixed(encode(envelope(items=[ITEM, item])))) as (base, _):
        error = await _error(base)
    assert type(error) is BadAnswerError
    assert "item 1 is not a JSON object" in error.message
    # The envelope said the price and the answer carried two items: it can be booked.
    assert error.maybe_billed is False and error.cost == 0.02003
    assert error.items == 2


@pytest.mark.parametrize(
    "layout",
    [
        {"indent": 2},
        {"indent": "\t"},
        {},  # json.dumps' default: one line, ", " and ": "
        {"separators": (" , ", " : ")},
    ],
    ids=["multi-line", "tabs", "one-line", "spaced"],
)
@pytest.mark.parametrize("ascii_only", [True, False])
async def test_pretty_items_become_compact_lines(layout: dict[str, Any], ascii_only: bool) -> None:
    body = json.dumps(envelope(items=[ITEM, ITEM]), ensure_ascii=ascii_only, **layout)
    async with serve(fixed(body.encode())) as (base, _):
        page = await _fetch(base)
    expected = encode(ITEM, ensure_ascii=ascii_only)
    assert page.lines == [expected, expected]
    assert page.items_count == 2 and page.total_count == 7


async def test_pretty_items_in_a_compact_envelope_become_compact() -> None:
    pretty = json.dumps(ITEM).encode()  # one line, spaced
    body = encode(envelope(items=["X"])).replace(b'"X"', pretty)
    async with serve(fixed(body)) as (base, _):
        page = await _fetch(base)
    assert page.lines == [encode(ITEM)]


async def test_compact_items_pass_byte_for_byte() -> None:
    odd = b'{"page_intersection":{"1":[{"url_from":"https://x.example/\\u00e9","n":2.50e1}]},"x":"a\\/b"}'
    body = encode(envelope(items=["X"])).replace(b'"X"', odd)
    async with serve(fixed(body)) as (base, _):
        page = await _fetch(base)
    assert page.lines == [odd]


# -- outside text: capped and scrubbed ----------------------------------------------------


async def test_a_huge_status_message_is_capped() -> None:
    body = encode(envelope(task_code=40501, task_message="Invalid Field: " + "x" * 5 * MiB))
    async with serve(fixed(body)) as (base, _):
        error = await _error(base, caps=AnswerCaps(max_message_chars=200))
    assert type(error) is JobFatalApiError and error.status_code == 40501
    assert error.message.startswith("Invalid Field: xxx")
    assert "[cut: 5,242,895 chars in all]" in error.message
    assert len(error.message) < 260


def _secret_forms() -> list[str]:
    pair = f"{LOGIN}:{PASSWORD}"
    token = base64.b64encode(pair.encode()).decode()
    forms = [PASSWORD, pair, token, KEY, base64.b64encode(KEY.encode()).decode()]
    for text in (PASSWORD, pair, KEY, token):
        forms += [quote(text, safe=""), quote_plus(text), json.dumps(text)[1:-1]]
    # Pieces long enough to say something: the password's and the key's middles.
    forms += [PASSWORD[2:14], KEY[3:15], token[4:28]]
    return forms


def _echo(request: web.Request) -> str:
    """Everything a careless server could say about the Authorization it got."""
    auth = request.headers["Authorization"]
    secret = auth.split(" ", 1)[1]
    if auth.startswith("Basic "):
        secret = base64.b64decode(secret).decode()
    return (
        f"bad auth {auth!s} / {secret} / {quote(secret, safe='')} / {quote_plus(secret)}"
        f" / {json.dumps(secret)} / {base64.b64encode(secret.encode()).decode()}"
        f" / {quote(auth)} / {auth.lower()}"
    )


def _assert_no_secret(error: ApiError) -> None:
    text = f"{error}\n{error.message}\n{error.describe()}"
    assert "***" in text
    for form in _secret_forms():
        assert form not in text, form
        assert form.lower() not in text.lower(), form


@pytest.mark.parametrize("provider_name", ["dataforseo", "aisa"])
async def test_an_http_500_quoting_the_authorization_leaks_nothing(provider_name: str) -> None:
    handler = fixed(lambda request: f"<pre>{_echo(request)}</pre>".encode(), status=500)
    async with serve(handler) as (base, _):
        error = await _error(base, provider_name=provider_name)
    assert type(error) is TransientApiError
    assert error.message.startswith("HTTP 500: <pre>bad auth ")
    _assert_no_secret(error)


async def test_a_task_error_quoting_the_authorization_leaks_nothing() -> None:
    def body(request: web.Request) -> bytes:
        return encode(envelope(task_code=40501, task_message=f"Invalid Field: {_echo(request)}"))

    async with serve(fixed(body)) as (base, _):
        error = await _error(base)
    assert type(error) is JobFatalApiError
    _assert_no_secret(error)


@pytest.mark.parametrize("status", [400, 401, 429, 502])
async def test_a_gateway_error_quoting_the_key_leaks_nothing(status: int) -> None:
    def body(request: web.Request) -> bytes:
        return encode({"error": {"type": "x", "code": "y", "message": _echo(request)}})

    handler = fixed(body, status=status, headers={"Retry-After": "7"})
    async with serve(handler) as (base, _):
        error = await _error(base)
    _assert_no_secret(error)
    expected = {400: JobFatalApiError, 401: RunFatalApiError, 429: ThrottledApiError}
    assert type(error) is expected.get(status, TransientApiError)
    assert error.retry_after == 7.0
    assert error.maybe_billed is (status == 502)


# -- the event loop keeps running while an answer is read ---------------------------------


async def test_reading_an_answer_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = 0
    seen_by_reader: dict[str, Any] = {}
    original = read_answer

    def watched(answer: Answer, **options: Any) -> FetchedPage:
        seen_by_reader["thread"] = threading.current_thread()
        seen_by_reader["ticks_before"] = ticks
        try:
            return original(answer, **options)
        finally:
            seen_by_reader["ticks_after"] = ticks

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    monkeypatch.setattr(client, "read_answer", watched)
    first, block, blocks = gzip_bomb(b'{"status_code":20000,"tasks":[', 2048 * MiB)
    handler = streamed(first, block, blocks, headers={"Content-Encoding": "gzip"})
    async with serve(handler) as (base, _), anyio.create_task_group() as group:
        group.start_soon(tick)
        with pytest.raises(JobFatalApiError, match="inflates past"):
            await _fetch(base)
        group.cancel_scope.cancel()
    assert seen_by_reader["thread"] is not threading.main_thread()
    # The loop ticked while 64 MiB were being inflated in the worker thread.
    assert seen_by_reader["ticks_after"] > seen_by_reader["ticks_before"]


# -- the steps apart ----------------------------------------------------------------------


async def test_send_task_hands_back_the_answer_as_received() -> None:
    data = gzip.compress(encode(envelope(items=[ITEM])))
    headers = {"Content-Encoding": "gzip", "X-AISA-Price-USD": "0.03", "X-Other": "no"}
    async with serve(fixed(data, headers=headers)) as (base, _), aiohttp.ClientSession() as s:
        provider = resolve_provider("dataforseo", base)
        answer = await send_task(
            s, provider, _credentials(provider), TASK, timeouts=Timeouts(), caps=AnswerCaps()
        )
    assert answer.http_status == 200
    assert answer.body == data  # still compressed
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.headers["x-aisa-price-usd"] == "0.03"
    assert "x-other" not in answer.headers
    page = read_answer(answer, caps=AnswerCaps(), scrubber=Scrubber([]))
    assert page.cost == 0.03 and page.lines == [encode(ITEM)]


@pytest.mark.parametrize("price", ["nan", "inf", "-1", "free"])
def test_a_price_header_that_is_no_price_is_ignored(price: str) -> None:
    answer = Answer(200, {"x-aisa-price-usd": price}, encode(envelope(items=[ITEM])))
    page = read_answer(answer, caps=AnswerCaps(), scrubber=Scrubber([]))
    assert page.cost == 0.02003


def test_a_throttled_answer_keeps_its_retry_after() -> None:
    body = encode(
        envelope(task_code=40202, task_message="The rate-limit per minute has been exceeded.")
    )
    answer = Answer(200, {"retry-after": "12"}, body)
    with pytest.raises(ThrottledApiError) as caught:
        read_answer(answer, caps=AnswerCaps(), scrubber=Scrubber([]))
    error = caught.value.at(job_id="crm", offset=3000)
    assert type(error) is ThrottledApiError
    assert (error.status_code, error.retry_after, error.job_id, error.offset) == (
        40202,
        12.0,
        "crm",
        3000,
    )
    assert error.maybe_billed is False and error.cost == 0.02003
