"""Why a run stops, set once; the process's signals stop the crawl within ``--grace``.

The crawl's side runs in virtual time against scripted answers: a stop from outside
keeps its grace to the instant, a second one abandons the calls in flight at once. The
process's side runs the real CLI as a subprocess whose page writes block in a worker
thread (a FIFO nobody writes to): the process still ends within ``--grace`` and a small
margin, with the signal's exit status, and leaves the lock free for the next night.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from intersect_batch.crawl import CrawlObserver
from intersect_batch.errors import RunFatalApiError
from intersect_batch.exitcode import ExitCode
from intersect_batch.interrupts import MARGIN
from intersect_batch.stop import CrawlControl, Stop
from tests.scripted import Crawled, ScriptedApi, fail, job, run_crawl, settings
from tests.support import DEMO_ENV, cli_run, emulator_process, write_jobs
from tests.virtual_time import run_virtual


def test_a_first_signal_lets_the_calls_in_flight_end_within_the_grace(tmp_path: Path) -> None:
    # Calls that take 100 s, a signal at 1 s, a grace of 10 s: the crawl ends at 11 s.
    api = ScriptedApi({"a": 1000}, latency=100.0)
    ended: list[float] = []

    async def main() -> Crawled:
        control = CrawlControl()
        async with anyio.create_task_group() as group:

            async def signal_at() -> None:
                await anyio.sleep(1.0)
                control.signal(signal.SIGINT)

            group.start_soon(signal_at)
            done = await run_crawl(api, [job("a")], settings(tmp_path, grace=10.0), control=control)
            ended.append(anyio.current_time())
        return done

    done = run_virtual(main)
    assert ended == [pytest.approx(11.0, abs=1e-6)]
    result = done.result
    assert result.stop == Stop("signal", "interrupted by SIGINT", signum=signal.SIGINT)
    assert result.interrupted_by == signal.SIGINT and result.run_fatal is None
    assert done.final("a").status == "partial"
    assert done.final("a").reason == "interrupted by SIGINT"
    # The probe went at 0 s; nothing after the signal.
    assert [s.at for s in api.sent] == [0.0]


class _Told(CrawlObserver):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def stopping(self, message: str) -> None:
        self.messages.append(message)


def test_a_second_signal_abandons_the_calls_in_flight_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = ScriptedApi({"a": 1000}, latency=100.0)
    ended: list[float] = []
    told = _Told()

    async def main() -> None:
        control = CrawlControl()
        async with anyio.create_task_group() as group:

            async def signal_at(when: float) -> None:
                await anyio.sleep(when)
                control.signal(signal.SIGINT)

            group.start_soon(signal_at, 1.0)
            group.start_soon(signal_at, 3.0)
            run_settings = settings(tmp_path, grace=10.0)
            done = await run_crawl(api, [job("a")], run_settings, control=control, observer=told)
            ended.append(anyio.current_time())
            assert done.result.interrupted_by == signal.SIGINT
            assert control.signals == 2 and not control.running

    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        run_virtual(main)
    assert ended == [pytest.approx(3.0, abs=1e-6)]
    told_too = [
        "waiting up to 10 s for 1 call in flight; Ctrl-C again to stop now",
        "stopping now: the calls in flight are abandoned",
    ]
    assert told.messages == told_too
    assert caplog.messages == [
        "stopping: interrupted by SIGINT",
        *told_too,
        "calls still in flight were abandoned; their pages are fetched again",
    ]
    # The progress display shows these itself: the log handler leaves them out there.
    shown = [r.getMessage() for r in caplog.records if getattr(r, "_shown_by_progress", False)]
    assert shown == told_too


def test_a_signal_after_another_stop_keeps_its_reason_and_is_added_to_it(
    tmp_path: Path,
) -> None:
    # The account is refused at 0.5 s while three other probes are in flight for 100 s.
    api = ScriptedApi({f"j{n}": 100 for n in range(4)}, latency=100.0)
    api.script("j0", 0, fail(RunFatalApiError("Insufficient funds.", status_code=40210), 0.5))
    ended: list[float] = []
    told = _Told()

    async def main() -> Crawled:
        control = CrawlControl()
        async with anyio.create_task_group() as group:

            async def signal_at() -> None:
                await anyio.sleep(2.0)
                control.signal(signal.SIGTERM)

            group.start_soon(signal_at)
            jobs = [job(f"j{n}") for n in range(4)]
            done = await run_crawl(
                api, jobs, settings(tmp_path, grace=5.0), control=control, observer=told
            )
            ended.append(anyio.current_time())
        return done

    done = run_virtual(main)
    stop = done.result.stop
    assert stop is not None and stop.kind == "run_fatal" and stop.signum == signal.SIGTERM
    assert stop.reason == "the API stopped the run: job 'j0' offset 0: [40210] Insufficient funds."
    assert isinstance(done.result.run_fatal, RunFatalApiError)
    assert done.result.interrupted_by == signal.SIGTERM
    assert ended == [pytest.approx(7.0, abs=1e-6)]
    assert len(api.sent) == 4
    assert told.messages == [
        "waiting up to 5 s for 3 calls in flight; a second signal again to stop now"
    ]


def test_a_control_before_and_after_the_crawl_does_nothing() -> None:
    control = CrawlControl()
    control.stop("early")
    control.abandon()
    assert not control.running and control.signals == 0


# -- the process ---------------------------------------------------------------------------

# The real CLI, whose page writes block in a worker thread: the first commit reads a FIFO
# that the test opens for writing and never writes to.
_BLOCKED = """
import sys
from intersect_batch import cli
from intersect_batch.store import JobStore

fifo = sys.argv[1]

def blocked(self, *args, **kwargs):
    with open(fifo, "rb") as handle:
        handle.read()

JobStore.commit = blocked
sys.exit(cli.main(sys.argv[2:]))
"""


def _reader_waits(fifo: Path, process: subprocess.Popen[str], timeout: float) -> int:
    """A write end of ``fifo`` once the process opened it for reading (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the page write never started"
        time.sleep(0.01)


def _read_until(process: subprocess.Popen[str], text: str, timeout: float) -> str:
    """What the process wrote to stderr up to ``text`` (bounded in time).

    Read from the pipe itself, not through the text stream: a buffered readline may take
    the line we wait for into its buffer, where select() cannot see it.
    """
    assert process.stderr is not None
    fd = process.stderr.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while text.encode() not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and selector.select(left), f"no {text!r} in {seen[-500:]!r}"
            chunk = os.read(fd, 65536)
            assert chunk, f"stderr closed before {text!r}: {seen[-500:]!r}"
            seen += chunk
    return seen.decode()


@pytest.mark.slow
@pytest.mark.timeout(120)  # two runs of the CLI and an emulator, on a busy machine
@pytest.mark.parametrize(
    ("signals", "grace", "status"),
    [
        pytest.param((signal.SIGTERM,), 1.0, ExitCode(143), id="sigterm-within-grace"),
        pytest.param((signal.SIGINT,), 1.0, ExitCode(130), id="sigint-within-grace"),
        pytest.param((signal.SIGINT, signal.SIGINT), 60.0, ExitCode(130), id="sigint-twice"),
    ],
)
def test_a_signal_ends_the_process_even_with_a_worker_thread_blocked(
    tmp_path: Path, signals: tuple[int, ...], grace: float, status: ExitCode
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [{"id": "a", "targets": ["a.example", "b.example"]}])
    out = tmp_path / "out"
    fifo = tmp_path / "blocked.fifo"
    os.mkfifo(fifo)
    with emulator_process(tmp_path, {"a.example": 300}) as emu:
        command = cli_run(configs, out, emu, "--grace", str(grace), "--log-format", "json")
        process = subprocess.Popen(
            [sys.executable, "-c", _BLOCKED, str(fifo), *command[3:]],
            env={**os.environ, **DEMO_ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        writer = _reader_waits(fifo, process, timeout=30)
        try:
            started = time.monotonic()
            seen = ""
            for number, signum in enumerate(signals):
                if number:
                    # Two signals sent at once may arrive as one (POSIX signals do not
                    # queue): the second goes once the first was heard.
                    seen = _read_until(process, "waiting up to", timeout=10)
                process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=grace + MARGIN + 10)
            stderr = seen + stderr
            elapsed = time.monotonic() - started
        finally:
            os.close(writer)
            if process.poll() is None:  # a failed assertion above: leave no process behind
                process.kill()
                process.communicate()
        assert process.returncode == status, stderr[-2000:]
        # The first signal's grace, or none after a second, and the margin.
        bound = (grace if len(signals) == 1 else 0.0) + MARGIN
        assert bound - 0.5 < elapsed < bound + 2.0, stderr[-3000:]
        assert "Traceback" not in stderr + stdout
        assert "a file operation did not end in time; stopping now" in stderr
        # The lock went with the process: the next invocation runs and completes.
        again = subprocess.run(
            command, env={**os.environ, **DEMO_ENV}, capture_output=True, text=True, timeout=60
        )
    assert again.returncode == ExitCode.OK, again.stderr[-2000:]


def test_a_stop_keeps_its_first_reason_and_its_first_signal() -> None:
    budget = Stop("budget", "budget: spent")
    assert budget.then(Stop("cap", "the cap")) is budget
    assert not budget.hard
    signalled = budget.then(Stop("signal", "interrupted by SIGINT", signum=signal.SIGINT))
    assert signalled == Stop("budget", "budget: spent", signum=signal.SIGINT)
    assert signalled.hard
    assert signalled.then(Stop("signal", "again", signum=signal.SIGTERM)) is signalled
