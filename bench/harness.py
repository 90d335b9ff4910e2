"""``python -m bench [--tiny] [--out DIR] [--only NAME ...]``: run the scenarios, write the results.

Writes ``results.json`` and ``results.md`` into ``--out`` (default: this folder) and prints
the table. ``--tiny`` runs every scenario at a toy size in seconds (the test suite does, so
the harness cannot rot); its figures prove only that the harness works.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cpu, many_jobs, memory, nights, peers, resume, saturation, scale
from bench.common import mixed_batch
from bench.report import markdown
from bench.saturation import Setting

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is: ``FULL`` for ``make bench``, ``TINY`` for the test."""

    saturation_jobs: int
    saturation_max_pages: int
    saturation_settings: tuple[Setting, ...]
    peers_jobs: int
    peers_max_pages: int
    peers_scale: float
    peers_latency: float
    cpu_pages: int
    cpu_passes: int
    memory_small: int
    memory_large: int
    many_counts: tuple[int, ...]
    resume_jobs: int
    resume_max_pages: int
    resume_latency: float
    nights_size: int
    nights_page_size: int
    nights: int
    scale_counts: tuple[int, int]
    stop_jobs: int
    stop_after: float


FULL = Sizes(
    saturation_jobs=60,
    saturation_max_pages=200,
    saturation_settings=(
        # 2000 calls a minute, 30 in flight (DataForSEO's defaults); minute = 12 s.
        Setting("a-rate-bound", 2000, 30, 0.02, 0.5, 5.0),
        # Median 2 s a call (real API order), minute = 6 s: 30 slots / 2.26 s < 2000/min.
        Setting("b-concurrency-bound", 2000, 30, 0.2, 0.5, 10.0),
        # Fast calls in real time (median 0.2 s, no scaling), 10 in flight: what a slot
        # spends outside the server (decoding, handing the page to the writer) shows here.
        Setting("c-fast-calls", 6000, 10, 0.2, 0.5, 1.0),
    ),
    peers_jobs=16,
    peers_max_pages=60,
    peers_scale=40.0,
    peers_latency=0.05,
    cpu_pages=5,
    cpu_passes=2,
    memory_small=1_000,
    memory_large=200_000,
    many_counts=(10, 100, 1000),
    resume_jobs=8,
    resume_max_pages=40,
    resume_latency=0.05,
    nights_size=10_000,
    nights_page_size=1000,
    nights=8,
    scale_counts=(1_000, 2_500),
    stop_jobs=20_000,
    stop_after=3.0,
)

TINY = Sizes(
    saturation_jobs=6,
    saturation_max_pages=8,
    saturation_settings=(
        Setting("a-rate-bound", 2000, 10, 0.002, 0.5, 20.0),
        Setting("b-concurrency-bound", 2000, 4, 0.02, 0.5, 20.0),
        Setting("c-fast-calls", 6000, 4, 0.02, 0.5, 1.0),
    ),
    peers_jobs=3,
    peers_max_pages=4,
    peers_scale=200.0,
    peers_latency=0.01,
    cpu_pages=1,
    cpu_passes=1,
    memory_small=100,
    memory_large=3_000,
    many_counts=(2, 4, 8),
    resume_jobs=3,
    resume_max_pages=12,
    resume_latency=0.02,
    nights_size=1_000,
    nights_page_size=100,
    nights=2,
    scale_counts=(20, 60),
    stop_jobs=300,
    stop_after=0.5,
)

PAGE_SIZE = 20  # items a page where the crawl's scheduling is measured (emulator headroom)
CPU_PAGE_SIZE = 1000  # items a page where the bytes are measured
MEMORY_PAGE_SIZE = 1000


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def scenarios(sizes: Sizes, work: Path, seed: int) -> dict[str, Callable[[], dict[str, Any]]]:
    sat_batch = mixed_batch(
        jobs=sizes.saturation_jobs,
        max_pages=sizes.saturation_max_pages,
        page_size=PAGE_SIZE,
        seed=seed,
        tag="sat",
    )
    peer_batch = mixed_batch(
        jobs=sizes.peers_jobs,
        max_pages=sizes.peers_max_pages,
        page_size=PAGE_SIZE,
        seed=seed + 1,
        tag="peer",
    )
    return {
        "1-saturation": lambda: saturation.run(
            sat_batch, list(sizes.saturation_settings), work, seed
        ),
        "2-peers": lambda: peers.run(
            peer_batch,
            work,
            seed=seed,
            scale=sizes.peers_scale,
            latency_median=sizes.peers_latency,
            latency_spread=0.5,
            rate_per_minute=2000,
            concurrency=30,
        ),
        "3-cpu-per-item": lambda: cpu.run(
            work,
            pages=sizes.cpu_pages,
            page_size=CPU_PAGE_SIZE,
            passes=sizes.cpu_passes,
            seed=seed,
        ),
        "4-memory": lambda: memory.run(
            work,
            small=sizes.memory_small,
            large=sizes.memory_large,
            page_size=MEMORY_PAGE_SIZE,
            seed=seed,
        ),
        "5-many-jobs": lambda: many_jobs.run(
            work, counts=list(sizes.many_counts), page_size=10, seed=seed
        ),
        "6-resume": lambda: resume.run(
            work,
            jobs=sizes.resume_jobs,
            max_pages=sizes.resume_max_pages,
            page_size=PAGE_SIZE,
            concurrency=10,
            latency_median=sizes.resume_latency,
            seed=seed,
        ),
        "7-nights": lambda: nights.run(
            work,
            size=sizes.nights_size,
            page_size=sizes.nights_page_size,
            nights=sizes.nights,
            seed=seed,
        ),
        "8-scale": lambda: scale.run(
            work,
            counts=sizes.scale_counts,
            stop_jobs=sizes.stop_jobs,
            stop_after=sizes.stop_after,
            seed=seed,
        ),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="toy sizes: seconds, not minutes")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.* go")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="prefix")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--scale-counts",
        type=int,
        nargs=2,
        metavar=("SMALL", "LARGE"),
        help="the two job counts of 8-scale's memory runs (e.g. 1000 20000)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = TINY if args.tiny else FULL
    if args.scale_counts:
        sizes = dataclasses.replace(sizes, scale_counts=tuple(args.scale_counts))
    started = time.perf_counter()
    results: dict[str, Any] = {
        "mode": "tiny" if args.tiny else "full",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "seed": args.seed,
        "scenarios": {},
    }
    work = Path(tempfile.mkdtemp(prefix="intersect-bench-"))
    try:
        for name, scenario in scenarios(sizes, work, args.seed).items():
            if args.only and not any(name.startswith(p) for p in args.only):
                continue
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            t = time.perf_counter()
            figures = scenario()
            figures["scenario_wall_s"] = round(time.perf_counter() - t, 1)
            results["scenarios"][name] = figures
    finally:
        if args.keep:
            print(f"bench: work folder kept in {work}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    results["total_wall_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "results.md").write_text(table)
    print(table)
    return 0
