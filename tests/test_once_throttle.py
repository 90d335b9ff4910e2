"""Throttling is the run's pause, never a failure of the page; past its patience the run stops.

The emulator refuses every call like the real per-minute limit (40202) for a window of
its clock. Its clock here is the number of calls it has seen (one second a call), so the
window closes after an exact number of refusals, and no test waits for real time.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.emulator import EmulatorSettings, FaultSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.settings import Limits, RetryPolicy, RunSettings
from tests.support import RUN_DATE, fast_settings, manifest, run, served_items, write_jobs

pytestmark = pytest.mark.anyio

SIZES = {"alpha.example": 400, "gamma.example": 300}
JOBS: list[dict[str, Any]] = [
    {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "gamma", "targets": ["gamma.example", "b.example"], "page_size": 100},
]


class CallClock:
    """A clock that reads one second later at every reading: the emulator reads it once a call."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _settings(tmp_path: Path, *, patience: float = RetryPolicy().patience) -> RunSettings:
    """Two attempts a page, a pause of 10 ms a refusal, four calls in flight."""
    return fast_settings(
        tmp_path / "out",
        limits=Limits(rate_per_minute=60_000, concurrency=4),
        retry=RetryPolicy(attempts=2, base=0.001, cap=0.01, slowdown=0.01, patience=patience),
    )


async def test_a_throttled_job_with_two_attempts_still_completes(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    # The first 8 calls the emulator sees are refused, whatever they ask.
    throttle = FaultSettings(throttle_for=8.0)
    emulator = EmulatorSettings(sizes=SIZES, faults=throttle, clock=CallClock())
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, _settings(tmp_path))
        calls = emu.calls()
        served = {
            job["id"]: (await served_items(emu, {"targets": _targets(job)}))[1] for job in JOBS
        }

    assert outcome.exit_code == ExitCode.OK, outcome.message
    refused = [c for c in calls if c.fault == "throttle"]
    assert len(refused) == 8 and {c.status_code for c in refused} == {40202}
    assert {c.cost for c in refused} == {0.0}
    # A page was refused more often than its two attempts: the refusals spent none.
    per_page = Counter((repr(c.targets), c.offset) for c in refused)
    assert max(per_page.values()) > 2
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    for job in JOBS:
        job_id = str(job["id"])
        lines = (run_dir / f"{job_id}.jsonl").read_bytes().splitlines()
        assert [json.loads(line) for line in lines] == served[job_id]
        assert manifest(run_dir, job_id)["status"] == "complete"
    # Each refusal is one call sent again; each page was served exactly once.
    assert sum(manifest(run_dir, str(job["id"]))["retries"] for job in JOBS) == 8
    answered = Counter((repr(c.targets), c.offset) for c in calls if c.fault is None)
    assert len(answered) == 4 + 3 and set(answered.values()) == {1}
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["invocation"]["throttled_s"] > 0
    assert summary["night"]["cost_usd"] == pytest.approx(sum(c.cost for c in calls))


async def test_a_run_throttled_past_its_patience_ends_partial_saying_what_to_lower(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    emulator = EmulatorSettings(
        sizes=SIZES, faults=FaultSettings(throttle_for=10_000.0), clock=CallClock()
    )
    settings = _settings(tmp_path, patience=0.05)
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, settings)
        calls = emu.calls()

    assert outcome.exit_code == ExitCode.ATTENTION
    advice = "lower --rate-per-minute (now 60000) or --concurrency (now 4)"
    last = outcome.message.splitlines()[-1]
    assert last.startswith("attention: night 2026-11-29: 2 partial;")
    assert "stopped: the API refused calls for rate or concurrency" in last
    summary = json.loads((tmp_path / "out" / RUN_DATE.isoformat() / "run.json").read_text())
    assert advice in summary["stop_reason"]
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    for job in JOBS:
        got = manifest(run_dir, str(job["id"]))
        assert got["status"] == "partial"
        assert advice in got["reason"] and "patience" in got["reason"]
        assert not (run_dir / f"{job['id']}.jsonl").exists()
    summary = json.loads((run_dir / "run.json").read_text())
    assert advice in summary["stop_reason"]
    assert summary["invocation"]["throttled_s"] >= 0.05
    # Refusals cost nothing, and the run stopped after a handful, not a storm of them:
    # at most the calls in flight per pause, for patience / slowdown pauses and one more.
    assert {c.fault for c in calls} == {"throttle"} and sum(c.cost for c in calls) == 0
    assert len(calls) <= 4 * (5 + 1)


def _targets(job: dict[str, Any]) -> dict[str, str]:
    return {str(n): t for n, t in enumerate(job["targets"], start=1)}
