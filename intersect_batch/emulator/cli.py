"""``intersect-batch emulate``: serve the emulator until SIGTERM or SIGINT.

The base URL is the first line of stdout (scripts read it); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from . import oddities
from .server import running_emulator
from .settings import COST_CLAIMS, FAULT_NAMES, EmulatorSettings, FaultSettings, PinnedFault
from .timeline import Timeline, parse_as_of

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


_FAULT_HELP = {
    "http_500": "HTTP 500 with the 50000 envelope (AIsa: its gateway error)",
    "internal_error": "task-level 50000 in an HTTP 200",
    "timeout": "task-level 50401, answered after --timeout-delay",
    "task_failed": "task-level 40103",
    "drop_connection": "headers and half the body, then the connection closes",
    "truncated_body": "half the body, framed as complete",
    "slow": "the normal answer, --slow-seconds later",
    "no_results": "hole: 40102 No Search Results (result null) at an offset inside the total",
    "empty_page": "hole: 20000 with items [] and the right total_count",
    "short_page": "hole: 20000 with the first half of the page's items",
    "echo_credentials": "an error (--hostile-error-code) quoting the Authorization header, "
    "its decoded secret and that secret URL-encoded",
    "long_message": "an error (--hostile-error-code) whose message is --long-message-size long",
    "gzip_bomb": "gzip whatever was asked, inflating to --gzip-bomb-size (spaces, then the answer)",
    "huge_body": "an uncompressed --huge-body-size body (spaces, then the answer)",
    "deep_nesting": "the first item gets a field of --nesting-depth nested arrays",
    "trickle": "the answer --trickle-bytes at a time, --trickle-pause apart",
    "non_object_items": 'items 1, "a", null in place of three real ones (pages of >= 4)',
    "pretty_items": 'items on one line with spaces after ":" and ","',
    "multiline_items": "items indented over many lines",
    "huge_total": "total_count --huge-total-count; offsets > 0 answer items []",
}
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _bytes(text: str) -> int:
    """A byte count from ``5000000``, ``64K``, ``500M``, ``2G`` (powers of 1024)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (t[:-1], t[-1]) if t[-1:] in ("K", "M", "G", "T") else (t, "")
    try:
        value = int(number) * _UNITS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a byte count like 500M, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a byte count must be >= 0, got {text!r}")
    return value


def _pin(text: str) -> PinnedFault:
    """An argparse type for ``OFFSET=KIND[:TIMES][@TARGET]``."""
    try:
        return PinnedFault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    d = EmulatorSettings()
    f = FaultSettings()
    p = argparse.ArgumentParser(
        prog="intersect-batch emulate",
        allow_abbrev=False,
        description="Serve an offline emulator of DataForSEO's backlinks/page_intersection/live.",
    )
    # Credentials' defaults are named, never shown: they may come from the environment.
    p.add_argument("--host", default=d.host, help=f"where to listen (default: {d.host})")
    p.add_argument(
        "--port", type=int, default=d.port, help=f"0 picks a free port (default: {d.port})"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help=f"the link graph, latency and fault draws: same seed, same answers "
        f"(default: {d.seed})",
    )
    p.add_argument(
        "--login",
        default=os.environ.get("DATAFORSEO_LOGIN", d.login),
        help="the HTTP Basic login accepted (default: $DATAFORSEO_LOGIN, else the demo one)",
    )
    p.add_argument(
        "--password",
        default=os.environ.get("DATAFORSEO_PASSWORD", d.password),
        help="the HTTP Basic password accepted (default: $DATAFORSEO_PASSWORD, else the demo one)",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("AISA_API_KEY", d.api_key),
        help="the Bearer key accepted on the AIsa route (default: $AISA_API_KEY, else the "
        "demo one)",
    )
    p.add_argument(
        "--rate-per-minute",
        type=int,
        default=d.rate_per_minute,
        metavar="N",
        help=f"calls per credential in any rolling 60 s; over it 40202 (AIsa: 429) "
        f"(default: {d.rate_per_minute})",
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=d.max_concurrent,
        metavar="N",
        help=f"simultaneous calls per credential; over it 40209 (AIsa: 429) "
        f"(default: {d.max_concurrent})",
    )
    p.add_argument(
        "--latency-median",
        type=float,
        default=d.latency_median,
        metavar="S",
        help=f"each call takes median * exp(spread * z) seconds (default: {d.latency_median:g})",
    )
    p.add_argument(
        "--latency-spread",
        type=float,
        default=d.latency_spread,
        metavar="SIGMA",
        help=f"the lognormal's spread (default: {d.latency_spread:g})",
    )
    p.add_argument(
        "--balance-usd",
        type=float,
        default=d.balance_usd,
        metavar="X",
        help="once spent: HTTP 402, 40210 Insufficient funds (default: unlimited)",
    )
    p.add_argument(
        "--size",
        type=_pair(int, "TARGET"),
        action="append",
        default=[],
        metavar="TARGET=N",
        help="result count of the default query whose first target is TARGET (repeatable)",
    )
    p.add_argument(
        "--size-min",
        type=int,
        default=d.size_min,
        metavar="N",
        help=f"the least result count of other target sets (default: {d.size_min})",
    )
    p.add_argument(
        "--size-max",
        type=int,
        default=d.size_max,
        metavar="N",
        help=f"the largest result count of other target sets (default: {d.size_max})",
    )
    p.add_argument(
        "--live-data",
        type=float,
        default=d.live_data,
        metavar="RATE",
        help=f"items appear and vanish between calls (default: {d.live_data:g}, off)",
    )
    p.add_argument("--no-gzip", action="store_true", help="never compress answers")
    dates = p.add_argument_group(
        "an index that changes by date", "off unless --timeline-origin is given; the date "
        "moves with POST /_emulator/as-of (body YYYY-MM-DD) or a call's X-Emulator-As-Of header"
    )  # fmt: skip
    dates.add_argument(
        "--timeline-origin", type=parse_as_of, default=None, metavar="DATE",
        help="day 0 of the timeline: the graph as generated, less the pages still to come",
    )  # fmt: skip
    dates.add_argument(
        "--as-of", type=parse_as_of, default=None, metavar="DATE",
        help="answer as of this date (default: the origin)",
    )  # fmt: skip
    t = Timeline(origin=dt.date(2026, 1, 1))
    for name, value, what in (
        ("daily-new", t.daily_new, "pages that first appear each day"),
        ("daily-return", t.daily_return, "pages found again each day, with their old first_seen"),
        ("daily-vanish", t.daily_vanish, "pages that vanish each day"),
    ):
        dates.add_argument(
            f"--{name}", type=float, default=value, metavar="SHARE",
            help=f"the share of a target set's pages {what} (default: {value:g})",
        )  # fmt: skip
    dates.add_argument(
        "--horizon-days", type=int, default=t.horizon_days, metavar="N",
        help=f"days over which pages keep changing (default: {t.horizon_days})",
    )  # fmt: skip
    p.add_argument(
        "--log-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="also append the call log to this JSONL file (default: none)",
    )
    faults = p.add_argument_group(
        "faults", "each --fault-NAME P is a probability per call, drawn from the seed and the "
        "request (retries draw afresh); holes are never drawn at offset 0"
    )  # fmt: skip
    for name in FAULT_NAMES:
        flag = "--fault-" + name.replace("_", "-")
        faults.add_argument(
            flag, type=float, default=getattr(f, name), metavar="P", help=_FAULT_HELP[name]
        )
    faults.add_argument(
        "--fault-status",
        type=_pair(float, "CODE"),
        action="append",
        default=[],
        metavar="CODE=P",
        help="answer status CODE with probability P (repeatable)",
    )
    faults.add_argument(
        "--fault-at",
        type=_pin,
        action="append",
        default=[],
        metavar="OFFSET=KIND[:TIMES][@TARGET]",
        help="requests at OFFSET (whose first target is TARGET) answer KIND, a fault name "
        "(empty_page, no_results, short_page, gzip_bomb, ...) or a status code, their first "
        "TIMES times (default: always); pins at one offset take turns (repeatable)",
    )
    faults.add_argument(
        "--timeout-delay",
        type=float,
        default=f.timeout_delay,
        metavar="S",
        help=f"how long a 50401 takes (default: {f.timeout_delay:g})",
    )
    faults.add_argument(
        "--slow-seconds",
        type=float,
        default=f.slow_seconds,
        metavar="S",
        help=f"how long a slow answer takes (default: {f.slow_seconds:g})",
    )
    faults.add_argument(
        "--hostile-error-code",
        type=int,
        default=f.hostile_error_code,
        metavar="CODE",
        help="the code of echo-credentials and long-message answers: task level in an HTTP "
        "200, or the whole call for 50000 (HTTP 500) and 401/402/404 codes (default 40501)",
    )
    sizes = (
        ("--long-message-size", _bytes, "BYTES", "characters of a long message (default 5M)"),
        ("--gzip-bomb-size", _bytes, "BYTES", "what a gzip bomb inflates to (default 2G)"),
        ("--huge-body-size", _bytes, "BYTES", "bytes of a huge body (default 512M)"),
        ("--nesting-depth", int, "N", "arrays nested in a deep item (default 100000)"),
        ("--trickle-bytes", int, "N", "bytes per trickled write (default 16)"),
        ("--trickle-pause", float, "S", "seconds between trickled writes (default 1.0)"),
        ("--huge-total-count", int, "N", "total_count of a huge-total answer (default 10**9)"),
    )
    for flag, kind, metavar, text in sizes:
        name = flag.removeprefix("--").replace("-", "_")
        faults.add_argument(flag, type=kind, default=getattr(f, name), metavar=metavar, help=text)
    faults.add_argument(
        "--huge-body-chunked",
        action="store_true",
        help="send huge bodies chunked, without a Content-Length",
    )
    throttle = p.add_argument_group("sustained throttling (the handed-in clock)")
    throttle.add_argument(
        "--throttle-for",
        type=float,
        default=f.throttle_for,
        metavar="S",
        help="refuse every call for S seconds like the real limit, at cost 0 (0: off)",
    )
    throttle.add_argument(
        "--throttle-after",
        type=float,
        default=f.throttle_after,
        metavar="S",
        help="open that window S seconds after the first authenticated call (default 0)",
    )
    throttle.add_argument(
        "--throttle-code",
        type=int,
        choices=(40202, 40209),
        default=f.throttle_code,
        help="40202 (per minute, default) or 40209 (simultaneous); AIsa: HTTP 429",
    )
    oddities.add_flags(p)
    claims = p.add_argument_group("money claims (the call log keeps what was billed)")
    claims.add_argument(
        "--cost-claim",
        choices=tuple(COST_CLAIMS),
        default=f.cost_claim,
        help="the cost a successful answer claims: left out, -0.5, 0, 1e300 or 1.7e308",
    )
    claims.add_argument(
        "--aisa-price-header",
        default=f.aisa_price_header,
        metavar="TEXT",
        help="send X-AISA-Price-USD: TEXT with every successful answer, on every route",
    )
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
            **{name: getattr(a, name) for name in _FAULT_SETTINGS_FROM_FLAGS},
            status_codes=statuses,
            pinned=tuple(a.fault_at),
        )
        given = {name: getattr(a, name) for name in _SETTINGS_FROM_FLAGS}
        return EmulatorSettings(
            **given,
            sizes={target: int(n) for target, n in a.size},
            faults=faults,
            oddities=oddities.from_flags(a),
            gzip=not a.no_gzip,
            log_file=a.log_file,
            timeline=_timeline(a),
        )
    except ValueError as exc:
        parser.error(str(exc))


_SETTINGS_FROM_FLAGS = tuple(
    f.name
    for f in fields(EmulatorSettings)
    if f.name
    not in (
        "sizes",
        "faults",
        "oddities",
        "gzip",
        "log_file",
        "clock",
        "item_cache_size",
        "query_cache_size",
        "timeline",
    )
)


def _timeline(a: argparse.Namespace) -> Timeline | None:
    if a.timeline_origin is None:
        if a.as_of is not None:
            raise ValueError("--as-of needs --timeline-origin")
        return None
    return Timeline(
        origin=a.timeline_origin,
        as_of=a.as_of,
        daily_new=a.daily_new,
        daily_return=a.daily_return,
        daily_vanish=a.daily_vanish,
        horizon_days=a.horizon_days,
    )


_FAULT_SETTINGS_FROM_FLAGS = tuple(
    f.name
    for f in fields(FaultSettings)
    if f.name not in FAULT_NAMES and f.name not in ("status_codes", "pinned")
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
