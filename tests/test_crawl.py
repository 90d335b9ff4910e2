"""The nightly crawl end to end: YAML jobs -> calls to the emulator -> JSONL files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.settings import Limits
from tests.support import (
    RUN_DATE,
    calls_for,
    fast_settings,
    manifest,
    read_lines,
    run,
    served_items,
    write_jobs,
)

pytestmark = pytest.mark.anyio

SIZES = {"alpha.example": 2500, "empty.example": 0, "big.example": 5000, "one.example": 1}


async def test_multi_job_folder_writes_every_item_once_in_order(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(
        configs,
        "a.yaml",
        [
            {"id": "paged", "targets": ["alpha.example", "beta.example"], "page_size": 1000},
            {"id": "nothing", "targets": ["empty.example", "beta.example"]},
        ],
    )
    write_jobs(
        configs,
        "b.yml",
        [
            {
                "id": "capped",
                "targets": ["big.example", "gamma.example"],
                "page_size": 500,
                "max_items": 1200,
            },
        ],
    )
    async with running_emulator(EmulatorSettings(seed=3, sizes=SIZES)) as emu:
        outcome = await run(configs, emu, fast_settings(tmp_path / "out"))
        calls = emu.calls()
        total_paged, expected_paged = await served_items(
            emu, {"targets": {"1": "alpha.example", "2": "beta.example"}}
        )
        _, expected_capped = await served_items(
            emu, {"targets": {"1": "big.example", "2": "gamma.example"}}
        )

    assert outcome.exit_code == ExitCode.OK, outcome.message
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()

    # Every item, in offset order, exactly as served; total not a multiple of the page.
    assert total_paged == 2500
    assert read_lines(run_dir / "paged.jsonl") == expected_paged
    assert read_lines(run_dir / "nothing.jsonl") == []
    assert read_lines(run_dir / "capped.jsonl") == expected_capped[:1200]

    # The minimum of calls: ceil(total / page) each, one for an empty result, and the
    # last page of a capped job asks only for what is left.
    paged_calls = calls_for(calls, ["alpha.example", "beta.example"])
    assert sorted(c.offset or 0 for c in paged_calls) == [0, 1000, 2000]
    assert all(c.limit == 1000 for c in paged_calls)
    assert len(calls_for(calls, ["empty.example", "beta.example"])) == 1
    capped = sorted((c.offset, c.limit) for c in calls_for(calls, ["big.example", "gamma.example"]))
    assert capped == [(0, 500), (500, 500), (1000, 200)]
    assert len(calls) == 7
    assert {c.status_code for c in calls} == {20000}

    paged = manifest(run_dir, "paged")
    assert paged["status"] == "complete"
    assert paged["items_written"] == 2500
    assert paged["pages"] == 3 and paged["calls"] == 3
    assert paged["total_count"]["first"] == paged["total_count"]["last"] == 2500
    assert paged["cost_usd"] == pytest.approx(3 * 0.02 + 2500 * 0.00003)
    assert paged["config_file"].endswith("a.yaml")
    assert paged["request"]["targets"] == {"1": "alpha.example", "2": "beta.example"}

    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["exit_code"] == 0
    night, invocation = summary["night"], summary["invocation"]
    assert night["jobs_by_status"] == {"complete": 3}
    assert night["calls"] == invocation["calls"] == 7
    assert night["items"] == invocation["items"] == 2500 + 1200
    assert night["cost_usd"] == pytest.approx(7 * 0.02 + 3700 * 0.00003)
    assert invocation["cost_usd"] == pytest.approx(night["cost_usd"])
    # Nothing half-written is left behind after a clean run.
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [
            ".intersect-batch-run",
            ".ledger.json",
            "capped.jsonl",
            "capped.manifest.json",
            "nothing.jsonl",
            "nothing.manifest.json",
            "paged.jsonl",
            "paged.manifest.json",
            "run.json",
        ]
    )


async def test_a_rejected_job_fails_alone(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(
        configs,
        "jobs.yaml",
        [
            {"id": "good", "targets": ["alpha.example", "beta.example"]},
            # The loader accepts the syntax; the API rejects the value (rank is a number).
            {
                "id": "bad",
                "targets": ["one.example", "beta.example"],
                "filters": ["1.rank", "like", "%x%"],
            },
        ],
    )
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        outcome = await run(configs, emu, fast_settings(tmp_path / "out"))
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    assert outcome.exit_code == ExitCode.ATTENTION
    assert manifest(run_dir, "good")["status"] == "complete"
    bad = manifest(run_dir, "bad")
    assert bad["status"] == "failed"
    assert bad["errors"][0]["status_code"] == 40501
    assert bad["errors"][0]["kind"] == "job_fatal"
    assert "1.rank" in bad["reason"] or "filters" in bad["reason"]
    assert not (run_dir / "bad.jsonl").exists()
    assert "attention" in outcome.message


async def test_limits_are_never_exceeded_and_calls_are_spread(tmp_path: Path) -> None:
    # Time runs 15x faster on both sides: a "minute" lasts four seconds, and a stall of
    # the event loop under load lasts 15 times longer on the emulator's clock, far more
    # than the 1 % margin the run keeps for network jitter. So the run is told the
    # account's quota (40 a minute) and the emulator refuses only past 44: a stall cannot
    # pass for a pacing fault, and a pacing fault (a burst of the quota) still trips it.
    # The busiest minute's exact figure is pinned in virtual time (tests/test_pacing.py).
    scale = 15
    window = 60 / scale
    configs = tmp_path / "configs"
    write_jobs(
        configs,
        "many.yaml",
        [
            {"id": f"job-{n}", "targets": [f"site{n}.example", "beta.example"], "page_size": 20}
            for n in range(24)
        ],
    )
    # Small pages, so that the in-process emulator's work does not pace the calls.
    sizes = {f"site{n}.example": 20 * (n % 3) + 5 for n in range(24)}
    emulator = EmulatorSettings(
        sizes=sizes,
        rate_per_minute=44,
        max_concurrent=4,
        latency_median=0.01,
        clock=lambda: time.monotonic() * scale,
    )
    settings = fast_settings(
        tmp_path / "out",
        limits=Limits(rate_per_minute=40, concurrency=4, rate_period=window),
    )
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, settings)
        calls = emu.calls()
    assert outcome.exit_code == ExitCode.OK, outcome.message
    assert {c.status_code for c in calls} == {20000}
    assert len(calls) == sum(1 + n % 3 for n in range(24))
    times = sorted(c.t / scale for c in calls)
    # No window of one (scaled) minute holds more than the account allows ...
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + window) <= 44
    # ... because the calls are spread, not sent in a burst: a tenth of the window holds
    # about a tenth of the quota (4), the small burst (4) and some jitter; a burst of the
    # whole quota would put 40 there.
    for i, start in enumerate(times):
        in_tenth = sum(1 for t in times[i:] if t < start + window / 10)
        assert in_tenth <= 4 + settings.limits.burst + 2


async def test_invalid_config_file_does_not_stop_the_others(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "good.yaml", [{"id": "fine", "targets": ["one.example", "b.example"]}])
    (configs / "broken.yaml").write_text("jobs:\n  - id: oops\n    targets: [a.example\n")
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        outcome = await run(configs, emu, fast_settings(tmp_path / "out"))
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    assert outcome.exit_code == ExitCode.ATTENTION
    assert manifest(run_dir, "fine")["status"] == "complete"
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["config_errors"][0]["file"].endswith("broken.yaml")
    assert summary["config_errors"][0]["line"] is not None
    assert summary["night"]["jobs_by_status"] == {"complete": 1, "invalid": 1}
    invalid = [job for job in summary["jobs"] if job["status"] == "invalid"]
    assert len(invalid) == 1 and invalid[0]["config_file"].endswith("broken.yaml")


async def test_pages_written_together_complete_their_job_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Many small pages at once: they queue behind one write and are committed together.
    configs = tmp_path / "configs"
    write_jobs(
        configs,
        "jobs.yaml",
        [{"id": "many", "targets": ["alpha.example", "b.example"], "page_size": 10}],
    )
    settings = fast_settings(
        tmp_path / "out", limits=Limits(rate_per_minute=600_000, concurrency=16)
    )
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        outcome = await run(configs, emu, settings)
    assert outcome.exit_code == ExitCode.OK
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    assert manifest(run_dir, "many")["pages"] == 250
    assert len(read_lines(run_dir / "many.jsonl")) == 2500
