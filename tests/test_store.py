"""The durable store: what each of its lines promises, as a test that fails without it."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from intersect_batch import store as store_module
from intersect_batch.checkpoint import Checkpoint, Counters, PageIn
from intersect_batch.errors import OutputError
from intersect_batch.layout import RunFolder
from intersect_batch.store import JobStore

DATE = dt.date(2026, 11, 29)
SIZE = 3


def item(n: int, url: str | None = None) -> bytes:
    body = {"page_intersection": {"1": [{"url_from": url or f"https://p{n}.example/"}]}, "n": n}
    return json.dumps(body, separators=(",", ":")).encode()


def page(number: int, *, total: int = 12) -> PageIn:
    first = number * SIZE
    return PageIn(number, [item(n) for n in range(first, min(first + SIZE, total))], total)


def expected(pages: int, total: int = 12) -> bytes:
    return b"".join(item(n) + b"\n" for n in range(min(pages * SIZE, total)))


@pytest.fixture
def folder(tmp_path: Path) -> RunFolder:
    run = RunFolder(tmp_path, DATE)
    run.path.mkdir(parents=True)
    return run


def opened(folder: RunFolder, fingerprint: str = "fp") -> JobStore:
    store = JobStore(folder, "job")
    store.open(fingerprint)
    return store


def test_pages_in_any_order_make_the_same_file(folder: RunFolder, tmp_path: Path) -> None:
    store = opened(folder)
    for number in (2, 0, 3, 1):
        store.commit([page(number)], Counters(calls=1))
    assert store.checkpoint.next_page == 4 and store.checkpoint.spooled == {}
    store.finalize()
    assert folder.result("job").read_bytes() == expected(4)
    assert not any(folder.spool("job").iterdir())


def test_a_referring_page_seen_twice_is_written_once(folder: RunFolder) -> None:
    store = opened(folder)
    shifted = PageIn(1, [item(2), item(3), item(4)], 12)  # item 2 came back on page 1
    store.commit([page(0), shifted], Counters())
    assert store.checkpoint.items_written == 5 and store.checkpoint.duplicates_dropped == 1
    assert store.checkpoint.items_received == 6


def test_resume_cuts_a_torn_tail_and_remembers_the_keys(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(0), page(1)], Counters(calls=2))
    with open(folder.part("job"), "ab") as part:
        part.write(b'{"page_intersection":{"1":[{"url_from":"https://torn')
    again = JobStore(folder, "job")
    resumed = again.open("fp")
    assert resumed.warnings == ()
    assert resumed.checkpoint.pages_done == {0, 1}
    assert folder.part("job").stat().st_size == resumed.checkpoint.part_bytes
    # The keys of what stayed are known again: a duplicate of page 0 is dropped.
    again.commit([PageIn(2, [item(0), item(6), item(7), item(8)], 12)], Counters())
    again.commit([page(3)], Counters())
    again.finalize()
    assert folder.result("job").read_bytes() == expected(4)


def test_resume_drops_spool_files_the_checkpoint_does_not_vouch_for(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(0), page(2), page(3)], Counters())
    vouched = store.checkpoint.spooled[2]
    spool = folder.spool("job")
    (spool / "4.jsonl").write_bytes(item(12) + b"\n")  # written, then the crash
    with open(spool / "3.jsonl", "ab") as torn:  # vouched for, but not what was vouched
        torn.write(b"x")
    resumed = JobStore(folder, "job").open("fp")
    assert resumed.checkpoint.pages_done == {0, 2}
    assert resumed.checkpoint.spooled == {2: vouched}
    assert sorted(p.name for p in spool.iterdir()) == ["2.jsonl"]


def test_a_crash_between_finalize_and_close_resumes_as_finished(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters(calls=4, cost_usd=0.08))
    store.finalize()
    resumed = JobStore(folder, "job")
    found = resumed.open("fp")
    assert found.warnings == () and found.checkpoint.finalized
    assert found.checkpoint.counters == Counters(calls=4, cost_usd=0.08)
    assert resumed.finalize() == folder.result("job")
    assert folder.result("job").read_bytes() == expected(4)
    resumed.close()
    assert not folder.checkpoint("job").exists() and not folder.part("job").exists()


def test_a_crash_before_the_rename_finishes_it_on_resume(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters())
    finalized = store.checkpoint
    # The checkpoint said "finalized", then the process died before the rename.
    (folder.checkpoint("job")).write_bytes(
        json.dumps(
            {**json.loads(folder.checkpoint("job").read_bytes()), "finalized": True}
        ).encode()
    )
    resumed = JobStore(folder, "job")
    assert resumed.open("fp").checkpoint.part_bytes == finalized.part_bytes
    resumed.finalize()
    assert folder.result("job").read_bytes() == expected(4)


def test_finalize_twice_is_harmless(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters())
    store.finalize()
    store.finalize()
    assert folder.result("job").read_bytes() == expected(4)


def test_the_checkpoint_is_written_only_after_the_data_is_fsynced(
    folder: RunFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_write = os.fsync, store_module.atomic_write  # type: ignore[attr-defined]

    def fsync(fd: int) -> None:
        events.append("fsync " + Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    def atomic_write(path: Path, data: bytes, **kwargs: Any) -> None:
        events.append("checkpoint")
        real_write(path, data, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(store_module, "atomic_write", atomic_write)
    store = opened(folder)
    store.commit([page(1)], Counters())
    store.commit([page(0)], Counters())
    assert events.index("fsync 1.jsonl") < events.index("checkpoint")
    # An early page alone goes to the spool: the part file, untouched, is not synced.
    assert "fsync job.part" not in events[: events.index("checkpoint")]
    second = events[events.index("checkpoint") + 1 :]
    assert second.index("fsync job.part") < second.index("checkpoint")


@pytest.mark.parametrize("where", ["data", "checkpoint"])
def test_a_failed_write_leaves_every_record_as_it_was(
    folder: RunFolder, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters(calls=1))
    before = store.checkpoint
    part_size = folder.part("job").stat().st_size

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "data":
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
                full()
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    else:
        monkeypatch.setattr(store_module, "atomic_write", full)
    with pytest.raises(OutputError, match="No space left on device"):
        store.commit([page(1), page(2)], Counters(calls=3))
    assert store.checkpoint is before
    assert JobStore(folder, "job").open("fp").checkpoint == before
    monkeypatch.undo()
    # Space again: the same pages are written whole, none taken for a duplicate.
    assert folder.part("job").stat().st_size >= part_size
    store.commit([page(1), page(2), page(3)], Counters(calls=4))
    assert store.checkpoint.items_written == 12 and store.checkpoint.duplicates_dropped == 0
    store.finalize()
    assert folder.result("job").read_bytes() == expected(4)


def _shorten(folder: RunFolder) -> None:
    part = folder.part("job")
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])


def _zero_a_line(folder: RunFolder) -> None:
    part = folder.part("job")
    data = bytearray(part.read_bytes())
    data[5:15] = bytes(10)
    part.write_bytes(bytes(data))


def _lose_lines(folder: RunFolder) -> None:
    part = folder.part("job")
    lines = part.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:2]) + b" " * sum(len(x) for x in lines[2:]))


def _garble_checkpoint(folder: RunFolder) -> None:
    folder.checkpoint("job").write_bytes(b'{"fingerprint": "fp", "next')


def _drop_checkpoint(folder: RunFolder) -> None:
    folder.checkpoint("job").unlink()


def _drop_checkpoint_and_part(folder: RunFolder) -> None:
    folder.checkpoint("job").unlink()
    folder.part("job").unlink()


def _drop_part(folder: RunFolder) -> None:
    folder.part("job").unlink()


def _miscount_items(folder: RunFolder) -> None:
    checkpoint = json.loads(folder.checkpoint("job").read_bytes())
    folder.checkpoint("job").write_bytes(
        json.dumps({**checkpoint, "items_written": checkpoint["items_written"] + 1}).encode()
    )


@pytest.mark.parametrize(
    ("damage", "warning"),
    [
        (_shorten, "its part file is shorter than its checkpoint"),
        (_zero_a_line, "line 1 of its part file is not an item"),
        (_lose_lines, "line 3 of its part file is not an item"),
        (_garble_checkpoint, "its checkpoint does not decode"),
        (_drop_checkpoint, "progress without its checkpoint"),
        (_drop_checkpoint_and_part, "progress without its checkpoint"),
        (_drop_part, "its checkpoint has no part file"),
        (_miscount_items, "its part file holds 6 items, its checkpoint says 7"),
    ],
)
def test_damaged_progress_is_fetched_again_with_a_warning(
    folder: RunFolder, damage: Any, warning: str
) -> None:
    store = opened(folder)
    store.commit([page(0), page(1), page(3)], Counters())
    damage(folder)
    found = JobStore(folder, "job").open("fp")
    assert len(found.warnings) == 1 and found.warnings[0].startswith(warning)
    assert found.warnings[0].endswith("its pages are fetched again")
    assert found.checkpoint.pages_done == frozenset()
    assert found.checkpoint.fingerprint == "fp"
    assert not folder.part("job").exists() and not folder.spool("job").exists()


def test_a_finished_checkpoint_without_its_result_is_fetched_again(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters())
    store.finalize()
    folder.result("job").unlink()
    found = JobStore(folder, "job").open("fp")
    assert found.warnings == (
        "its checkpoint says it is finished, but its result is missing: "
        "its pages are fetched again",
    )
    assert not found.checkpoint.finalized and found.checkpoint.pages == 0


def test_progress_under_another_fingerprint_is_thrown_away_quietly(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters())
    found = JobStore(folder, "job").open("other")
    assert found.warnings == () and found.checkpoint.pages == 0
    assert found.checkpoint.fingerprint == "other"
    assert not folder.part("job").exists()


def test_a_symlink_planted_as_the_part_file_is_refused(folder: RunFolder, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    store = opened(folder)
    folder.state.mkdir(exist_ok=True)
    folder.part("job").symlink_to(victim)
    with pytest.raises(OutputError, match="cannot write page 0"):
        store.commit([page(0)], Counters())
    assert victim.read_text() == "keep me\n"


def test_counters_are_kept_with_the_pages_and_only_grow(folder: RunFolder) -> None:
    store = opened(folder)
    # Nothing durable yet, but the call is paid for: it counts the next time too.
    assert store.save(Counters(calls=1)).counters.calls == 1
    resumed = JobStore(folder, "job").open("fp")
    assert resumed.warnings == () and resumed.checkpoint.counters == Counters(calls=1)
    assert resumed.checkpoint.pages == 0
    store.commit([page(0)], Counters(calls=2, retries=1, cost_usd=0.1))
    store.save(Counters(calls=1, retries=3, cost_usd=0.05))
    on_disk = JobStore(folder, "job").open("fp").checkpoint
    assert on_disk.counters == Counters(calls=2, retries=3, cost_usd=0.1)
    assert isinstance(on_disk, Checkpoint)


def test_the_totals_a_job_saw_are_kept_first_last_lowest_and_highest(folder: RunFolder) -> None:
    store = opened(folder)
    for number, total in enumerate((12, 15, 9, 11)):
        store.commit([PageIn(number, [item(number)], total)], Counters())
    store.commit([PageIn(4, [], None)], Counters())  # no result: no reading
    checkpoint = JobStore(folder, "job").open("fp").checkpoint
    assert (
        checkpoint.total_first,
        checkpoint.total_last,
        checkpoint.total_min,
        checkpoint.total_max,
    ) == (12, 11, 9, 15)


def test_a_job_starts_at_an_instant_in_utc(folder: RunFolder) -> None:
    started = dt.datetime.fromisoformat(opened(folder).checkpoint.started_at)
    assert started.utcoffset() == dt.timedelta(0)


def test_a_store_must_be_opened_before_it_tells_its_progress(folder: RunFolder) -> None:
    with pytest.raises(RuntimeError, match=r"open\(\) must come first"):
        JobStore(folder, "job").checkpoint  # noqa: B018


def test_a_store_opens_in_a_run_folder_not_made_yet(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "out", DATE)
    store = opened(run)
    store.commit([page(0)], Counters())
    assert run.part("job").read_bytes() == expected(1)


def test_progress_that_cannot_be_opened_names_the_job_and_the_path(folder: RunFolder) -> None:
    folder.state.write_text("a file where the state folder goes")
    with pytest.raises(OutputError) as raised:
        JobStore(folder, "job").open("fp")
    assert str(raised.value) == (
        f"job 'job': cannot open its progress: File exists ({folder.state})"
    )


def test_pages_already_durable_are_ignored(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(0), page(2)], Counters())
    before = store.checkpoint
    assert store.commit([page(0), page(2)], Counters(calls=9)) is before
    assert store.checkpoint.items_received == 6


def test_an_item_seen_in_an_earlier_commit_is_dropped_too(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters())
    store.commit([PageIn(1, [item(1), item(2), item(3), item(4)], 12)], Counters())
    assert store.checkpoint.items_written == 5 and store.checkpoint.duplicates_dropped == 2


def test_a_failed_write_names_every_page_it_could_not_write(
    folder: RunFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened(folder)

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder.checkpoint("job")))

    monkeypatch.setattr(store_module, "atomic_write", full)
    with pytest.raises(OutputError) as raised:
        store.commit([page(2), page(1)], Counters())
    assert str(raised.value) == (
        f"job 'job': cannot write page 1, 2: No space left on device ({folder.checkpoint('job')})"
    )


def test_a_failed_writes_bytes_never_reach_the_result(
    folder: RunFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters())
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OutputError, match="Input/output error"):
        store.commit([page(1), page(2), page(3)], Counters())
    monkeypatch.undo()
    # The total shrank meanwhile: the pages written now are shorter than those that failed.
    store.commit([page(1, total=10), page(2, total=10), page(3, total=10)], Counters())
    store.finalize()
    assert folder.result("job").read_bytes() == expected(4, total=10)


def test_a_spool_file_that_cannot_be_removed_after_its_merge_does_no_harm(
    folder: RunFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened(folder)
    store.commit([page(1)], Counters())
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path.name == "1.jsonl":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    store.commit([page(0)], Counters())
    monkeypatch.undo()
    assert store.checkpoint.next_page == 2 and store.checkpoint.spooled == {}
    # The next run finds the leftover, which no checkpoint vouches for, and removes it.
    resumed = JobStore(folder, "job").open("fp")
    assert resumed.warnings == () and resumed.checkpoint.pages_done == {0, 1}
    assert not any(folder.spool("job").iterdir())


def test_a_spool_folder_replaced_by_a_symlink_is_refused(folder: RunFolder, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = opened(folder)
    folder.spool("job").symlink_to(elsewhere)
    with pytest.raises(OutputError) as raised:
        store.commit([page(1)], Counters())
    assert str(raised.value) == (
        f"job 'job': cannot write page 1: the spool folder is a symlink ({folder.spool('job')})"
    )
    assert not any(elsewhere.iterdir())


def test_counters_saved_alone_are_what_the_store_tells_next(
    folder: RunFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters(calls=1))
    assert store.save(Counters(calls=2)) == store.checkpoint
    assert store.checkpoint.counters == Counters(calls=2)

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder.checkpoint("job")))

    monkeypatch.setattr(store_module, "atomic_write", full)
    with pytest.raises(OutputError) as raised:
        store.save(Counters(calls=3))
    assert str(raised.value) == (
        f"job 'job': cannot write its checkpoint: No space left on device "
        f"({folder.checkpoint('job')})"
    )
    assert store.checkpoint.counters == Counters(calls=2)


def test_a_job_of_no_page_at_all_finishes_as_an_empty_file(folder: RunFolder) -> None:
    store = opened(folder)
    assert store.finalize() == folder.result("job")
    assert folder.result("job").read_bytes() == b""


def test_a_result_that_cannot_be_moved_into_place_names_the_job(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters())
    folder.result("job").mkdir()
    with pytest.raises(OutputError) as raised:
        store.finalize()
    assert str(raised.value).startswith("job 'job': cannot move its result into place: Is a ")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermissionError(), "PermissionError"),
        (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
    ],
)
def test_an_error_without_a_file_name_names_the_run_folder(
    folder: RunFolder, monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters())

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(store_module, "atomic_write", fail)
    with pytest.raises(OutputError) as raised:
        store.save(Counters(calls=1))
    assert str(raised.value) == f"job 'job': cannot write its checkpoint: {reason} ({folder.path})"


def test_a_finished_result_of_another_size_is_fetched_again(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters())
    store.finalize()
    size = folder.result("job").stat().st_size
    with open(folder.result("job"), "ab") as result:
        result.write(item(99) + b"\n")
    found = JobStore(folder, "job").open("fp")
    assert found.warnings == (
        f"its finished result job.jsonl is {size + len(item(99)) + 1} bytes, "
        f"its checkpoint says {size}: its pages are fetched again",
    )


def test_stray_files_in_the_spool_are_removed_on_resume(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(0), page(2)], Counters())
    spool = folder.spool("job")
    for stray in ("notes.jsonl", "3.tmp", "2.jsonl.tmp"):
        (spool / stray).write_bytes(b"x")
    resumed = JobStore(folder, "job").open("fp")
    assert resumed.warnings == () and resumed.checkpoint == store.checkpoint
    assert sorted(p.name for p in spool.iterdir()) == ["2.jsonl"]


def test_resume_learns_the_same_keys_whatever_the_items_text(folder: RunFolder) -> None:
    # A url_from with an escaped character is keyed by decoding the item, not a byte search.
    quoted = item(0, url='https://p0.example/"quoted"')
    store = opened(folder)
    store.commit([PageIn(0, [quoted, item(1), item(2)], 12)], Counters())
    again = JobStore(folder, "job")
    again.open("fp")
    again.commit([PageIn(1, [quoted, item(3), item(4)], 12)], Counters())
    assert again.checkpoint.duplicates_dropped == 1 and again.checkpoint.items_written == 5


# -- progress removed or cut short under a running job ---------------------------------------


def _lost(folder: RunFolder, what: str) -> str:
    return (
        f"job 'job': its progress was removed or damaged while it ran ({what}); nothing of "
        f"it is finished, and the next run fetches its pages again ({folder.state})"
    )


def test_a_state_folder_removed_under_the_job_is_not_made_again(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters())
    shutil.rmtree(folder.state)
    with pytest.raises(OutputError) as raised:
        store.commit([page(1)], Counters())
    assert str(raised.value) == _lost(
        folder, f"its part file is gone, its checkpoint vouches for {len(expected(1))} bytes"
    )
    with pytest.raises(OutputError):
        store.save(Counters(calls=5))
    with pytest.raises(OutputError):
        store.finalize()
    # Nothing re-made the folder, nothing became a result.
    assert not folder.state.exists() and not folder.result("job").exists()


def test_a_part_file_cut_short_under_the_job_is_never_padded_with_nuls(
    folder: RunFolder,
) -> None:
    store = opened(folder)
    store.commit([page(0), page(1)], Counters())
    vouched = store.checkpoint.part_bytes
    os.truncate(folder.part("job"), 10)
    with pytest.raises(OutputError) as raised:
        store.commit([page(2)], Counters())
    assert str(raised.value) == _lost(
        folder, f"its part file is shorter than its checkpoint (10 of {vouched} bytes)"
    )
    assert folder.part("job").read_bytes() == expected(1)[:10]
    assert store.checkpoint.next_page == 2  # nothing moved on
    # The next run finds the damage and starts the job over, with a warning.
    found = JobStore(folder, "job").open("fp")
    assert found.warnings == (
        f"its part file is shorter than its checkpoint (10 of {vouched} bytes): "
        "its pages are fetched again",
    )
    assert found.checkpoint.pages == 0


def test_a_part_file_removed_before_the_finish_never_becomes_an_empty_result(
    folder: RunFolder,
) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters())
    folder.part("job").unlink()
    with pytest.raises(OutputError) as raised:
        store.finalize()
    assert str(raised.value) == _lost(
        folder, f"its part file is gone, its checkpoint vouches for {len(expected(4))} bytes"
    )
    assert not folder.result("job").exists() and not folder.part("job").exists()
    assert not store.checkpoint.finalized


def test_a_spooled_page_removed_under_the_job_stops_it(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(2)], Counters())
    shutil.rmtree(folder.spool("job"))
    store.commit([page(0)], Counters())
    with pytest.raises(OutputError) as raised:
        store.commit([page(1)], Counters())
    assert str(raised.value) == _lost(folder, "its early page 2 is gone from the spool")
    assert not folder.spool("job").exists()
    assert store.checkpoint.next_page == 1  # nothing moved on


@pytest.mark.parametrize("which", ["checkpoint", "part"])
def test_a_fifo_in_the_state_folder_is_damage_never_waited_on(
    folder: RunFolder, which: str
) -> None:
    store = opened(folder)
    store.commit([page(0)], Counters())
    path = folder.checkpoint("job") if which == "checkpoint" else folder.part("job")
    path.unlink()
    os.mkfifo(path)
    found = JobStore(folder, "job").open("fp")
    assert found.warnings == (
        f"its {which} {'file ' if which == 'part' else ''}cannot be read "
        f"({path} is a FIFO, not a regular file): its pages are fetched again",
    )
    assert found.checkpoint.pages == 0 and not path.exists()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_fifo_or_a_folder_in_the_spool_is_dropped_on_resume_never_read(
    folder: RunFolder, kind: str
) -> None:
    store = opened(folder)
    store.commit([PageIn(2, [], 12)], Counters())  # an empty early page: 0 bytes vouched
    spooled = folder.spooled_page("job", 2)
    spooled.unlink()
    if kind == "fifo":
        os.mkfifo(spooled)
    else:
        (spooled / "inside").mkdir(parents=True)
    resumed = JobStore(folder, "job").open("fp")
    assert resumed.checkpoint.spooled == {} and not spooled.exists()


def test_the_items_repaired_in_one_commit_of_several_pages_are_all_counted(
    folder: RunFolder,
) -> None:
    store = opened(folder)
    two, three = page(0), page(1)
    store.commit(
        [PageIn(0, two.lines, 12, repaired=2), PageIn(1, three.lines, 12, repaired=3)],
        Counters(),
    )
    assert store.checkpoint.items_repaired == 5


def test_an_early_page_of_another_size_than_its_checkpoint_says_is_lost_progress(
    folder: RunFolder,
) -> None:
    store = opened(folder)
    store.commit([page(1)], Counters())  # ahead of the writer: spooled
    vouched = store.checkpoint.spooled[1].size
    spooled = next(folder.spool("job").iterdir())
    spooled.write_bytes(spooled.read_bytes() + b"{}\n")
    with pytest.raises(OutputError) as raised:
        store.commit([page(0)], Counters())
    assert str(raised.value) == _lost(
        folder, f"its early page 1 is {vouched + 3} bytes, its checkpoint says {vouched}"
    )


def test_a_part_file_grown_under_the_job_is_never_finished(folder: RunFolder) -> None:
    store = opened(folder)
    store.commit([page(n) for n in range(4)], Counters())
    vouched = store.checkpoint.part_bytes
    with folder.part("job").open("ab") as part:
        part.write(b'{"n":99}\n')
    with pytest.raises(OutputError) as raised:
        store.finalize()
    assert str(raised.value) == _lost(
        folder, f"its part file is {vouched + 9} bytes, its checkpoint says {vouched}"
    )
    assert not folder.result("job").exists() and not store.checkpoint.finalized


def test_a_state_folder_removed_before_the_first_page_is_an_output_error_not_lost_progress(
    folder: RunFolder,
) -> None:
    # Nothing durable yet: the part file cannot be made, and nothing was lost.
    store = opened(folder)
    shutil.rmtree(folder.state)
    with pytest.raises(OutputError) as raised:
        store.commit([page(0)], Counters())
    assert str(raised.value) == (
        f"job 'job': cannot write page 0: No such file or directory ({folder.part('job')})"
    )
    assert not folder.state.exists()  # and nothing made it again
