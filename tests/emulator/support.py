"""Helpers for the emulator tests: a started emulator plus a small client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from intersect_batch.emulator import EmulatorSettings, RunningEmulator, running_emulator

BASIC = aiohttp.encode_basic_auth("demo", "demo-password")
BEARER = "Bearer demo-key"
PATH = "/backlinks/page_intersection/live"


class FakeClock:
    """A clock a test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def task(self) -> dict[str, Any]:
        return self.json["tasks"][0]  # type: ignore[no-any-return]

    @property
    def result(self) -> dict[str, Any]:
        task = self.task
        assert task["status_code"] == 20000, task["status_message"]
        return task["result"][0]  # type: ignore[no-any-return]

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.result["items"]  # type: ignore[no-any-return]


class Api:
    """Posts to a running emulator's two routes."""

    def __init__(self, emu: RunningEmulator, session: aiohttp.ClientSession) -> None:
        self.emu = emu
        self.session = session

    async def raw(self, url: str, data: bytes, headers: dict[str, str]) -> Reply:
        async with self.session.post(url, data=data, headers=headers) as r:
            return Reply(r.status, r.headers, await r.read())

    async def dfs(self, body: Any, *, auth: str | None = BASIC) -> Reply:
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        return await self.raw(self.emu.dataforseo_base + PATH, data, headers)

    async def aisa(self, body: Any, *, auth: str | None = BEARER) -> Reply:
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        return await self.raw(self.emu.aisa_base + PATH, msgspec.json.encode(body), headers)

    async def query(self, **task: Any) -> Reply:
        """One task on the DataForSEO route; asserts HTTP 200."""
        reply = await self.dfs([task])
        assert reply.status == 200, reply.body[:300]
        return reply

    async def all_items(self, page: int = 100, **task: Any) -> list[dict[str, Any]]:
        """Every item of a query, fetched page by page."""
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            reply = await self.query(**task, offset=offset, limit=page)
            got = reply.items
            items.extend(got)
            offset += page
            if offset >= reply.result["total_count"]:
                return items


@asynccontextmanager
async def serve(**settings: Any) -> AsyncIterator[Api]:
    async with (
        running_emulator(EmulatorSettings(**settings)) as emu,
        aiohttp.ClientSession() as session,
    ):
        yield Api(emu, session)


def url_of(item: dict[str, Any]) -> str:
    """The referring page of an item (the same in each of its backlinks)."""
    return next(iter(item["page_intersection"].values()))[0]["url_from"]  # type: ignore[no-any-return]
