"""Run the emulator in-process on a free loopback port (tests, benchmarks, the demo)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from .app import AISA_PATH, DATAFORSEO_PATH, EMULATOR_KEY, Emulator, build_app
from .records import CallRecord
from .settings import EmulatorSettings

__all__ = ["RunningEmulator", "running_emulator"]


@dataclass(frozen=True)
class RunningEmulator:
    """A started emulator: where it listens, and a window on its state."""

    url: str
    """``http://127.0.0.1:PORT``"""
    settings: EmulatorSettings
    app: web.Application

    @property
    def dataforseo_base(self) -> str:
        """The DataForSEO base URL (``url + "/v3"``)."""
        return self.url + "/v3"

    @property
    def aisa_base(self) -> str:
        """The AIsa proxy base URL (``url + "/apis/v1/dataforseo"``)."""
        return self.url + "/apis/v1/dataforseo"

    @property
    def dataforseo_endpoint(self) -> str:
        return self.url + DATAFORSEO_PATH

    @property
    def aisa_endpoint(self) -> str:
        return self.url + AISA_PATH

    @property
    def emulator(self) -> Emulator:
        return self.app[EMULATOR_KEY]

    def calls(self) -> list[CallRecord]:
        """Every request served so far, in arrival order."""
        return self.emulator.log.records()

    @property
    def balance_usd(self) -> float | None:
        """What is left of the balance (None: unlimited)."""
        return self.emulator.balance_usd


@asynccontextmanager
async def running_emulator(
    settings: EmulatorSettings | None = None,
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator on ``settings.host``:``settings.port`` (127.0.0.1, any free port)."""
    settings = settings or EmulatorSettings()
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        yield RunningEmulator(url=f"http://{host}:{port}", settings=settings, app=app)
    finally:
        await runner.cleanup()
