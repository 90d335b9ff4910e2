"""Removing a run date's progress (``.state/``) is layout's one way to delete it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from intersect_batch.layout import RunFolder, discard_state

DAY = dt.date(2026, 11, 29)


def _folder(tmp_path: Path) -> RunFolder:
    folder = RunFolder(tmp_path / "out", DAY)
    folder.state.mkdir(parents=True)
    return folder


def test_fresh_removes_the_state_folder_and_all_it_holds(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    folder.part("a").write_bytes(b"{}\n")
    folder.spool("a").mkdir()
    folder.spooled_page("a", 1).write_bytes(b"{}\n")
    discard_state(folder)
    assert not folder.state.exists()
    assert folder.path.is_dir()
    discard_state(folder)  # nothing left to remove: no error


def test_after_a_run_only_an_empty_state_folder_goes(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    folder.part("a").write_bytes(b"{}\n")
    discard_state(folder, only_if_empty=True)
    assert folder.part("a").read_bytes() == b"{}\n"
    folder.part("a").unlink()
    discard_state(folder, only_if_empty=True)
    assert not folder.state.exists()


def test_a_state_folder_that_is_a_symlink_is_unlinked_never_followed(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "out", DAY)
    folder.path.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    folder.state.symlink_to(elsewhere, target_is_directory=True)
    discard_state(folder)
    assert not folder.state.is_symlink() and not folder.state.exists()
    assert (elsewhere / "keep.txt").read_text() == "mine"
