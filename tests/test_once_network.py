"""A network that is down, a path the API does not know, a job it cannot serve, who is calling.

End to end over HTTP on loopback: a closed port for the API that cannot be reached, the
emulator pinning 404xx and 50100 answers to one job, and the emulator's own application
with a hook that records each request's headers (its call log does not keep them).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from intersect_batch._version import __version__
from intersect_batch.config import load_jobs
from intersect_batch.emulator import (
    EmulatorSettings,
    FaultSettings,
    PinnedFault,
    build_app,
    running_emulator,
)
from intersect_batch.estimate import estimate
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import LOCK_NAME
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import run_batch
from intersect_batch.settings import RetryPolicy
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    calls_for,
    fast_settings,
    manifest,
    run,
    served_items,
    write_jobs,
)

SIZES = {f"s{n}.example": 300 for n in range(3)}
JOBS: list[dict[str, Any]] = [
    {"id": f"j{n}", "targets": [f"s{n}.example", "b.example"], "page_size": 100} for n in range(3)
]


def _closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _targets(job: dict[str, Any]) -> dict[str, str]:
    return {str(n): t for n, t in enumerate(job["targets"], start=1)}


@pytest.mark.anyio
async def test_an_unreachable_api_stops_the_run_and_a_rerun_completes(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    port = _closed_port()
    base = f"http://127.0.0.1:{port}/v3"
    retry = RetryPolicy(attempts=3, base=0.001, cap=0.01, slowdown=0.01, unreachable_after=0.2)
    settings = fast_settings(tmp_path / "out", retry=retry)
    outcome = await run_batch(
        configs,
        provider=resolve_provider("dataforseo", base),
        environ=DEMO_ENV,
        settings=settings,
    )

    assert outcome.exit_code == ExitCode.ACCOUNT
    reached = f"the API at {base} could not be reached"
    lines = outcome.message.splitlines()
    said = [line for line in lines if line.startswith("the API")]
    assert len(said) == 1
    assert said[0].startswith(f"{reached}: cannot reach the API at ")
    assert lines[-1].startswith("attention: night 2026-11-29: 3 partial;")
    assert f"stopped: {reached}" in lines[-1]
    # Its cause kept whole: what a person acts on.
    stopped = lines[-1].split("stopped: ", 1)[1].split("; ", 1)[0]
    cause = f"[Errno 111] Connect call failed ('127.0.0.1', {port})"
    assert stopped == f"{reached}: cannot reach the API at 127.0.0.1:{port}: {cause}"
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    for job in JOBS:
        got = manifest(run_dir, str(job["id"]))
        # Not failed: no job spent its attempts on a network that was down.
        assert got["status"] == "partial" and got["reason"].startswith(reached)
        assert got["cost_usd"] == 0 and got["pages"] == 0
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["exit_code"] == 4 and summary["stop_reason"].startswith(reached)

    # The API is back on that port: the same run completes, each page asked once.
    async with running_emulator(EmulatorSettings(port=port, sizes=SIZES)) as emu:
        again = await run(configs, emu, settings)
        calls = emu.calls()
        served = {
            str(j["id"]): (await served_items(emu, {"targets": _targets(j)}))[1] for j in JOBS
        }
    assert again.exit_code == ExitCode.OK, again.message
    assert len(calls) == 9 and len({(repr(c.targets), c.offset) for c in calls}) == 9
    for job_id, items in served.items():
        written = (run_dir / f"{job_id}.jsonl").read_bytes().splitlines()
        assert [json.loads(line) for line in written] == items


@pytest.mark.slow
def test_a_dry_run_against_a_closed_port_says_it_spent_nothing(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS[:2])
    base = f"http://127.0.0.1:{_closed_port()}/v3"
    command = [
        sys.executable, "-m", "intersect_batch", "run", str(configs), "--dry-run",
        "--out", str(tmp_path / "out"), "--base-url", base,
    ]  # fmt: skip
    done = subprocess.run(
        command, env={**os.environ, **DEMO_ENV}, capture_output=True, text=True, timeout=60
    )
    # The API could not be reached: the same status as a run that finds it so.
    assert done.returncode == ExitCode.ACCOUNT, done.stderr[-2000:]
    out = done.stdout.splitlines()
    assert out[-1] == "the dry run spent nothing"
    assert not any("spent 0" in line or "probe call" in line for line in out)
    assert sum("error: job 'j" in line and "cannot reach the API" in line for line in out) == 2
    # It held the lock while it tried (its probes count in the night's ledger), but it
    # spent nothing, so there is no run folder and no ledger.
    assert [path.name for path in (tmp_path / "out").iterdir()] == [LOCK_NAME]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "offset", "http_status"),
    [
        pytest.param(40401, 0, 404, id="40401-first-page"),
        pytest.param(40401, 200, 404, id="40401-later-page"),
        pytest.param(40403, 100, 404, id="40403"),
        pytest.param(50100, 200, 200, id="50100"),
    ],
)
async def test_a_not_found_or_not_implemented_answer_fails_only_its_job_without_retries(
    tmp_path: Path, code: int, offset: int, http_status: int
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    pin = PinnedFault(offset=offset, kind=code, target="s1.example")
    async with running_emulator(
        EmulatorSettings(sizes=SIZES, faults=FaultSettings(pinned=(pin,)))
    ) as emu:
        outcome = await run(configs, emu, fast_settings(tmp_path / "out"))
        calls = emu.calls()
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()

    assert outcome.exit_code == ExitCode.ATTENTION
    assert outcome.message.splitlines()[-1].startswith(
        "attention: night 2026-11-29: 2 complete, 1 failed;"
    )
    failed = manifest(run_dir, "j1")
    assert failed["status"] == "failed" and failed["retries"] == 0
    assert failed["reason"].startswith(f"job 'j1' offset {offset}: [{code}]")
    assert failed["errors"] == [
        {
            "kind": "job_fatal",
            "message": "Error.",
            "offset": offset,
            "http_status": http_status,
            "status_code": code,
        }
    ]
    assert not (run_dir / "j1.jsonl").exists()
    # Asked once: retrying cannot help.
    asked = [c.offset for c in calls_for(calls, ["s1.example", "b.example"])]
    assert asked.count(offset) == 1
    assert {manifest(run_dir, job)["status"] for job in ("j0", "j2")} == {"complete"}


@pytest.mark.anyio
async def test_a_wrong_path_stops_the_run(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    pin = PinnedFault(offset=0, kind=40400, target="s1.example")
    settings = fast_settings(tmp_path / "out")
    async with running_emulator(
        EmulatorSettings(sizes=SIZES, faults=FaultSettings(pinned=(pin,)))
    ) as emu:
        outcome = await run(configs, emu, settings)
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()

    assert outcome.exit_code == ExitCode.ACCOUNT
    assert "check --base-url" in outcome.message.splitlines()[0]
    got = manifest(run_dir, "j1")
    # The job is not to blame: it is partial and resumes once the path is right.
    assert got["status"] == "partial" and "[40400]" in got["reason"]
    assert got["errors"][0]["kind"] == "run_fatal"


@pytest.mark.anyio
async def test_every_call_says_who_is_calling(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    app = build_app(EmulatorSettings(sizes=SIZES))
    agents: list[str] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        agents.append(request.headers.get("User-Agent", ""))

    app.on_response_prepare.append(record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        provider = resolve_provider("dataforseo", f"http://127.0.0.1:{port}/v3")
        settings = fast_settings(tmp_path / "out")
        dry = await estimate(
            load_jobs(configs).jobs,
            provider=provider,
            credentials=provider.credentials(DEMO_ENV),
            settings=settings,
            probe=True,
        )
        outcome = await run_batch(configs, provider=provider, environ=DEMO_ENV, settings=settings)
    finally:
        await runner.cleanup()

    assert outcome.exit_code == ExitCode.OK and dry.probe_calls == 3
    assert __version__ == importlib.metadata.version("intersect-batch")
    # The 3 dry-run probes and the 9 pages.
    assert len(agents) == 3 + 9
    assert all(agent.startswith(f"intersect-batch/{__version__} ") for agent in agents), agents
