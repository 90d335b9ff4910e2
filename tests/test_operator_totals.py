"""run.json's night and invocation blocks against what the emulator served.

One night in three invocations: a run stopped by Ctrl-C (one job failing on its first
call), a ``--job`` re-run of one job, and a plain re-run that resumes the partial job
and retries the failed one. After each, run.json must agree with the emulator's own
call log: the night with every call it served for the date, the invocation with the
calls it served since the command started.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from intersect_batch import cli
from intersect_batch.exitcode import ExitCode
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    cli_run,
    emulator_process,
    write_jobs,
)

pytestmark = pytest.mark.slow

SIZES = {"alpha.example": 1500, "delta.example": 800, "gamma.example": 300}
JOBS: list[dict[str, Any]] = [
    {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "delta", "targets": ["delta.example", "b.example"], "page_size": 100},
    {"id": "gamma", "targets": ["gamma.example", "b.example"], "page_size": 100},
]
RATE = 600


@dataclass
class Invocation:
    """One command of the night: its exit status, its last line, run.json, what was served."""

    exit_code: int
    last_line: str
    summary: dict[str, Any]
    served: list[dict[str, Any]]
    night_served: list[dict[str, Any]]


def _cost(calls: list[dict[str, Any]]) -> float:
    return round(sum(float(call["cost"]) for call in calls), 6)


def _items(calls: list[dict[str, Any]]) -> int:
    return sum(call["items"] for call in calls if call["status_code"] == 20000)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Invocation]]:
    tmp = tmp_path_factory.mktemp("night")
    configs = tmp / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    # gamma fails on its first call (40501, the API's "invalid field"), the first time only.
    failing = ("--fault-at", "0=40501:1@gamma.example")
    with (
        emulator_process(tmp, SIZES, "--latency-median", "0.02", *failing) as emulator,
        pytest.MonkeyPatch.context() as patch,
    ):
        for name, value in DEMO_ENV.items():
            patch.setenv(name, value)
        command = cli_run(configs, tmp / "out", emulator, "--rate-per-minute", str(RATE))
        run_json = tmp / "out" / RUN_DATE.isoformat() / "run.json"
        invocations = []

        def record(exit_code: int, stdout: str, start: int) -> None:
            summary = json.loads(run_json.read_text())
            # The emulator logs a call once its answer is sent: the last may come late.
            calls = emulator.settled()
            invocations.append(
                Invocation(
                    exit_code=exit_code,
                    last_line=stdout.strip().splitlines()[-1],
                    summary=summary,
                    served=calls[start:],
                    night_served=calls,
                )
            )

        # 1. Ctrl-C once 8 calls are served: the calls in flight are answered and saved.
        process = subprocess.Popen(
            command, env={**os.environ, **DEMO_ENV}, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        while len(emulator.calls()) < 8:
            assert process.poll() is None
            time.sleep(0.005)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
        record(process.returncode, stdout, 0)

        # 2. and 3. In this process (no signal to send): one job, then the rest.
        for extra in (["--job", "alpha"], []):
            start = len(emulator.calls())
            stdout_text, stderr_text = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout_text), contextlib.redirect_stderr(stderr_text):
                status = cli.main([*command[3:], "--log-format", "json", *extra])
            record(status, stdout_text.getvalue(), start)
        yield invocations


def test_the_night_and_the_invocation_add_up_to_what_was_served(
    night: list[Invocation],
) -> None:
    stopped, one_job, rest = night
    assert [i.exit_code for i in night] == [ExitCode.SIGINT, ExitCode.OK, ExitCode.OK]
    for number, invocation in enumerate(night, start=1):
        summary = invocation.summary
        totals, this = summary["night"], summary["invocation"]
        assert totals["invocations"] == number
        assert totals["calls"] == len(invocation.night_served), number
        assert totals["cost_usd"] == _cost(invocation.night_served), number
        assert this["calls"] == len(invocation.served), number
        assert this["cost_usd"] == _cost(invocation.served), number
        # Every job of the folder is listed, whichever invocation ran it.
        assert [job["job_id"] for job in summary["jobs"]] == ["alpha", "delta", "gamma"]
        # The real pace: its calls over its own duration (not over "a minute at least"),
        # run.json's duration being that duration to the millisecond.
        slowest = this["calls"] * 60 / (this["duration_s"] + 0.0005)
        fastest = this["calls"] * 60 / (this["duration_s"] - 0.0005)
        assert slowest - 0.005 <= this["calls_per_minute"] <= fastest + 0.005, number
        # The last line says both, labelled.
        assert "night 2026-11-29: " in invocation.last_line
        assert f"{totals['calls']} calls, {totals['cost_usd']:.4f} USD over {number} " in (
            invocation.last_line
        )
        assert "this invocation: " in invocation.last_line
        calls = "1 call" if this["calls"] == 1 else f"{this['calls']} calls"
        assert f"{calls}, {this['cost_usd']:.4f} USD in " in invocation.last_line

    statuses = {job["job_id"]: job["status"] for job in stopped.summary["jobs"]}
    # Jobs fan out in config order: at the Ctrl-C alpha's pages were still going out,
    # and delta's had not begun.
    assert statuses == {"alpha": "partial", "delta": "partial", "gamma": "failed"}
    assert "needs attention: gamma failed (" in stopped.last_line

    # --job alpha: the run date's other jobs stay listed, as an earlier invocation left them.
    lines = {job["job_id"]: job for job in one_job.summary["jobs"]}
    assert lines["alpha"]["status"] == "complete" and lines["alpha"]["this_run"]
    assert lines["delta"]["status"] == "partial" and not lines["delta"]["this_run"]
    assert lines["gamma"]["status"] == "failed" and not lines["gamma"]["this_run"]
    assert {c["targets"]["1"] for c in one_job.served} == {"alpha.example"}
    assert one_job.last_line.startswith("ok: night 2026-11-29: 1 complete, 1 failed, 1 partial;")
    assert "this invocation: 1 job run" in one_job.last_line
    assert "not run now, needs attention: gamma failed (" in one_job.last_line

    # The rest: delta resumed, gamma retried; alpha already complete.
    assert {job["status"] for job in rest.summary["jobs"]} == {"complete"}
    assert rest.summary["invocation"]["jobs_run"] == 2
    assert "this invocation: 2 jobs run (1 already complete)" in rest.last_line
    served = {c["targets"]["1"] for c in rest.served}
    assert served == {"delta.example", "gamma.example"}


def test_the_invocations_items_are_what_it_fetched(night: list[Invocation]) -> None:
    for invocation in night:
        assert invocation.summary["invocation"]["items"] == _items(invocation.served)


def test_the_jobs_calls_add_up_to_the_night(night: list[Invocation]) -> None:
    for invocation in night:
        jobs, totals = invocation.summary["jobs"], invocation.summary["night"]
        assert sum(job["calls"] for job in jobs) == totals["calls"]
        assert round(sum(job["cost_usd"] for job in jobs), 6) == totals["cost_usd"]
