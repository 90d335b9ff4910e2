"""Bodies that are streamed rather than sent whole: padded, trickled, gzip bombs.

Each writer holds at most one ~64 KiB block besides the answer itself, whatever the size
it sends, and aiohttp's ``write`` waits while the socket's buffer is full, so a 2 GiB or a
500 MiB answer costs the emulator the same memory as a small one. Each stops when the
emulator shuts down (``closing``) or when the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

__all__ = ["Padded", "write_padded", "write_pieces", "write_trickle"]

_BLOCK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Padded:
    """A body of ``head``, then ``length`` bytes of ``unit`` repeated, then ``tail``."""

    head: bytes
    unit: bytes
    length: int
    tail: bytes

    def __len__(self) -> int:
        return len(self.head) + self.length + len(self.tail)

    def pieces(self) -> Iterable[bytes | memoryview]:
        yield self.head
        block = memoryview(self.unit * max(1, _BLOCK // len(self.unit)))
        full, rest = divmod(self.length, len(block))
        for _ in range(full):
            yield block
        if rest:
            yield block[:rest]  # whole units from the start, so the pattern carries on
        yield self.tail


async def write_pieces(
    request: web.Request,
    response: web.StreamResponse,
    pieces: Iterable[bytes | memoryview],
    closing: asyncio.Event,
) -> None:
    """Send ``pieces`` on a prepared response; close the connection if the server stops."""
    try:
        for piece in pieces:
            if closing.is_set():
                _hang_up(request)
                return
            await response.write(piece)
    except ConnectionError:
        return  # the client left: nothing more to send


async def write_padded(
    request: web.Request,
    response: web.StreamResponse,
    body: Padded,
    closing: asyncio.Event,
    *,
    chunked: bool = False,
) -> None:
    """Send ``body`` with a Content-Length, or chunked without one."""
    if chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = len(body)
    await response.prepare(request)
    await write_pieces(request, response, body.pieces(), closing)


async def write_trickle(
    request: web.Request,
    response: web.StreamResponse,
    body: bytes,
    closing: asyncio.Event,
    *,
    size: int,
    pause: float,
) -> None:
    """Send ``body`` ``size`` bytes at a time, ``pause`` seconds apart (Content-Length set)."""
    response.content_length = len(body)
    await response.prepare(request)
    try:
        for start in range(0, len(body), size):
            if start and await _stopped(closing, pause):
                _hang_up(request)
                return
            await response.write(body[start : start + size])
    except ConnectionError:
        return


async def _stopped(closing: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True at once if the emulator starts shutting down meanwhile."""
    try:
        await asyncio.wait_for(closing.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _hang_up(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
