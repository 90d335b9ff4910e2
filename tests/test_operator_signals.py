"""Signals at every stage of a run, and what a run says when a job fails at once.

The CLI runs as a subprocess, as cron runs it: real signals, real exit statuses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.exitcode import ExitCode
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    write_jobs,
)

pytestmark = pytest.mark.slow

SIZES = {"alpha.example": 400, "slow.example": 3000, "broken.example": 500}
JOBS: list[dict[str, Any]] = [
    {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100},
]

# The real CLI, with one library function wrapped so that the process signals itself
# while that stage runs: loading the configs, taking the lock, writing the report.
_AT_STAGE = """
import os, sys
from intersect_batch import cli, runner

stage, signum = sys.argv[1], int(sys.argv[2])
name = {"loading": "load_jobs", "locking": "output_lock", "report": "write_report"}[stage]
original = getattr(runner, name)

def signalled(*args, **kwargs):
    os.kill(os.getpid(), signum)
    return original(*args, **kwargs)

setattr(runner, name, signalled)
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    folder = tmp_path_factory.mktemp("emulator")
    broken = ("--fault-at", "0=40501@broken.example")
    with emulator_process(folder, SIZES, "--latency-median", "0.02", *broken) as process:
        yield process


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize(
    ("stage", "signum"),
    [("loading", signal.SIGINT), ("locking", signal.SIGTERM), ("report", signal.SIGTERM)],
)
def test_a_signal_at_any_stage_ends_the_run_cleanly(
    tmp_path: Path, emulator: EmulatorProcess, stage: str, signum: signal.Signals
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out, log_file, metrics = tmp_path / "out", tmp_path / "run.log", tmp_path / "run.prom"
    command = cli_run(
        configs, out, emulator, "--report", "--log-file", str(log_file),
        "--metrics-file", str(metrics),
    )  # fmt: skip
    before = len(emulator.calls())
    result = subprocess.run(
        [sys.executable, "-c", _AT_STAGE, stage, str(int(signum)), *command[3:]],
        env={**os.environ, **DEMO_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    code = 128 + signum
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    name = signal.Signals(signum).name
    assert f"attention: {name}: progress is saved" in result.stdout.splitlines()[-1]
    for records in (_records(result.stderr), _records(log_file.read_text())):
        assert records[-1]["message"] == "run finished"
        assert records[-1]["exit_code"] == code
    assert f"intersect_batch_last_run_exit_code {code}.0" in metrics.read_text()
    run_json = out / RUN_DATE.isoformat() / "run.json"
    if stage == "report":
        # The crawl was done and run.json written: it now says how the run ended.
        summary = json.loads(run_json.read_text())
        assert summary["exit_code"] == code and summary["needs_attention"]
        assert summary["stop_reason"] == f"interrupted by {name} after the crawl"
        assert summary["jobs"][0]["status"] == "complete"
        assert str(run_json) in result.stdout
    else:
        assert not run_json.exists()
        assert "run.json was not written" in result.stdout
        assert len(emulator.calls()) == before  # stopped before any call


def test_a_job_that_fails_at_once_is_logged_at_once_and_named_at_the_end(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    jobs = [
        {"id": "slow", "targets": ["slow.example", "b.example"], "page_size": 100},
        {"id": "broken", "targets": ["broken.example", "b.example"], "page_size": 100},
    ]
    write_jobs(configs, "jobs.yaml", jobs)
    bad = configs / "bad.yaml"
    bad.write_text("jobs:\n  - id: typo\n    targets: [a.example]\n    limit: 10\n")
    log_file = tmp_path / "run.log"
    process = subprocess.Popen(
        # 30 pages at 300 calls a minute: six seconds, unless stopped.
        cli_run(configs, tmp_path / "out", emulator, "--rate-per-minute", "300",
                "--log-file", str(log_file)),
        env={**os.environ, **DEMO_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    failed: list[dict[str, Any]] = []
    while not failed:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        failed = [r for r in map(json.loads, lines) if r["message"].startswith("job failed")]
    # Logged while the run goes on, not at its end.
    assert process.poll() is None
    assert failed[0]["job"] == "broken" and "40501" in failed[0]["message"]
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.SIGTERM
    records = _records(stderr)
    # Once when it failed; its figures once more when its manifest was written.
    failures = [r for r in records if r["message"].startswith("job failed")]
    assert [r["job"] for r in failures] == ["broken"] and "items" not in failures[0]
    [ended] = [r for r in records if r["message"] == "job ended: failed"]
    assert ended["job"] == "broken" and ended["items"] == 0
    assert records[-1]["message"] == "run finished" and records[-1]["exit_code"] == 143
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("attention: night 2026-11-29: 1 failed, 1 invalid, 1 partial;")
    assert "stopped: interrupted by SIGTERM" in last
    # The worst first, each with why; the partial job was stopped by the signal.
    named = last[last.index("needs attention: ") :]
    assert named.startswith("needs attention: typo invalid (")
    assert "broken failed (" in named and "40501" in named and "slow partial;" in named
    summary = json.loads((tmp_path / "out" / RUN_DATE.isoformat() / "run.json").read_text())
    typo = next(job for job in summary["jobs"] if job["job_id"] == "typo")
    assert typo["status"] == "invalid"
    assert typo["config_file"] == str(bad) and typo["config_line"] == 4
    assert "unknown field 'limit'" in typo["reason"]
    broken = next(job for job in summary["jobs"] if job["job_id"] == "broken")
    assert broken["status"] == "failed" and "40501" in broken["reason"]
