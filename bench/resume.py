"""Scenario 6: kill -9 the CLI at a seeded random call, run it again, count what was paid twice.

Pages re-fetched: pages the emulator answered (20000) before the kill and served again
after it. Calls in flight at the kill: calls the emulator had received but not answered
when the kill came (their arrival <= kill < arrival + latency). A durable page is never
fetched again; a call holds its in-flight slot until its page is durable, so re-fetched
pages cannot exceed the in-flight limit (pages answered but not yet durable count too).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import cli_command, cli_env, emulator_process, mixed_batch, page_key
from intersect_batch.settings import RunSettings


def run(
    work: Path,
    *,
    jobs: int,
    max_pages: int,
    page_size: int,
    concurrency: int,
    latency_median: float,
    seed: int,
) -> dict[str, Any]:
    folder = work / "resume"
    batch = mixed_batch(jobs=jobs, max_pages=max_pages, page_size=page_size, seed=seed, tag="res")
    config = batch.write(folder / "configs")
    rng = random.Random(seed)
    kill_after = rng.randint(batch.calls // 5, batch.calls * 4 // 5)
    with emulator_process(
        folder / "emulator-calls.jsonl",
        seed=seed,
        sizes=batch.sizes,
        rate_per_minute=1_000_000,
        max_concurrent=concurrency,
        latency_median=latency_median,
        latency_spread=0.5,
    ) as emulator:
        command = cli_command(
            config,
            emulator.dataforseo_base,
            folder / "out",
            "--rate-per-minute",
            "1000000",
            "--concurrency",
            str(concurrency),
        )
        first = subprocess.Popen(command, env=cli_env(), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while emulator.count_calls() < kill_after and first.poll() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the crawl made too few calls before the deadline")
            time.sleep(0.002)
        killed_at = time.monotonic()
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        # Let the calls that were in flight reach the emulator's log.
        time.sleep(latency_median * 10 + 0.3)
        before = emulator.calls()
        resumed = subprocess.run(command, env=cli_env(), stdout=subprocess.DEVNULL, check=False)
        time.sleep(0.05)
        after = emulator.calls()[len(before) :]
    answered = {page_key(c) for c in before if c["status_code"] == 20000}
    refetched = answered & {page_key(c) for c in after}
    in_flight = sum(1 for c in before if c["t"] <= killed_at < c["t"] + c["latency"])
    pages_written = sum(
        1 for c in before if c["status_code"] == 20000 and c["t"] + c["latency"] <= killed_at
    )
    return {
        "seed": seed,
        "jobs": jobs,
        "calls_uninterrupted": batch.calls,
        "killed_after_calls": kill_after,
        "concurrency": concurrency,
        "pages_in_memory": RunSettings().pages_in_memory,
        "calls_before_kill": len(before),
        "answered_before_kill": pages_written,
        "calls_in_flight_at_kill": in_flight,
        "pages_refetched": len(refetched),
        "calls_after_resume": len(after),
        "extra_calls": len(before) + len(after) - batch.calls,
        "resume_exit_code": resumed.returncode,
    }
