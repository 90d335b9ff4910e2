"""Every item exactly once, against pages that come back empty, short or without a result.

End to end over HTTP: the emulator pins a hole at one offset of one job, the real
``run_batch`` crawls, and the test reads what a user reads: the exit status, the last
line, the manifests, the result files (byte for byte against what the emulator serves)
and the calls the emulator logged.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.emulator import (
    CallRecord,
    EmulatorSettings,
    FaultSettings,
    PinnedFault,
    running_emulator,
)
from intersect_batch.exitcode import ExitCode
from intersect_batch.settings import Limits
from tests.support import (
    RUN_DATE,
    calls_for,
    fast_settings,
    manifest,
    run,
    served_items,
    write_jobs,
)

pytestmark = pytest.mark.anyio

SIZES = {"holed.example": 400, "other.example": 400}
HOLED = ["holed.example", "b.example"]
OTHER = ["other.example", "b.example"]
JOBS: list[dict[str, Any]] = [
    {"id": "holed", "targets": HOLED, "page_size": 100},
    {"id": "other", "targets": OTHER, "page_size": 100},
]
#: What each kind of hole looks like at offset 300 of 400 items, in the manifest's words.
HOLES = [
    pytest.param(40102, "no result inside total_count 400", id="40102"),
    pytest.param("empty_page", "an empty page inside total_count 400", id="empty_page"),
    pytest.param("short_page", "50 of 100 items although total_count is 400", id="short_page"),
]


def _as_jsonl(items: list[Any]) -> bytes:
    """The bytes a result file holds for these items: one compact JSON object a line."""
    return b"".join(
        json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        for item in items
    )


def _query(targets: list[str]) -> dict[str, Any]:
    return {"targets": {str(n): t for n, t in enumerate(targets, start=1)}}


def _offsets(calls: list[CallRecord], targets: list[str]) -> Counter[int | None]:
    return Counter(c.offset for c in calls_for(calls, targets))


def _run_dir(tmp_path: Path) -> Path:
    return tmp_path / "out" / RUN_DATE.isoformat()


@pytest.mark.parametrize(("kind", "why"), HOLES)
async def test_a_page_that_stays_a_hole_fails_its_job_and_names_the_offset(
    tmp_path: Path, kind: str | int, why: str
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    hole = PinnedFault(offset=300, kind=kind, target="holed.example")
    emulator = EmulatorSettings(sizes=SIZES, faults=FaultSettings(pinned=(hole,)))
    settings = fast_settings(tmp_path / "out")
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, settings)
        calls = emu.calls()
        _, other_items = await served_items(emu, _query(OTHER))
    run_dir = _run_dir(tmp_path)

    assert outcome.exit_code == ExitCode.ATTENTION
    assert outcome.message.splitlines()[-1].startswith(
        "attention: night 2026-11-29: 1 complete, 1 failed;"
    )
    holed = manifest(run_dir, "holed")
    assert holed["status"] == "failed"
    assert holed["holes"] == [{"offset": 300, "reason": why, "attempts": 6}]
    assert holed["reason"] == f"offset 300: {why}, after 6 attempts"
    assert holed["output"] is None
    assert not (run_dir / "holed.jsonl").exists()
    # The hole was asked for as often as the attempts allow, every other page once.
    assert _offsets(calls, HOLED) == {0: 1, 100: 1, 200: 1, 300: 6}
    assert holed["calls"] == 9 and holed["retries"] == 5
    # The pages in front of the hole are kept for the next run.
    assert holed["pages"] == 3 and holed["items_written"] == 300

    other = manifest(run_dir, "other")
    assert other["status"] == "complete"
    assert (run_dir / "other.jsonl").read_bytes() == _as_jsonl(other_items)
    assert _offsets(calls, OTHER) == {0: 1, 100: 1, 200: 1, 300: 1}

    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["night"]["jobs_by_status"] == {"complete": 1, "failed": 1}
    assert summary["night"]["calls"] == len(calls) == 13
    assert summary["night"]["cost_usd"] == pytest.approx(sum(c.cost for c in calls))

    # Once the API serves the page, the next run asks for it alone and completes.
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        again = await run(configs, emu, settings)
        second = emu.calls()
        _, holed_items = await served_items(emu, _query(HOLED))
    assert again.exit_code == ExitCode.OK, again.message
    assert [(c.offset, c.targets) for c in second] == [(300, _query(HOLED)["targets"])]
    assert (run_dir / "holed.jsonl").read_bytes() == _as_jsonl(holed_items)
    assert manifest(run_dir, "holed")["holes"] == []


@pytest.mark.parametrize(("kind", "why"), HOLES)
async def test_a_hole_that_fills_after_two_calls_completes_the_job(
    tmp_path: Path, kind: str | int, why: str
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    hole = PinnedFault(offset=300, kind=kind, times=2, target="holed.example")
    emulator = EmulatorSettings(sizes=SIZES, faults=FaultSettings(pinned=(hole,)))
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, fast_settings(tmp_path / "out"))
        calls = emu.calls()
        _, holed_items = await served_items(emu, _query(HOLED))
    run_dir = _run_dir(tmp_path)

    assert outcome.exit_code == ExitCode.OK, outcome.message
    assert outcome.message.splitlines()[-1].startswith("ok: night 2026-11-29: 2 complete;")
    assert (run_dir / "holed.jsonl").read_bytes() == _as_jsonl(holed_items)
    holed = manifest(run_dir, "holed")
    assert holed["status"] == "complete" and holed["holes"] == []
    assert holed["retries"] == 2
    assert [error["message"] for error in holed["errors"]] == [why, why]
    assert _offsets(calls, HOLED) == {0: 1, 100: 1, 200: 1, 300: 3}
    assert [c.fault is not None for c in calls_for(calls, HOLED) if c.offset == 300] == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("seed", "size", "page", "flagged"),
    [
        # 366 at page 0, 353 when the last page came: 53 items where 66 were promised.
        pytest.param(1, 400, 100, False, id="shrank-3.6%"),
        # 57 at page 0, 47 at offset 40: 7 items where 10 were promised.
        pytest.param(2, 60, 10, True, id="shrank-17.5%"),
    ],
)
async def test_a_total_that_shrank_in_the_same_answer_is_no_hole(
    tmp_path: Path, seed: int, size: int, page: int, flagged: bool
) -> None:
    configs = tmp_path / "configs"
    targets = ["live.example", "b.example"]
    write_jobs(configs, "jobs.yaml", [{"id": "live", "targets": targets, "page_size": page}])
    emulator = EmulatorSettings(seed=seed, sizes={"live.example": size}, live_data=0.3)
    # One call at a time: the live data moves per call, in a fixed order.
    settings = fast_settings(tmp_path / "out", limits=Limits(rate_per_minute=60_000, concurrency=1))
    async with running_emulator(emulator) as emu:
        outcome = await run(configs, emu, settings)
        calls = emu.calls()
    run_dir = _run_dir(tmp_path)

    assert outcome.exit_code == ExitCode.OK, outcome.message
    got = manifest(run_dir, "live")
    assert got["status"] == "complete" and got["holes"] == [] and got["retries"] == 0
    # Each page asked once; the last one shorter than the first total promised, and
    # exactly as long as its own answer's total says.
    assert len({c.offset for c in calls}) == len(calls)
    first_total = calls[0].total_count
    last = calls[-1]
    assert first_total is not None and last.total_count is not None and last.offset is not None
    assert last.total_count < first_total
    assert last.items < min(page, first_total - last.offset)
    assert last.items == min(page, last.total_count - last.offset)
    # The manifest's account of the total is the one the emulator served, call by call.
    served = [c.total_count for c in calls if c.total_count is not None]
    drift = (max(served) - min(served)) / max(served)
    assert got["total_count"] == {
        "first": served[0],
        "last": served[-1],
        "min": min(served),
        "max": max(served),
        "drift": round(drift, 6),
        "flagged": flagged,
    }
    assert (drift > 0.05) is flagged
    lines = (run_dir / "live.jsonl").read_bytes().splitlines()
    urls = [json.loads(line)["page_intersection"]["1"][0]["url_from"] for line in lines]
    assert len(set(urls)) == len(urls) == got["items_written"]
    assert got["items_received"] == sum(c.items for c in calls)
