"""At a terminal (a real pty): bars and a table that fit 80 and 160 columns, Ctrl-C twice.

The command runs in a pseudo-terminal whose window size is set as a terminal emulator
sets it (no COLUMNS variable), against the emulator in a process of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch import cli
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

SIZES = {
    "alpha.example": 900,
    "delta.example": 400,
    "gamma.example": 50,
    "slowpoke.example": 900,
}
# One id the prefix of another: a table that cut ids would make them look the same.
JOBS: list[dict[str, Any]] = [
    {"id": "crm-link-gap", "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "crm-link-gap-partial", "targets": ["delta.example", "b.example"], "page_size": 100},
    {"id": "gamma", "targets": ["gamma.example", "b.example"]},
]
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")
_ETA = r"(\d+:\d\d:\d\d|-:--:--)"


class Terminal:
    """A command running in a pty of a given size; what it drew, as text lines."""

    def __init__(self, command: list[str], *, columns: int, rows: int = 40) -> None:
        self.leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
        self.process = subprocess.Popen(
            command,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env={**env, **DEMO_ENV, "TERM": "xterm-256color"},
            close_fds=True,
        )
        os.close(follower)
        self.raw = b""
        self.closed = False

    def read(self, timeout: float) -> None:
        """Take what the command drew within ``timeout`` seconds."""
        if self.closed:
            return
        ready, _, _ = select.select([self.leader], [], [], timeout)
        if not ready:
            return
        try:
            data = os.read(self.leader, 65536)
        except OSError:  # the terminal closes when the process ends
            data = b""
        if not data:
            self.closed = True
            os.close(self.leader)
        self.raw += data

    def wait_for(self, condition: Callable[[], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, self.text()[-3000:]
            assert not self.closed, self.text()[-3000:]
            self.read(0.02)

    def finish(self) -> int:
        while not self.closed:
            self.read(30)
        return self.process.wait(timeout=30)

    def text(self) -> str:
        return _CONTROL.sub("", self.raw.decode(errors="replace"))

    def words(self) -> str:
        """The text with every run of white space made one space: lines wrap."""
        return " ".join(self.text().split())

    def lines(self) -> list[str]:
        return [line for line in re.split(r"\r\n|\n|\r", self.text()) if line.strip()]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    # The call for slowpoke's page 3 takes 20 s, the first time only (the Ctrl-C test).
    slow = ("--fault-at", "300=slow:1@slowpoke.example", "--slow-seconds", "20")
    folder = tmp_path_factory.mktemp("emulator")
    with emulator_process(folder, SIZES, "--latency-median", "0.05", *slow) as process:
        yield process


def _bar_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.search(r"\d+/(\d+|\?) pages", line)]


@pytest.mark.parametrize("columns", [80, 160])
def test_bars_and_table_fit_the_terminal_and_keep_ids_counts_and_eta_whole(
    tmp_path: Path, emulator: EmulatorProcess, columns: int
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    log_file = tmp_path / "logs" / "run.log"
    command = cli_run(
        configs, tmp_path / "out", emulator, "--concurrency", "2", "--log-file", str(log_file)
    )
    terminal = Terminal(command, columns=columns)
    status = terminal.finish()
    lines = terminal.lines()
    assert status == ExitCode.OK, terminal.text()[-3000:]
    last = lines[-1]
    assert last.startswith("ok: night 2026-11-29: 3 complete; 1350 items")
    # Every line drawn fits; the last line is printed whole (cron mails it) and wraps.
    drawn = lines[:-1]
    assert max(len(line) for line in drawn) <= columns, [x for x in drawn if len(x) > columns]
    assert "…" not in terminal.text()
    bars = _bar_lines(drawn)
    assert bars
    for line in bars:
        assert re.search(rf"\d+/(\d+|\?) pages  .*{_ETA}$", line), line
    for job_id in ("crm-link-gap", "crm-link-gap-partial", "all jobs"):
        assert any(line.split("  ")[0] == job_id for line in bars), job_id
    overall = [line for line in bars if line.startswith("all jobs")]
    if columns >= 160:
        assert all("USD" in line and "items" in line for line in bars)
        assert any("calls/min" in line for line in overall)
    # The table: every id whole on its own row, both totals labelled.
    table = drawn[next(i for i, line in enumerate(drawn) if "intersect-batch run" in line) :]
    for job_id in ("crm-link-gap", "crm-link-gap-partial", "gamma"):
        assert any(line.split()[:2] == [job_id, "complete"] for line in table), job_id
    assert any(line.startswith("night, 1 invocation ") for line in table)
    assert any(line.startswith("this invocation ") for line in table)
    # Finished jobs and a first night's missing diff are for the log, not the screen.
    assert "job complete" not in terminal.text()
    assert "no earlier complete run" not in terminal.text()
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    messages = [record["message"] for record in records]
    assert messages.count("job complete") == 3
    assert messages.count("diff: no earlier complete run") == 3
    assert messages[-1] == "run finished" and records[-1]["exit_code"] == 0


def _outputs(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.glob("*.jsonl"))}


def test_ctrl_c_twice_stops_at_once_and_the_run_resumes_byte_identically(
    tmp_path: Path,
    emulator: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configs = tmp_path / "configs"
    jobs = [dict(JOBS[0], targets=["slowpoke.example", "b.example"]), *JOBS[1:]]
    write_jobs(configs, "jobs.yaml", jobs)
    out = tmp_path / "out"
    command = cli_run(configs, out, emulator, "--concurrency", "3")
    before = len(emulator.calls())
    terminal = Terminal(command, columns=80)
    terminal.wait_for(lambda: len(emulator.calls()) - before >= 6)
    started = time.monotonic()
    terminal.process.send_signal(signal.SIGINT)
    # After the first Ctrl-C the run waits for the slow call; the second must not.
    terminal.wait_for(lambda: "Ctrl-C again to stop now" in terminal.words())
    terminal.process.send_signal(signal.SIGINT)
    status = terminal.finish()
    assert time.monotonic() - started < 15  # not the slow call's 20 s
    text = terminal.text()
    assert status == ExitCode.SIGINT, text[-3000:]
    assert "Traceback" not in text
    waiting = re.search(
        r"waiting up to 30 s for (\d+) calls? in flight; Ctrl-C again to stop now", text
    )
    assert waiting and int(waiting.group(1)) >= 1, text[-3000:]
    # Said by the progress display above the bars (as it is: no time, no level).
    assert any(line.startswith("waiting up to 30 s") for line in terminal.lines())
    assert "stopping now: the calls in flight are abandoned" in text
    assert "SIGINT: progress is saved; run the same command to continue" in text
    run_dir = out / RUN_DATE.isoformat()
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["exit_code"] == 130 and summary["needs_attention"]
    assert not (run_dir / "crm-link-gap.jsonl").exists()

    # The same command again (in this process: no terminal needed), and a reference run.
    for name, value in DEMO_ENV.items():
        monkeypatch.setenv(name, value)
    assert cli.main([*command[3:], "--log-format", "json"]) == ExitCode.OK
    reference = tmp_path / "reference"
    assert cli.main([*cli_run(configs, reference, emulator)[3:], "--log-format", "json"]) == 0
    capsys.readouterr()
    assert _outputs(run_dir) == _outputs(reference / RUN_DATE.isoformat())
    assert len(_outputs(run_dir)) == 3
