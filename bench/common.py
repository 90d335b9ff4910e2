"""What every scenario shares: batches of jobs, the emulator process, its call log, CPU clocks."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO_ENV = {"DATAFORSEO_LOGIN": "demo", "DATAFORSEO_PASSWORD": "demo-password"}
RUN_DATE = dt.date(2026, 11, 29)
#: The second target of every job: the first one names the job's size in the emulator.
SHARED_TARGET = "shared.example"
QUOTA_WINDOW = 60.0


@dataclass(frozen=True)
class BenchJob:
    """One job of a batch: its id, its first target (which sizes it) and its item count."""

    job_id: str
    target: str
    items: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.items / self.page_size))

    @property
    def targets(self) -> list[str]:
        return [self.target, SHARED_TARGET]


@dataclass(frozen=True)
class Batch:
    """Jobs and the emulator sizes that make each job exactly as large as planned."""

    jobs: list[BenchJob]
    tag: str

    @property
    def calls(self) -> int:
        return sum(job.pages for job in self.jobs)

    @property
    def items(self) -> int:
        return sum(job.items for job in self.jobs)

    @property
    def sizes(self) -> dict[str, int]:
        return {job.target: job.items for job in self.jobs}

    def write(self, folder: Path) -> Path:
        """The batch as a job config folder."""
        folder.mkdir(parents=True, exist_ok=True)
        document = {
            "jobs": [
                {"id": job.job_id, "targets": job.targets, "page_size": job.page_size}
                for job in self.jobs
            ]
        }
        (folder / "jobs.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        return folder


def mixed_batch(
    *, jobs: int, max_pages: int, page_size: int, seed: int, tag: str, min_pages: int = 1
) -> Batch:
    """``jobs`` jobs whose page counts spread log-uniformly over min..max (both included)."""
    rng = random.Random(seed)
    out = []
    for i in range(jobs):
        if i == 0:
            pages = min_pages
        elif i == 1:
            pages = max_pages
        else:
            pages = round(math.exp(rng.uniform(math.log(min_pages), math.log(max_pages))))
        # A short last page, as real queries have.
        items = max(1, pages * page_size - rng.randrange(page_size))
        out.append(BenchJob(f"{tag}-{i:04d}", f"{tag}-{i:04d}.example", items, page_size))
    return Batch(out, tag)


def uniform_batch(*, jobs: int, items: int, page_size: int, tag: str) -> Batch:
    """``jobs`` jobs of ``items`` items each."""
    return Batch(
        [
            BenchJob(f"{tag}-{i:04d}", f"{tag}-{i:04d}.example", items, page_size)
            for i in range(jobs)
        ],
        tag,
    )


# -- the emulator, in its own process ---------------------------------------------------------


@dataclass
class EmulatorProcess:
    """A running emulator process: its base URL, its call log, and its CPU so far."""

    process: subprocess.Popen[str]
    url: str
    log_file: Path
    clock_scale: float

    @property
    def dataforseo_base(self) -> str:
        return self.url + "/v3"

    def calls(self) -> list[dict[str, Any]]:
        """Every call the emulator logged so far (a torn last line is left out)."""
        if not self.log_file.exists():
            return []
        return [
            json.loads(line)
            for line in self.log_file.read_bytes().splitlines()
            if line.endswith(b"}")
        ]

    def count_calls(self) -> int:
        try:
            return self.log_file.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)


@contextmanager
def emulator_process(
    log_file: Path, *, clock_scale: float = 1.0, **settings: Any
) -> Iterator[EmulatorProcess]:
    """Start ``bench.emulator_proc`` with these ``EmulatorSettings`` keywords; stop it after."""
    values = {**settings, "log_file": str(log_file), "clock_scale": clock_scale}
    # In a file: the sizes of twenty thousand jobs are more than a command line holds.
    settings_file = log_file.with_name(log_file.name + ".settings.json")
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps(values))
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.emulator_proc", f"@{settings_file}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the emulator did not start (exit {process.wait()})")
        yield EmulatorProcess(process, url, log_file, clock_scale)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# -- reading the call log ---------------------------------------------------------------------


def max_calls_in_window(times: Sequence[float], window: float = QUOTA_WINDOW) -> int:
    """The most calls any window of ``window`` seconds (the emulator's clock) holds."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def refusals(calls: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many calls the emulator refused for the rate (40202) and concurrency (40209)."""
    return {
        "40202": sum(1 for c in calls if c["status_code"] == 40202),
        "40209": sum(1 for c in calls if c["status_code"] == 40209),
    }


def page_key(call: dict[str, Any]) -> tuple[str, int]:
    """Which page of which job a call asked for."""
    targets = call.get("targets") or {}
    return targets.get("1", ""), int(call.get("offset") or 0)


# -- the crawler, as a library or as the CLI --------------------------------------------------


def cli_command(config_dir: Path, base: str, out: Path, *extra: str) -> list[str]:
    """The ``intersect-batch run`` command line for a batch against the emulator."""
    return [
        sys.executable,
        "-m",
        "intersect_batch",
        "run",
        str(config_dir),
        "--base-url",
        base,
        "--out",
        str(out),
        "--run-date",
        RUN_DATE.isoformat(),
        "--log-format",
        "json",
        "--log-level",
        "warning",
        *extra,
    ]


def cli_env() -> dict[str, str]:
    return {**os.environ, **DEMO_ENV}


@dataclass
class CpuTimer:
    """Wall and CPU time of this process (all threads) over a ``with`` block."""

    wall: float = 0.0
    cpu: float = 0.0
    _start: tuple[float, float] = field(default=(0.0, 0.0))

    def __enter__(self) -> CpuTimer:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._start[0]
        self.cpu = time.process_time() - self._start[1]


def rounded(value: float, digits: int = 3) -> float:
    return round(value, digits) if math.isfinite(value) else value
