"""Per-job diffs against the previous night: what appeared, what vanished, nothing else."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import msgspec
import pytest

from intersect_batch import diff as diff_module
from intersect_batch.diff import DiffCounts, diff_job, read_diff_counts
from intersect_batch.durable import MAX_LINE_BYTES
from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from intersect_batch.wire import item_key
from tests.support import fast_settings, manifest, read_lines, run, write_jobs

DAY1 = dt.date(2026, 11, 28)
DAY2 = dt.date(2026, 11, 29)


def url_of(item: dict[str, Any]) -> str:
    first = min(item["page_intersection"], key=lambda k: (len(k), k))
    url: str = item["page_intersection"][first][0]["url_from"]
    return url


def diff_lines(path: Path) -> list[dict[str, Any]]:
    return read_lines(path)


@pytest.mark.anyio
async def test_two_nights_of_real_crawls_diff_to_the_set_differences(tmp_path: Path) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    gap = {
        "id": "gap",
        "targets": ["alpha.example", "beta.example"],
        "exclude_targets": ["mine.example"],
    }
    capped = {"id": "capped", "targets": ["gamma.example", "delta.example"], "max_items": 100}
    # Live data: about 2 x 5 % of the candidate pages appear or vanish between two calls;
    # one call per job and night (fewer than 1000 items), so each night is one snapshot.
    emulator = EmulatorSettings(seed=11, size_min=300, size_max=600, live_data=0.05)
    async with running_emulator(emulator) as emu:
        write_jobs(configs, "jobs.yaml", [gap, capped])
        first = await run(configs, emu, fast_settings(out, run_date=DAY1))
        # The next night: one job's paging changed, one job is new.
        fresh = {"id": "fresh", "targets": ["alpha.example", "zeta.example"]}
        write_jobs(configs, "jobs.yaml", [gap, {**capped, "max_items": 150}, fresh])
        second = await run(configs, emu, fast_settings(out, run_date=DAY2), report=True)
    assert first.exit_code == second.exit_code == ExitCode.OK, (first.message, second.message)

    day1, day2 = out / DAY1.isoformat(), out / DAY2.isoformat()
    counts = {
        job_id: diff_job(RunFolder(out, DAY2), job_id, manifest(day2, job_id)["fingerprint"])
        for job_id in ("gap", "capped", "fresh")
    }

    before, after = read_lines(day1 / "gap.jsonl"), read_lines(day2 / "gap.jsonl")
    before_urls = {url_of(item) for item in before}
    after_urls = {url_of(item) for item in after}
    expected_new = [item for item in after if url_of(item) not in before_urls]
    expected_lost = [item for item in before if url_of(item) not in after_urls]
    assert expected_new and expected_lost, "the emulator's live data should have churned"

    changes = diff_lines(day2 / "gap.diff.jsonl")
    assert changes == [
        *({"change": "new", "key": url_of(item), "item": item} for item in expected_new),
        *({"change": "lost", "key": url_of(item), "item": item} for item in expected_lost),
    ]
    assert counts["gap"] == DiffCounts(
        previous_run="2026-11-28", new=len(expected_new), lost=len(expected_lost)
    )
    assert read_diff_counts(day2 / "gap.diff.jsonl") == (len(expected_new), len(expected_lost))
    # Items are passed through as the crawl wrote them, byte for byte.
    raw_after = (day2 / "gap.jsonl").read_bytes().splitlines()
    raw_diff = (day2 / "gap.diff.jsonl").read_bytes().splitlines()
    assert raw_diff[0].endswith(b',"item":' + raw_after[after.index(expected_new[0])] + b"}")

    assert counts["capped"] == DiffCounts(
        previous_run="2026-11-28", skipped="parameters changed since 2026-11-28"
    )
    assert counts["fresh"] == DiffCounts(skipped="no earlier complete run")
    # The run itself did the same, and says so in each manifest, run.json and the report.
    for job_id, expected in counts.items():
        assert msgspec.convert(manifest(day2, job_id)["diff"], DiffCounts) == expected
    summary = json.loads((day2 / "run.json").read_text())
    assert (summary["night"]["new_items"], summary["night"]["lost_items"]) == (
        counts["gap"].new,
        counts["gap"].lost,
    )
    assert (day2 / "report.html").exists() and (day2 / "gap.opportunities.csv").exists()
    assert manifest(day1, "gap")["diff"] == {
        "previous_run": None,
        "new": 0,
        "lost": 0,
        "skipped": "no earlier complete run",
        "unavailable": False,
    }
    assert not (day2 / "capped.diff.jsonl").exists()
    assert not (day2 / "fresh.diff.jsonl").exists()
    assert [p.name for p in day2.iterdir() if p.name.endswith(".tmp")] == []


# --- Synthetic run folders: items written directly, as the crawler writes them. ---


def item_line(url: str, *, pad: int = 0, rank: int = 10) -> bytes:
    domain = url.split("/")[2]
    backlink = {
        "type": "backlinks_page_intersection",
        "url_from": url,
        "domain_from": domain,
        "domain_from_rank": rank,
        "page_from_title": "x" * pad,
    }
    item = {"page_intersection": {"1": [backlink], "2": [backlink]}, "summary": {"n": 2}}
    return json.dumps(item, separators=(",", ":")).encode()


def write_run(
    out: Path,
    date: str,
    job_id: str,
    lines: list[bytes],
    *,
    status: str = "complete",
    fingerprint: str = "fp-1",
) -> Path:
    folder = out / date
    folder.mkdir(parents=True, exist_ok=True)
    if status == "complete":
        (folder / f"{job_id}.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    document = {
        "job_id": job_id,
        "config_file": "configs/jobs.yaml",
        "config_line": 2,
        "fingerprint": fingerprint,
        "request": {"targets": {"1": "a.example", "2": "b.example"}},
        "status": status,
        "reason": None if status == "complete" else "budget",
        "output": f"{job_id}.jsonl" if status == "complete" else None,
        "total_count": {},
        "items_written": len(lines),
        "items_received": len(lines),
        "duplicates_dropped": 0,
        "pages": 1,
        "pages_planned": 1,
        "calls": 1,
        "retries": 0,
        "cost_usd": 0.02,
        "started_at": f"{date}T02:15:00+00:00",
        "finished_at": f"{date}T02:16:00+00:00",
    }
    (folder / f"{job_id}.manifest.json").write_text(json.dumps(document))
    return folder


def urls(*numbers: int) -> list[bytes]:
    return [item_line(f"https://site{n % 7}.example/page-{n}") for n in numbers]


def test_compares_with_the_most_recent_earlier_complete_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(out, "2026-11-20", "job", urls(1, 2, 3))
    write_run(out, "2026-11-24", "job", urls(9), fingerprint="fp-0")  # older parameters
    write_run(out, "2026-11-25", "job", urls(1, 2, 3, 4))
    write_run(out, "2026-11-26", "job", [], status="partial")  # not complete: ignored
    write_run(out, "2026-11-27", "other", urls(7))  # another job only
    (out / "notes").mkdir()
    (out / "2026-11-30-old").mkdir()
    write_run(out, "2026-11-30", "job", urls(100))  # later: never a "previous" run
    current = write_run(out, "2026-11-28", "job", urls(5, 2, 4, 6))

    counts = diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1")

    assert counts == DiffCounts(previous_run="2026-11-25", new=2, lost=2)
    changes = read_lines(current / "job.diff.jsonl")
    assert [(c["change"], c["key"]) for c in changes] == [
        ("new", "https://site5.example/page-5"),
        ("new", "https://site6.example/page-6"),
        ("lost", "https://site1.example/page-1"),
        ("lost", "https://site3.example/page-3"),
    ]


def test_parameters_changed_since_the_last_complete_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(out, "2026-11-20", "job", urls(1, 2), fingerprint="fp-1")
    write_run(out, "2026-11-27", "job", urls(1), fingerprint="fp-2")
    current = write_run(out, "2026-11-28", "job", urls(2, 3))
    # A diff left by an earlier attempt of the same night must not outlive this answer.
    (current / "job.diff.jsonl").write_text('{"change":"new","key":"stale","item":{}}\n')

    counts = diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1")

    assert counts == DiffCounts(
        previous_run="2026-11-27", skipped="parameters changed since 2026-11-27"
    )
    assert not (current / "job.diff.jsonl").exists()
    assert read_diff_counts(current / "job.diff.jsonl") is None


def test_no_earlier_run_and_no_change(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(out, "2026-11-28", "job", urls(1, 2))
    assert diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1") == DiffCounts(
        skipped="no earlier complete run"
    )
    assert diff_job(
        RunFolder(tmp_path / "missing", dt.date(2026, 11, 28)), "job", "fp-1"
    ).skipped == ("no earlier complete run")

    current = write_run(out, "2026-11-29", "job", urls(2, 1))
    counts = diff_job(RunFolder(out, dt.date(2026, 11, 29)), "job", "fp-1")
    assert counts == DiffCounts(previous_run="2026-11-28", new=0, lost=0)
    assert (current / "job.diff.jsonl").read_bytes() == b""


def test_a_failed_diff_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(out, "2026-11-27", "job", urls(1, 2))
    current = write_run(out, "2026-11-28", "job", urls(2, 3))
    assert diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1").new == 1
    whole = (current / "job.diff.jsonl").read_bytes()

    # The current items vanish (a disk error, a removed file) while the diff is rewritten.
    (current / "job.jsonl").unlink()
    with pytest.raises(FileNotFoundError):
        diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1")

    assert (current / "job.diff.jsonl").read_bytes() == whole
    assert sorted(p.name for p in current.iterdir()) == [
        "job.diff.jsonl",
        "job.manifest.json",
    ]


def test_duplicates_and_items_without_a_url_are_keyed_like_the_crawl(tmp_path: Path) -> None:
    out = tmp_path / "out"
    odd = b'{"page_intersection":null,"summary":{"intersections_count":0}}'
    write_run(out, "2026-11-27", "job", [*urls(1), odd])
    current = write_run(out, "2026-11-28", "job", [*urls(2, 2)])
    counts = diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1")
    assert (counts.new, counts.lost) == (1, 2)
    changes = read_lines(current / "job.diff.jsonl")
    assert [(c["change"], c["key"]) for c in changes] == [
        ("new", "https://site2.example/page-2"),
        ("lost", "https://site1.example/page-1"),
        ("lost", None),
    ]
    assert item_key(odd) != item_key(urls(1)[0])


def test_memory_is_bounded_by_keys_not_items(tmp_path: Path) -> None:
    out = tmp_path / "out"
    n = 8_000
    pad = 4_000  # each item about 4.2 kB: each file about 34 MB
    # Night 2 drops every 10th page of night 1 and adds as many new ones.
    before = [item_line(f"https://s{i % 500}.example/p{i}", pad=pad) for i in range(n)]
    after = [line for i, line in enumerate(before) if i % 10] + [
        item_line(f"https://s{i % 500}.example/p{i}", pad=pad) for i in range(n, n + n // 10)
    ]
    write_run(out, "2026-11-27", "big", before)
    current = write_run(out, "2026-11-28", "big", after)
    size = (current / "big.jsonl").stat().st_size
    del before, after

    tracemalloc.start()
    try:
        counts = diff_job(RunFolder(out, dt.date(2026, 11, 28)), "big", "fp-1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (counts.new, counts.lost) == (n // 10, n // 10)
    # Two sets of 8,000 int keys and a 1 MB write buffer; not the 34 MB of items.
    assert peak < 5_000_000, f"peak {peak:,} bytes for files of {size:,} bytes"
    assert size > 30_000_000
    assert read_diff_counts(current / "big.diff.jsonl") == (n // 10, n // 10)


def _line_less_tail(path: Path) -> None:
    # One good line, then a sparse tail of NULs without a newline, past the line cap.
    with path.open("ab") as handle:
        handle.truncate(path.stat().st_size + MAX_LINE_BYTES + 2**20)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


DAMAGED_EARLIER = [
    pytest.param(
        _line_less_tail,
        "line 3 is longer than 64 MiB (the longest line a run writes): the file is damaged",
        id="line-less-tail",
    ),
    pytest.param(_fifo, "is a FIFO, not a regular file", id="fifo"),
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("damage", "why"), DAMAGED_EARLIER)
def test_a_damaged_earlier_result_leaves_the_diff_unavailable_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Any, why: str
) -> None:
    out = tmp_path / "out"
    earlier = write_run(out, "2026-11-27", "job", urls(1, 2))
    current = write_run(out, "2026-11-28", "job", urls(2, 3))
    (current / "job.diff.jsonl").write_text('{"change":"new","key":"stale","item":{}}\n')
    damage(earlier / "job.jsonl")

    counts = diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1")

    reason = f"the result of 2026-11-27 cannot be read: {earlier / 'job.jsonl'}"
    assert counts.unavailable and counts.previous_run == "2026-11-27"
    assert counts.new == counts.lost == 0
    assert counts.skipped is not None and counts.skipped.startswith(f"diff unavailable: {reason}")
    assert counts.skipped.endswith(why)
    assert [r.getMessage() for r in caplog.records] == [f"no diff: {counts.skipped[18:]}"]
    assert not (current / "job.diff.jsonl").exists()
    assert sorted(p.name for p in current.iterdir()) == ["job.jsonl", "job.manifest.json"]


def test_an_earlier_result_removed_meanwhile_leaves_the_diff_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    earlier = write_run(out, "2026-11-27", "job", urls(1, 2))
    write_run(out, "2026-11-28", "job", urls(2, 3))
    found = diff_module.previous_complete_run

    def then_removed(folder: RunFolder, job_id: str) -> Any:
        # --keep-days removes the earlier folder between the walk and the read.
        answer = found(folder, job_id)
        shutil.rmtree(earlier)
        return answer

    monkeypatch.setattr(diff_module, "previous_complete_run", then_removed)
    counts = diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1")
    assert counts == DiffCounts(
        previous_run="2026-11-27",
        skipped=(
            "diff unavailable: the result of 2026-11-27 cannot be read: "
            f"No such file or directory ({earlier / 'job.jsonl'})"
        ),
        unavailable=True,
    )


def test_an_earlier_manifest_past_the_cap_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    write_run(out, "2026-11-26", "job", urls(1, 2))
    damaged = write_run(out, "2026-11-27", "job", urls(1)) / "job.manifest.json"
    with damaged.open("ab") as handle:  # a sparse tail: a 64 MiB document is damage
        handle.truncate(MAX_LINE_BYTES + 1)
    write_run(out, "2026-11-28", "job", urls(2, 3))

    counts = diff_job(RunFolder(out, dt.date(2026, 11, 28)), "job", "fp-1")

    assert counts == DiffCounts(previous_run="2026-11-26", new=1, lost=1)
    assert [r.getMessage() for r in caplog.records] == [
        f"a manifest is not read: {damaged} is larger than 64 MiB (the largest file of its "
        "kind a run writes): the file is damaged"
    ]
