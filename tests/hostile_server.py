"""Small loopback servers that answer the endpoint the way a hostile or broken server would.

``serve(handler)`` runs an aiohttp.web app on a free 127.0.0.1 port whose only route is
the DataForSEO endpoint; it yields the base URL and a :class:`Seen` that records what the
server received and sent. The handler factories below build the answers.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PATH = "/v3/backlinks/page_intersection/live"
MiB = 2**20

Handler = Callable[[web.Request, "Seen"], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """What the server saw: each request's headers, and the body bytes it managed to send."""

    headers: list[dict[str, str]] = field(default_factory=list)
    sent_bytes: int = 0
    #: Set when a streaming answer stopped because the client went away.
    client_left: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, Seen]]:
    """A started server answering every POST with ``handler``; yields (base URL, Seen)."""
    seen = Seen()

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.headers.append(dict(request.headers))
        await request.read()
        return await handler(request, seen)

    app = web.Application()
    app.router.add_post(PATH, handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v3", seen
    finally:
        await runner.cleanup()


def envelope(
    *,
    task_code: int = 20000,
    task_message: str = "Ok.",
    items: list[Any] | None = None,
    total_count: int | None = 7,
    cost: float = 0.02003,
) -> dict[str, Any]:
    """A DataForSEO answer with one task (and one result when ``items`` is given)."""
    result = None
    if items is not None:
        result = [{"total_count": total_count, "items_count": len(items), "items": items}]
    return {
        "version": "0.1",
        "status_code": 20000,
        "status_message": "Ok.",
        "cost": cost,
        "tasks_count": 1,
        "tasks_error": 0 if task_code == 20000 else 1,
        "tasks": [
            {
                "id": "07281559-0695-0292-0000-6f1e6a0b2f1c",
                "status_code": task_code,
                "status_message": task_message,
                "cost": cost,
                "result": result,
            }
        ],
    }


def fixed(
    body: bytes | Callable[[web.Request], bytes],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Handler:
    """Answer every call with ``body`` (or ``body(request)``) at once."""

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        data = body(request) if callable(body) else body
        seen.sent_bytes += len(data)
        return web.Response(
            status=status,
            body=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    return handler


def streamed(
    head: bytes,
    chunk: bytes,
    repeats: int,
    *,
    pause: float = 0.0,
    headers: dict[str, str] | None = None,
    length: int | None = None,
) -> Handler:
    """Send ``head``, then ``chunk`` ``repeats`` times (``pause`` seconds apart), chunked.

    Nothing is built ahead: a 500 MB answer costs the server one chunk of memory. With
    ``length``, a Content-Length is declared instead of chunked encoding.
    """

    async def handler(request: web.Request, seen: Seen) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", **(headers or {})}
        )
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        try:
            await response.write(head)
            seen.sent_bytes += len(head)
            for _ in range(repeats):
                if pause:
                    await asyncio.sleep(pause)
                await response.write(chunk)
                seen.sent_bytes += len(chunk)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            seen.client_left.set()
            raise
        return response

    return handler


def gzip_bomb(head: bytes, inflated: int) -> tuple[bytes, bytes, int]:
    """A gzip stream that inflates to about ``inflated`` bytes of spaces after ``head``.

    Returns (first bytes, repeated block, how many blocks): each block is 1 MiB of spaces
    deflated after a full flush, so every block is the same bytes and the stream is built
    in milliseconds. It never ends properly: a client that inflates it all is already
    wrong.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(b" " * MiB) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(b" " * MiB) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "a full flush resets the window: blocks repeat"
    return first, block, inflated // MiB


def encode(value: Any, **options: Any) -> bytes:
    """``json.dumps`` as bytes (compact unless told otherwise)."""
    options.setdefault("separators", (",", ":"))
    return json.dumps(value, **options).encode()
