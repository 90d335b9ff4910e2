"""Command lines no other test runs: the dry run, the report, retries exhausted, a
resume after a crash between a job's result moving into place and its manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from intersect_batch.emulator import EmulatorSettings, FaultSettings, PinnedFault, running_emulator
from intersect_batch.estimate import dry_run
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import read_ledger
from intersect_batch.lock import output_lock
from intersect_batch.providers import resolve_provider
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    fast_settings,
    manifest,
    read_lines,
    run,
    served_items,
    write_jobs,
)

JOBS = [
    {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "beta", "targets": ["beta.example", "b.example"], "page_size": 100},
]
SIZES = {"alpha.example": 250, "beta.example": 40}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path, SIZES) as running:
        yield running


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **DEMO_ENV},
        check=False,
    )


def test_the_dry_run_tells_the_price_and_the_run_then_pays_it(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    blind = _cli(*cli_run(configs, out, emulator, "--dry-run", "--no-probe"))
    assert blind.returncode == 0, blind.stderr
    assert "the dry run spent nothing" in blind.stdout
    assert emulator.calls() == []
    probed = _cli(*cli_run(configs, out, emulator, "--dry-run", "--json"))
    assert probed.returncode == 0, probed.stderr
    figures = json.loads(probed.stdout.splitlines()[0])
    assert [job["calls"] for job in figures["jobs"]] == [3, 1]
    assert figures["probe_calls"] == 2 and len(emulator.calls()) == 2
    before = len(emulator.calls())
    real = _cli(*cli_run(configs, out, emulator))
    assert real.returncode == 0, real.stderr
    paid = emulator.calls()[before:]
    assert len(paid) == figures["calls"]
    assert sum(call["cost"] for call in paid) == pytest.approx(figures["cost_usd"])
    # The night's totals count the probes too: what the server saw, what it billed.
    night = json.loads((out / RUN_DATE.isoformat() / "run.json").read_text())["night"]
    assert night["calls"] == len(emulator.calls()) == figures["calls"] + 2
    assert night["cost_usd"] == pytest.approx(sum(call["cost"] for call in emulator.calls()))
    # Once the night is done, the dry run says there is nothing left to pay.
    again = _cli(*cli_run(configs, out, emulator, "--dry-run", "--no-probe", "--json"))
    assert json.loads(again.stdout.splitlines()[0])["cost_usd"] == 0


def test_a_dry_run_keeps_the_night_budget_and_the_run_counts_its_probes(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    third = {"id": "gamma", "targets": ["beta.example", "c.example"], "page_size": 100}
    write_jobs(configs, "jobs.yaml", [*JOBS, third])
    out = tmp_path / "out"
    # Each probe costs 0.02003 USD: two fit in 0.05, the third would not.
    dry = _cli(*cli_run(configs, out, emulator, "--dry-run", "--budget-usd", "0.05"))
    assert dry.returncode == 0, dry.stderr
    assert len(emulator.calls()) == 2
    lines = dry.stdout.splitlines()
    assert any(
        line.startswith("budget: a probe could cost 0.02003 USD and 0.04006 of 0.05 USD")
        and line.endswith("not probed: gamma")
        for line in lines
    ), lines
    assert (
        "the night's budget: 0.0401 of 0.05 USD spent, this dry run included; 0.0099 USD left"
        in lines
    )
    assert "the run needs more than is left: it would stop at the budget, jobs partial" in lines
    assert lines[-1] == (
        "the dry run spent 0.0401 USD on 2 probe calls (limit 1), counted in the night's spend"
    )
    gamma = next(line for line in lines if line.startswith("gamma "))
    assert gamma.split()[1] == "bounds"
    ledger = json.loads((out / RUN_DATE.isoformat() / ".ledger.json").read_text())
    assert ledger["spent_usd"] == pytest.approx(0.04006)
    assert ledger["calls"] == 2 and ledger["booked_usd"] == 0
    # The run that follows keeps the same night's cap: no call fits in what is left.
    real = _cli(*cli_run(configs, out, emulator, "--budget-usd", "0.05"))
    assert real.returncode == ExitCode.ATTENTION, real.stderr
    assert len(emulator.calls()) == 2
    assert sum(call["cost"] for call in emulator.calls()) <= 0.05
    summary = json.loads((out / RUN_DATE.isoformat() / "run.json").read_text())
    assert summary["night"]["spent_usd"] == pytest.approx(0.04006)
    # No job could start: run.json names them, with no line (nor file) of their own.
    assert summary["jobs"] == []
    assert summary["not_started"] == ["alpha", "beta", "gamma"]
    assert "3 jobs not started" in real.stdout.splitlines()[-1]


def test_a_probing_dry_run_waits_its_turn_behind_a_run(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    with output_lock(out):
        probing = _cli(*cli_run(configs, out, emulator, "--dry-run"))
        blind = _cli(*cli_run(configs, out, emulator, "--dry-run", "--no-probe"))
    # The probes would spend the night's money beside a run that counts it: not now.
    assert probing.returncode == ExitCode.LOCKED, probing.stderr
    assert f"another intersect-batch run (pid {os.getpid()}) is using {out}" in probing.stderr
    assert "Traceback" not in probing.stderr
    # A dry run that spends nothing needs no lock.
    assert blind.returncode == 0, blind.stderr
    assert emulator.calls() == []


def test_the_dry_run_against_nothing_spends_nothing(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    gone = EmulatorProcess.__new__(EmulatorProcess)
    gone.url = "http://127.0.0.1:9"  # discard: nothing listens
    result = _cli(*cli_run(configs, tmp_path / "out", gone, "--dry-run"))
    # The API could not be reached: the same status as a run that finds it so.
    assert result.returncode == ExitCode.ACCOUNT, result.stderr
    assert "the dry run spent nothing" in result.stdout
    assert "Traceback" not in result.stderr


def test_the_report_command_writes_the_report_of_a_run_folder(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    assert _cli(*cli_run(configs, out, emulator)).returncode == 0
    folder = RunFolder(out, RUN_DATE)
    made = _cli(sys.executable, "-m", "intersect_batch", "report", str(folder.path), "--top", "3")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"report: {folder.report}"
    assert "<html" in folder.report.read_text()
    assert folder.opportunities("alpha").is_file()
    missing = _cli(sys.executable, "-m", "intersect_batch", "report", str(out / "2001-01-01"))
    assert missing.returncode == ExitCode.USAGE
    assert "Traceback" not in missing.stderr


@pytest.mark.anyio
async def test_retries_exhausted_fail_the_job_with_its_last_error(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    faults = FaultSettings(pinned=(PinnedFault(offset=100, kind="http_500"),))
    emulated = EmulatorSettings(seed=3, sizes=SIZES, faults=faults)
    async with running_emulator(emulated) as emu:
        outcome = await run(configs, emu, fast_settings(tmp_path / "out"))
        calls = emu.calls()
    assert outcome.exit_code == ExitCode.ATTENTION
    folder = RunFolder(tmp_path / "out", RUN_DATE)
    alpha = manifest(folder.path, "alpha")
    assert alpha["status"] == "failed"
    assert alpha["reason"].startswith("gave up after 6 attempts: ")
    assert "offset 100" in alpha["reason"] and "[50000]" in alpha["reason"]
    assert sum(1 for c in calls if c.offset == 100) == 6
    assert not folder.result("alpha").exists()
    assert manifest(folder.path, "beta")["status"] == "complete"
    assert "alpha" in outcome.message or "1 failed" in outcome.message


@pytest.mark.anyio
async def test_a_crash_between_the_result_and_its_manifest_is_finished_by_the_next_run(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS[:1])
    folder = RunFolder(tmp_path / "out", RUN_DATE)
    async with running_emulator(EmulatorSettings(seed=3, sizes=SIZES)) as emu:
        first = await run(configs, emu, fast_settings(tmp_path / "out", max_calls=0))
        assert first.exit_code == ExitCode.OK
        served = len(emu.calls())
        checkpoint = folder.state / "alpha.checkpoint.json"
        # The crash: the result moved into place, its checkpoint said finished, and the
        # process died before the manifest was written and the progress removed.
        complete = json.loads(folder.manifest("alpha").read_text())
        folder.state.mkdir(exist_ok=True)
        checkpoint.write_text(
            json.dumps(
                {
                    "fingerprint": complete["fingerprint"],
                    "started_at": complete["started_at"],
                    "next_page": 3,
                    "part_bytes": folder.result("alpha").stat().st_size,
                    "items_written": complete["items_written"],
                    "items_received": complete["items_received"],
                    "finalized": True,
                    "counters": {"calls": 3, "retries": 0, "cost_usd": complete["cost_usd"]},
                }
            )
        )
        folder.manifest("alpha").unlink()
        again = await run(configs, emu, fast_settings(tmp_path / "out"))
        assert len(emu.calls()) == served  # nothing paid again
        total, items = await served_items(
            emu, {"targets": {"1": "alpha.example", "2": "b.example"}}
        )
    assert again.exit_code == ExitCode.OK, again.message
    assert manifest(folder.path, "alpha")["status"] == "complete"
    assert manifest(folder.path, "alpha")["calls"] == 3
    assert read_lines(folder.result("alpha")) == items and total == 250
    assert not folder.state.exists()


@pytest.mark.anyio
async def test_a_crash_after_the_manifest_leaves_no_progress_behind_the_next_run(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    folder = RunFolder(tmp_path / "out", RUN_DATE)
    async with running_emulator(EmulatorSettings(seed=3, sizes=SIZES)) as emu:
        first = await run(configs, emu, fast_settings(tmp_path / "out"))
        assert first.exit_code == ExitCode.OK
        result = folder.result("alpha").read_bytes()
        # The crash: alpha's manifest was written, and the process died while it removed
        # alpha's progress (its checkpoint went, its spool folder not yet).
        folder.spool("alpha").mkdir(parents=True)
        served = len(emu.calls())
        again = await run(configs, emu, fast_settings(tmp_path / "out"))
        assert len(emu.calls()) == served
    assert again.exit_code == ExitCode.OK, again.message
    assert folder.result("alpha").read_bytes() == result
    assert not folder.state.exists()


@pytest.mark.anyio
async def test_a_probe_whose_answer_was_lost_counts_at_its_worst_case(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    cut = PinnedFault(offset=0, kind="truncated_body", target="alpha.example")
    emulated = EmulatorSettings(seed=3, sizes=SIZES, faults=FaultSettings(pinned=(cut,)))
    settings = fast_settings(tmp_path / "out", budget_usd=1.0)
    async with running_emulator(emulated) as emu:
        provider = resolve_provider("dataforseo", emu.dataforseo_base)
        outcome = await dry_run(configs, provider=provider, environ=DEMO_ENV, settings=settings)
        calls = emu.calls()
    result = outcome.result
    alpha, beta = result.jobs
    assert alpha.source == "probe failed" and alpha.error is not None
    assert beta.source == "probe" and beta.total_count == 40
    # The server billed both; only beta's answer said so.
    assert len(calls) == 2 and sum(call.cost for call in calls) == pytest.approx(0.04006)
    assert result.probe_calls == 2
    assert result.probe_cost_usd == pytest.approx(0.04006)
    assert result.night_spent_usd == pytest.approx(0.04006)
    ledger = read_ledger(RunFolder(tmp_path / "out", RUN_DATE).ledger)
    assert ledger.spent_usd == pytest.approx(0.04006)
    assert ledger.cost_usd == pytest.approx(0.02003)
    assert (ledger.calls, ledger.invocations, ledger.booked_usd) == (2, 1, 0.0)


@pytest.mark.anyio
async def test_a_capped_dry_run_sends_no_probe_after_the_account_is_refused(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    third = {"id": "gamma", "targets": ["beta.example", "c.example"], "page_size": 100}
    write_jobs(configs, "jobs.yaml", [*JOBS, third])
    broke = FaultSettings(pinned=(PinnedFault(offset=0, kind=40210),))
    settings = fast_settings(tmp_path / "out", budget_usd=1.0)
    async with running_emulator(EmulatorSettings(sizes=SIZES, faults=broke)) as emu:
        provider = resolve_provider("dataforseo", emu.dataforseo_base)
        outcome = await dry_run(configs, provider=provider, environ=DEMO_ENV, settings=settings)
        calls = emu.calls()
    result = outcome.result
    # Until a probe is billed, a capped dry run probes one at a time: the first refusal
    # stops the others before they are sent.
    assert len(calls) == 1 and result.probe_calls == 1
    assert result.stopped is not None and "40210" in result.stopped
    assert [job.source for job in result.jobs].count("skipped") == 2
    assert result.probe_cost_usd == 0.0
