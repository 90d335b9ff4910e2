"""The money: ``--budget-usd`` caps what the API bills for a night, whatever happens to the run.

The emulator's call log is the bill: every call it answered with its cost, including
answers it cut short or dropped after billing them. The CLI tests run the command as a
subprocess (re-runs the same night, ``--fresh``, kill -9); the lost-answer test runs the
real ``run_batch`` in-process against the emulator over HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.emulator import EmulatorSettings, FaultSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.pacing import price
from intersect_batch.settings import Limits, RetryPolicy
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    fast_settings,
    manifest,
    run,
    served_items,
    write_jobs,
)

SIZES = {f"s{n}.example": 1000 for n in range(4)}
JOBS: list[dict[str, Any]] = [
    {"id": f"j{n}", "targets": [f"s{n}.example", "b.example"], "page_size": 100} for n in range(4)
]
#: One page of 100 items at the documented price: the worst case of every call here.
PAGE_USD = price(1, 100)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path, SIZES, "--latency-median", "0.03") as process:
        yield process


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env={**os.environ, **DEMO_ENV}, capture_output=True, text=True, timeout=60
    )


def _bill(calls: list[dict[str, Any]]) -> float:
    return round(sum(float(call["cost"]) for call in calls), 8)


def _summary(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / RUN_DATE.isoformat() / "run.json").read_text())
    return result


@pytest.mark.slow
def test_the_budget_holds_for_the_night_across_reruns_and_fresh(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    cap = 0.5

    def command(*extra: str) -> list[str]:
        return cli_run(
            configs, out, emulator, "--budget-usd", str(cap), "--concurrency", "4",
            "--rate-per-minute", "60000", "--log-format", "json", *extra,
        )  # fmt: skip

    # One job alone: it completes under the cap (10 pages, 0.23 USD).
    first = _run(command("--job", "j0"))
    assert first.returncode == 0, first.stderr[-2000:]
    spent_first = _bill(emulator.calls())
    assert spent_first == pytest.approx(10 * 0.02 + 1000 * 0.00003)
    # --fresh starts the night's jobs over, not its spending: the rest of the cap only.
    fresh = _run(command("--fresh"))
    after_fresh = emulator.calls()
    assert fresh.returncode == 1, fresh.stderr[-2000:]
    assert _bill(after_fresh) <= cap
    assert _bill(after_fresh) > cap - 2 * PAGE_USD, "the cap was not what stopped it"
    assert fresh.stdout.splitlines()[-1].startswith("attention:")
    assert "budget" in fresh.stdout.splitlines()[-1]
    summary = _summary(out)
    assert summary["night"]["cost_usd"] == pytest.approx(_bill(after_fresh))
    assert summary["invocation"]["cost_usd"] == pytest.approx(_bill(after_fresh) - spent_first)
    assert summary["night"]["invocations"] == 2
    # The same command again the same night: nothing is left to spend.
    again = _run(command())
    assert again.returncode == 1, again.stderr[-2000:]
    assert emulator.calls() == after_fresh
    summary = _summary(out)
    assert summary["night"]["cost_usd"] == pytest.approx(_bill(after_fresh))
    assert summary["night"]["calls"] == len(after_fresh)
    assert summary["invocation"]["calls"] == 0
    assert summary["stop_reason"].startswith("budget")


@pytest.mark.slow
def test_kill_9_of_a_capped_run_cannot_make_the_night_overspend(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    cap = 0.4
    command = cli_run(
        configs, out, emulator, "--budget-usd", str(cap), "--concurrency", "6",
        "--rate-per-minute", "60000", "--log-format", "json",
    )  # fmt: skip
    process = subprocess.Popen(
        command,
        env={**os.environ, **DEMO_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(emulator.calls()) < 8:
        assert process.poll() is None, "the run ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    time.sleep(0.3)  # let the calls in flight at the kill reach the server's log
    killed = emulator.calls()
    # What the killed run may have spent was booked in the ledger before it was sent.
    ledger = json.loads((out / RUN_DATE.isoformat() / ".ledger.json").read_text())
    assert max(ledger["spent_usd"], ledger["booked_usd"]) >= _bill(killed) - 1e-9

    again = _run(command)
    assert again.returncode == 1, again.stderr[-2000:]
    night = emulator.calls()
    assert _bill(night) <= cap
    summary = _summary(out)
    assert summary["night"]["invocations"] == 2
    assert summary["stop_reason"].startswith("budget")
    # No page the API answered in full is paid twice, beyond those in flight at the kill.
    answered = [(json.dumps(c["targets"], sort_keys=True), c["offset"]) for c in night]
    assert len(answered) - len(set(answered)) <= 6 + 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(FaultSettings(truncated_body=0.3), id="truncated"),
        pytest.param(FaultSettings(drop_connection=0.3), id="dropped"),
        pytest.param(FaultSettings(truncated_body=0.15, drop_connection=0.15), id="both"),
    ],
)
async def test_answers_billed_and_lost_count_against_the_budget(
    tmp_path: Path, faults: FaultSettings
) -> None:
    configs = tmp_path / "configs"
    jobs = [
        {"id": f"j{n}", "targets": [f"s{n}.example", "b.example"], "page_size": 20}
        for n in range(6)
    ]
    write_jobs(configs, "jobs.yaml", jobs)
    # 60 pages of 20 items: 1.24 USD in all, over the cap.
    sizes = {f"s{n}.example": 200 for n in range(6)}
    cap = 1.0
    retry = RetryPolicy(attempts=12, base=0.001, cap=0.01, slowdown=0.01)
    limits = Limits(rate_per_minute=60_000, concurrency=6)
    capped = fast_settings(tmp_path / "out", budget_usd=cap, retry=retry, limits=limits)
    async with running_emulator(EmulatorSettings(seed=1, sizes=sizes, faults=faults)) as emu:
        outcome = await run(configs, emu, capped)
        calls = emu.calls()
        lost = [c for c in calls if c.fault in ("truncated_body", "drop_connection")]
        # A later night without a cap: what the lost answers held is fetched again.
        uncapped = fast_settings(tmp_path / "out", retry=retry, limits=limits)
        finished = await run(configs, emu, uncapped)
    # The same data served without faults, fetched apart from the crawler.
    async with running_emulator(EmulatorSettings(seed=1, sizes=sizes)) as clean:
        served = {
            str(job["id"]): (await served_items(clean, {"targets": _targets(job)}))[1]
            for job in jobs
        }
    assert outcome.exit_code == ExitCode.ATTENTION
    assert len(lost) >= 5 and all(c.cost > 0 for c in lost), "the emulator bills lost answers"
    bill = sum(c.cost for c in calls)
    assert bill <= cap + 1e-9
    assert bill > cap - 2 * price(1, 20), "the cap was not what stopped it"
    assert outcome.summary is not None and outcome.summary.stop_reason is not None
    assert outcome.summary.stop_reason.startswith("budget")

    assert finished.exit_code == ExitCode.OK, finished.message
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    for job_id, items in served.items():
        lines = (run_dir / f"{job_id}.jsonl").read_bytes().splitlines()
        assert [json.loads(line) for line in lines] == items
        assert manifest(run_dir, job_id)["status"] == "complete"


def _targets(job: dict[str, Any]) -> dict[str, str]:
    return {str(n): t for n, t in enumerate(job["targets"], start=1)}
