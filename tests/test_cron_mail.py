"""Cron mail that says what matters: --quiet, a closing record whatever the log level,
and the night's new and lost pages in the last line, the closing record and the table."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from rich.console import Console

from intersect_batch.exitcode import ExitCode
from intersect_batch.manifest import RunSummary
from intersect_batch.summary import summary_table
from tests.support import DEMO_ENV, RUN_DATE, EmulatorProcess, cli_run, emulator_process, write_jobs

pytestmark = pytest.mark.slow

ALPHA = {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100}
BETA = {"id": "beta", "targets": ["beta.example", "b.example"], "page_size": 100}
BROKEN = {"id": "broken", "targets": ["beta.example"], "order_by": ["1.no_such_field,desc"]}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    folder = tmp_path_factory.mktemp("emulator")
    sizes = {"alpha.example": 250, "beta.example": 120}
    with emulator_process(folder, sizes, "--live-data", "0.05") as process:
        yield process


def _cli(command: list[str]) -> subprocess.CompletedProcess[str]:
    # As cron runs it: no terminal, no input.
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **DEMO_ENV},
        check=False,
    )


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_quiet_clean_night_prints_the_last_line_alone(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out, log = tmp_path / "configs", tmp_path / "out", tmp_path / "night.log"
    write_jobs(configs, "jobs.yaml", [ALPHA, BETA])
    result = _cli(cli_run(configs, out, emulator, "--quiet", "--log-file", str(log)))
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    assert line.startswith("ok: night 2026-11-29: 2 complete; ")
    records = _records(log)
    messages = [r["message"] for r in records]
    # The log file keeps everything: the start, each job, the close.
    assert messages[:2] == ["account checked", "run starting"]
    assert messages.count("job complete") == 2
    assert records[-1]["message"] == "run finished" and records[-1]["line"] == line


def test_quiet_night_that_needs_attention_says_what_failed(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out, log = tmp_path / "configs", tmp_path / "out", tmp_path / "night.log"
    write_jobs(configs, "jobs.yaml", [ALPHA, BROKEN])
    result = _cli(cli_run(configs, out, emulator, "--quiet", "--log-file", str(log)))
    assert result.returncode == ExitCode.ATTENTION, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    run_json = json.loads((out / RUN_DATE.isoformat() / "run.json").read_text())
    [broken] = [job for job in run_json["jobs"] if job["job_id"] == "broken"]
    assert "[40501]" in broken["reason"]
    assert lines == [f"broken failed: {broken['reason']}", lines[-1]]
    assert lines[-1].startswith("attention: night 2026-11-29: 1 complete, 1 failed; ")
    assert any(r["message"].startswith("job failed: ") for r in _records(log))


def test_quiet_usage_error_still_says_why(tmp_path: Path, emulator: EmulatorProcess) -> None:
    result = _cli(cli_run(tmp_path / "nowhere", tmp_path / "out", emulator, "--quiet"))
    assert result.returncode == ExitCode.USAGE
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line == f"error: no valid job in {tmp_path / 'nowhere'}: nothing to run"


def test_a_warning_level_log_still_ends_with_run_finished(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out, log = tmp_path / "configs", tmp_path / "out", tmp_path / "night.log"
    write_jobs(configs, "jobs.yaml", [ALPHA, BROKEN])
    command = cli_run(configs, out, emulator, "--log-level", "warning", "--log-file", str(log))
    result = _cli(command)
    assert result.returncode == ExitCode.ATTENTION
    for records in (_records(log), [json.loads(x) for x in result.stderr.splitlines()]):
        messages = [r["message"] for r in records]
        assert messages[-1] == "run finished"
        assert records[-1]["exit_code"] == 1
        # Below the level, nothing else: no start, no finished job.
        assert "run starting" not in messages and "job complete" not in messages
        assert {r["level"] for r in records[:-1]} <= {"warning", "error"}
        assert any(m.startswith("job failed") for m in messages)


def test_the_night_names_its_new_and_lost_pages(tmp_path: Path, emulator: EmulatorProcess) -> None:
    configs, out, log = tmp_path / "configs", tmp_path / "out", tmp_path / "night.log"
    write_jobs(configs, "jobs.yaml", [ALPHA, BETA])
    first = cli_run(configs, out, emulator, "--log-file", str(log))
    first[first.index("--run-date") + 1] = "2026-11-28"
    earlier = _cli(first)
    assert earlier.returncode == ExitCode.OK, earlier.stderr
    # The first night compared nothing: it says so instead of "0 new, 0 lost".
    before = json.loads((out / "2026-11-28" / "run.json").read_text())["night"]
    assert f"; {before['items']} items (no diff), " in earlier.stdout.splitlines()[-1]
    result = _cli(cli_run(configs, out, emulator, "--log-file", str(log)))
    assert result.returncode == ExitCode.OK, result.stderr
    document = (out / RUN_DATE.isoformat() / "run.json").read_bytes()
    night = json.loads(document)["night"]
    new, lost = night["new_items"], night["lost_items"]
    assert new > 0 and lost > 0
    last = result.stdout.splitlines()[-1]
    assert f"; {night['items']} items ({new} new, {lost} lost), " in last
    closing = _records(log)[-1]
    assert closing["message"] == "run finished" and closing["line"] == last
    assert (closing["night"]["new_items"], closing["night"]["lost_items"]) == (new, lost)
    # The terminal's summary table: a new and a lost column, the night's row totals them.
    console = Console(width=100, record=True, color_system=None)
    console.print(summary_table(msgspec.json.decode(document, type=RunSummary)))
    table = console.export_text().splitlines()
    heading = table[1].split()
    assert heading[:5] == ["job", "status", "items", "new", "lost"]
    [night_row] = [row for row in table if row.startswith("night, ")]
    assert night_row.split()[5:8] == [f"{night['items']:,}", f"{new:,}", f"{lost:,}"]
