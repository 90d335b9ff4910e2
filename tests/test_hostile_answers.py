"""Hostile answers, end to end: the real command line against the emulator's hostile knobs.

Every run here is ``python -m intersect_batch run`` in a subprocess (credentials from the
environment) against ``python -m intersect_batch.emulator`` in another; time is bounded by
killing what outlives it, memory is the command's peak RSS. One night of many jobs meets
most of the faults at once (each job its own, pinned by its first target) and is run
twice; the tests below each check one row of what that night must show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from tests.hostile_cli import (
    CliRun,
    assert_nothing_leaked,
    command,
    run_cli,
    secret_forms,
)
from tests.support import RUN_DATE, cli_run, emulator_process, write_jobs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's /proc"),
]

LOGIN = "ops@night.example"
# Every character that encodes differently in base64, a URL and JSON.
PASSWORD = 'Pw/7"x+Q=&k\\9zR'
ENV = {"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}
CREDENTIALS = ("--login", LOGIN, "--password", PASSWORD)
#: What a hostile answer may cost the command at most (the caps are 64 MiB).
PEAK_LIMIT_MB = 200
MiB = 2**20


def _job(job_id: str, target: str, page_size: int = 100) -> dict[str, Any]:
    return {"id": job_id, "targets": [target, "b.example"], "page_size": page_size}


# The night: each hostile job meets its fault at offset 100 (page 1) or at 0; the
# "-control" jobs ask the same query in pages of 150, which no pin touches.
NIGHT_JOBS = [
    _job("bomb", "bomb.example"),
    _job("huge", "huge.example"),
    _job("deep", "deep.example"),
    _job("junk", "junk.example"),
    _job("pretty", "pretty.example"),
    _job("pretty-control", "pretty.example", 150),
    _job("multi", "multi.example"),
    _job("multi-control", "multi.example", 150),
    _job("echo", "echo.example"),
    _job("echo-first", "echofirst.example"),
    _job("long", "long.example"),
    _job("plain", "plain.example"),
]
NIGHT_PINS = (
    "100=gzip_bomb@bomb.example",
    "100=huge_body@huge.example",
    "100=deep_nesting@deep.example",
    "100=non_object_items@junk.example",
    "100=pretty_items@pretty.example",
    "200=pretty_items@pretty.example",
    "100=multiline_items@multi.example",
    "100=echo_credentials@echo.example",
    "0=echo_credentials@echofirst.example",
    "100=long_message@long.example",
)
FAILING = {"bomb", "huge", "deep", "junk", "echo", "echo-first", "long"}


def _emulator_args(pins: tuple[str, ...], *extra: str) -> list[str]:
    return [*CREDENTIALS, *(arg for pin in pins for arg in ("--fault-at", pin)), *extra]


@dataclass(frozen=True)
class Night:
    """A night of hostile answers, run twice with the same command."""

    out: Path
    log: Path
    first: CliRun
    again: CliRun
    calls: list[dict[str, Any]]

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.out, RUN_DATE)

    def manifest(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.folder.manifest(job_id).read_text())
        return data

    def run_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.folder.run_json.read_text())
        return data

    def calls_at(self, target: str, offset: int) -> list[dict[str, Any]]:
        return [
            call
            for call in self.calls
            if (call.get("targets") or {}).get("1") == target and call["offset"] == offset
        ]


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    root = tmp_path_factory.mktemp("night")
    configs, out, log = root / "configs", root / "night" / "out", root / "night" / "run.log"
    out.parent.mkdir()
    write_jobs(configs, "jobs.yaml", NIGHT_JOBS)
    sizes = {str(job["targets"][0]): 300 for job in NIGHT_JOBS}
    args = _emulator_args(
        NIGHT_PINS, "--huge-body-size", "500M", "--huge-body-chunked", "--nesting-depth", "100000"
    )
    with emulator_process(root, sizes, *args) as emulator:
        argv = cli_run(configs, out, emulator, "--attempts", "2", "--log-file", str(log))
        first = run_cli(argv, env=ENV, timeout=60, workdir=root)
        again = run_cli(argv, env=ENV, timeout=60, workdir=root)
        yield Night(out, log, first, again, emulator.calls())


def test_the_night_goes_on_past_every_hostile_answer(night: Night) -> None:
    for run in (night.first, night.again):
        assert run.returncode == ExitCode.ATTENTION, run.stderr[-3000:]
        assert "Traceback" not in run.stderr
        assert run.stdout.strip().splitlines()[-1].startswith("attention: ")
    jobs = {line["job_id"]: line for line in night.run_json()["jobs"]}
    assert {job_id for job_id, line in jobs.items() if line["status"] == "failed"} == FAILING
    assert {job_id for job_id, line in jobs.items() if line["status"] == "complete"} == {
        str(job["id"]) for job in NIGHT_JOBS
    } - FAILING
    for job in NIGHT_JOBS:
        assert night.manifest(str(job["id"]))["status"] == jobs[job["id"]]["status"]


def test_a_gzip_bomb_and_a_500_mb_body_fail_their_jobs_in_bounded_memory(night: Night) -> None:
    bomb, huge = night.manifest("bomb"), night.manifest("huge")
    assert "inflates past 67,108,864 bytes" in bomb["reason"]
    assert "AnswerCaps.max_inflated_bytes" in bomb["reason"]
    assert "passed 67,108,864 bytes" in huge["reason"]
    assert "AnswerCaps.max_body_bytes" in huge["reason"]
    # Job-fatal: each is asked for once a run (and the night ran twice).
    assert [c["fault"] for c in night.calls_at("bomb.example", 100)] == ["gzip_bomb"] * 2
    assert [c["fault"] for c in night.calls_at("huge.example", 100)] == ["huge_body"] * 2
    assert night.first.peak_mb < PEAK_LIMIT_MB, night.first.peak_mb
    assert night.again.peak_mb < PEAK_LIMIT_MB, night.again.peak_mb


def test_an_answer_nested_100000_deep_is_retried_then_fails_its_job(night: Night) -> None:
    deep = night.manifest("deep")
    errors = [error for error in deep["errors"] if error["offset"] == 100]
    assert errors and all("nested too deep" in error["message"] for error in errors)
    assert deep["reason"].startswith("gave up after 2 attempts")
    # Two attempts a run, two runs; the pages around it are on disk, not fetched again.
    assert len(night.calls_at("deep.example", 100)) == 4
    assert len(night.calls_at("deep.example", 0)) == 1
    # The re-run skipped what was complete and resumed the rest, without a traceback.
    skipped = [r for r in night.again.records() if r["message"] == "job already complete: skipped"]
    assert {r["job"] for r in skipped} == {str(j["id"]) for j in NIGHT_JOBS} - FAILING


def test_echoed_credentials_and_a_5_mb_message_leave_no_trace(night: Night) -> None:
    forms = secret_forms(LOGIN, PASSWORD)
    for run in (night.first, night.again):
        assert_nothing_leaked(run, [night.out, night.log], forms)
    # The emulator did echo them: what was written is the scrubbed text.
    assert night.calls_at("echo.example", 100) and night.calls_at("echofirst.example", 0)
    for job_id in ("echo", "echo-first"):
        reason = night.manifest(job_id)["reason"]
        assert "Request refused for Authorization: Basic ***; credentials: ***" in reason
    # A 5 MB status message is cut: the manifest, run.json and log lines stay small.
    long = night.manifest("long")
    assert "could not be processed in full" in long["reason"]
    assert len(long["reason"]) < 1000
    for path in night.folder.path.glob("*.json"):
        assert path.stat().st_size < 64 * 1024, path
    assert max(len(line) for line in night.log.read_text().splitlines()) < 4096
    assert night.first.peak_mb < PEAK_LIMIT_MB


def test_an_item_that_is_not_an_object_is_retried_then_fails_its_job(night: Night) -> None:
    junk = night.manifest("junk")
    assert "is not a JSON object" in junk["reason"]
    assert [c["fault"] for c in night.calls_at("junk.example", 100)] == ["non_object_items"] * 4
    assert not night.folder.result("junk").exists()


def test_pretty_and_multiline_items_are_written_as_the_compact_bytes(night: Night) -> None:
    assert {c["fault"] for c in night.calls_at("pretty.example", 200)} == {"pretty_items"}
    assert {c["fault"] for c in night.calls_at("multi.example", 100)} == {"multiline_items"}
    for job_id in ("pretty", "multi"):
        written = night.folder.result(job_id).read_bytes()
        control = night.folder.result(f"{job_id}-control").read_bytes()
        lines = written.splitlines()
        assert len(lines) == 300
        assert all(json.loads(line)["page_intersection"] for line in lines)
        # Byte for byte what the compact answers hold: nothing spaced, nothing changed.
        assert written == control


@pytest.mark.parametrize("code", [50000, 40100])
def test_a_whole_call_error_echoing_credentials_leaves_no_trace(tmp_path: Path, code: int) -> None:
    configs, out, log = tmp_path / "configs", tmp_path / "night" / "out", tmp_path / "run.log"
    write_jobs(configs, "jobs.yaml", [_job("echo", "echo.example"), _job("plain", "plain.example")])
    sizes = {"echo.example": 300, "plain.example": 300}
    args = _emulator_args(("100=echo_credentials@echo.example",), "--hostile-error-code", str(code))
    with emulator_process(tmp_path, sizes, *args) as emulator:
        argv = cli_run(configs, out, emulator, "--attempts", "2", "--log-file", str(log))
        run = run_cli(argv, env=ENV, timeout=60, workdir=tmp_path)
        echoed = [c for c in emulator.calls() if c["fault"] == "echo_credentials"]
    assert echoed
    assert_nothing_leaked(run, [out, log], secret_forms(LOGIN, PASSWORD))
    if code == 40100:
        # The account is refused: the run stops at once, saying which variable to check.
        assert run.returncode == ExitCode.ACCOUNT
        assert "check the API login and password" in run.stdout
    else:
        assert run.returncode == ExitCode.ATTENTION
        assert len(echoed) == 2  # a server error is retried
        assert "Basic ***" in RunFolder(out, RUN_DATE).manifest("echo").read_text()


def test_a_trickling_body_ends_at_the_deadline_while_the_other_jobs_complete(
    tmp_path: Path,
) -> None:
    slow = [_job("slow-a", "slowa.example"), _job("slow-b", "slowb.example")]
    quick = [_job(f"quick-{n}", f"quick{n}.example") for n in range(1, 6)]
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", slow + quick)
    sizes = {str(job["targets"][0]): 300 if job in slow else 500 for job in slow + quick}
    pins = ("100=trickle@slowa.example", "100=trickle@slowb.example")
    args = _emulator_args(pins, "--trickle-bytes", "1", "--trickle-pause", "1")
    with emulator_process(tmp_path, sizes, *args) as emulator:
        # Three slots, two pages in memory (the default): if a trickling body held a
        # place in memory or a slot other jobs need, the quick jobs would wait for it.
        argv = command(
            *cli_run(
                configs, out, emulator, "--attempts", "1", "--concurrency", "3", "--deadline", "3"
            )[3:],
        )
        run = run_cli(argv, env=ENV, timeout=40, workdir=tmp_path)
        trickled = [c for c in emulator.calls() if c["fault"] == "trickle"]
    assert run.returncode == ExitCode.ATTENTION, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    records = run.records()
    # The record each job ends with carries its status and figures.
    ended = [r for r in records if "status" in r and "items" in r]
    finished = [r["job"] for r in ended if r["status"] == "complete"]
    failed = [r for r in ended if r["status"] == "failed"]
    assert sorted(finished) == sorted(str(job["id"]) for job in quick)
    assert sorted(r["job"] for r in failed) == ["slow-a", "slow-b"]
    assert all("within the 3 s deadline" in r["reason"] for r in failed)
    # Every quick job was done before the first trickle reached its deadline.
    first_failure = min(records.index(r) for r in records if "deadline" in r["message"])
    last_complete = max(records.index(r) for r in ended if r["status"] == "complete")
    assert last_complete < first_failure
    assert len(trickled) == 2


def test_many_huge_bodies_at_once_cost_no_more_memory_than_the_pages_in_memory(
    tmp_path: Path,
) -> None:
    jobs = [_job(f"huge-{n}", f"huge{n}.example") for n in range(8)]
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", jobs)
    args = [
        *CREDENTIALS, "--fault-huge-body", "1", "--huge-body-size", "500M", "--huge-body-chunked",
    ]  # fmt: skip
    with emulator_process(tmp_path, {}, *args) as emulator:
        argv = cli_run(configs, out, emulator, "--attempts", "1", "--concurrency", "8")
        run = run_cli(argv, env=ENV, timeout=60, workdir=tmp_path)
        served = emulator.calls()
    assert run.returncode == ExitCode.ATTENTION, run.stderr[-3000:]
    assert len(served) == 8
    summary = json.loads(RunFolder(out, RUN_DATE).run_json.read_text())
    assert summary["night"]["jobs_by_status"] == {"failed": 8}
    for line in summary["jobs"]:
        assert "AnswerCaps.max_body_bytes" in line["reason"]
    # Eight 64 MiB reads at once would be over 500 MB: only the pages in memory (2)
    # may read past the read-ahead, the others wait with a few MiB each.
    assert run.peak_mb < 300, run.peak_mb


def test_a_total_count_gone_wild_stops_after_a_few_calls_and_is_flagged(tmp_path: Path) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", [_job("wild", "wild.example")])
    sizes = {"wild.example": 300}
    (tmp_path / "normal").mkdir()
    (tmp_path / "wild").mkdir()
    with emulator_process(tmp_path / "normal", sizes, *CREDENTIALS) as normal:
        argv = cli_run(configs, out, normal, "--run-date", "2026-11-28")
        before = run_cli(argv, env=ENV, timeout=30, workdir=tmp_path)
    assert before.returncode == ExitCode.OK, before.stderr[-3000:]
    with emulator_process(
        tmp_path / "wild", sizes, *CREDENTIALS, "--fault-huge-total", "1"
    ) as wild:
        argv = command(
            *cli_run(configs, out, wild, "--attempts", "2")[3:],
            overrides={"RetryPolicy": {"base": 0.01, "cap": 0.1}},
        )
        run = run_cli(argv, env=ENV, timeout=60, workdir=tmp_path)
        served = wild.calls()
    assert run.returncode == ExitCode.ATTENTION, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    manifest = json.loads(RunFolder(out, RUN_DATE).manifest("wild").read_text())
    assert manifest["status"] == "failed"
    assert manifest["plan_jump"] == {"previous_total": 300, "total": 10**9}
    assert manifest["holes"] and all(
        "an empty page inside total_count 1000000000" in hole["reason"]
        for hole in manifest["holes"]
    )
    # Ten million pages planned; the empty pages stop the job within its window ahead.
    assert len(served) == manifest["calls"] <= 100
    assert manifest["cost_usd"] < 2.5
    assert any("total_count jumped from 300" in message for message in run.messages())


def test_the_safety_cap_on_calls_stops_a_run_that_would_call_too_much(tmp_path: Path) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", [_job("big", "big.example"), _job("more", "more.example")])
    with emulator_process(tmp_path, {"big.example": 3000, "more.example": 3000}, *CREDENTIALS) as e:
        argv = command(*cli_run(configs, out, e, "--concurrency", "2", "--max-calls", "7")[3:])
        run = run_cli(argv, env=ENV, timeout=30, workdir=tmp_path)
        served = e.calls()
    assert run.returncode == ExitCode.ATTENTION, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    summary = json.loads(RunFolder(out, RUN_DATE).run_json.read_text())
    assert len(served) == summary["invocation"]["calls"] == 7
    assert summary["night"]["jobs_by_status"] == {"partial": 2}
    assert "the safety cap of 7 calls for one run is reached" in summary["stop_reason"]
    assert summary["settings"]["max_calls"] == 7
