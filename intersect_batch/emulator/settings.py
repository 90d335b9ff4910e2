"""The emulator's knobs: one frozen object per concern, every default in one place."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .oddities import AnswerOddities
from .timeline import Timeline

__all__ = [
    "COST_CLAIMS",
    "FAULT_NAMES",
    "HOLE_NAMES",
    "PIN_KINDS",
    "EmulatorSettings",
    "FaultSettings",
    "PinnedFault",
]

#: Holes inside the total: never drawn at offset 0, and only where ``offset < total_count``.
HOLE_NAMES = ("no_results", "empty_page", "short_page")

#: The faults that each have a probability of their own (``FaultSettings`` fields), in
#: the order they are tried ("slow" is drawn on its own and adds to any).
FAULT_NAMES = (
    "http_500",
    "internal_error",
    "timeout",
    "task_failed",
    "drop_connection",
    "truncated_body",
    "slow",
    *HOLE_NAMES,
    "echo_credentials",
    "long_message",
    "gzip_bomb",
    "huge_body",
    "deep_nesting",
    "trickle",
    "non_object_items",
    "pretty_items",
    "multiline_items",
    "huge_total",
)

#: What ``FaultSettings.cost_claim`` may be, and the ``cost`` each puts in an answer.
COST_CLAIMS: dict[str, float | None] = {
    "missing": None,
    "negative": -0.5,
    "zero": 0.0,
    "huge": 1e300,
    "max": 1.7e308,
}

#: What ``PinnedFault.kind`` may name (besides a status code).
PIN_KINDS = frozenset(FAULT_NAMES)

_MIB = 1024 * 1024


def _check_probability(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _check_code(name: str, code: int) -> None:
    if not 10000 <= code <= 60000:
        raise ValueError(f"{name}: status code {code} is outside 10000..60000")


@dataclass(frozen=True, kw_only=True)
class PinnedFault:
    """A fault that a given offset always answers, or its first ``times`` times.

    - ``offset``: the request's ``offset`` it applies to (also 0).
    - ``kind``: a name of ``FAULT_NAMES`` (``"empty_page"``, ``"gzip_bomb"``, ...), or a
      status code answered like ``FaultSettings.status_codes`` does.
    - ``times`` (None = always): how many times a request at that offset answers so before
      it answers normally. Counted per request (the task with its defaults, as the fault
      draws count it), so each job meets it afresh and retries use it up.
    - ``target`` (None = any): only requests whose first target (``targets["1"]``, else
      the lowest key) is this one.

    Several pins that match one request take turns in the order given: ``200=http_500:1``
    then ``200=empty_page:2`` answer 500, then empty twice, then normally.
    ``PinnedFault.parse("OFFSET=KIND[:TIMES][@TARGET]")`` reads the command line's form.
    """

    offset: int
    kind: str | int
    times: int | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.offset, bool) or self.offset < 0:
            raise ValueError(f"pinned offset must be >= 0, got {self.offset!r}")
        if isinstance(self.kind, int):
            _check_code("pinned kind", self.kind)
        elif self.kind not in PIN_KINDS:
            known = ", ".join(FAULT_NAMES)
            raise ValueError(
                f"pinned kind {self.kind!r} is neither a status code nor one of: {known}"
            )
        if self.times is not None and self.times < 1:
            raise ValueError(f"pinned times must be >= 1, got {self.times!r}")

    @classmethod
    def parse(cls, text: str) -> PinnedFault:
        """The pin ``OFFSET=KIND[:TIMES][@TARGET]`` describes (ValueError on bad input)."""
        spec, at, target = text.partition("@")
        offset, eq, rest = spec.partition("=")
        kind, colon, times = rest.partition(":")
        if not eq or not offset.strip() or not kind.strip() or (colon and not times.strip()):
            raise ValueError(f"expected OFFSET=KIND[:TIMES][@TARGET], got {text!r}")
        if at and not target.strip():
            raise ValueError(f"empty target after '@' in {text!r}")
        try:
            offset_n = int(offset)
            times_n = int(times) if colon else None
        except ValueError:
            raise ValueError(f"OFFSET and TIMES must be integers in {text!r}") from None
        kind = kind.strip()
        return cls(
            offset=offset_n,
            kind=int(kind) if kind.isdigit() else kind,
            times=times_n,
            target=target.strip() if at else None,
        )


@dataclass(frozen=True, kw_only=True)
class FaultSettings:
    """How often each injected fault happens; every probability defaults to 0 (off).

    Each call draws its fault from a hash of (seed, the task with its defaults, times that
    task was seen before): the first in ``FAULT_NAMES`` order that fires wins, then
    ``status_codes``; ``pinned`` offsets come before any draw.

    Transport and server faults:

    - ``http_500``: HTTP 500 with the API's 50000 envelope (AIsa: its gateway error).
    - ``internal_error``: task-level 50000 "Internal Error." in an HTTP 200.
    - ``timeout``: task-level 50401 "Timeout exceeded.", answered after ``timeout_delay`` s
      (default 1.0; the real server gives up at 120 s).
    - ``task_failed``: task-level 40103 "Task execution failed. Please resubmit the task."
    - ``drop_connection``: headers and half the body are sent, then the connection closes.
    - ``truncated_body``: half the body, sent as a complete response (its Content-Length
      says so): the HTTP exchange succeeds, the JSON does not decode.
    - ``slow``: the normal answer, delayed by ``slow_seconds`` more (default 5.0).
    - ``status_codes``: ``{code: probability}``; the call answers that status code
      (task level in an HTTP 200, or the whole call for 401/402/404 codes).

    Holes inside the total (never drawn at offset 0; only where ``offset < total_count``,
    elsewhere the call answers normally and logs no fault):

    - ``no_results``: task-level 40102 "No Search Results." with ``result: null``, cost 0.
    - ``empty_page``: 20000 with ``items: []``, ``items_count: 0`` and the right
      ``total_count`` (billed as a call with 0 items).
    - ``short_page``: 20000 with the first half (rounded down) of the page's items and the
      right ``total_count``, billed for what it holds.

    Hostile answers (any offset):

    - ``echo_credentials``: an error whose status_message quotes the request's
      Authorization header verbatim, its decoded secret (``login:password``, or the key)
      and that secret URL-encoded; answered as ``hostile_error_code``.
    - ``long_message``: an error whose status_message is ``long_message_size`` characters
      of filler text (default 5 MiB), streamed; answered as ``hostile_error_code``.
    - ``gzip_bomb``: ``Content-Encoding: gzip`` whatever the client asked, a ~1/1000 size
      body that inflates to ``gzip_bomb_size`` bytes (default 2 GiB): spaces, then the
      normal answer (so it is valid JSON once inflated).
    - ``huge_body``: an uncompressed body of ``huge_body_size`` bytes (default 512 MiB):
      spaces, then the normal answer; with Content-Length, or chunked without one when
      ``huge_body_chunked``.
    - ``deep_nesting``: the normal answer whose first item gets a field ``"nested"`` of
      ``nesting_depth`` arrays inside each other (default 100000): ``[[[...]]]``.
    - ``trickle``: the normal answer, uncompressed, ``trickle_bytes`` bytes (default 16)
      per write with ``trickle_pause`` s (default 1.0) between writes.
    - ``non_object_items``: the normal page with the items at n//4, n//2 and 3n//4
      replaced by ``1``, ``"a"`` and ``null`` (pages of at least 4 items; same counts).
    - ``pretty_items``: the normal page, each item on one line with a space after every
      ``:`` and ``,`` (``{"a": 1, "b": [1, 2]}``).
    - ``multiline_items``: the normal page, each item indented over many lines.
    - ``huge_total``: ``total_count`` is ``huge_total_count`` (default 10**9); offset 0
      keeps its items, every other offset answers ``items: []``.
    - ``hostile_error_code`` (40501): how echo_credentials and long_message answer: a
      task-level error in HTTP 200, or a whole-call envelope for 50000 (HTTP 500) and for
      the codes that travel with HTTP 401/402/404.

    Pinned faults and sustained throttling:

    - ``pinned`` (()): ``PinnedFault``s: offsets that answer a given fault.
    - ``throttle_for`` (0.0 = off): seconds of the handed-in clock during which every
      call is refused like the real limit (``throttle_code`` 40202 or 40209: task level in
      an HTTP 200 on the DataForSEO route; HTTP 429 with Retry-After = the seconds left of
      the window on the AIsa route), at cost 0, logged with fault "throttle".
    - ``throttle_after`` (0.0): the window opens that many seconds after the first
      authenticated call.

    Money claims (what an answer says it cost; the call log keeps what it billed):

    - ``cost_claim`` (None = honest): the ``cost`` of a successful answer's envelope and
      task is left out (``"missing"``), ``-0.5`` (``"negative"``), ``0`` (``"zero"``),
      ``1e300`` (``"huge"``) or ``1.7e308`` (``"max"``: two of them overflow a sum).
    - ``aisa_price_header`` (None = the AIsa route's honest price only): an
      ``X-AISA-Price-USD`` header with this text on every successful answer, on every route.
    """

    http_500: float = 0.0
    internal_error: float = 0.0
    timeout: float = 0.0
    task_failed: float = 0.0
    drop_connection: float = 0.0
    truncated_body: float = 0.0
    slow: float = 0.0
    no_results: float = 0.0
    empty_page: float = 0.0
    short_page: float = 0.0
    echo_credentials: float = 0.0
    long_message: float = 0.0
    gzip_bomb: float = 0.0
    huge_body: float = 0.0
    deep_nesting: float = 0.0
    trickle: float = 0.0
    non_object_items: float = 0.0
    pretty_items: float = 0.0
    multiline_items: float = 0.0
    huge_total: float = 0.0
    status_codes: Mapping[int, float] = field(default_factory=dict)
    pinned: tuple[PinnedFault, ...] = ()
    timeout_delay: float = 1.0
    slow_seconds: float = 5.0
    hostile_error_code: int = 40501
    long_message_size: int = 5 * _MIB
    gzip_bomb_size: int = 2048 * _MIB
    huge_body_size: int = 512 * _MIB
    huge_body_chunked: bool = False
    nesting_depth: int = 100_000
    trickle_bytes: int = 16
    trickle_pause: float = 1.0
    huge_total_count: int = 10**9
    throttle_for: float = 0.0
    throttle_after: float = 0.0
    throttle_code: int = 40202
    cost_claim: str | None = None
    aisa_price_header: str | None = None

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            _check_probability(name, getattr(self, name))
        for code, p in self.status_codes.items():
            _check_code("status_codes", code)
            _check_probability(f"status_codes[{code}]", p)
        object.__setattr__(self, "pinned", tuple(self.pinned))
        if not all(isinstance(pin, PinnedFault) for pin in self.pinned):
            raise ValueError("pinned must hold PinnedFault values")
        for name in ("timeout_delay", "slow_seconds", "trickle_pause"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        _check_code("hostile_error_code", self.hostile_error_code)
        for name in ("long_message_size", "gzip_bomb_size", "huge_body_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.nesting_depth < 1 or self.trickle_bytes < 1:
            raise ValueError("nesting_depth and trickle_bytes must be >= 1")
        if self.huge_total_count < 0:
            raise ValueError("huge_total_count must be >= 0")
        if not (self.throttle_for >= 0 and self.throttle_after >= 0):
            raise ValueError("throttle_for and throttle_after must be >= 0")
        if self.throttle_code not in (40202, 40209):
            raise ValueError(f"throttle_code must be 40202 or 40209, got {self.throttle_code}")
        if self.cost_claim is not None and self.cost_claim not in COST_CLAIMS:
            raise ValueError(f"cost_claim must be one of {', '.join(COST_CLAIMS)}")


@dataclass(frozen=True, kw_only=True)
class EmulatorSettings:
    """Everything the emulator can be told; the defaults model a fresh DataForSEO account.

    - ``host`` / ``port``: where ``running_emulator`` and the CLI listen (127.0.0.1, 0 = any
      free port).
    - ``seed`` (0): the synthetic link graph, the latency draws and the fault draws.
    - ``login`` ("demo"), ``password`` ("demo-password"): HTTP Basic on the DataForSEO route;
      ``api_key`` ("demo-key"): the Bearer token on the AIsa route.
    - ``rate_per_minute`` (2000): calls per credential in any rolling 60 s window; over it,
      40202 in an HTTP 200 (DataForSEO) or HTTP 429 + Retry-After (AIsa).
    - ``max_concurrent`` (30): simultaneous requests per credential; over it, 40209 (AIsa: 429).
    - ``latency_median`` / ``latency_spread`` (0.0 / 0.0 s): each call sleeps
      ``median * exp(spread * z)`` seconds, z a seeded standard normal (a lognormal).
    - ``balance_usd`` (None = unlimited): a call the balance cannot cover gets HTTP 402, 40210.
    - ``sizes`` ({}): the result count of the default query for a first target;
      ``size_min`` / ``size_max`` (0 / 5000): the range other target sets are spread over.
    - ``faults``: see ``FaultSettings``.
    - ``oddities``: answers that are not the page asked for, see ``AnswerOddities``.
    - ``live_data`` (0.0 = off): churn per call; about ``2 * live_data`` of a query's
      candidate pages appear or vanish between two calls.
    - ``gzip`` (True): compress responses for clients that accept it.
    - ``log_file`` (None): also append every call record to this JSONL file.
    - ``clock`` (``time.monotonic``): the rate window and the call log's ``t``.
    - ``item_cache_size`` (20000) / ``query_cache_size`` (32): encoded items and per-query
      id arrays kept in memory (LRU).
    - ``timeline`` (None = a fixed index): pages appear, vanish and come back by date,
      answered as of a date (see ``timeline.Timeline``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 0
    login: str = "demo"
    password: str = "demo-password"
    api_key: str = "demo-key"
    rate_per_minute: int = 2000
    max_concurrent: int = 30
    latency_median: float = 0.0
    latency_spread: float = 0.0
    balance_usd: float | None = None
    sizes: Mapping[str, int] = field(default_factory=dict)
    size_min: int = 0
    size_max: int = 5000
    faults: FaultSettings = field(default_factory=FaultSettings)
    oddities: AnswerOddities = field(default_factory=AnswerOddities)
    live_data: float = 0.0
    gzip: bool = True
    log_file: Path | None = None
    clock: Callable[[], float] = time.monotonic
    item_cache_size: int = 20_000
    query_cache_size: int = 32
    timeline: Timeline | None = None

    def __post_init__(self) -> None:
        if self.rate_per_minute < 1 or self.max_concurrent < 1:
            raise ValueError("rate_per_minute and max_concurrent must be >= 1")
        if self.latency_median < 0 or self.latency_spread < 0:
            raise ValueError("latency_median and latency_spread must be >= 0")
        if not 0 <= self.size_min <= self.size_max:
            raise ValueError("need 0 <= size_min <= size_max")
        if any(n < 0 for n in self.sizes.values()):
            raise ValueError("sizes must be >= 0")
        if not 0.0 <= self.live_data <= 1.0:
            raise ValueError("live_data must be in [0, 1]")
        if self.balance_usd is not None and self.balance_usd < 0:
            raise ValueError("balance_usd must be >= 0")
        if self.item_cache_size < 0 or self.query_cache_size < 1:
            raise ValueError("item_cache_size must be >= 0 and query_cache_size >= 1")
