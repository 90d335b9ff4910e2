"""What the person running the tool sees: cron mail, subsets, retention.

At a terminal: tests/test_operator_terminal.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.config import job_file_schema
from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import MARKER_NAME as MARKER
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    fast_settings,
    run,
    write_jobs,
)

SIZES = {"alpha.example": 900, "delta.example": 400, "gamma.example": 50}
JOBS: list[dict[str, Any]] = [
    {"id": "alpha-gap", "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "delta-gap", "targets": ["delta.example", "b.example"], "page_size": 100},
    {"id": "gamma", "targets": ["gamma.example", "b.example"]},
]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path, SIZES, "--latency-median", "0.05") as process:
        yield process


def _command(configs: Path, out: Path, emulator: EmulatorProcess, *extra: str) -> list[str]:
    return cli_run(configs, out, emulator, "--concurrency", "2", *extra)


@pytest.mark.slow
def test_under_cron_output_is_plain_and_logs_are_json_lines(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    result = subprocess.run(
        _command(configs, tmp_path / "out", emulator, "--progress-interval", "0.1"),
        env={**os.environ, **DEMO_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == ExitCode.OK, result.stderr[-3000:]
    assert "\x1b" not in result.stdout + result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    messages = [record["message"] for record in records]
    assert "progress" in messages
    progress = next(record for record in records if record["message"] == "progress")
    assert {"jobs_done", "pages", "items", "cost_usd", "calls_per_minute", "eta_s"} <= set(progress)
    assert {"invocation_pages", "invocation_items", "invocation_calls"} <= set(progress)
    finished = [record for record in records if record["message"] == "job complete"]
    assert sorted(record["job"] for record in finished) == sorted(str(j["id"]) for j in JOBS)
    assert all(record["level"] in {"debug", "info", "warning", "error"} for record in records)
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("ok: night 2026-11-29: 3 complete; 1350 items")
    assert "this invocation: 3 jobs run, 1350 items" in lines[-1]
    assert str(tmp_path / "out" / RUN_DATE.isoformat()) in lines[-1]
    # The closing record tells a finished run from a crashed one, with the same line.
    assert records[-1]["message"] == "run finished"
    assert records[-1]["exit_code"] == 0 and records[-1]["line"] == lines[-1]
    assert records[-1]["night"]["items"] == 1350


@pytest.mark.slow
def test_choosing_jobs_and_listing_them(tmp_path: Path, emulator: EmulatorProcess) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    env = {**os.environ, **DEMO_ENV}
    chosen = subprocess.run(
        _command(configs, out, emulator, "--job", "gamma", "--match", "alpha-*"),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert chosen.returncode == ExitCode.OK, chosen.stderr[-2000:]
    run_dir = out / RUN_DATE.isoformat()
    assert sorted(p.name for p in run_dir.glob("*.jsonl")) == ["alpha-gap.jsonl", "gamma.jsonl"]
    targets = {json.dumps(call["targets"], sort_keys=True) for call in emulator.calls()}
    assert len(targets) == 2

    typo = subprocess.run(
        _command(configs, out, emulator, "--job", "gama"),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert typo.returncode == 2
    assert "--job names no valid job: gama" in typo.stderr

    listing = subprocess.run(
        [sys.executable, "-m", "intersect_batch", "list", str(configs), "--out", str(out),
         "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0
    rows = {row["id"]: row for row in map(json.loads, listing.stdout.splitlines())}
    assert rows["alpha-gap"]["estimated_pages"] == 9
    assert rows["alpha-gap"]["last_total_count"] == 900
    assert rows["delta-gap"]["estimated_pages"] is None  # never run: unknown
    assert rows["gamma"]["targets"] == ["gamma.example", "b.example"]
    assert rows["gamma"]["file"].endswith("jobs.yaml:12")


def test_schema_command_prints_the_job_file_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "intersect_batch", "schema"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert json.loads(result.stdout) == job_file_schema()


@pytest.mark.anyio
async def test_keep_days_removes_only_old_folders_this_tool_made(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS[2:])
    out = tmp_path / "out"

    def folder(days_ago: int, *, ours: bool) -> Path:
        path = out / (RUN_DATE - dt.timedelta(days=days_ago)).isoformat()
        path.mkdir(parents=True)
        (path / "run.json").write_text("{}")
        if ours:
            (path / MARKER).write_text("")
        return path

    old_ours, old_theirs = folder(9, ours=True), folder(10, ours=False)
    recent = folder(7, ours=True)
    unrelated = out / "notes"
    unrelated.mkdir()
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        outcome = await run(configs, emu, fast_settings(out), keep_days=7)
    assert outcome.exit_code == ExitCode.OK
    assert not old_ours.exists()
    assert old_theirs.exists() and recent.exists() and unrelated.exists()
    assert (out / RUN_DATE.isoformat() / "gamma.jsonl").exists()


@pytest.mark.anyio
async def test_keep_days_removes_nothing_after_a_run_that_needs_attention(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS[2:])
    out = tmp_path / "out"
    old = out / (RUN_DATE - dt.timedelta(days=30)).isoformat()
    old.mkdir(parents=True)
    (old / MARKER).write_text("")
    async with running_emulator(EmulatorSettings(sizes=SIZES, balance_usd=0.0)) as emu:
        outcome = await run(configs, emu, fast_settings(out), keep_days=7)
    assert outcome.exit_code != ExitCode.OK
    assert old.exists()
