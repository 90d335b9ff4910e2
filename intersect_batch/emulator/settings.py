"""The emulator's knobs: one frozen object per concern, every default in one place."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FAULT_NAMES", "EmulatorSettings", "FaultSettings"]

#: The faults that each have a probability of their own (``FaultSettings`` fields).
FAULT_NAMES = (
    "http_500",
    "internal_error",
    "timeout",
    "task_failed",
    "drop_connection",
    "truncated_body",
    "slow",
)


def _check_probability(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


@dataclass(frozen=True, kw_only=True)
class FaultSettings:
    """How often each injected fault happens; every probability defaults to 0 (off).

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
    """

    http_500: float = 0.0
    internal_error: float = 0.0
    timeout: float = 0.0
    task_failed: float = 0.0
    drop_connection: float = 0.0
    truncated_body: float = 0.0
    slow: float = 0.0
    status_codes: Mapping[int, float] = field(default_factory=dict)
    timeout_delay: float = 1.0
    slow_seconds: float = 5.0

    def __post_init__(self) -> None:
        for name in FAULT_NAMES:
            _check_probability(name, getattr(self, name))
        for code, p in self.status_codes.items():
            if not 10000 <= code <= 60000:
                raise ValueError(f"status code {code} is outside 10000..60000")
            _check_probability(f"status_codes[{code}]", p)
        if self.timeout_delay < 0 or self.slow_seconds < 0:
            raise ValueError("timeout_delay and slow_seconds must be >= 0")


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
    - ``live_data`` (0.0 = off): churn per call; about ``2 * live_data`` of a query's
      candidate pages appear or vanish between two calls.
    - ``gzip`` (True): compress responses for clients that accept it.
    - ``log_file`` (None): also append every call record to this JSONL file.
    - ``clock`` (``time.monotonic``): the rate window and the call log's ``t``.
    - ``item_cache_size`` (20000) / ``query_cache_size`` (32): encoded items and per-query
      id arrays kept in memory (LRU).
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
    live_data: float = 0.0
    gzip: bool = True
    log_file: Path | None = None
    clock: Callable[[], float] = time.monotonic
    item_cache_size: int = 20_000
    query_cache_size: int = 32

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
