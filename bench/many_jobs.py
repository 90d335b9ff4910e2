"""Scenario 5: 10, 100 and 1,000 one-page jobs at a high rate: the cost of a job stays flat.

Each count is one crawl (library call, emulator in its own process, no latency). The
figure is wall time per job; "growth" divides the per-job time at the largest count by
the one at the middle count (1.0 = flat; the smallest count carries the run's fixed cost).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio

from bench.common import (
    DEMO_ENV,
    RUN_DATE,
    Batch,
    emulator_process,
    rounded,
    uniform_batch,
)
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import run_batch
from intersect_batch.settings import Limits, RunSettings


def run(work: Path, *, counts: list[int], page_size: int, seed: int) -> dict[str, Any]:
    folder = work / "many-jobs"
    batches: dict[int, Batch] = {
        n: uniform_batch(jobs=n, items=page_size, page_size=page_size, tag=f"many{n}")
        for n in counts
    }
    sizes = {k: v for batch in batches.values() for k, v in batch.sizes.items()}
    figures: dict[str, Any] = {"page_size": page_size, "runs": {}}
    with emulator_process(
        folder / "emulator-calls.jsonl",
        seed=seed,
        sizes=sizes,
        rate_per_minute=10_000_000,
        max_concurrent=30,
    ) as emulator:
        limits = Limits(rate_per_minute=10_000_000, concurrency=30)
        for n, batch in batches.items():
            config = batch.write(folder / str(n) / "configs")
            settings = RunSettings(
                out_dir=folder / str(n) / "out", run_date=RUN_DATE, limits=limits
            )
            cpu, wall = time.process_time(), time.perf_counter()
            outcome = anyio.run(
                lambda config=config, settings=settings: run_batch(
                    config,
                    provider=resolve_provider("dataforseo", emulator.dataforseo_base),
                    environ=DEMO_ENV,
                    settings=settings,
                )
            )
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            figures["runs"][str(n)] = {
                "jobs": n,
                "exit_code": outcome.exit_code,
                "wall_s": rounded(wall),
                "ms_per_job": rounded(wall / n * 1000, 2),
                "cpu_ms_per_job": rounded(cpu / n * 1000, 2),
            }
    runs = figures["runs"]
    middle, largest = str(counts[-2]), str(counts[-1])
    figures["growth_per_job"] = rounded(runs[largest]["ms_per_job"] / runs[middle]["ms_per_job"])
    return figures
