"""The crawl's way to the real API: one aiohttp session, one :data:`~intersect_batch.crawl.Fetch`.

Tests hand the crawl scripted answers instead (the same seam as httpx's transports).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from intersect_batch.client import UnreadAnswer, open_task
from intersect_batch.crawl import Call, Fetch
from intersect_batch.providers import Credentials, Provider
from intersect_batch.proxies import Proxy
from intersect_batch.settings import RunSettings

__all__ = ["http_fetch", "sender"]


@contextlib.asynccontextmanager
async def http_fetch(
    provider: Provider, credentials: Credentials, settings: RunSettings, proxy: Proxy | None = None
) -> AsyncIterator[Fetch]:
    """A Fetch that POSTs each call to ``provider`` (through ``proxy``); its session closes on exit.

    Each reply is an :class:`~intersect_batch.client.UnreadAnswer`: its body is read
    (compressed, capped, under the call's deadline) up to ``caps.read_ahead_bytes``
    before the call returns, so a body that trickles in holds its own slot until its
    deadline, never a place in memory that other jobs' pages need. A larger body stops
    being read there (or at once, when it declares more) until the crawl, holding its
    place in memory, reads it on under what is left of the deadline; inflating and
    decoding happen then, off the event loop.
    """
    # A few spare connections: a slot is released just before its connection is.
    connector = aiohttp.TCPConnector(limit=settings.limits.concurrency + 4)
    # The proxy is decided once (intersect_batch.proxies), not per call from the
    # environment (trust_env would also read ~/.netrc, whose entry for the API's host
    # clashes with the Authorization header).
    # A proxy URL's user:password@ goes to the proxy alone (Proxy-Authorization).
    async with aiohttp.ClientSession(
        connector=connector, proxy=proxy.url if proxy else None
    ) as session:

        async def fetch(call: Call) -> UnreadAnswer:
            return await open_task(
                session,
                provider,
                credentials,
                call.task,
                timeouts=settings.timeouts,
                caps=settings.caps,
            )

        yield fetch


@contextlib.asynccontextmanager
async def sender(
    fetch: Fetch | None,
    provider: Provider,
    credentials: Credentials,
    settings: RunSettings,
    proxy: Proxy | None = None,
) -> AsyncIterator[Fetch]:
    """The way to the API: ``fetch`` when one is handed in (tests), else :func:`http_fetch`."""
    if fetch is not None:
        yield fetch
        return
    async with http_fetch(provider, credentials, settings, proxy) as http:
        yield http
