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
    #: Set each time a streaming answer sent a chunk (clear it to wait for the next).
    wrote: asyncio.Event = field(default_factory=asyncio.Event)


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
                seen.wrote.set()
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


#: What a raw answer function returns: the bytes to send, and whether to close after them.
RawAnswer = tuple[bytes, bool]


@dataclass
class RawSeen:
    """What a raw server received: each request's first target and its header lines."""

    requests: list[tuple[str | None, list[bytes]]] = field(default_factory=list)

    def count(self, target: str) -> int:
        """How many requests asked for ``target`` first."""
        return sum(1 for first, _ in self.requests if first == target)


@asynccontextmanager
async def serve_raw(
    answer: Callable[[str | None, bytes, int], RawAnswer],
) -> AsyncIterator[tuple[str, RawSeen]]:
    """A bare TCP server speaking just enough HTTP to be wrong in ways aiohttp.web won't be.

    Each request is read whole (head, then Content-Length bytes); ``answer(first target,
    the Authorization header's value, how many requests for that target came before)``
    returns the raw bytes to write and whether to close the connection after them.
    Yields the base URL (``.../v3``) and a :class:`RawSeen`.
    """
    seen = RawSeen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                fields = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(b":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
                try:
                    first = json.loads(body)[0]["targets"]["1"]
                except (ValueError, LookupError, TypeError):
                    first = None
                before = seen.count(first) if first is not None else 0
                seen.requests.append((first, lines))
                data, close = answer(first, fields.get(b"authorization", b""), before)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v3", seen
    finally:
        server.close()
        await server.wait_closed()


def raw_response(
    body: bytes,
    *,
    status: bytes = b"200 OK",
    headers: dict[bytes, bytes] | None = None,
    length: int | None = None,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """An HTTP response as bytes; ``length`` declares a Content-Length other than the body's."""
    lines = [version + b" " + status, b"Content-Type: application/json"]
    lines += [name + b": " + value for name, value in (headers or {}).items()]
    if version == b"HTTP/1.1":
        lines.append(b"Content-Length: %d" % (len(body) if length is None else length))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
