"""Helpers shared by the crawler's tests: job folders, settings, runs, what was served."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from intersect_batch.emulator import CallRecord, RunningEmulator
from intersect_batch.emulator.app import SERVING_PATH
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import RunOutcome, run_batch
from intersect_batch.settings import Limits, RetryPolicy, RunOptions, RunSettings

DEMO_ENV = {"DATAFORSEO_LOGIN": "demo", "DATAFORSEO_PASSWORD": "demo-password"}
RUN_DATE = dt.date(2026, 11, 29)


def write_jobs(
    folder: Path, name: str, jobs: list[dict[str, Any]], defaults: dict[str, Any] | None = None
) -> Path:
    """Write one job file into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"jobs": jobs}
    if defaults:
        document = {"defaults": defaults, **document}
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def fast_settings(out_dir: Path, **overrides: Any) -> RunSettings:
    """Settings for tests: a quick rate, a few slots, back-off in milliseconds."""
    values: dict[str, Any] = {
        "out_dir": out_dir,
        "run_date": RUN_DATE,
        "limits": Limits(rate_per_minute=60_000, concurrency=6),
        "retry": RetryPolicy(attempts=6, base=0.001, cap=0.01, slowdown=0.01),
        "grace": 5.0,
    }
    values.update(overrides)
    return RunSettings(**values)


async def run(
    config_dir: Path,
    emulator: RunningEmulator,
    settings: RunSettings,
    *,
    environ: dict[str, str] | None = None,
    keep_days: int | None = None,
    report: bool = False,
    metrics_file: Path | None = None,
    **kwargs: Any,
) -> RunOutcome:
    """Run the real batch against the emulator's DataForSEO route."""
    return await run_batch(
        config_dir,
        provider=resolve_provider("dataforseo", emulator.dataforseo_base),
        environ=DEMO_ENV if environ is None else environ,
        settings=settings,
        options=RunOptions(keep_days=keep_days, report=report, metrics_file=metrics_file),
        **kwargs,
    )


async def served_items(
    emulator: RunningEmulator, params: dict[str, Any], *, page: int = 1000
) -> tuple[int, list[Any]]:
    """(total_count, every item) of a query, fetched independently of the crawler."""
    items: list[Any] = []
    token = base64.b64encode(
        f"{DEMO_ENV['DATAFORSEO_LOGIN']}:{DEMO_ENV['DATAFORSEO_PASSWORD']}".encode()
    ).decode()
    url = f"{emulator.dataforseo_base}/backlinks/page_intersection/live"
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        offset, total = 0, None
        while total is None or offset < total:
            body = [{**params, "offset": offset, "limit": page}]
            async with session.post(url, json=body) as response:
                envelope = json.loads(await response.read())
            task = envelope["tasks"][0]
            assert task["status_code"] == 20000, task["status_message"]
            result = task["result"][0]
            total = result["total_count"]
            items.extend(result["items"] or [])
            offset += page
    return total or 0, items


def read_lines(path: Path) -> list[Any]:
    """The JSONL file's items, parsed; every line must be compact, whole JSON."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{path} does not end with a newline"
    return [json.loads(line) for line in data.splitlines()]


def calls_for(calls: list[CallRecord], targets: list[str]) -> list[CallRecord]:
    """The calls the emulator served for one target set."""
    wanted = {str(i): t for i, t in enumerate(targets, start=1)}
    return [call for call in calls if call.targets == wanted]


def manifest(run_dir: Path, job_id: str) -> dict[str, Any]:
    """A job's manifest as JSON."""
    result: dict[str, Any] = json.loads((run_dir / f"{job_id}.manifest.json").read_text())
    return result


class EmulatorProcess:
    """The emulator as a separate process, as the CLI meets it; its call log is a file."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def calls(self) -> list[dict[str, Any]]:
        """Every call the emulator logged so far (a line being written is left out)."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def settled(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The call log once no call is being answered: after a client was killed, the
        calls it had in flight are answered (to no one) and logged; then it is whole."""
        deadline = time.monotonic() + timeout
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback
        while True:
            with direct.open(self.url + SERVING_PATH, timeout=timeout) as answer:
                if json.loads(answer.read())["serving"] == 0:
                    return self.calls()
            assert time.monotonic() < deadline, "the emulator is still answering calls"
            time.sleep(0.005)


@contextlib.contextmanager
def emulator_process(
    tmp_path: Path, sizes: dict[str, int], *args: str
) -> Iterator[EmulatorProcess]:
    """Start ``python -m intersect_batch.emulator`` on a free port; stop it afterwards."""
    log = tmp_path / "emulator-calls.jsonl"
    size_args = [arg for target, n in sizes.items() for arg in ("--size", f"{target}={n}")]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "intersect_batch.emulator",
            "--port",
            "0",
            "--seed",
            "4",
            "--latency-spread",
            "0.6",
            "--log-file",
            str(log),
            *size_args,
            *args,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **DEMO_ENV},
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    try:
        yield EmulatorProcess(process, url, log)
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def cli_run(configs: Path, out: Path, emulator: EmulatorProcess, *extra: str) -> list[str]:
    """The ``intersect-batch run`` command line against an emulator process."""
    return [
        sys.executable, "-m", "intersect_batch", "run", str(configs), "--out", str(out),
        "--run-date", RUN_DATE.isoformat(), "--base-url", f"{emulator.url}/v3", *extra,
    ]  # fmt: skip
