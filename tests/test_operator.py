"""What the person running the tool sees: cron mail, subsets, retention.

At a terminal: tests/test_operator_terminal.py.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch import cli
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


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    folder = tmp_path_factory.mktemp("emulator")
    with emulator_process(folder, SIZES, "--latency-median", "0.05") as process:
        yield process


@pytest.fixture
def demo_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DEMO_ENV.items():
        monkeypatch.setenv(name, value)


def _command(configs: Path, out: Path, emulator: EmulatorProcess, *extra: str) -> list[str]:
    """The arguments of ``intersect-batch run`` (this process runs the CLI: its stderr is
    no terminal, as under cron)."""
    return cli_run(configs, out, emulator, "--concurrency", "2", *extra)[3:]


@pytest.mark.slow
@pytest.mark.usefixtures("demo_credentials")
def test_under_cron_output_is_plain_and_logs_are_json_lines(
    tmp_path: Path, emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    status = cli.main(_command(configs, tmp_path / "out", emulator, "--progress-interval", "0.1"))
    result = capsys.readouterr()
    assert status == ExitCode.OK, result.err[-3000:]
    assert "\x1b" not in result.out + result.err
    records = [json.loads(line) for line in result.err.splitlines()]
    messages = [record["message"] for record in records]
    assert "progress" in messages
    progress = next(record for record in records if record["message"] == "progress")
    assert {"jobs_done", "pages", "items", "cost_usd", "calls_per_minute", "eta_s"} <= set(progress)
    assert {"invocation_pages", "invocation_items", "invocation_calls"} <= set(progress)
    finished = [record for record in records if record["message"] == "job complete"]
    assert sorted(record["job"] for record in finished) == sorted(str(j["id"]) for j in JOBS)
    assert all(record["level"] in {"debug", "info", "warning", "error"} for record in records)
    lines = result.out.strip().splitlines()
    assert lines[-1].startswith("ok: night 2026-11-29: 3 complete; 1350 items")
    assert "this invocation: 3 jobs run, 1350 items" in lines[-1]
    assert str(tmp_path / "out" / RUN_DATE.isoformat()) in lines[-1]
    # The closing record tells a finished run from a crashed one, with the same line.
    assert records[-1]["message"] == "run finished"
    assert records[-1]["exit_code"] == 0 and records[-1]["line"] == lines[-1]
    assert records[-1]["night"]["items"] == 1350


@pytest.mark.slow
@pytest.mark.usefixtures("demo_credentials")
def test_choosing_jobs_and_listing_them(
    tmp_path: Path, emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    out = tmp_path / "out"
    before = len(emulator.calls())
    chosen = cli.main(_command(configs, out, emulator, "--job", "gamma", "--match", "alpha-*"))
    assert chosen == ExitCode.OK, capsys.readouterr().err[-2000:]
    run_dir = out / RUN_DATE.isoformat()
    assert sorted(p.name for p in run_dir.glob("*.jsonl")) == ["alpha-gap.jsonl", "gamma.jsonl"]
    calls = emulator.calls()[before:]
    assert len({json.dumps(call["targets"], sort_keys=True) for call in calls}) == 2

    capsys.readouterr()
    assert cli.main(_command(configs, out, emulator, "--job", "gama")) == ExitCode.USAGE
    assert "--job names no valid job: gama" in capsys.readouterr().err

    assert cli.main(["list", str(configs), "--out", str(out), "--json"]) == ExitCode.OK
    rows = {row["id"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["alpha-gap"]["estimated_pages"] == 9
    assert rows["alpha-gap"]["last_total_count"] == 900
    assert rows["delta-gap"]["estimated_pages"] is None  # never run: unknown
    assert rows["gamma"]["targets"] == ["gamma.example", "b.example"]
    assert rows["gamma"]["file"].endswith("jobs.yaml:12")


def test_schema_command_prints_the_job_file_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == job_file_schema()


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
