"""``intersect-batch emulate``: serve the emulator until SIGTERM or SIGINT.

The base URL is the first line of stdout (scripts read it); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from .server import running_emulator
from .settings import FAULT_NAMES, EmulatorSettings, FaultSettings

__all__ = ["main", "serve_until_stopped"]

log = logging.getLogger("intersect_batch.emulator")


def _pair(kind: Callable[[str], float], what: str) -> Callable[[str], tuple[str, float]]:
    """An argparse type for ``KEY=VALUE``."""

    def parse(text: str) -> tuple[str, float]:
        key, sep, value = text.rpartition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected {what}=VALUE, got {text!r}")
        try:
            return key, kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad value in {text!r}") from None

    return parse


def _parser() -> argparse.ArgumentParser:
    d = EmulatorSettings()
    f = FaultSettings()
    p = argparse.ArgumentParser(
        prog="intersect-batch emulate",
        description="Serve an offline emulator of DataForSEO's backlinks/page_intersection/live.",
    )
    p.add_argument("--host", default=d.host)
    p.add_argument("--port", type=int, default=d.port, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--login", default=os.environ.get("DATAFORSEO_LOGIN", d.login))
    p.add_argument("--password", default=os.environ.get("DATAFORSEO_PASSWORD", d.password))
    p.add_argument("--api-key", default=os.environ.get("AISA_API_KEY", d.api_key))
    p.add_argument("--rate-per-minute", type=int, default=d.rate_per_minute)
    p.add_argument("--max-concurrent", type=int, default=d.max_concurrent)
    p.add_argument("--latency-median", type=float, default=d.latency_median, metavar="S")
    p.add_argument("--latency-spread", type=float, default=d.latency_spread, metavar="SIGMA")
    p.add_argument("--balance-usd", type=float, default=d.balance_usd)
    p.add_argument(
        "--size",
        type=_pair(int, "TARGET"),
        action="append",
        default=[],
        metavar="TARGET=N",
        help="result count of the default query whose first target is TARGET (repeatable)",
    )
    p.add_argument("--size-min", type=int, default=d.size_min)
    p.add_argument("--size-max", type=int, default=d.size_max)
    p.add_argument("--live-data", type=float, default=d.live_data, metavar="RATE")
    p.add_argument("--no-gzip", action="store_true")
    p.add_argument("--log-file", type=Path, default=None, metavar="PATH")
    for name in FAULT_NAMES:
        flag = "--fault-" + name.replace("_", "-")
        p.add_argument(flag, type=float, default=getattr(f, name), metavar="P")
    p.add_argument(
        "--fault-status",
        type=_pair(float, "CODE"),
        action="append",
        default=[],
        metavar="CODE=P",
        help="answer status CODE with probability P (repeatable)",
    )
    p.add_argument("--timeout-delay", type=float, default=f.timeout_delay, metavar="S")
    p.add_argument("--slow-seconds", type=float, default=f.slow_seconds, metavar="S")
    return p


def settings_from_args(argv: list[str] | None) -> EmulatorSettings:
    """The settings the command line asks for (raises SystemExit(2) on bad input)."""
    parser = _parser()
    a = parser.parse_args(argv)
    try:
        statuses: dict[int, float] = {}
        for code, p in a.fault_status:
            statuses[int(code)] = float(p)
        faults = FaultSettings(
            **{name: getattr(a, "fault_" + name) for name in FAULT_NAMES},
            status_codes=statuses,
            timeout_delay=a.timeout_delay,
            slow_seconds=a.slow_seconds,
        )
        given = {name: getattr(a, name) for name in _SETTINGS_FROM_FLAGS}
        return EmulatorSettings(
            **given,
            sizes={target: int(n) for target, n in a.size},
            faults=faults,
            gzip=not a.no_gzip,
            log_file=a.log_file,
        )
    except ValueError as exc:
        parser.error(str(exc))


_SETTINGS_FROM_FLAGS = tuple(
    f.name
    for f in fields(EmulatorSettings)
    if f.name
    not in ("sizes", "faults", "gzip", "log_file", "clock", "item_cache_size", "query_cache_size")
)


async def serve_until_stopped(settings: EmulatorSettings) -> None:
    """Serve until SIGTERM or SIGINT, the base URL alone on stdout's first line."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_emulator(settings) as emulator:
        sys.stdout.write(emulator.url + "\n")
        sys.stdout.flush()
        log.info(
            "emulator listening: DataForSEO %s, AIsa %s (seed %d)",
            emulator.dataforseo_base,
            emulator.aisa_base,
            settings.seed,
        )
        await stop.wait()
        log.info("emulator stopping after %d calls", len(emulator.calls()))


def main(argv: list[str] | None = None) -> int:
    """Run ``intersect-batch emulate [flags]``; returns the exit status (0 on SIGTERM)."""
    settings = settings_from_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s"
        )
    asyncio.run(serve_until_stopped(settings))
    return 0
