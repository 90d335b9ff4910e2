"""The crawl's way to the real API: one aiohttp session, one :data:`~intersect_batch.crawl.Fetch`.

Tests hand the crawl scripted answers instead (the same seam as httpx's transports).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp

from intersect_batch.client import FetchedPage, fetch_page
from intersect_batch.crawl import Call, Fetch
from intersect_batch.providers import Credentials, Provider
from intersect_batch.settings import RunSettings

__all__ = ["http_fetch"]


@contextlib.asynccontextmanager
async def http_fetch(
    provider: Provider, credentials: Credentials, settings: RunSettings
) -> AsyncIterator[Fetch]:
    """A Fetch that POSTs each call to ``provider``; its session closes on exit."""
    # A few spare connections: a slot is released just before its connection is.
    connector = aiohttp.TCPConnector(limit=settings.limits.concurrency + 4)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch(call: Call, before_decode: Callable[[], Awaitable[None]]) -> FetchedPage:
            return await fetch_page(
                session, provider, credentials, call.task, settings.timeouts, before_decode
            )

        yield fetch
