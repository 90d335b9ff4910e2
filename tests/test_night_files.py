"""The night's ledger found damaged in ways a person or a disk can leave it: never waited
on, never read past the cap; the night's spend is counted from the manifests instead."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from intersect_batch.durable import MAX_LINE_BYTES
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger, write_ledger
from intersect_batch.night import night_ledger


def _fifo(path: Path) -> str:
    path.unlink()
    os.mkfifo(path)
    return f"{path} is a FIFO, not a regular file"


def _huge(path: Path) -> str:
    with path.open("ab") as handle:  # a sparse tail: no disk used
        handle.truncate(MAX_LINE_BYTES + 1)
    return (
        f"{path} is larger than 64 MiB (the largest file of its kind a run writes): "
        "the file is damaged"
    )


@pytest.mark.timeout(10)
@pytest.mark.parametrize("damage", [_fifo, _huge], ids=["fifo", "huge"])
def test_a_ledger_that_is_not_a_readable_file_is_rebuilt_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], str]
) -> None:
    folder = RunFolder(tmp_path, dt.date(2026, 11, 29))
    folder.path.mkdir(parents=True)
    write_ledger(folder.ledger, Ledger(spent_usd=0.5, calls=9))
    why = damage(folder.ledger)
    assert night_ledger(folder) == Ledger()  # no manifest: nothing to count from
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"the night's ledger cannot be read ({why})")
