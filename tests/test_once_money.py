"""The money: ``--budget-usd`` caps what the API bills for a night, whatever happens to the run.

The emulator's call log is the bill: every call it answered with its cost, including
answers it cut short or dropped after billing them. The CLI tests run the command as a
subprocess (re-runs the same night, ``--fresh``, kill -9); the lost-answer test runs the
real ``run_batch`` in-process against the emulator over HTTP.
"""

from __future__ import annotations

import json
import os
import re
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
def test_kill_9_of_a_capped_run_cannot_make_the_night_overspend(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    cap = 0.4

    def command(emulator: EmulatorProcess) -> list[str]:
        return cli_run(
            configs, out, emulator, "--budget-usd", str(cap), "--concurrency", "6",
            "--rate-per-minute", "60000", "--log-format", "json",
        )  # fmt: skip

    with emulator_process(tmp_path, SIZES, "--latency-median", "0.03") as emulator:
        process = subprocess.Popen(
            command(emulator),
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
    # The emulator has stopped: every call in flight at the kill is in its log now.
    killed = emulator.calls()
    # What the killed run may have spent was booked in the ledger before it was sent.
    ledger = json.loads((out / RUN_DATE.isoformat() / ".ledger.json").read_text())
    assert max(ledger["spent_usd"], ledger["booked_usd"]) >= _bill(killed) - 1e-9

    # The same emulator again (same data, same call log): the night goes on.
    with emulator_process(tmp_path, SIZES, "--latency-median", "0.03") as emulator:
        again = _run(command(emulator))
        night = emulator.calls()
    assert again.returncode == 1, again.stderr[-2000:]
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


# -- what an answer claims is not what the night counts ------------------------------------

SMALL_CAP = 0.1


def _capped(configs: Path, out: Path, emu: EmulatorProcess, cap: float, *extra: str) -> Any:
    command = cli_run(
        configs, out, emu, "--budget-usd", str(cap), "--concurrency", "4",
        "--rate-per-minute", "60000", "--log-format", "json", *extra,
    )  # fmt: skip
    return _run(command)


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert "demo-password" not in done.stderr + done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("knob", "warning"),
    [
        pytest.param(("--cost-claim", "missing"), "did not say what it cost", id="missing"),
        pytest.param(("--cost-claim", "negative"), "did not say what it cost", id="negative"),
        pytest.param(("--cost-claim", "zero"), "below the price list", id="zero"),
        pytest.param(("--aisa-price-header", "0"), "below the price list", id="aisa-header-0"),
    ],
)
def test_an_answer_claiming_less_than_the_price_list_is_booked_at_the_list(
    tmp_path: Path, knob: tuple[str, str], warning: str
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    with emulator_process(tmp_path, SIZES, *knob) as emu:
        done = _capped(configs, out, emu, SMALL_CAP)
        calls = emu.calls()
    bill = _bill(calls)
    assert done.returncode == ExitCode.ATTENTION, done.stderr[-2000:]
    _no_traceback(done)
    # 0.023 USD a page: four pages fit under 0.10 USD, a fifth would not.
    assert len(calls) == 4 and bill == pytest.approx(4 * PAGE_USD)
    last = done.stdout.splitlines()[-1]
    assert last.startswith("attention:") and "budget" in last
    # The oddity is logged once per run, whatever the number of answers that show it.
    warned = [line for line in done.stderr.splitlines() if warning in line]
    assert len(warned) == 1, done.stderr[-2000:]
    summary = _summary(out)
    assert summary["night"]["cost_usd"] == pytest.approx(bill)
    assert summary["stop_reason"].startswith("budget")


@pytest.mark.slow
def test_a_dry_run_books_its_probes_at_the_price_list_when_their_answers_claim_nothing(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    with emulator_process(tmp_path, SIZES, "--cost-claim", "missing") as emu:
        command = cli_run(configs, out, emu, "--budget-usd", "0.05", "--dry-run")
        done = _run(command)
        calls = emu.calls()
    _no_traceback(done)
    assert done.returncode == ExitCode.OK, done.stderr[-2000:]
    # Two probes of 0.02003 USD fit in 0.05 USD; a third would not.
    assert len(calls) == 2
    ledger = json.loads((out / RUN_DATE.isoformat() / ".ledger.json").read_text())
    assert ledger["spent_usd"] == pytest.approx(_bill(calls)) == pytest.approx(2 * price(1, 1))
    assert "budget: a probe could cost 0.02003 USD and 0.04006 of 0.05 USD" in done.stdout


@pytest.mark.slow
def test_a_page_carrying_more_than_its_limit_is_priced_by_what_it_carried(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    cap = 0.5
    with emulator_process(tmp_path, SIZES, "--page-items", "1000") as emu:
        done = _capped(configs, out, emu, cap)
        calls = emu.calls()
    _no_traceback(done)
    bill = _bill(calls)
    # Each page carries up to 1000 items: 0.05 USD, not the 0.023 USD its limit of 100 says.
    assert max(call["items"] for call in calls) == 1000
    assert bill <= cap + 1e-9
    assert bill > cap - 2 * price(1, 1000), "the cap was not what stopped it"
    assert _summary(out)["night"]["cost_usd"] == pytest.approx(bill)


def _delete(ledger: Path) -> None:
    ledger.unlink()


def _negative(ledger: Path) -> None:
    data = json.loads(ledger.read_text())
    ledger.write_text(json.dumps({**data, "spent_usd": -5.0, "booked_usd": -5.0}))


def _garbled(ledger: Path) -> None:
    ledger.write_bytes(b'{"spent_usd": 0.1, "cost')


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_delete, _negative, _garbled], ids=lambda f: f.__name__[1:])
def test_a_ledger_lost_between_two_invocations_is_rebuilt_from_the_nights_records(
    tmp_path: Path, emulator: EmulatorProcess, damage: Any
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    first = _capped(configs, out, emulator, SMALL_CAP)
    assert first.returncode == ExitCode.ATTENTION, first.stderr[-2000:]
    spent = _bill(emulator.calls())
    assert spent == pytest.approx(4 * PAGE_USD)
    damage(out / RUN_DATE.isoformat() / ".ledger.json")

    again = _capped(configs, out, emulator, SMALL_CAP)
    _no_traceback(again)
    assert again.returncode == ExitCode.ATTENTION, again.stderr[-2000:]
    assert _bill(emulator.calls()) == spent, "the night spent again what it had spent"
    assert "the night's ledger" in again.stderr and "manifests and checkpoints" in again.stderr
    summary = _summary(out)
    assert summary["stop_reason"].startswith("budget")
    assert summary["night"]["cost_usd"] == pytest.approx(spent)


@pytest.mark.slow
@pytest.mark.parametrize("claim", ["huge", "max"])
def test_an_implausible_cost_stops_the_spending_and_money_stays_money(
    tmp_path: Path, claim: str
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS[:1])
    out = tmp_path / "out"
    with emulator_process(tmp_path, SIZES, "--cost-claim", claim) as emu:
        command = cli_run(
            configs, out, emu, "--concurrency", "1", "--rate-per-minute", "60000",
            "--log-format", "json",
        )  # fmt: skip
        done = _run(command)
        again = _run(command)
        calls = emu.calls()
    for run_ in (done, again):
        _no_traceback(run_)
        assert run_.returncode == ExitCode.ATTENTION, run_.stderr[-2000:]
        head = run_.stdout.splitlines()[-1].split("; results in")[0]
        assert "e+" not in head and "inf" not in head, head
        figures = re.findall(r"(\S+) USD", head)
        assert len(figures) == 3 and all(re.fullmatch(r"\(?\d\.\d{4,5}", f) for f in figures)
    # One call, then the stop: each later invocation sends one call and stops again.
    assert len(calls) == 2
    summary = _summary(out)
    assert summary["stop_reason"].startswith("budget: an answer claimed more than 100 times")
    assert "job j0, offset 100" in summary["stop_reason"]
    ceiling = 100 * PAGE_USD
    ledger_text = (out / RUN_DATE.isoformat() / ".ledger.json").read_text()
    assert "null" not in ledger_text
    ledger = json.loads(ledger_text)
    # Booked at the ceiling of a plausible cost, twice: the night remembers both.
    assert ledger["spent_usd"] == pytest.approx(2 * ceiling)
    assert summary["night"]["cost_usd"] == pytest.approx(2 * ceiling)
