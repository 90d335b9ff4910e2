"""A damaged ``.state/`` after kill -9: the re-run warns, fetches again what is gone, and
writes exactly the items the emulator serves, never a NUL byte or a missing item.

One CLI run is killed mid-job; copies of its run folder are damaged in different ways
(the part file cut in half or holding NULs, the checkpoint garbled, or the part file gone
under a checkpoint that claims the result finished) and each copy is run again by the
real ``run_batch`` against the same emulator process, its log records kept as JSON lines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from intersect_batch.emulator import RunningEmulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.logs import close_logging, configure_logging
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import run_batch
from intersect_batch.settings import Limits
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    fast_settings,
    served_items,
    write_jobs,
)

pytestmark = pytest.mark.slow

TARGETS = ["alpha.example", "b.example"]
#: 20 pages of 50 items.
PAGES = 20


def _half(state: Path) -> None:
    part = state / "alpha.part"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])


def _nul_middle(state: Path) -> None:
    # What a power loss can leave on some filesystems: the size kept, the data zeroed.
    part = state / "alpha.part"
    data = part.read_bytes()
    third = len(data) // 3
    part.write_bytes(data[:third] + b"\0" * third + data[2 * third :])


def _garble(state: Path) -> None:
    (state / "alpha.checkpoint.json").write_bytes(b'{"fingerprint": "48\x00\xff')


def _finalized_without_part(state: Path) -> None:
    checkpoint = state / "alpha.checkpoint.json"
    data = json.loads(checkpoint.read_text())
    checkpoint.write_text(json.dumps({**data, "finalized": True}))
    (state / "alpha.part").unlink()


DAMAGE: list[Any] = [
    pytest.param(_half, "its part file is shorter than its checkpoint", id="part-cut-in-half"),
    pytest.param(_nul_middle, "of its part file is not an item", id="part-zeroed"),
    pytest.param(_garble, "its checkpoint does not decode", id="checkpoint-garbled"),
    pytest.param(
        _finalized_without_part,
        "its checkpoint says it is finished, but its result is missing",
        id="finalized-without-part",
    ),
]


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorProcess, Path]]:
    """The emulator, and the configs and run folder of a run killed with pages on disk."""
    tmp = tmp_path_factory.mktemp("killed")
    configs = tmp / "configs"
    write_jobs(configs, "jobs.yaml", [{"id": "alpha", "targets": TARGETS, "page_size": 50}])
    with emulator_process(tmp, {"alpha.example": PAGES * 50}, "--latency-median", "0.03") as emu:
        out = tmp / "out"
        process = subprocess.Popen(
            _command(configs, out, emu),
            env={**os.environ, **DEMO_ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        checkpoint = out / RUN_DATE.isoformat() / ".state" / "alpha.checkpoint.json"
        deadline = time.monotonic() + 30
        while _next_page(checkpoint) < 4:
            assert process.poll() is None, "the run ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        emu.settled()  # the calls in flight at the kill are in the server's log
        yield emu, tmp


def _next_page(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_bytes())["next_page"])
    except (OSError, ValueError, KeyError):
        return 0


def _command(configs: Path, out: Path, emu: EmulatorProcess) -> list[str]:
    return cli_run(
        configs, out, emu, "--concurrency", "2", "--rate-per-minute", "60000",
        "--log-format", "json",
    )  # fmt: skip


async def _rerun(configs: Path, out: Path, emu: EmulatorProcess) -> tuple[Any, list[Any]]:
    """Run the job again in-process; its outcome and the log records it wrote."""
    log_file = out.parent / "rerun.log"
    configure_logging(level="info", fmt="json", log_file=log_file)
    try:
        outcome = await run_batch(
            configs,
            provider=resolve_provider("dataforseo", f"{emu.url}/v3"),
            environ=DEMO_ENV,
            settings=fast_settings(out, limits=Limits(rate_per_minute=60_000, concurrency=2)),
        )
    finally:
        close_logging()
    return outcome, [json.loads(line) for line in log_file.read_text().splitlines()]


async def _served(emu: EmulatorProcess) -> bytes:
    """What the emulator serves for the job, as the result file must hold it."""
    shim = cast(RunningEmulator, SimpleNamespace(dataforseo_base=f"{emu.url}/v3"))
    _, items = await served_items(shim, {"targets": {"1": TARGETS[0], "2": TARGETS[1]}})
    return b"".join(
        json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        for item in items
    )


@pytest.mark.anyio
@pytest.mark.parametrize(("damage", "warning"), DAMAGE)
async def test_damaged_progress_is_fetched_again_with_a_warning(
    tmp_path: Path,
    killed: tuple[EmulatorProcess, Path],
    damage: Callable[[Path], None],
    warning: str,
) -> None:
    emu, origin = killed
    out = tmp_path / "out"
    shutil.copytree(origin / "out", out)
    run_dir = out / RUN_DATE.isoformat()
    damage(run_dir / ".state")
    before = len(emu.calls())

    outcome, records = await _rerun(origin / "configs", out, emu)
    calls = emu.calls()[before:]
    assert outcome.exit_code == ExitCode.OK, outcome.message
    assert outcome.message.splitlines()[-1].startswith("ok: night 2026-11-29: 1 complete;")
    warned = [r for r in records if r["level"] == "warning"]
    assert len(warned) == 1 and warned[0]["job"] == "alpha", records
    assert warning in warned[0]["message"]
    assert warned[0]["message"].endswith("its pages are fetched again")
    result = (run_dir / "alpha.jsonl").read_bytes()
    assert b"\0" not in result
    assert result == await _served(emu)
    got = json.loads((run_dir / "alpha.manifest.json").read_text())
    assert got["status"] == "complete" and got["warnings"] == [warned[0]["message"]]
    # What could not be trusted was fetched again: every page, each once.
    assert sorted(call["offset"] for call in calls) == [50 * page for page in range(PAGES)]
    assert not (run_dir / ".state").exists()


@pytest.mark.anyio
async def test_a_torn_tail_of_nuls_is_cut_off_without_a_warning(
    tmp_path: Path, killed: tuple[EmulatorProcess, Path]
) -> None:
    emu, origin = killed
    out = tmp_path / "out"
    shutil.copytree(origin / "out", out)
    run_dir = out / RUN_DATE.isoformat()
    checkpoint = json.loads((run_dir / ".state" / "alpha.checkpoint.json").read_text())
    with (run_dir / ".state" / "alpha.part").open("ab") as part:
        part.write(b"\0" * 4096)
    before = len(emu.calls())

    outcome, records = await _rerun(origin / "configs", out, emu)
    calls = emu.calls()[before:]
    assert outcome.exit_code == ExitCode.OK, outcome.message
    assert [r for r in records if r["level"] == "warning"] == []
    result = (run_dir / "alpha.jsonl").read_bytes()
    assert b"\0" not in result and result == await _served(emu)
    # Only the pages not durable at the kill were asked for again.
    durable = set(range(checkpoint["next_page"])) | {int(k) for k in checkpoint["spooled"]}
    assert sorted(call["offset"] // 50 for call in calls) == sorted(set(range(PAGES)) - durable)
