"""Scenario 1: a batch of mixed jobs keeps the account's binding limit busy.

(a) rate-bound: a short latency, so the per-minute quota binds; (b) concurrency-bound: a
latency model scaled down from the real API's seconds, so in-flight slots x latency bind.
Time is scaled: the emulator's clock runs ``scale`` times faster than the wall clock and
the crawler's quota window is ``60 / scale`` s, so a quota "minute" lasts 60/scale s.
Achieved calls per (scaled) minute / min(rate, concurrency / mean latency); the mean
latency is the emulator's own (scaled) time per call, from its call log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

import anyio

from bench.common import (
    DEMO_ENV,
    QUOTA_WINDOW,
    RUN_DATE,
    Batch,
    emulator_process,
    max_calls_in_window,
    refusals,
    rounded,
)
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import run_batch
from intersect_batch.settings import Limits, RunSettings


@dataclass(frozen=True)
class Setting:
    name: str
    rate_per_minute: int
    concurrency: int
    latency_median: float
    latency_spread: float
    scale: float


def run_setting(batch: Batch, setting: Setting, work: Path, seed: int) -> dict[str, Any]:
    """Crawl ``batch`` under one setting; the figures of that run."""
    folder = work / f"saturation-{setting.name}"
    config = batch.write(folder / "configs")
    with emulator_process(
        folder / "emulator-calls.jsonl",
        clock_scale=setting.scale,
        seed=seed,
        sizes=batch.sizes,
        rate_per_minute=setting.rate_per_minute,
        max_concurrent=setting.concurrency,
        latency_median=setting.latency_median,
        latency_spread=setting.latency_spread,
    ) as emulator:
        limits = Limits(
            rate_per_minute=setting.rate_per_minute,
            concurrency=setting.concurrency,
            rate_period=QUOTA_WINDOW / setting.scale,
        )
        settings = RunSettings(out_dir=folder / "out", run_date=RUN_DATE, limits=limits)
        emulator_cpu = emulator.cpu_seconds()
        cpu, wall = time.process_time(), time.perf_counter()
        outcome = anyio.run(
            lambda: run_batch(
                config,
                provider=resolve_provider("dataforseo", emulator.dataforseo_base),
                environ=DEMO_ENV,
                settings=settings,
            )
        )
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        emulator_cpu = emulator.cpu_seconds() - emulator_cpu
        time.sleep(0.05)
        calls = emulator.calls()
    summary = outcome.summary
    assert summary is not None
    scale = setting.scale
    # Everything per quota minute: real seconds x scale = the emulator's seconds.
    mean_latency = fmean(c["latency"] for c in calls) * scale
    concurrency_bound = 60.0 * setting.concurrency / mean_latency
    bound = min(float(setting.rate_per_minute), concurrency_bound)
    achieved = summary.invocation.calls / (summary.invocation.duration_s * scale) * 60.0
    times = [c["t"] for c in calls]
    span = max(times) - min(times)
    achieved_sending = (len(times) - 1) / span * 60.0 if span > 0 else float("nan")
    # How many calls the emulator held at once on average: the slots the crawler kept busy.
    server_in_flight = sum(c["latency"] for c in calls) / (span / scale) if span > 0 else 0.0
    return {
        "jobs": len(batch.jobs),
        "pages_per_job": [min(j.pages for j in batch.jobs), max(j.pages for j in batch.jobs)],
        "page_size": batch.jobs[0].page_size,
        "calls": summary.invocation.calls,
        "exit_code": outcome.exit_code,
        "time_scale": scale,
        "rate_per_minute": setting.rate_per_minute,
        "concurrency": setting.concurrency,
        "latency_model_s": {
            "median": setting.latency_median * scale,
            "spread": setting.latency_spread,
        },
        "mean_latency_s": rounded(mean_latency, 4),
        "binding_limit": "rate" if bound == setting.rate_per_minute else "concurrency",
        "bound_per_minute": rounded(bound, 1),
        "planned_per_minute": rounded(min(limits.bound_per_minute / scale, concurrency_bound), 1),
        "achieved_per_minute": rounded(achieved, 1),
        "achieved_first_to_last_call": rounded(achieved_sending, 1),
        "ratio": rounded(achieved / bound),
        "ratio_first_to_last_call": rounded(achieved_sending / bound),
        "mean_calls_in_flight_at_emulator": rounded(server_in_flight, 2),
        "refused": refusals(calls),
        "max_calls_in_a_60s_window": max_calls_in_window(times),
        "wall_s": rounded(wall),
        "crawler_cpu_share": rounded(cpu / wall),
        "emulator_cpu_share": rounded(emulator_cpu / wall),
    }


def run(batch: Batch, settings: list[Setting], work: Path, seed: int) -> dict[str, Any]:
    return {s.name: run_setting(batch, s, work, seed) for s in settings}
