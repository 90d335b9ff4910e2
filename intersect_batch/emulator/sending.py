"""How an answer goes on the wire: whole (gzipped when asked), or bent by a fault: cut
short, dropped mid-body, trickled, padded to a huge size, or sent as a gzip bomb.

Apart from ``answers`` (what an answer says) because these are the bytes and the
connection: the same answer can go out in any of these ways.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from .answers import Answer
from .gzipbomb import gzip_bomb
from .settings import FaultSettings
from .streaming import write_padded, write_pieces, write_trickle

__all__ = ["send"]

_GZIP_IN_THREAD = 64 * 1024


async def send(
    request: web.Request,
    answer: Answer,
    *,
    gzip: bool,
    faults: FaultSettings,
    closing: asyncio.Event,
) -> web.StreamResponse:
    """Write ``answer`` as its mode asks; ``gzip`` allows compressing a normal answer,
    ``closing`` stops a streamed one when the server shuts down."""
    headers = {"Content-Type": "application/json; charset=utf-8", **answer.headers}
    if answer.mode == "truncate":
        # Half the body, framed as complete: the HTTP exchange succeeds, the JSON does not.
        return web.Response(
            status=answer.status, body=answer.body[: len(answer.body) // 2], headers=headers
        )
    if answer.mode == "drop":
        response = web.StreamResponse(status=answer.status, headers=headers)
        response.content_length = len(answer.body)
        await response.prepare(request)
        await response.write(answer.body[: len(answer.body) // 2])
        if request.transport is not None:
            request.transport.close()
        return response
    if answer.mode in ("trickle", "padded", "bomb"):
        return await _stream(request, answer, headers, faults, closing)
    body = answer.body
    if gzip and "gzip" in request.headers.get("Accept-Encoding", "").lower():
        body = await _gzip(body)
        headers["Content-Encoding"] = "gzip"
    return web.Response(status=answer.status, body=body, headers=headers)


async def _stream(
    request: web.Request,
    answer: Answer,
    headers: dict[str, str],
    f: FaultSettings,
    closing: asyncio.Event,
) -> web.StreamResponse:
    """Send a hostile answer piece by piece, never compressed by the usual path."""
    response = web.StreamResponse(status=answer.status, headers=headers)
    if answer.mode == "trickle":
        await write_trickle(
            request,
            response,
            answer.body,
            closing,
            size=f.trickle_bytes,
            pause=f.trickle_pause,
        )
    elif answer.mode == "bomb":
        bomb = await asyncio.to_thread(gzip_bomb, f.gzip_bomb_size, answer.body)
        response.headers["Content-Encoding"] = "gzip"
        response.content_length = len(bomb)
        await response.prepare(request)
        await write_pieces(request, response, bomb.pieces(), closing)
    else:
        assert answer.padded is not None
        await write_padded(request, response, answer.padded, closing, chunked=answer.chunked)
    return response


async def _gzip(body: bytes) -> bytes:
    """Gzip at level 1: large bodies in a thread (zlib releases the GIL)."""

    def compress() -> bytes:
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        return packer.compress(body) + packer.flush()

    if len(body) > _GZIP_IN_THREAD:
        return await asyncio.to_thread(compress)
    return compress()
