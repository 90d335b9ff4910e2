"""A disk that fills while a run writes, then has space again: every item once, the money kept.

The output folder sits on a 2 MiB tmpfs mounted for the test (the tests run as root here;
elsewhere they are skipped, saying why) that another file fills up to a seeded amount of
free space, so that the run meets ENOSPC at a different point each time. Then the file
goes, and the same run again must complete with exactly the items the emulator serves.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.logs import close_logging, configure_logging
from intersect_batch.runner import RunOutcome
from intersect_batch.settings import Limits
from tests.support import RUN_DATE, fast_settings, run, served_items, write_jobs

pytestmark = pytest.mark.anyio

DISK_BYTES = 2 * 2**20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards; skipped where mounting is not permitted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting the small tmpfs these tests fill needs root and mount(8)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    # Only errors: a full disk makes every page a warning, and pytest keeps them all.
    configure_logging(level="error", fmt="json")
    yield
    close_logging()


def _fill(disk: Path, leave: int) -> Path:
    """A file that takes all but ``leave`` bytes of the disk's free space."""
    stat = os.statvfs(disk)
    hog = disk / "hog"
    hog.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return hog


async def _run_on_full_disk(configs: Path, emu: Any, settings: Any) -> RunOutcome | None:
    """The run that meets the full disk: its outcome, or None when even run.json failed."""
    try:
        return await run(configs, emu, settings)
    except OSError as exc:
        # Through the CLI: "error: No space left on device (...)", exit 1.
        assert exc.errno == errno.ENOSPC, exc
        return None


def _as_jsonl(items: list[Any]) -> bytes:
    return b"".join(
        json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        for item in items
    )


@pytest.mark.usefixtures("quiet_logs")
async def test_a_disk_that_fills_then_frees_gives_every_item_once(
    tmp_path: Path, small_disk: Path
) -> None:
    configs = tmp_path / "configs"
    targets = ["small.example", "b.example"]
    # 25 pages of 10 items, ~600 kB in all: more than the space left, each time.
    write_jobs(configs, "jobs.yaml", [{"id": "small", "targets": targets, "page_size": 10}])
    async with running_emulator(EmulatorSettings(sizes={"small.example": 250})) as emu:
        _, items = await served_items(emu, {"targets": {"1": targets[0], "2": targets[1]}})
        expected = _as_jsonl(items)
        for seed in (1, 2, 3):
            leave = random.Random(seed).randrange(16 * 1024, 480 * 1024)
            out = small_disk / f"out-{seed}"
            settings = fast_settings(out)
            hog = _fill(small_disk, leave)
            before = len(emu.calls())
            first = await _run_on_full_disk(configs, emu, settings)
            run_dir = out / RUN_DATE.isoformat()
            assert first is None or first.exit_code == ExitCode.ATTENTION, (seed, leave)
            assert not (run_dir / "small.jsonl").exists(), (seed, leave)

            hog.unlink()
            middle = len(emu.calls())
            again = await run(configs, emu, settings)
            assert again.exit_code == ExitCode.OK, (seed, leave, again.message)
            got = (run_dir / "small.jsonl").read_bytes()
            assert got == expected, (seed, leave)
            assert not (run_dir / ".state").exists()
            # The second run asked only for what the first did not keep.
            calls = emu.calls()
            assert len(calls) - middle <= 25
            assert middle - before + (len(calls) - middle) >= 25
            shutil.rmtree(out)


@pytest.mark.usefixtures("quiet_logs")
@pytest.mark.parametrize("leave_kib", [150, 250, 400])
async def test_the_budget_holds_for_a_night_whose_disk_filled(
    tmp_path: Path, small_disk: Path, leave_kib: int
) -> None:
    configs = tmp_path / "configs"
    jobs = [
        {"id": f"j{n}", "targets": [f"s{n}.example", "b.example"], "page_size": 10}
        for n in range(3)
    ]
    write_jobs(configs, "jobs.yaml", jobs)
    cap = 0.6
    settings = fast_settings(
        small_disk / "out", budget_usd=cap, limits=Limits(rate_per_minute=60_000, concurrency=6)
    )
    sizes = {f"s{n}.example": 250 for n in range(3)}
    async with running_emulator(EmulatorSettings(sizes=sizes)) as emu:
        hog = _fill(small_disk, leave_kib * 1024)
        first = await _run_on_full_disk(configs, emu, settings)
        assert first is None or first.exit_code == ExitCode.ATTENTION
        hog.unlink()
        # Space again, the same night: what the first run spent still counts.
        again = await run(configs, emu, settings)
        bill = sum(c.cost for c in emu.calls())
    assert again.exit_code == ExitCode.ATTENTION, again.message
    assert bill <= cap + 1e-9
