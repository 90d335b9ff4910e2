"""Crash safety, as a person running the CLI would meet it: kill -9, SIGTERM, a full disk.

These tests run the real command as a subprocess against the emulator (also a
subprocess), so they wait on real processes; each is bounded to a few seconds.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intersect_batch.settings import RunSettings
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    write_jobs,
)

pytestmark = pytest.mark.slow

SIZES = {"alpha.example": 1500, "delta.example": 800, "gamma.example": 1200}
JOBS = [
    {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "delta", "targets": ["delta.example", "b.example"], "page_size": 100},
    {"id": "gamma", "targets": ["gamma.example", "b.example"], "page_size": 100},
]
TOTAL_CALLS = 15 + 8 + 12
CONCURRENCY = 4


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path, SIZES, "--latency-median", "0.03") as process:
        yield process


def _command(configs: Path, out: Path, emulator: EmulatorProcess, *extra: str) -> list[str]:
    return cli_run(
        configs, out, emulator, "--concurrency", str(CONCURRENCY),
        "--rate-per-minute", "60000", "--log-format", "json", *extra,
    )  # fmt: skip


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        command,
        env={**os.environ, **DEMO_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def _interrupt_after(
    command: list[str], emulator: EmulatorProcess, calls: int, signum: int
) -> tuple[int, int]:
    """Start the run, send ``signum`` once the server has seen ``calls`` calls.

    Returns (the exit status, how many calls the server had answered at the signal).
    """
    before = len(emulator.calls())
    process = subprocess.Popen(
        command,
        env={**os.environ, **DEMO_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(emulator.calls()) - before < calls:
        assert process.poll() is None, "the run ended before the signal"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signum)
    answered = len(emulator.calls()) - before
    return process.wait(timeout=30), answered


def _outputs(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.glob("*.jsonl"))}


def _pages(calls: list[dict[str, object]]) -> list[tuple[str, object]]:
    return [
        (json.dumps(c["targets"], sort_keys=True), c["offset"])
        for c in calls
        if c["status_code"] == 20000
    ]


def test_kill_9_at_seeded_points_then_resume_gives_identical_files(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    reference = _run(_command(configs, tmp_path / "reference", emulator))
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = _outputs(tmp_path / "reference" / RUN_DATE.isoformat())
    assert len(expected) == 3

    seed = 20261129
    points = sorted(random.Random(seed).sample(range(2, TOTAL_CALLS - 2), 3))
    for point in points:
        out = tmp_path / f"killed-at-{point}"
        start = len(emulator.calls())
        status, _ = _interrupt_after(
            _command(configs, out, emulator), emulator, point, signal.SIGKILL
        )
        assert status == -signal.SIGKILL
        killed = emulator.settled()[start:]  # with the calls in flight at the kill
        resumed_from = len(emulator.calls())
        again = _run(_command(configs, out, emulator))
        assert again.returncode == 0, (seed, point, again.stderr[-2000:])
        after = emulator.calls()[resumed_from:]
        run_dir = out / RUN_DATE.isoformat()
        assert _outputs(run_dir) == expected, f"seed {seed}, kill after {point} calls"
        refetched = set(_pages(killed)) & set(_pages(after))
        # Paid pages not yet durable at the kill: the calls in flight and the pages
        # decoded and waiting for the writer (RunSettings.pages_in_memory).
        bound = CONCURRENCY + RunSettings().pages_in_memory
        assert len(refetched) <= bound, (seed, point, refetched)
        state = run_dir / ".state"
        assert not state.exists(), sorted(str(p) for p in state.rglob("*"))


def test_sigterm_stops_cleanly_and_the_next_run_finishes(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    status, _ = _interrupt_after(_command(configs, out, emulator), emulator, 10, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM
    run_dir = out / RUN_DATE.isoformat()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["exit_code"] == 143
    assert "SIGTERM" in summary["stop_reason"]
    partial = [job for job in summary["jobs"] if job["status"] == "partial"]
    assert partial, summary["jobs"]
    again = _run(_command(configs, out, emulator))
    assert again.returncode == 0, again.stderr[-2000:]
    reference = _run(_command(configs, tmp_path / "reference", emulator))
    assert reference.returncode == 0
    assert _outputs(run_dir) == _outputs(tmp_path / "reference" / RUN_DATE.isoformat())


def _limit_file_size() -> None:
    # A file may grow to 64 KiB: beyond that, writes fail as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def test_a_full_disk_fails_the_job_and_keeps_the_earlier_complete_file(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS[:1])
    out = tmp_path / "out"
    first = _run(_command(configs, out, emulator))
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = out / RUN_DATE.isoformat()
    complete = (run_dir / "alpha.jsonl").read_bytes()
    assert len(complete) > 64 * 1024

    write_jobs(configs, "jobs.yaml", [dict(JOBS[0], tag="changed")])
    second = _run(_command(configs, out, emulator), preexec_fn=_limit_file_size)
    assert second.returncode == 1, second.stderr[-2000:]
    manifest = json.loads((run_dir / "alpha.manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert "File too large" in manifest["reason"]
    assert manifest["errors"][0]["kind"] == "output"
    assert (run_dir / "alpha.jsonl").read_bytes() == complete
    assert "attention" in second.stdout
