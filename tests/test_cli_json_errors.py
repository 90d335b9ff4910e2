"""A run refused before it starts says so the same way whatever refused it: with ``--json``
one error object on stdout, and with stderr not a terminal a JSON error record, then the
``run finished`` record every log ends with.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.exitcode import ExitCode
from tests.hostile_cli import ROOT
from tests.support import DEMO_ENV, cli_run, emulator_process, write_jobs

pytestmark = pytest.mark.slow

CREDENTIALS = ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD")


def _run(tmp_path: Path, *extra: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", [{"id": "alpha", "targets": ["a.example", "b.example"]}])
    command = [
        sys.executable, "-m", "intersect_batch", "run", str(configs),
        "--out", str(tmp_path / "out"), "--base-url", "http://127.0.0.1:9/v3", *extra,
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _without_credentials() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CREDENTIALS}


def test_json_with_missing_credentials_prints_one_error_object(tmp_path: Path) -> None:
    done = _run(tmp_path, "--json", env=_without_credentials())
    assert done.returncode == ExitCode.USAGE
    message = (
        "provider 'dataforseo' needs API credentials: set DATAFORSEO_LOGIN and "
        "DATAFORSEO_PASSWORD (the API password from the dashboard, not the account password)"
    )
    assert _records(done.stdout) == [{"error": message, "exit_code": 2}]
    records = _records(done.stderr)
    assert [(r["level"], r["message"]) for r in records] == [
        ("error", message),
        ("info", "run finished"),
    ]
    assert records[-1]["exit_code"] == 2
    assert not (tmp_path / "out").exists()


def test_a_future_run_date_is_refused_like_any_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, **DEMO_ENV}
    today = dt.datetime.now(dt.UTC).date()
    future = (today + dt.timedelta(days=2)).isoformat()
    refused = _run(tmp_path, "--run-date", future, env=env)
    other = _run(tmp_path, "--env-file", str(tmp_path / "none"), env=env)
    assert refused.returncode == other.returncode == ExitCode.USAGE
    assert refused.stdout == ""
    records = _records(refused.stderr)
    said = f"--run-date {future} is after today ({today}, UTC); add --allow-future if that is meant"
    assert [(r["level"], r["message"]) for r in records] == [
        ("error", said),
        ("info", "run finished"),
    ]
    assert records[-1]["exit_code"] == 2
    # The same shape as another usage error's.
    assert [sorted(r) for r in records] == [sorted(r) for r in _records(other.stderr)]
    # With --json, its one error object on stdout.
    again = _run(tmp_path, "--run-date", future, "--json", env=env)
    assert _records(again.stdout) == [{"error": records[0]["message"], "exit_code": 2}]


def test_a_dry_run_with_a_refused_password_says_so_in_one_line(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    jobs = [{"id": name, "targets": [f"{name}.example", "z.example"]} for name in "abc"]
    write_jobs(configs, "jobs.yaml", jobs)
    login = {"DATAFORSEO_LOGIN": "ops@night.example", "DATAFORSEO_PASSWORD": "wrong-secret"}
    sizes = {"a.example": 10, "b.example": 10, "c.example": 10}
    args = ("--login", "ops@night.example", "--password", "right")
    with emulator_process(tmp_path, sizes, *args) as emulator:
        # One probe at a time: the first is refused, the others are never sent.
        command = cli_run(configs, tmp_path / "out", emulator, "--dry-run", "--concurrency", "1")
        done = subprocess.run(
            command, env={**os.environ, **login}, capture_output=True, text=True, timeout=60
        )
        as_json = subprocess.run(
            [*command, "--json"],
            env={**os.environ, **login},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == as_json.returncode == ExitCode.ACCOUNT
    assert done.stdout == (
        "credentials refused: [40100] You are not authorized to access this resource. "
        "(check the API login and password (or the API key) in the environment)\n"
    )
    assert "wrong-secret" not in done.stdout + done.stderr + as_json.stdout + as_json.stderr
    # The jobs not probed are skipped, without the first job's error.
    result = json.loads(as_json.stdout)
    assert [(job["job_id"], job["source"], job.get("error")) for job in result["jobs"]] == [
        ("a", "probe failed", result["stopped"]),
        ("b", "skipped", None),
        ("c", "skipped", None),
    ]
