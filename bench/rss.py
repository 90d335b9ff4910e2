"""``python -m bench.rss OUT -- ARGS...``: run ``python -m intersect_batch ARGS``, then write its
peak RSS (``VmHWM``, in kB) to OUT.

A child's ``ru_maxrss`` on Linux starts from its parent's RSS at fork time (the
high-water mark survives exec), so a harness that has grown would inflate it; the
process's own ``VmHWM`` does not.
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    out, separator, *args = sys.argv[1:]
    if separator != "--":
        raise SystemExit("usage: python -m bench.rss OUT -- ARGS...")
    atexit.register(lambda: Path(out).write_text(f"{_peak_kb()}\n"))
    sys.argv = ["intersect-batch", *args]
    runpy.run_module("intersect_batch", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
