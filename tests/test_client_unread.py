"""An answer read up to its read-ahead, then on when asked: over real HTTP, on loopback.

:func:`~intersect_batch.client.open_task` reads a body up to ``caps.read_ahead_bytes``
and hands back an :class:`~intersect_batch.client.UnreadAnswer`: the crawl takes a place
in memory before it reads a larger body on. These tests pin what that promises: a body
within the read-ahead is whole at once; a larger one is not read
on until asked, still under the call's deadline counted from when it was sent, less the
time it waited to be asked; one dropped closes its connection at once.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import aiohttp
import anyio
import anyio.lowlevel
import pytest

from intersect_batch.client import UnreadAnswer, open_task
from intersect_batch.errors import TransientApiError
from intersect_batch.providers import resolve_provider
from intersect_batch.settings import AnswerCaps, Timeouts
from tests.hostile_server import Handler, MiB, encode, envelope, fixed, serve, streamed

pytestmark = pytest.mark.anyio

ENV = {"DATAFORSEO_LOGIN": "ops@night.example", "DATAFORSEO_PASSWORD": "Pw/7x+Q=k9zR"}
TASK = {"targets": {"1": "a.example"}}


async def _open(
    base: str, session: aiohttp.ClientSession, caps: AnswerCaps, timeouts: Timeouts | None = None
) -> UnreadAnswer:
    provider = resolve_provider("dataforseo", base)
    return await open_task(
        session,
        provider,
        provider.credentials(ENV),
        TASK,
        timeouts=timeouts or Timeouts(),
        caps=caps,
    )


@pytest.mark.parametrize("length", [None, 6 * MiB + 1], ids=["chunked", "content-length"])
async def test_a_body_past_the_read_ahead_is_read_on_only_when_asked(length: int | None) -> None:
    caps = AnswerCaps(read_ahead_bytes=2 * MiB)
    handler = streamed(b"[", b" " * MiB, 6, length=length)
    async with serve(handler) as (base, _), aiohttp.ClientSession() as session:
        unread = await _open(base, session, caps)
        assert unread.pending
        if length is None:
            # Read as it came, up to the chunk that passed the read-ahead.
            assert 2 * MiB < unread.received < 6 * MiB + 1
        else:
            # It declares more than the read-ahead: not a byte is read before it is asked.
            assert unread.received == 0
        answer = await unread.answer()
    assert (unread.pending, unread.received, len(answer.body)) == (False, 6 * MiB + 1, 6 * MiB + 1)
    assert answer.http_status == 200 and answer.asked == TASK


@pytest.mark.parametrize("length", [None, MiB + 1], ids=["chunked", "content-length"])
async def test_a_body_within_the_read_ahead_is_read_whole_at_once(length: int | None) -> None:
    caps = AnswerCaps(read_ahead_bytes=2 * MiB)
    handler = streamed(b"[", b" " * MiB, 1, length=length)
    async with serve(handler) as (base, _), aiohttp.ClientSession() as session:
        unread = await _open(base, session, caps)
        assert (unread.pending, unread.received) == (False, MiB + 1)
        answer = await unread.answer()
    assert answer.body == b"[" + b" " * MiB


async def test_an_unread_answer_reads_and_decodes_its_page() -> None:
    body = encode(envelope(items=[{"type": "backlink", "url_from": "https://a.example/"}]))
    async with serve(fixed(body)) as (base, _), aiohttp.ClientSession() as session:
        unread = await _open(base, session, AnswerCaps(read_ahead_bytes=8))
        assert (unread.pending, unread.received) == (True, 0)
        page = await unread.read()
    assert page.lines == [b'{"type":"backlink","url_from":"https://a.example/"}']
    assert not unread.pending


def _report_unclosed(loop: asyncio.AbstractEventLoop) -> list[str]:
    """Turn the loop's debug mode on and collect what it reports (unclosed responses)."""
    reported: list[str] = []

    def report(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(str(context.get("message")))

    loop.set_exception_handler(report)
    loop.set_debug(True)
    return reported


async def test_a_discarded_answer_closes_its_connection_at_once() -> None:
    # A large body the server is still sending: dropped, the server sees the client go.
    handler: Handler = streamed(b"[", b" " * MiB, 60, pause=0.05, length=60 * MiB + 1)
    loop = asyncio.get_running_loop()
    handler_before, debug_before = loop.get_exception_handler(), loop.get_debug()
    reported = _report_unclosed(loop)
    try:
        async with serve(handler) as (base, seen), aiohttp.ClientSession() as session:
            unread = await _open(base, session, AnswerCaps(read_ahead_bytes=2 * MiB))
            unread.discard()
            unread.discard()  # twice: nothing more happens
            with anyio.fail_after(5):
                await seen.client_left.wait()
            assert seen.sent_bytes < 60 * MiB
            del unread
            gc.collect()
            await anyio.lowlevel.checkpoint()
    finally:
        loop.set_exception_handler(handler_before)
        loop.set_debug(debug_before)
    assert not [message for message in reported if "Unclosed response" in message]


async def test_the_deadline_still_covers_the_rest_of_a_body_read_after_the_read_ahead() -> None:
    # The body comes a 1 MiB chunk every 0.2 s: the read-ahead passes 2 MiB + 1 at the
    # third chunk (0.6 s), the rest would end at 1.0 s. The deadline of 0.8 s counts from
    # when the call was sent, not from when it is read on: the rest is not waited for.
    caps = AnswerCaps(read_ahead_bytes=2 * MiB + 1)
    timeouts = Timeouts(connect=5, read=5, deadline=0.8)
    handler = streamed(b"[", b" " * MiB, 5, pause=0.2)
    async with serve(handler) as (base, seen), aiohttp.ClientSession() as session:
        unread = await _open(base, session, caps, timeouts)
        assert unread.pending
        with pytest.raises(TransientApiError) as caught:
            await unread.answer()
        with anyio.fail_after(5):
            await seen.client_left.wait()
    assert caught.value.message == "no complete answer within the 0.8 s deadline"
    assert caught.value.maybe_billed is True
    assert not unread.pending  # nothing more is read: its connection is closed


async def test_the_time_an_answer_waits_to_be_read_on_is_not_the_apis() -> None:
    # 64 KiB chunks 0.1 s apart: the read-ahead pauses at the first (0.1 s), with 0.25 s
    # of the 0.35 s deadline left. The answer is read on once the server sent its fourth
    # chunk (0.4 s, past the deadline): that wait was the caller's (a place in memory),
    # so the last chunk (0.5 s) is waited for, not dropped to be paid for again.
    chunk = 64 * 1024
    caps = AnswerCaps(read_ahead_bytes=chunk)
    timeouts = Timeouts(connect=5, read=5, deadline=0.35)
    handler = streamed(b"[", b" " * chunk, 5, pause=0.1)
    async with serve(handler) as (base, seen), aiohttp.ClientSession() as session:
        unread = await _open(base, session, caps, timeouts)
        assert unread.pending
        with anyio.fail_after(5):
            while seen.sent_bytes < 1 + 4 * chunk:
                seen.wrote.clear()
                await seen.wrote.wait()
        answer = await unread.answer()
    assert len(answer.body) == 1 + 5 * chunk
    assert not unread.pending
