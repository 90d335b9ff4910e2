"""Which jobs an earlier invocation left progress for: one listing of ``.state``, not a look a job.

A night of many jobs opens only the stores of jobs that have files in the state folder;
the others start from nothing, and their files are made when their first page is written.
"""

from __future__ import annotations

import os

from intersect_batch.layout import RunFolder

__all__ = ["names_in_state"]


def names_in_state(folder: RunFolder) -> frozenset[str]:
    """Every job id that may have files in the run folder's state folder (made if missing).

    A superset: each file name counts under every prefix that ends before a dot
    (``a.b.part`` counts for ``a`` and ``a.b``), and a leading dot (a checkpoint a crash
    cut short) is ignored; a job named here may have nothing on disk, a job not named
    here has nothing. Blocking; raises OSError when the folder cannot be made or listed.
    """
    folder.state.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for entry in os.listdir(folder.state):
        name = entry.removeprefix(".")
        dot = name.find(".")
        while dot != -1:
            names.add(name[:dot])
            dot = name.find(".", dot + 1)
    return frozenset(names)
