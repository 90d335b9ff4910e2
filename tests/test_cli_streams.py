"""The command line with its standard streams taken away, and with names that hold escapes.

Under cron a run may start with stderr closed (``2>&-``) or stdout on a full disk: the
crawl still runs and writes its files, its exit status still says what the night holds,
and nothing ends in a traceback. A folder name holding a newline or an escape sequence is
printed escaped, so it can neither forge a line nor drive the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.exitcode import ExitCode
from tests.hostile_cli import ROOT
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    read_lines,
    write_jobs,
)

pytestmark = pytest.mark.slow

SIZES = {"alpha.example": 250}
JOBS = [{"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100}]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path_factory.mktemp("emulator"), SIZES) as process:
        yield process


def _closing(fileno: int) -> Callable[[], None]:
    def close() -> None:
        os.close(fileno)

    return close


def _run(
    argv: list[str],
    *,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    close: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """The command, its stdin empty, ``close`` (a descriptor) closed before it starts."""
    return subprocess.run(
        argv,
        cwd=ROOT,
        env={**os.environ, **DEMO_ENV},
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=None if close is None else _closing(close),
        timeout=60,
        check=False,
    )


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _night(out: Path) -> dict[str, Any]:
    run_json: dict[str, Any] = json.loads((out / RUN_DATE.isoformat() / "run.json").read_text())
    return run_json


def test_with_stderr_closed_the_run_crawls_and_logs_to_its_file(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out, log_file = tmp_path / "configs", tmp_path / "out", tmp_path / "run.log"
    write_jobs(configs, "jobs.yaml", JOBS)
    argv = cli_run(configs, out, emulator, "--log-file", str(log_file))
    done = _run(argv, close=2)
    assert done.returncode == ExitCode.OK, done.stdout.decode()[-2000:]
    assert len(read_lines(out / RUN_DATE.isoformat() / "alpha.jsonl")) == 250
    assert _night(out)["exit_code"] == 0
    last = done.stdout.decode().splitlines()[-1]
    assert last.startswith("ok: night 2026-11-29: 1 complete; 250 items")
    records = _records(log_file.read_text())
    assert records[-1]["message"] == "run finished"
    assert records[-1]["exit_code"] == 0 and records[-1]["line"] == last


@pytest.mark.parametrize(
    ("extra_job", "status"),
    [(None, ExitCode.OK), ({"id": "broken", "targets": ["nodot"]}, ExitCode.ATTENTION)],
)
@pytest.mark.parametrize("stdout", ["closed", "/dev/full"])
def test_a_lost_stdout_leaves_the_status_and_the_record_true(
    tmp_path: Path,
    emulator: EmulatorProcess,
    stdout: str,
    extra_job: dict[str, Any] | None,
    status: ExitCode,
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS + ([extra_job] if extra_job else []))
    argv = cli_run(configs, out, emulator)
    if stdout == "closed":
        done = _run(argv, stdout=None, close=1)
    else:
        with open("/dev/full", "wb") as full:
            done = _run(argv, stdout=full)
    err = done.stderr.decode()
    assert "Traceback" not in err, err[-3000:]
    assert done.returncode == status, err[-3000:]
    assert len(read_lines(out / RUN_DATE.isoformat() / "alpha.jsonl")) == 250
    assert _night(out)["exit_code"] == status
    records = _records(err)
    # The last line still closes the log, in its "run finished" record.
    assert records[-1]["message"] == "run finished"
    assert records[-1]["exit_code"] == status
    assert records[-1]["line"].startswith("ok: " if status == ExitCode.OK else "attention: ")
    lost = [r for r in records if r["message"].startswith("stdout could not be written")]
    if stdout == "/dev/full":
        assert [r["message"] for r in lost] == [
            "stdout could not be written (No space left on device): its lines are lost; "
            "run.json holds the run"
        ]
    else:
        assert lost == []


def test_a_command_whose_output_is_lost_says_so(tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        done = _run([sys.executable, "-m", "intersect_batch", "schema"], stdout=full)
    assert done.returncode == ExitCode.ATTENTION
    assert done.stderr.decode() == "error: cannot write stdout: No space left on device\n"


def test_folder_names_with_escapes_are_printed_escaped(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out\n\x1b[2Jforged: ok"
    write_jobs(configs, "jobs.yaml", JOBS)
    done = _run(cli_run(configs, out, emulator, "--log-format", "text"))
    assert done.returncode == ExitCode.OK, done.stderr.decode()[-2000:]
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ok: night 2026-11-29: 1 complete; 250 items")
    assert lines[0].endswith(
        f"results in {tmp_path}/out\\n\\x1b[2Jforged: ok/2026-11-29/ "
        f"(summary: {tmp_path}/out\\n\\x1b[2Jforged: ok/2026-11-29/run.json)"
    )
    empty = tmp_path / "conf\x1b]0;title\x07"
    empty.mkdir()
    done = _run(cli_run(empty, tmp_path / "out", emulator, "--log-format", "text"))
    assert done.returncode == ExitCode.USAGE
    err = done.stderr.decode()
    assert f"error: no valid job in {tmp_path}/conf\\x1b]0;title\\x07: nothing to run\n" in err
    # The text log's records too: the message and the file they name.
    assert f"invalid config: {tmp_path}/conf\\x1b]0;title\\x07: no job files here" in err
    assert "\x1b" not in err and "\x07" not in err


def test_a_text_log_records_folder_is_escaped(tmp_path: Path, emulator: EmulatorProcess) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out\nforged: ok\x1b[2J"
    write_jobs(configs, "jobs.yaml", JOBS)
    done = _run(cli_run(configs, out, emulator, "--log-format", "text", "--report"))
    assert done.returncode == ExitCode.OK, done.stderr.decode()[-2000:]
    err = done.stderr.decode()
    # The record's path= names the folder on one line, its newline and escape escaped.
    report = f"{tmp_path}/out\\nforged: ok\\x1b[2J/2026-11-29/report.html"
    assert f"report written  path={report}\n" in err
    assert not any(line.startswith("forged: ok") for line in err.splitlines())
    assert "\x1b" not in err
