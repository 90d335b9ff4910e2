"""Scenario 8: a folder of many small jobs: memory per job at two sizes, start-up, a stop.

**Memory.** ``intersect-batch run`` over N one-page jobs, to its end, at two counts; its
peak RSS is its own ``VmHWM`` (see ``bench.rss``). "per job" is the peak divided by the
jobs; "marginal" is the growth between the two counts divided by the jobs added: what
one more job costs, flat when the two counts agree.

**Stop.** A night of ``stop_jobs`` one-page jobs at a pace that reaches a few of them;
one SIGTERM ``stop_after`` seconds after its first call, with ``--grace 5``. Measured:
seconds from the command's start to its first call (start-up), from the signal to the
exit, the log records written after the signal, the files of jobs that never started
(none is the goal), and the jobs run.json lists as not started.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

from bench.common import (
    ROOT,
    RUN_DATE,
    EmulatorProcess,
    cli_command,
    cli_env,
    emulator_process,
    rounded,
    uniform_batch,
)
from bench.memory import peak_rss_mb

PAGE_SIZE = 10
GRACE_S = 5


def _memory(emulator: EmulatorProcess, folder: Path, jobs: int) -> dict[str, Any]:
    batch = uniform_batch(jobs=jobs, items=PAGE_SIZE, page_size=PAGE_SIZE, tag=f"mem{jobs}")
    config = batch.write(folder / str(jobs) / "configs")
    command = cli_command(
        config,
        emulator.dataforseo_base,
        folder / str(jobs) / "out",
        "--rate-per-minute",
        "10000000",
        "--concurrency",
        "30",
    )
    started = time.perf_counter()
    rss, status = peak_rss_mb(command, folder / str(jobs) / "peak-rss-kb")
    return {
        "jobs": jobs,
        "exit_code": status,
        "wall_s": rounded(time.perf_counter() - started, 1),
        "peak_rss_mb": rounded(rss, 1),
        "kb_per_job": rounded(rss * 1024 / jobs, 2),
    }


def _first_call_at(log_file: Path, deadline: float) -> float | None:
    """The emulator's clock (``time.monotonic``) at the first call, once it is logged."""
    while time.monotonic() < deadline:
        try:
            with log_file.open("rb") as handle:
                line = handle.readline()
        except FileNotFoundError:
            line = b""
        if line.endswith(b"\n"):
            return float(json.loads(line)["t"])
        time.sleep(0.02)
    return None


def _collect(stream: IO[str], lines: list[str]) -> None:
    lines.extend(stream)  # a line at a time, as the records come


def _stop(
    emulator: EmulatorProcess, folder: Path, jobs: int, stop_after: float, rate: int
) -> dict[str, Any]:
    batch = uniform_batch(jobs=jobs, items=PAGE_SIZE, page_size=PAGE_SIZE, tag="stop")
    config = batch.write(folder / "configs")
    out = folder / "out"
    command = cli_command(
        config,
        emulator.dataforseo_base,
        out,
        "--rate-per-minute",
        str(rate),
        "--concurrency",
        "30",
        "--grace",
        str(GRACE_S),
        "--log-level",
        "info",
    )
    records: list[str] = []
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=cli_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    reader = threading.Thread(target=_collect, args=(process.stderr, records), daemon=True)
    reader.start()
    try:
        first = _first_call_at(emulator.log_file, started + 120)
        if first is None:
            raise RuntimeError("the run sent no call within 120 s")
        time.sleep(max(0.0, first + stop_after - time.monotonic()))
        before = len(records)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=120)
        stopped_s = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    run_dir = out / RUN_DATE.isoformat()
    summary = json.loads((run_dir / "run.json").read_text())
    not_started = set(summary.get("not_started", []))
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    return {
        "jobs": jobs,
        "rate_per_minute": rate,
        "grace_s": GRACE_S,
        "signal_after_first_call_s": stop_after,
        "startup_s": rounded(first - started, 2),
        "stop_s": rounded(stopped_s, 2),
        "exit_code": process.returncode,
        "records_after_signal": len(records) - before,
        "jobs_run": summary["invocation"]["jobs_run"],
        "not_started": len(not_started),
        "files_of_jobs_not_started": sum(
            1 for p in files if p.name.split(".", 1)[0] in not_started
        ),
        "files": len(files),
        "last_line_chars": len(last),
    }


def run(
    work: Path, *, counts: tuple[int, int], stop_jobs: int, stop_after: float, seed: int
) -> dict[str, Any]:
    folder = work / "scale"
    small, large = counts
    sizes = {f"mem{n}-{i:04d}.example": PAGE_SIZE for n in counts for i in range(n)} | {
        f"stop-{i:04d}.example": PAGE_SIZE for i in range(stop_jobs)
    }
    figures: dict[str, Any] = {"page_size": PAGE_SIZE, "memory": {}}
    with emulator_process(
        folder / "emulator-calls.jsonl",
        seed=seed,
        sizes=sizes,
        rate_per_minute=10_000_000,
        max_concurrent=30,
    ) as emulator:
        for n in counts:
            figures["memory"][str(n)] = _memory(emulator, folder / "memory", n)
    # The stop has an emulator of its own: its call log starts empty.
    with emulator_process(
        folder / "stop" / "emulator-calls.jsonl",
        seed=seed,
        sizes=sizes,
        rate_per_minute=10_000_000,
        max_concurrent=30,
    ) as emulator:
        figures["stop"] = _stop(emulator, folder / "stop", stop_jobs, stop_after, rate=1200)
    runs = figures["memory"]
    added = (runs[str(large)]["peak_rss_mb"] - runs[str(small)]["peak_rss_mb"]) * 1024
    figures["marginal_kb_per_job"] = rounded(added / (large - small), 2)
    return figures
