"""Scenario 4: peak RSS of the CLI for a job of 1,000 items against one of 200,000.

Each run is ``intersect-batch run`` as a subprocess; its peak RSS is its own ``VmHWM``
(see ``bench.rss``: the child's ``ru_maxrss`` would start from the harness's own RSS).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT, cli_command, cli_env, emulator_process, rounded, uniform_batch


def peak_rss_mb(command: list[str], report: Path) -> tuple[float, int]:
    """(peak RSS in MB, exit status) of an ``intersect-batch`` command run to its end."""
    python, dash_m, module, *args = command
    assert (dash_m, module) == ("-m", "intersect_batch")
    wrapped = [python, "-m", "bench.rss", str(report), "--", *args]
    done = subprocess.run(wrapped, env=cli_env(), cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
    return int(report.read_text()) / 1024, done.returncode


def run(work: Path, *, small: int, large: int, page_size: int, seed: int) -> dict[str, Any]:
    folder = work / "memory"
    batches = {
        "small": uniform_batch(jobs=1, items=small, page_size=page_size, tag="small"),
        "large": uniform_batch(jobs=1, items=large, page_size=page_size, tag="large"),
    }
    sizes = {k: v for batch in batches.values() for k, v in batch.sizes.items()}
    figures: dict[str, Any] = {"page_size": page_size}
    with emulator_process(
        folder / "emulator-calls.jsonl",
        seed=seed,
        sizes=sizes,
        rate_per_minute=1_000_000,
        max_concurrent=30,
    ) as emulator:
        for name, batch in batches.items():
            config = batch.write(folder / name / "configs")
            command = cli_command(
                config,
                emulator.dataforseo_base,
                folder / name / "out",
                "--rate-per-minute",
                "1000000",
                "--concurrency",
                "30",
            )
            rss, status = peak_rss_mb(command, folder / name / "peak-rss-kb")
            figures[name] = {
                "items": batch.items,
                "pages": batch.calls,
                "peak_rss_mb": rounded(rss, 1),
                "exit_code": status,
            }
    figures["rss_ratio_large_vs_small"] = rounded(
        figures["large"]["peak_rss_mb"] / figures["small"]["peak_rss_mb"]
    )
    return figures
