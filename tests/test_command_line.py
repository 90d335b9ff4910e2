"""The command line's rough edges: no abbreviations, guesses for typos, exit 141 in the
help, "1 call", and text cut to a terminal's width ending in "…"."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from rich.console import Console
from rich.progress import Progress

from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.manifest import RunSummary
from intersect_batch.progress import _BarsView
from intersect_batch.summary import summary_table
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

#: 51 characters: a cut that does not end in "…" would look like another, real id.
LONG_ID = "a-very-long-job-identifier-name-that-goes-on-and-on"
JOBS = [
    {"id": LONG_ID, "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "short", "targets": ["beta.example", "b.example"], "page_size": 100},
]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intersect_batch", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **DEMO_ENV, **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "guess"),
    [
        (["run", "configs", "--budget", "5"], "unrecognized arguments: --budget 5; "
         "did you mean --budget-usd?"),
        (["run", "configs", "--keep-day", "3"], "unrecognized arguments: --keep-day 3; "
         "did you mean --keep-days?"),
        (["list", "configs", "--jso"], "unrecognized arguments: --jso; did you mean --json?"),
        (["status", "--nig", "2"], "unrecognized arguments: --nig 2; did you mean --nights?"),
    ],
)  # fmt: skip
def test_abbreviated_options_are_refused(tmp_path: Path, args: list[str], guess: str) -> None:
    result = _cli(*args)
    assert result.returncode == ExitCode.USAGE and result.stdout == ""
    assert guess in result.stderr.splitlines()[0]
    assert not (tmp_path / "out").exists()


def test_the_emulator_refuses_abbreviations_too() -> None:
    result = _cli("emulate", "--por", "0")
    assert result.returncode == 2 and result.stdout == ""
    assert "unrecognized arguments: --por" in result.stderr


@pytest.mark.parametrize(
    ("args", "guess"),
    [
        (["rnu", "configs"], "invalid choice: 'rnu'"),
        (["run", "configs", "--provider", "aisaa"], "invalid choice: 'aisaa'"),
    ],
)
def test_a_mistyped_choice_gets_a_guess(args: list[str], guess: str) -> None:
    result = _cli(*args)
    assert result.returncode == ExitCode.USAGE
    first = result.stderr.splitlines()[0]
    assert guess in first
    assert first.endswith(f"did you mean {'run' if args[0] == 'rnu' else 'aisa'}?")


def test_a_mistyped_enum_value_in_a_config_gets_a_guess(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [{**JOBS[1], "intersection_mode": "partail"}])
    result = _cli("validate", str(configs))
    assert result.returncode == ExitCode.ATTENTION
    assert result.stderr.splitlines() == [
        f"error: {configs / 'jobs.yaml'}:7: job 'short': intersection_mode: Invalid enum "
        "value 'partail'; use one of: 'all', 'partial'; did you mean 'partial'?"
    ]


def test_run_help_lists_every_exit_status_141_included() -> None:
    text = _cli("run", "--help").stdout
    statuses = text[text.index("exit status:") :]
    codes = [line.split()[0] for line in statuses.splitlines()[1:] if line[:5].strip()]
    assert codes == ["0", "1", "2", "3", "4", "130", "141", "143"]
    assert "  141   stdout's reader went away" in statuses


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    sizes = {"alpha.example": 250, "beta.example": 40, "one.example": 30}
    with emulator_process(tmp_path, sizes) as running:
        yield running


def test_one_call_is_said_in_the_singular(tmp_path: Path, emulator: EmulatorProcess) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", [{"id": "one", "targets": ["one.example", "b.example"]}])
    dry = _cli(*cli_run(configs, out, emulator, "--dry-run")[3:])
    assert dry.returncode == ExitCode.OK, dry.stderr
    assert "total: 1 call, " in dry.stdout
    assert "on 1 probe call (limit 1)" in dry.stdout
    real = _cli(*cli_run(configs, out, emulator, "--fresh")[3:])
    last = real.stdout.splitlines()[-1]
    # The probe and the run's one call: the night has 2, this invocation 1.
    assert ", 2 calls, " in last and ", 1 call, " in last
    assert "1 calls" not in dry.stdout + real.stdout


def test_the_dry_run_table_stays_aligned_with_long_ids(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    result = _cli(*cli_run(configs, out, emulator, "--dry-run", "--no-probe")[3:])
    assert result.returncode == ExitCode.OK, result.stderr
    lines = result.stdout.splitlines()
    table = lines[: lines.index(next(x for x in lines if x.startswith("total:")))]
    assert [line.split()[0] for line in table] == ["job", LONG_ID, "short"]
    # Right-aligned to one edge: every line as long as the heading, each column in line.
    assert {len(line) for line in table} == {len(table[0])}
    sources = {line.index(line.split()[1]) for line in table}
    assert len(sources) == 1


async def _long_night(tmp_path: Path) -> RunSummary:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    emulator = EmulatorSettings(seed=3, sizes={"alpha.example": 250, "beta.example": 40})
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, fast_settings(out))
    assert outcome.exit_code == ExitCode.OK, outcome.message
    return msgspec.json.decode((out / RUN_DATE.isoformat() / "run.json").read_bytes(),
                               type=RunSummary)  # fmt: skip


def _drawn(renderable: object, width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_the_summary_table_cuts_a_long_id_with_an_ellipsis(tmp_path: Path) -> None:
    summary = anyio.run(_long_night, tmp_path)
    wide = _drawn(summary_table(summary), 120)
    assert any(line.startswith(LONG_ID + " ") for line in wide)
    for width in (80, 60):
        lines = _drawn(summary_table(summary), width)
        assert all(len(line) <= width for line in lines)
        heading = lines[1]
        assert heading.split()[:2] == ["job", "status"] and heading.endswith("cost USD")
        [row] = [line for line in lines if line.startswith(LONG_ID[:12])]
        name = row.split()[0]
        assert name.endswith("…") and LONG_ID.startswith(name[:-1]), row
        assert row.split()[1] == "complete"
        assert row.endswith(f"{summary.jobs[0].cost_usd:.4f}")
        assert any("2 jobs run" in line for line in lines)


def test_the_bars_cut_a_long_id_with_an_ellipsis() -> None:
    progress = Progress()
    progress.add_task(LONG_ID, total=120, completed=37, items=3700, cost=0.8, retries=0)
    progress.add_task("short", total=10, completed=3, items=300, cost=0.1, retries=0)
    whole = _drawn(_BarsView(progress.tasks), 80)
    assert whole[0].startswith(LONG_ID + " ")
    for width in (60, 40):
        lines = _drawn(_BarsView(progress.tasks), width)
        assert all(len(line) <= width for line in lines)
        name = lines[0].split()[0]
        assert name.endswith("…") and LONG_ID.startswith(name[:-1])
        # The page counter and the ETA stay whole.
        assert "37/120 pages" in lines[0] and lines[0].endswith("-:--:--")
