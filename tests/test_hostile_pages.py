"""Answers that are not the page asked for, and odd text, end to end through the command line.

``python -m intersect_batch run`` in a subprocess against ``python -m
intersect_batch.emulator`` in another, whose answers come through a caching proxy that
answers every offset with page 0, without the request's echo, with more items than the
limit asked, or with text that is not UTF-8. Each night has a job the oddity hits and
one it cannot (a single page, within its limit), which completes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from tests.hostile_cli import CliRun, assert_nothing_leaked, run_cli, secret_forms
from tests.support import RUN_DATE, cli_run, emulator_process, write_jobs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's /proc"),
]

LOGIN = "ops@night.example"
PASSWORD = 'Pw/7"x+Q=&k\\9zR'
ENV = {"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}
CREDENTIALS = ("--login", LOGIN, "--password", PASSWORD)
JOBS = [
    {"id": "big", "targets": ["big.example", "b.example"], "page_size": 100},
    {"id": "small", "targets": ["small.example", "b.example"], "page_size": 100},
]


@dataclass(frozen=True)
class Night:
    run: CliRun
    folder: RunFolder
    calls: list[dict[str, Any]]

    def manifest(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.folder.manifest(job_id).read_text())
        return data

    def run_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.folder.run_json.read_text())
        return data

    def statuses(self) -> dict[str, str]:
        return {line["job_id"]: line["status"] for line in self.run_json()["jobs"]}

    def offsets(self, target: str) -> list[int]:
        return [c["offset"] for c in self.calls if (c.get("targets") or {}).get("1") == target]


def _night(tmp_path: Path, sizes: dict[str, int], *oddities: str) -> Night:
    configs, out, log = tmp_path / "configs", tmp_path / "out", tmp_path / "run.log"
    write_jobs(configs, "jobs.yaml", JOBS)
    with emulator_process(tmp_path, sizes, *CREDENTIALS, *oddities) as emulator:
        argv = cli_run(configs, out, emulator, "--attempts", "2", "--log-file", str(log))
        run = run_cli(argv, env=ENV, timeout=60, workdir=tmp_path)
        calls = emulator.calls()
    assert_nothing_leaked(run, [out, log], secret_forms(LOGIN, PASSWORD))
    return Night(run, RunFolder(out, RUN_DATE), calls)


def _assert_big_failed_small_complete(night: Night) -> dict[str, Any]:
    assert night.run.returncode == ExitCode.ATTENTION, night.run.stderr[-3000:]
    assert night.statuses() == {"big": "failed", "small": "complete"}
    assert not night.folder.result("big").exists()
    assert len(night.folder.result("small").read_bytes().splitlines()) == 80
    last = night.run.stdout.strip().splitlines()[-1]
    assert last.startswith("attention: ") and "big failed" in last
    return night.manifest("big")


def test_a_proxy_answering_every_offset_with_page_0_fails_the_job_naming_the_mismatch(
    tmp_path: Path,
) -> None:
    night = _night(tmp_path, {"big.example": 300, "small.example": 80}, "--first-page-proxy")
    big = _assert_big_failed_small_complete(night)
    # The page that gave up first is named: its offset, the field, what was asked, what came.
    match = re.fullmatch(
        r"gave up after 2 attempts: job 'big' offset (100|200): \[20000\] bad answer: an "
        r"answer to another request: the request asked offset (\d+), the answer's echo "
        r"\(tasks\[\]\.data\) says offset 0",
        big["reason"],
    )
    assert match is not None, big["reason"]
    assert match.group(1) == match.group(2)
    assert big["items_written"] == 100 and big["duplicates_dropped"] == 0
    mismatches = [e for e in big["errors"] if e["offset"] in (100, 200)]
    assert mismatches and all(
        e["message"].endswith(f"the request asked offset {e['offset']}, the answer's echo "
                              "(tasks[].data) says offset 0")
        for e in mismatches
    )  # fmt: skip
    # Every answer, the bad ones included, is counted at the cost it reported.
    big_calls = night.offsets("big.example")
    assert big["calls"] == len(big_calls) and big_calls.count(0) == 1
    assert big["cost_usd"] == pytest.approx(len(big_calls) * (0.02 + 100 * 0.00003))


def test_without_an_echo_a_repeated_page_is_never_written_as_complete(tmp_path: Path) -> None:
    night = _night(
        tmp_path, {"big.example": 300, "small.example": 80}, "--first-page-proxy", "--no-echo"
    )
    big = _assert_big_failed_small_complete(night)
    # Whichever came first: a repeated page refused as it arrived, or, for one that
    # slipped in before page 0 was durable, the share of duplicates at the end.
    repeated = "every item is one the job already holds: a page repeated"
    share = re.compile(r"(100|200) duplicate items dropped, (33|67)% of total_count 300")
    assert repeated in big["reason"] or share.match(big["reason"]), big["reason"]
    assert big["items_written"] == 100


def test_a_page_of_1000_items_for_a_limit_of_100_is_a_bad_answer(tmp_path: Path) -> None:
    night = _night(tmp_path, {"big.example": 1500, "small.example": 80}, "--page-items", "1000")
    big = _assert_big_failed_small_complete(night)
    assert big["reason"] == (
        "gave up after 2 attempts: job 'big' offset 0: [20000] bad answer: the page holds "
        "1000 items, more than the limit of 100 asked"
    )
    assert night.offsets("big.example") == [0, 0]
    assert big["items_written"] == 0
    # Booked at what the answers said they cost: 1000 items each.
    assert big["cost_usd"] == pytest.approx(2 * (0.02 + 1000 * 0.00003))


def test_odd_text_is_kept_and_the_result_file_stays_valid_utf8_json(tmp_path: Path) -> None:
    night = _night(
        tmp_path,
        {"big.example": 300, "small.example": 80},
        "--surrogate-at", "150", "--bad-utf8-at", "5", "--bad-utf8-at", "205",
    )  # fmt: skip
    run = night.run
    assert run.returncode == ExitCode.OK, run.stderr[-3000:]
    assert night.statuses() == {"big": "complete", "small": "complete"}
    data = night.folder.result("big").read_bytes()
    data.decode("utf-8")  # strict: every byte is UTF-8
    items = [json.loads(line) for line in data.splitlines()]
    assert len(items) == 300
    # The odd text went into a title: each invalid byte became U+FFFD, and so did the
    # lone surrogate; every other character is as the API sent it.
    replaced = [json.dumps(item, ensure_ascii=False).count("\ufffd") for item in items]
    assert {n: count for n, count in enumerate(replaced) if count} == {5: 2, 150: 1, 205: 2}
    url = items[150]["page_intersection"]["1"][0]["url_from"]
    assert sum(item["page_intersection"]["1"][0]["url_from"] == url for item in items) == 1
    # Each page was asked for once: nothing was retried for its text.
    assert sorted(night.offsets("big.example")) == [0, 100, 200]
    # The oddities hit every query: the small job's item 5 too (its others are in range).
    small = night.folder.result("small").read_bytes()
    assert len([json.loads(line) for line in small.decode("utf-8").splitlines()]) == 80
    assert night.manifest("big")["items_repaired"] == 3
    assert night.manifest("small")["items_repaired"] == 1
    summary = night.run_json()
    assert {line["job_id"]: line["items_repaired"] for line in summary["jobs"]} == {
        "big": 3,
        "small": 1,
    }
    assert summary["night"]["items_repaired"] == 4
