"""The merge of an incremental night, what a full night counts as missed, and their failures."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.emulator import EmulatorSettings, RunningEmulator, running_emulator
from intersect_batch.emulator.settings import FaultSettings, PinnedFault
from intersect_batch.emulator.timeline import Timeline
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from intersect_batch.merge import Merged, count_missed, merge_night
from tests.support import fast_settings, run, write_jobs


def _item(url: str, *first_seen: str) -> bytes:
    links = {
        str(n): [{"url_from": url, "first_seen": seen, "rank": n}]
        for n, seen in enumerate(first_seen, start=1)
    }
    return json.dumps({"page_intersection": links}, separators=(",", ":")).encode()


def _write(path: Path, *items: bytes) -> Path:
    path.write_bytes(b"".join(item + b"\n" for item in items))
    return path


OLD, NEW = "2024-03-01 10:00:00 +00:00", "2026-12-03 08:00:00 +00:00"
CUTOFF = "2026-12-01 00:00:00 +00:00"


def test_the_merge_keeps_the_carried_set_and_adds_each_new_page_once(tmp_path: Path) -> None:
    a, b, c, d = (_item(f"https://x.example/{n}", NEW) for n in "abcd")
    b_again = _item("https://x.example/b", NEW, NEW)  # the same page, as asked again
    carried = _write(tmp_path / "carried.jsonl", a, b)
    first = _write(tmp_path / "1.jsonl", b_again, c)
    second = _write(tmp_path / "2.jsonl", c, d, a)
    target = tmp_path / "out.jsonl"
    merged = merge_night(carried, [first, second], target)
    assert merged == Merged(carried=2, fetched=5, new=2)
    assert merged.items == 4
    assert target.read_bytes() == b"".join(x + b"\n" for x in (a, b, c, d))
    again = merge_night(carried, [first, second], target)
    assert again == merged
    assert target.read_bytes() == b"".join(x + b"\n" for x in (a, b, c, d))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "1.jsonl", "2.jsonl", "carried.jsonl", "out.jsonl",
    ]  # fmt: skip


def test_a_merge_that_cannot_read_its_input_leaves_the_result_as_it_was(tmp_path: Path) -> None:
    target = _write(tmp_path / "out.jsonl", _item("https://x.example/old", OLD))
    before = target.read_bytes()
    carried = _write(tmp_path / "carried.jsonl", _item("https://x.example/a", OLD))
    with pytest.raises(OSError):
        merge_night(carried, [tmp_path / "missing.jsonl"], target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carried.jsonl", "out.jsonl"]


def test_missed_counts_pages_new_to_the_set_with_no_backlink_first_seen_after_the_cutoff(
    tmp_path: Path,
) -> None:
    kept = _item("https://x.example/kept", OLD)
    found_again = _item("https://x.example/again", OLD, OLD)
    brand_new = _item("https://x.example/new", NEW)
    one_new_link = _item("https://x.example/half", OLD, NEW)
    on_the_cutoff = _item("https://x.example/edge", CUTOFF)
    previous = _write(tmp_path / "previous.jsonl", kept)
    current = _write(
        tmp_path / "current.jsonl",
        kept, found_again, brand_new, one_new_link, on_the_cutoff, found_again,
    )  # fmt: skip
    assert count_missed(current, previous, CUTOFF) == 2


def test_a_requests_manifest_in_the_state_folder_is_no_job_of_the_run(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, dt.date(2026, 12, 2))
    folder.state.mkdir(parents=True)
    (folder.state / "gap+new-1.manifest.json").write_text("{}")
    (folder.path / "gap.manifest.json").write_text("{}")
    assert folder.job_ids() == ["gap"]


# -- failures, through a real run against the emulator -------------------------------------

ORIGIN = dt.date(2026, 12, 1)
LINE = Timeline(origin=ORIGIN, daily_new=0.01)
JOB = {"id": "gap", "targets": ["alpha.example", "beta.example"], "page_size": 50}


async def _night(
    emu: RunningEmulator, configs: Path, out: Path, day: int, *, report: bool = False, **kw: Any
) -> Any:
    date = ORIGIN + dt.timedelta(days=day)
    emu.emulator.dates.date = date
    return await run(configs, emu, fast_settings(out, run_date=date, **kw), report=report)


@pytest.mark.anyio
async def test_requests_complete_before_a_failed_merge_are_merged_by_the_next_run_for_free(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [JOB], defaults={"refresh": "incremental"})
    settings = EmulatorSettings(sizes={"alpha.example": 600}, timeline=LINE)
    reference, broken = tmp_path / "reference", tmp_path / "broken"
    async with running_emulator(settings) as emu:
        for out in (reference, broken):
            assert (await _night(emu, configs, out, 0)).exit_code == ExitCode.OK
        assert (await _night(emu, configs, reference, 2)).exit_code == ExitCode.OK
        # A folder where the result goes: the requests complete, the merge cannot write.
        blocker = broken / "2026-12-03" / "gap.jsonl"
        blocker.mkdir(parents=True)
        failed = await _night(emu, configs, broken, 2)
        assert failed.exit_code == ExitCode.ATTENTION
        assert failed.summary is not None
        line = failed.summary.jobs[0]
        assert line.status == "failed"
        assert line.reason is not None and line.reason.startswith("cannot merge the night's pages")
        state = sorted(p.name for p in (broken / "2026-12-03" / ".state").iterdir())
        assert state == ["gap+new-1.jsonl", "gap+new-1.manifest.json"]
        blocker.rmdir()
        calls = len(emu.calls())
        again = await _night(emu, configs, broken, 2)
        assert again.exit_code == ExitCode.OK
        assert len(emu.calls()) == calls  # nothing is fetched again
    for name in ("gap.jsonl", "gap.diff.jsonl"):
        assert (broken / "2026-12-03" / name).read_bytes() == (
            reference / "2026-12-03" / name
        ).read_bytes()
    assert not (broken / "2026-12-03" / ".state").exists()
    manifest = json.loads((broken / "2026-12-03" / "gap.manifest.json").read_text())
    assert manifest["refresh"]["mode"] == "incremental"
    assert manifest["calls"] == 1


@pytest.mark.anyio
async def test_a_failed_request_fails_its_job_and_the_next_night_is_full(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [JOB], defaults={"refresh": "incremental"})
    out = tmp_path / "out"
    settings = EmulatorSettings(sizes={"alpha.example": 600}, timeline=LINE)
    async with running_emulator(settings) as emu:
        assert (await _night(emu, configs, out, 0)).exit_code == ExitCode.OK
    # The same index, but the first call at offset 0 is refused: the incremental request's.
    pinned = FaultSettings(pinned=(PinnedFault.parse("0=40501:1@alpha.example"),))
    faulty = dataclasses.replace(settings, faults=pinned)
    async with running_emulator(faulty) as emu:
        failed = await _night(emu, configs, out, 1)
        assert failed.exit_code == ExitCode.ATTENTION
        assert emu.calls()[0].conditions == 2
        manifest = json.loads((out / "2026-12-02" / "gap.manifest.json").read_text())
        assert manifest["status"] == "failed"
        assert manifest["reason"].startswith("gap+new-1: ")
        assert manifest["refresh"]["mode"] == "incremental"
        assert not (out / "2026-12-02" / "gap.jsonl").exists()
    async with running_emulator(settings) as emu:
        full = await _night(emu, configs, out, 2)
        assert full.exit_code == ExitCode.OK
        note = json.loads((out / "2026-12-03" / "gap.manifest.json").read_text())["refresh"]
        assert note == {
            "mode": "full",
            "why": "the last night, 2026-12-02, is not complete",
            "next_full": "2026-12-10",
        }


@pytest.mark.anyio
async def test_a_missing_result_and_the_full_flag_each_make_the_night_full(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [JOB], defaults={"refresh": "incremental"})
    out = tmp_path / "out"
    settings = EmulatorSettings(sizes={"alpha.example": 600}, timeline=LINE)
    async with running_emulator(settings) as emu:
        await _night(emu, configs, out, 0)
        (out / "2026-12-01" / "gap.jsonl").unlink()
        await _night(emu, configs, out, 1)
        await _night(emu, configs, out, 2, full=True)
        await _night(emu, configs, out, 3)
    notes = [
        json.loads((out / f"2026-12-0{n}" / "gap.manifest.json").read_text())["refresh"]["why"]
        for n in (2, 3, 4)
    ]
    assert notes == [
        "the last night, 2026-12-01, is not complete",
        "--full",
        "new since 2026-12-01 00:00:00 +00:00",
    ]


@pytest.mark.anyio
async def test_the_report_says_what_an_incremental_night_fetched_and_what_full_ones_found(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [JOB], defaults={"refresh": "incremental"})
    out = tmp_path / "out"
    settings = EmulatorSettings(sizes={"alpha.example": 600}, timeline=LINE)
    async with running_emulator(settings) as emu:
        await _night(emu, configs, out, 0)
        await _night(emu, configs, out, 1, report=True)
        await _night(emu, configs, out, 2, full=True, report=True)
    cheap = (out / "2026-12-02" / "report.html").read_text()
    assert (
        '<p class="muted" data-refresh="incremental">Incremental night: only pages first seen '
        "after 2026-11-29 00:00:00 +00:00 were fetched; lost pages are checked on full nights, "
        "next on 2026-12-08.</p>"
    ) in cheap
    full = (out / "2026-12-03" / "report.html").read_text()
    assert (
        '<p class="muted" data-refresh="missed">Full night: 0 pages the incremental nights '
        "since 2026-12-01 missed (found again, or no longer excluded).</p>"
    ) in full


@pytest.mark.anyio
async def test_the_nights_budget_holds_for_the_requests_and_the_next_run_finishes(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [JOB], defaults={"refresh": "incremental"})
    out = tmp_path / "out"
    settings = EmulatorSettings(sizes={"alpha.example": 600}, timeline=LINE)
    async with running_emulator(settings) as emu:
        await _night(emu, configs, out, 0)
        calls = len(emu.calls())
        # A call's worst case is 0.02 + 50 x 0.00003 = 0.0215 USD: 0.01 allows none.
        stopped = await _night(emu, configs, out, 3, budget_usd=0.01)
        assert stopped.exit_code == ExitCode.ATTENTION
        assert len(emu.calls()) == calls
        # Its one request never started: the job is named, and has no file of its own.
        summary = json.loads((out / "2026-12-04" / "run.json").read_text())
        assert summary["not_started"] == ["gap"]
        assert summary["stop_reason"].startswith("budget: ")
        assert not (out / "2026-12-04" / "gap.manifest.json").exists()
        assert not (out / "2026-12-04" / "gap.jsonl").exists()
        done = await _night(emu, configs, out, 3)
        assert done.exit_code == ExitCode.OK
        assert len(emu.calls()) == calls + 1
    manifest = json.loads((out / "2026-12-04" / "gap.manifest.json").read_text())
    assert (manifest["status"], manifest["calls"]) == ("complete", 1)
    assert manifest["refresh"]["mode"] == "incremental"


@pytest.mark.anyio
async def test_a_job_whose_last_request_never_started_closes_unfinished_naming_it(
    tmp_path: Path,
) -> None:
    # Ten targets and a filter of its own: two "first seen since" requests (8 + 4 conditions).
    wide = {
        "id": "wide",
        "targets": ["wide.example", *(f"t{n}.example" for n in range(2, 11))],
        "page_size": 100,
        "filters": ["1.dofollow", "=", True],
    }
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [wide], defaults={"refresh": "incremental"})
    out = tmp_path / "out"
    settings = EmulatorSettings(sizes={"wide.example": 400}, timeline=LINE)
    async with running_emulator(settings) as emu:
        assert (await _night(emu, configs, out, 0)).exit_code == ExitCode.OK
        calls = len(emu.calls())
        # The safety cap lets the first request's one call go; the second never starts.
        stopped = await _night(emu, configs, out, 2, max_calls=1)
        assert len(emu.calls()) == calls + 1
    assert stopped.exit_code == ExitCode.ATTENTION
    folder = out / "2026-12-03"
    summary = json.loads((folder / "run.json").read_text())
    assert summary["not_started"] == []
    manifest = json.loads((folder / "wide.manifest.json").read_text())
    assert manifest["status"] == "partial"
    assert manifest["reason"] == "wide+new-2: not finished"
    assert not (folder / "wide.jsonl").exists()
