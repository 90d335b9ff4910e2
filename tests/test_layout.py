"""Every path of an output folder, and the one walk over its earlier run folders."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from intersect_batch.layout import (
    RunFolder,
    earlier_runs,
    job_ids_in,
    lock_path,
    run_date_of,
)

DATE = dt.date(2026, 11, 29)


def test_each_file_of_a_job_has_its_name_in_the_run_folder(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, DATE)
    day = tmp_path / "2026-11-29"
    assert run.path == day and run.name == "2026-11-29"
    assert run.result("crm") == day / "crm.jsonl"
    assert run.manifest("crm") == day / "crm.manifest.json"
    assert run.diff("crm") == day / "crm.diff.jsonl"
    assert run.opportunities("crm") == day / "crm.opportunities.csv"
    assert run.part("crm") == day / ".state" / "crm.part"
    assert run.checkpoint("crm") == day / ".state" / "crm.checkpoint.json"
    assert run.spooled_page("crm", 7) == day / ".state" / "crm.spool" / "7.jsonl"
    assert lock_path(tmp_path) == tmp_path / ".intersect-batch.lock"


def test_a_run_folder_is_found_by_its_name_only() -> None:
    assert RunFolder.at(Path("/srv/out/2026-11-29")) == RunFolder(Path("/srv/out"), DATE)
    assert RunFolder.at(Path("/srv/out/latest")) is None
    assert RunFolder.at(Path("/srv/out/2026-02-30")) is None


def test_a_run_date_is_a_real_date_named_yyyy_mm_dd() -> None:
    assert run_date_of(Path("out/2026-11-29")) == DATE
    assert run_date_of(Path("out/2026-11-29.old")) is None
    assert run_date_of(Path("out/20261129")) is None
    assert run_date_of(Path("out/2026-13-01")) is None


def test_the_jobs_of_a_run_are_those_with_a_manifest(tmp_path: Path) -> None:
    run = RunFolder(tmp_path, DATE)
    run.path.mkdir()
    for name in ("b.manifest.json", "a.manifest.json", "a.jsonl", "manifest.json.c", "run.json"):
        (run.path / name).write_text("{}")
    assert run.job_ids() == ["a", "b"]
    assert job_ids_in(tmp_path / "nowhere") == []


def test_earlier_runs_are_the_dated_folders_before_a_date_newest_first(tmp_path: Path) -> None:
    for name in ("2026-11-20", "2026-11-28", "2026-10-31", "2026-11-29", "2026-12-01"):
        (tmp_path / name).mkdir()
    (tmp_path / "2026-11-27").write_text("a file, not a run")
    (tmp_path / "notes").mkdir()
    (tmp_path / "2026-11-02").symlink_to(tmp_path / "2026-10-31")
    found = earlier_runs(tmp_path, DATE)
    assert found == [
        RunFolder(tmp_path, dt.date(2026, 11, 28)),
        RunFolder(tmp_path, dt.date(2026, 11, 20)),
        RunFolder(tmp_path, dt.date(2026, 10, 31)),
    ]
    assert earlier_runs(tmp_path / "nowhere", DATE) == []


def test_an_incremental_request_keeps_its_result_and_manifest_in_the_state_folder(
    tmp_path: Path,
) -> None:
    run = RunFolder(tmp_path, DATE)
    assert run.result("gap+new-2") == tmp_path / "2026-11-29" / ".state" / "gap+new-2.jsonl"
    assert run.manifest("gap+new-2") == run.state / "gap+new-2.manifest.json"
    assert run.result("gap") == run.path / "gap.jsonl"
    assert run.manifest("gap") == run.path / "gap.manifest.json"
    assert run.part("gap+new-2") == run.state / "gap+new-2.part"
