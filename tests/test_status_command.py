"""``intersect-batch status``: four real nights against the emulator, read back by the CLI.

A complete night, a night the budget cut short, a night whose credentials were refused
(not one answer), and a night with a complete job and a job the API rejects. The status
command is run as a person runs it, and its table and JSON are checked against what the
run folders hold.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from tests.support import DEMO_ENV, fast_settings, run, write_jobs

NIGHTS = {
    "complete": dt.date(2026, 11, 26),
    "partial": dt.date(2026, 11, 27),
    "unreached": dt.date(2026, 11, 28),
    "attention": dt.date(2026, 11, 29),
}
ALPHA = {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100}
BETA = {"id": "beta", "targets": ["beta.example", "b.example"], "page_size": 100}
# The last night, beta asks for a field the API does not know: 40501, the job fails.
BROKEN_BETA = {**BETA, "order_by": ["1.no_such_field,desc"]}


async def _nights(out: Path) -> None:
    configs = out.parent / "configs"
    emulator = EmulatorSettings(
        seed=7, live_data=0.05, sizes={"alpha.example": 250, "beta.example": 120}
    )
    async with running_emulator(emulator) as emu:
        write_jobs(configs, "jobs.yaml", [ALPHA, BETA])
        done = await run(configs, emu, fast_settings(out, run_date=NIGHTS["complete"]))
        assert done.exit_code == ExitCode.OK, done.message
        capped = fast_settings(out, run_date=NIGHTS["partial"], budget_usd=0.05)
        cut = await run(configs, emu, capped)
        assert cut.exit_code == ExitCode.ATTENTION, cut.message
        refused = {**DEMO_ENV, "DATAFORSEO_PASSWORD": "wrong"}
        nothing = await run(
            configs, emu, fast_settings(out, run_date=NIGHTS["unreached"]), environ=refused
        )
        assert nothing.exit_code == ExitCode.ACCOUNT, nothing.message
        write_jobs(configs, "jobs.yaml", [ALPHA, BROKEN_BETA])
        mixed = await run(configs, emu, fast_settings(out, run_date=NIGHTS["attention"]))
        assert mixed.exit_code == ExitCode.ATTENTION, mixed.message


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("status") / "out"
    anyio.run(_nights, folder)
    return folder


def _status(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intersect_batch", "status", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("DATAFORSEO")},
        check=False,
    )


def _run_json(out: Path, night: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (out / NIGHTS[night].isoformat() / "run.json").read_text()
    )
    return document


def test_the_nights_are_read_as_they_ended(out: Path) -> None:
    result = _status(out, "--json")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    status = json.loads(result.stdout)
    assert [n["date"] for n in status["nights"]] == ["2026-11-29", "2026-11-28", "2026-11-27",
                                                      "2026-11-26"]  # fmt: skip
    conditions = {n["date"]: n["condition"] for n in status["nights"]}
    assert conditions == {NIGHTS[c].isoformat(): c for c in NIGHTS}
    by_date = {n["date"]: n for n in status["nights"]}
    for name, date in NIGHTS.items():
        night = _run_json(out, name)["night"]
        row = by_date[date.isoformat()]
        assert row["jobs_by_status"] == night["jobs_by_status"]
        assert row["items"] == night["items"]
        assert row["cost_usd"] == night["cost_usd"]
        assert row["invocations"] == night["invocations"] == 1
    # A night where nothing completed compared nothing: no diff, not +0 / -0.
    for name in ("partial", "unreached"):
        row = by_date[NIGHTS[name].isoformat()]
        assert row["new_items"] is None and row["lost_items"] is None
    last = _run_json(out, "attention")["night"]
    row = by_date["2026-11-29"]
    assert (row["new_items"], row["lost_items"]) == (last["new_items"], last["lost_items"])
    assert last["new_items"] > 0 and last["lost_items"] > 0
    assert by_date["2026-11-28"]["items"] == 0 and by_date["2026-11-28"]["cost_usd"] == 0
    assert status["jobs"] == [
        {"job_id": "alpha", "status": "complete", "night": "2026-11-29",
         "last_complete": "2026-11-29"},
        {"job_id": "beta", "status": "failed", "night": "2026-11-29",
         "last_complete": "2026-11-26"},
    ]  # fmt: skip


def test_the_table_shows_each_night_and_each_job(out: Path) -> None:
    result = _status(out)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    figures = {name: _run_json(out, name)["night"] for name in NIGHTS}
    mixed, cut, done = figures["attention"], figures["partial"], figures["complete"]
    rows = [line.split("  ") for line in lines]
    cells = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert cells[0] == ["night", "state", "jobs", "items", "new", "lost", "cost USD"]
    assert cells[1] == [
        "2026-11-29", "needs attention", "1 complete, 1 failed", str(mixed["items"]),
        f"+{mixed['new_items']}", f"-{mixed['lost_items']}", f"{mixed['cost_usd']:.4f}",
    ]  # fmt: skip
    assert cells[2] == [
        "2026-11-28",
        "no answer from the API",
        "2 partial",
        "0",
        "no diff",
        "0.0000",
    ]
    assert cells[3] == [
        "2026-11-27", "partial", cut_jobs(cut), str(cut["items"]), "no diff",
        f"{cut['cost_usd']:.4f}",
    ]  # fmt: skip
    assert cells[4][:3] == ["2026-11-26", "complete", "2 complete"]
    assert cells[4][3:] == [str(done["items"]), "no diff", f"{done['cost_usd']:.4f}"]
    # The columns line up: every night's cost ends in the same column.
    ends = {len(line) for line in lines[:5]}
    assert len(ends) == 1, lines[:5]
    assert lines[5] == ""
    assert cells[6] == ["job", "last status", "night", "last complete"]
    assert cells[7] == ["alpha", "complete", "2026-11-29", "2026-11-29"]
    assert cells[8] == ["beta", "failed", "2026-11-29", "2026-11-26"]
    assert len(lines) == 9


def cut_jobs(night: dict[str, Any]) -> str:
    counts = night["jobs_by_status"]
    order = [s for s in ("complete", "partial", "failed", "invalid") if s in counts]
    return ", ".join(f"{counts[s]} {s}" for s in order)


def test_nights_limits_the_nights_not_the_jobs(out: Path) -> None:
    status = json.loads(_status(out, "--json", "--nights", "1").stdout)
    assert [n["date"] for n in status["nights"]] == ["2026-11-29"]
    assert [j["last_complete"] for j in status["jobs"]] == ["2026-11-29", "2026-11-26"]


def test_a_missing_folder_is_a_usage_error_and_an_empty_one_says_so(tmp_path: Path) -> None:
    missing = _status(tmp_path / "nowhere")
    assert missing.returncode == ExitCode.USAGE and missing.stdout == ""
    assert missing.stderr.startswith("error: --out ") and "Traceback" not in missing.stderr
    night = _status(tmp_path / "nowhere" / ".." / "2026-11-29")
    assert night.returncode == ExitCode.USAGE
    (tmp_path / "2026-11-29").mkdir()
    night = _status(tmp_path / "2026-11-29")
    assert night.returncode == ExitCode.USAGE and night.stdout == ""
    assert night.stderr == (
        f"error: --out {tmp_path / '2026-11-29'} is one night's folder: give the folder above it\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _status(empty)
    assert result.returncode == 0 and result.stdout == f"no run folder in {empty}/ yet\n"
    assert json.loads(_status(empty, "--json").stdout) == {
        "out_dir": str(empty), "nights": [], "jobs": [],
    }  # fmt: skip


def test_a_night_without_run_json_is_read_from_its_manifests(out: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    folder = copy / "2026-11-26"
    folder.mkdir(parents=True)
    source = out / "2026-11-26"
    for name in ("alpha.manifest.json", "beta.manifest.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    status = json.loads(_status(copy, "--json").stdout)
    [night] = status["nights"]
    assert night["condition"] == "unfinished"
    assert night["jobs_by_status"] == {"complete": 2}
    assert night["items"] == _run_json(out, "complete")["night"]["items"]
    assert night["new_items"] is None
    assert "unfinished (no run.json)" in _status(copy).stdout
