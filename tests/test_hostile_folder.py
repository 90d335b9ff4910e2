"""The files around a run, planted or damaged: FIFOs, line-less tails, folders removed
under the run. End to end through the command line, each run bounded in time (the
subprocess's own timeout and the test's), its exit status, messages and files checked.

A FIFO where the run reads or writes once made it wait for ever for a writer, holding the
output folder's lock; a 400 MB line-less tail in last night's result took gigabytes; a
run folder removed by ``--keep-days`` under ``report`` gave a traceback; a part file
removed under a running job came back padded with NUL bytes and was finalized.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch import cli
from intersect_batch.durable import MAX_LINE_BYTES
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder, job_ids_in
from intersect_batch.report import data as report_data
from intersect_batch.store import JobStore
from tests.hostile_cli import CliRun, command, run_cli, secret_forms
from tests.support import (
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    read_lines,
    write_jobs,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's /proc"),
]

LOGIN = "ops@night.example"
PASSWORD = 'Fo/9"y+Q=&k\\1zR'
ENV = {"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}
FORMS = secret_forms(LOGIN, PASSWORD)
SIZES = {"alpha.example": 300, "beta.example": 300}
JOBS = [
    {"id": job_id, "targets": [f"{job_id}.example", "b.example"], "page_size": 100}
    for job_id in ("alpha", "beta")
]
EARLIER = "2026-11-28"
#: A command that ends within this long did not wait on any file.
TIMEOUT = 40


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    root = tmp_path_factory.mktemp("emulator")
    args = ["--login", LOGIN, "--password", PASSWORD, "--max-concurrent", "100"]
    with emulator_process(root, SIZES, *args) as process:
        yield process


def _run(argv: list[str], tmp_path: Path) -> CliRun:
    """Run a command to its end, bounded; it printed no traceback and no secret."""
    run = run_cli(argv, env=ENV, timeout=TIMEOUT, workdir=tmp_path)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    for form in FORMS:
        assert form not in run.stdout + run.stderr, form
    return run


def _night(out: Path, date: str = RUN_DATE.isoformat()) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((out / date / "run.json").read_text())
    return summary


def _statuses(out: Path, date: str = RUN_DATE.isoformat()) -> dict[str, str]:
    return {line["job_id"]: line["status"] for line in _night(out, date)["jobs"]}


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


def _sparse_tail(path: Path, length: int) -> None:
    """Add ``length`` NUL bytes without a newline to ``path``: a hole, no disk used."""
    with path.open("ab") as handle:
        handle.truncate(path.stat().st_size + length)


def _earlier_night(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> Path:
    """A complete earlier night of both jobs: the baseline of tonight's diffs."""
    first = _run(cli_run(configs, out, emulator, "--run-date", EARLIER), tmp)
    assert first.returncode == ExitCode.OK, first.stderr[-2000:]
    return out / EARLIER


def _partial_night(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> None:
    """Tonight stopped after one call: a job has a checkpoint and a part file."""
    first = _run(cli_run(configs, out, emulator, "--max-calls", "1"), tmp)
    assert first.returncode == ExitCode.ATTENTION, first.stderr[-2000:]


# -- a FIFO where the run reads or writes -----------------------------------------------------

Plant = Callable[[Path, Path, EmulatorProcess, Path], Path]


def _ledger(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> Path:
    return _fifo(RunFolder(out, RUN_DATE).ledger)


def _manifest(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> Path:
    return _fifo(RunFolder(out, RUN_DATE).manifest("alpha"))


def _checkpoint(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> Path:
    _partial_night(configs, out, emulator, tmp)
    folder = RunFolder(out, RUN_DATE)
    job = next(j for j in ("alpha", "beta") if folder.checkpoint(j).exists())
    return _fifo(folder.checkpoint(job))


def _part(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> Path:
    _partial_night(configs, out, emulator, tmp)
    folder = RunFolder(out, RUN_DATE)
    job = next(j for j in ("alpha", "beta") if folder.part(j).stat().st_size > 0)
    return _fifo(folder.part(job))


def _earlier_result(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> Path:
    return _fifo(_earlier_night(configs, out, emulator, tmp) / "alpha.jsonl")


def _earlier_manifest(configs: Path, out: Path, emulator: EmulatorProcess, tmp: Path) -> Path:
    return _fifo(_earlier_night(configs, out, emulator, tmp) / "alpha.manifest.json")


FIFOS: dict[str, tuple[Plant, str]] = {
    "the night's ledger": (_ledger, "the night's ledger cannot be read ({path} is a FIFO"),
    "a manifest": (_manifest, "a manifest is not read: {path} is a FIFO, not a regular file"),
    "a checkpoint": (
        _checkpoint,
        "its checkpoint cannot be read ({path} is a FIFO, not a regular file): "
        "its pages are fetched again",
    ),
    "a part file": (
        _part,
        "its part file cannot be read ({path} is a FIFO, not a regular file): "
        "its pages are fetched again",
    ),
    "last night's result": (
        _earlier_result,
        f"no diff: the result of {EARLIER} cannot be read: {{path}} is a FIFO, not a regular file",
    ),
    "last night's manifest": (
        _earlier_manifest,
        "a manifest is not read: {path} is a FIFO, not a regular file",
    ),
}


@pytest.mark.timeout(3 * TIMEOUT + 30)
@pytest.mark.parametrize("where", sorted(FIFOS))
def test_a_fifo_where_the_run_reads_is_refused_naming_it_and_the_night_completes(
    tmp_path: Path, emulator: EmulatorProcess, where: str
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    plant, message = FIFOS[where]
    fifo = plant(configs, out, emulator, tmp_path)

    run = _run(cli_run(configs, out, emulator, "--log-format", "json"), tmp_path)

    assert run.returncode == ExitCode.OK, run.stderr[-3000:]
    expected = message.format(path=fifo)
    assert any(text.startswith(expected) for text in run.messages()), run.messages()
    assert _statuses(out) == {"alpha": "complete", "beta": "complete"}
    folder = RunFolder(out, RUN_DATE)
    for job_id in ("alpha", "beta"):
        assert len(read_lines(folder.result(job_id))) == 300
    if where == "last night's result":
        diff = json.loads(folder.manifest("alpha").read_text())["diff"]
        assert diff["unavailable"] is True and diff["previous_run"] == EARLIER
        assert diff["skipped"] == f"diff unavailable: {expected.removeprefix('no diff: ')}"
        line = next(j for j in _night(out)["jobs"] if j["job_id"] == "alpha")
        assert line["diff"]["unavailable"] is True
        assert not folder.diff("alpha").exists() and folder.diff("beta").is_file()
    # The lock went with the process: the next invocation runs (and finds all done).
    again = _run(cli_run(configs, out, emulator), tmp_path)
    assert again.returncode == ExitCode.OK, again.stderr[-2000:]


@pytest.mark.timeout(TIMEOUT + 10)
def test_a_fifo_as_the_lock_file_is_refused_naming_it(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    fifo = _fifo(out / ".intersect-batch.lock")
    calls_before = len(emulator.calls())
    run = _run(cli_run(configs, out, emulator), tmp_path)
    assert run.returncode == ExitCode.USAGE, run.stderr[-2000:]
    assert f"cannot use the output folder {out}: {fifo} is a FIFO, not a regular file" in (
        run.stderr
    )
    assert len(emulator.calls()) == calls_before


@pytest.mark.timeout(3 * TIMEOUT + 30)
def test_a_dry_run_and_the_metrics_file_never_wait_on_a_fifo(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    _partial_night(configs, out, emulator, tmp_path)
    folder = RunFolder(out, RUN_DATE)
    fifos = [_fifo(folder.ledger), *(_fifo(folder.checkpoint(j)) for j in ("alpha", "beta"))]

    dry = _run(cli_run(configs, out, emulator, "--dry-run", "--no-probe"), tmp_path)
    assert dry.returncode == ExitCode.OK, dry.stderr[-2000:]
    assert f"the night's ledger cannot be read ({fifos[0]} is a FIFO" in dry.stderr

    # A night that needs attention carries the last success over from the metrics file.
    metrics = _fifo(tmp_path / "metrics" / "intersect-batch.prom")
    run = _run(
        cli_run(configs, out, emulator, "--max-calls", "1", "--metrics-file", str(metrics)),
        tmp_path,
    )
    assert run.returncode == ExitCode.ATTENTION, run.stderr[-2000:]
    assert metrics.is_file() and "intersect_batch_last_run_exit_code 1.0" in (metrics.read_text())


def _report_fifo(folder: Path, earlier: Path) -> dict[str, Path]:
    return {
        "run.json": folder / "run.json",
        "a job's items": folder / "alpha.jsonl",
        "a job's diff": folder / "alpha.diff.jsonl",
        "an earlier night's run.json": earlier / "run.json",
        "an earlier night's manifest": earlier / "beta.manifest.json",
    }


@pytest.mark.timeout(2 * TIMEOUT + 60)
@pytest.mark.parametrize(
    "what",
    [
        "run.json",
        "a job's items",
        "a job's diff",
        "an earlier night's run.json",
        "an earlier night's manifest",
    ],
)
def test_a_fifo_among_the_reports_inputs_is_left_out_with_a_warning(
    tmp_path: Path, emulator: EmulatorProcess, what: str
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    earlier = _earlier_night(configs, out, emulator, tmp_path)
    tonight = _run(cli_run(configs, out, emulator), tmp_path)
    assert tonight.returncode == ExitCode.OK
    folder = RunFolder(out, RUN_DATE).path
    fifo = _fifo(_report_fifo(folder, earlier)[what])

    run = _run(command("report", str(folder)), tmp_path)

    assert run.returncode == ExitCode.OK, run.stderr[-2000:]
    assert f"{fifo} is a FIFO, not a regular file" in run.stderr
    page = (folder / "report.html").read_text()
    assert 'id="job-beta"' in page
    if what in ("a job's items", "a job's diff"):
        kind = "items" if what == "a job's items" else "changes"
        problem = f"its {kind} are left out: {fifo} is a FIFO, not a regular file"
        assert f"report of job alpha: {problem}" in run.stderr
        assert problem in page


# -- a line-less tail in last night's result ------------------------------------------------

#: Four times the line cap: read whole, as one line, it took about 3.4 times its size.
TAIL = 4 * MAX_LINE_BYTES


@pytest.mark.timeout(2 * TIMEOUT + 60)
def test_a_line_less_tail_in_last_nights_result_costs_bounded_memory_and_the_diff(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    earlier = _earlier_night(configs, out, emulator, tmp_path)
    _sparse_tail(earlier / "alpha.jsonl", TAIL)
    damaged = earlier / "alpha.jsonl"
    why = (
        f"{damaged}: line 301 is longer than 64 MiB (the longest line a run writes): "
        "the file is damaged"
    )

    run = _run(cli_run(configs, out, emulator, "--log-format", "json"), tmp_path)

    assert run.returncode == ExitCode.OK, run.stderr[-3000:]
    assert f"no diff: the result of {EARLIER} cannot be read: {why}" in run.messages()
    folder = RunFolder(out, RUN_DATE)
    diff = json.loads(folder.manifest("alpha").read_text())["diff"]
    assert diff == {
        "previous_run": EARLIER,
        "new": 0,
        "lost": 0,
        "skipped": f"diff unavailable: the result of {EARLIER} cannot be read: {why}",
        "unavailable": True,
    }
    assert json.loads(folder.manifest("beta").read_text())["diff"]["unavailable"] is False
    # At most one capped line is held (twice, as it is read): 128 MiB over the command's
    # own ~55 MB, 179 MB measured. Read whole, the 256 MiB tail took some 870 MB.
    assert run.peak_mb < 240, run.peak_mb

    # The report of that night leaves the damaged items out, and says so.
    report = _run(command("report", str(earlier)), tmp_path)
    assert report.returncode == ExitCode.OK, report.stderr[-2000:]
    assert f"report of job alpha: its items are left out: {why}" in report.stderr
    assert f"its items are left out: {why}" in (earlier / "report.html").read_text()
    assert not (earlier / "alpha.opportunities.csv").exists()
    assert (earlier / "beta.opportunities.csv").is_file()
    assert report.peak_mb < 240, report.peak_mb  # 186 MB measured


# -- folders removed under a command --------------------------------------------------------


def test_a_run_folder_removed_under_report_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "out" / RUN_DATE.isoformat()
    folder.mkdir(parents=True)
    (folder / "alpha.jsonl").write_text('{"page_intersection":null}\n')
    manifest = {"job_id": "alpha", "status": "complete", "output": "alpha.jsonl"}
    (folder / "alpha.manifest.json").write_text(json.dumps(manifest))

    def then_removed(path: Path) -> list[str]:
        # --keep-days of another run removes the folder between the walk and the reads.
        found = job_ids_in(path)
        shutil.rmtree(folder)
        return found

    monkeypatch.setattr(report_data, "job_ids_in", then_removed)
    status = cli.main(["report", str(folder)])
    err = capsys.readouterr().err
    assert status == ExitCode.USAGE
    assert err == (
        f"error: {folder} was removed while its report was being made (--keep-days of a "
        "run?): no report written\n"
    )


def _remove_under(monkeypatch: pytest.MonkeyPatch, job_id: str, remove: Callable[[], None]) -> None:
    """Run ``remove`` once, right after the job's first page became durable."""
    commit = JobStore.commit
    done: list[bool] = []

    def then_removed(store: JobStore, *args: Any) -> Any:
        checkpoint = commit(store, *args)
        if store.job_id == job_id and not done:
            done.append(True)
            remove()
        return checkpoint

    monkeypatch.setattr(JobStore, "commit", then_removed)


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("removed", ["the state folder", "the part file"])
def test_progress_removed_under_a_running_job_is_never_padded_into_its_result(
    tmp_path: Path,
    emulator: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    removed: str,
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    folder = RunFolder(out, RUN_DATE)
    if removed == "the state folder":
        jobs, what = JOBS[:1], "its part file is gone, its checkpoint vouches for"
        _remove_under(monkeypatch, "alpha", lambda: shutil.rmtree(folder.state))
    else:
        jobs, what = JOBS, "its part file is shorter than its checkpoint (0 of"
        _remove_under(monkeypatch, "alpha", lambda: os.truncate(folder.part("alpha"), 0))
    write_jobs(configs, "jobs.yaml", jobs)
    monkeypatch.setenv("DATAFORSEO_LOGIN", LOGIN)
    monkeypatch.setenv("DATAFORSEO_PASSWORD", PASSWORD)
    argv = cli_run(configs, out, emulator, "--log-format", "json")[3:]

    status = cli.main(argv)

    err = capsys.readouterr().err
    assert status == ExitCode.ATTENTION, err[-3000:]
    assert "Traceback" not in err
    line = next(j for j in _night(out)["jobs"] if j["job_id"] == "alpha")
    assert line["status"] == "failed"
    assert line["reason"].startswith(
        f"job 'alpha': its progress was removed or damaged while it ran ({what}"
    )
    assert line["reason"].endswith(
        f"nothing of it is finished, and the next run fetches its pages again ({folder.state})"
    )
    assert not folder.result("alpha").exists()
    if removed == "the state folder":
        assert not folder.state.exists()  # nothing made it again
    else:
        assert _statuses(out)["beta"] == "complete"

    # The next invocation starts the job over and writes every item, no NUL byte.
    monkeypatch.undo()
    again = _run(cli_run(configs, out, emulator), tmp_path)
    assert again.returncode == ExitCode.OK, again.stderr[-3000:]
    data = folder.result("alpha").read_bytes()
    assert b"\0" not in data and len(read_lines(folder.result("alpha"))) == 300
