"""Before spending: the account's balance and limits from the free appendix/user_data."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from intersect_batch.account import Account, AccountCheckError, account_notes, fetch_account
from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from intersect_batch.providers import resolve_provider
from intersect_batch.settings import Limits, Timeouts
from tests.support import DEMO_ENV, EmulatorProcess, cli_run, emulator_process, write_jobs

pytestmark = pytest.mark.slow

JOBS = [
    {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100},
    {"id": "beta", "targets": ["beta.example", "b.example"], "page_size": 100},
]
FAST = Timeouts(connect=2, read=2, deadline=2)


async def _user_data(settings: EmulatorSettings, password: str) -> tuple[int, Any, int]:
    token = base64.b64encode(f"{DEMO_ENV['DATAFORSEO_LOGIN']}:{password}".encode()).decode()
    async with running_emulator(settings) as emu:
        async with aiohttp.ClientSession() as session:
            url = f"{emu.dataforseo_base}/appendix/user_data"
            async with session.get(url, headers={"Authorization": f"Basic {token}"}) as reply:
                body = json.loads(await reply.read())
                status = reply.status
        return status, body, len(emu.calls())


def test_the_emulator_serves_user_data_in_the_apis_envelope() -> None:
    settings = EmulatorSettings(balance_usd=12.5, rate_per_minute=600)
    status, body, logged = anyio.run(_user_data, settings, DEMO_ENV["DATAFORSEO_PASSWORD"])
    assert status == 200 and logged == 0  # free, and no task: not in the call log
    assert (body["status_code"], body["cost"], body["tasks_count"]) == (20000, 0, 1)
    [task] = body["tasks"]
    assert task["status_code"] == 20000 and task["path"] == ["v3", "appendix", "user_data"]
    [result] = task["result"]
    assert result["money"]["balance"] == 12.5
    assert result["rates"]["limits"]["minute"]["total"] == 600
    status, body, _ = anyio.run(_user_data, settings, "wrong")
    assert status == 401 and body["status_code"] == 40100


async def _account(settings: EmulatorSettings) -> Account:
    async with running_emulator(settings) as emu:
        provider = resolve_provider("dataforseo", emu.dataforseo_base)
        return await fetch_account(provider, provider.credentials(DEMO_ENV), timeouts=FAST)


def test_the_client_reads_the_balance_and_the_limit() -> None:
    account = anyio.run(_account, EmulatorSettings(balance_usd=3.25, rate_per_minute=10_000))
    assert account == Account(balance_usd=3.25, rate_per_minute=10_000)


@asynccontextmanager
async def _answering(body: bytes, status: int = 200) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v3/appendix/user_data", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v3"
    finally:
        await runner.cleanup()


def _answer(result: Any) -> bytes:
    task = {"status_code": 20000, "result": [result]}
    return json.dumps({"status_code": 20000, "tasks": [task]}).encode()


async def _read(body: bytes, status: int = 200) -> Account | str:
    async with _answering(body, status) as base:
        provider = resolve_provider("dataforseo", base)
        try:
            return await fetch_account(provider, provider.credentials(DEMO_ENV), timeouts=FAST)
        except AccountCheckError as exc:
            return str(exc)


@pytest.mark.parametrize(
    ("body", "status", "wanted"),
    [
        (_answer({"money": {"balance": -5}, "rates": {"limits": {"minute": {"total": 0}}}}),
         200, Account(balance_usd=None, rate_per_minute=None)),
        (b'{"status_code":20000,"tasks":[{"status_code":20000,"result":[{"money":'
         b'{"balance":1e999}}]}]}', 200, "the answer is not the API's envelope"),
        (_answer({}), 200, Account(balance_usd=None, rate_per_minute=None)),
        (b"<html>not json</html>", 200, "the answer is not the API's envelope"),
        (json.dumps({"status_code": 40100, "tasks": []}).encode(), 200,
         "the API answered status 40100"),
        (b"{}", 500, "answered HTTP 500"),
        (b" " * (2 << 20), 200, "answered more than 1048576 bytes"),
    ],
)  # fmt: skip
def test_a_strange_answer_is_no_balance_never_a_crash(
    body: bytes, status: int, wanted: Account | str
) -> None:
    found = anyio.run(_read, body, status)
    if isinstance(wanted, str):
        assert isinstance(found, str) and found.endswith(wanted), found
    else:
        assert found == wanted


def test_the_notes_say_what_to_do() -> None:
    account = Account(balance_usd=1.5, rate_per_minute=2000)
    notes, short = account_notes(
        account, estimate_usd=2.25, limits=Limits(rate_per_minute=10_000, concurrency=50),
        provider="dataforseo",
    )  # fmt: skip
    assert short
    assert notes == [
        "the account's balance (1.5000 USD) does not cover the night's estimate (2.2500 USD): "
        "the run would stop when the money runs out; add funds, or lower --budget-usd",
        "--rate-per-minute 10000 is more than the account allows (2000 a minute): the API "
        "would refuse the excess; use --rate-per-minute 2000",
        "--concurrency 50 is more than DataForSEO allows (30 at once per account): the API "
        "would refuse the excess; use --concurrency 30",
    ]
    fine, short = account_notes(
        account, estimate_usd=1.5, limits=Limits(rate_per_minute=2000, concurrency=30),
        provider="dataforseo",
    )  # fmt: skip
    assert (fine, short) == ([], False)
    # AIsa's tiers are not DataForSEO's 30 at once: no guess about them.
    assert account_notes(
        Account(balance_usd=None, rate_per_minute=None), estimate_usd=9.0,
        limits=Limits(rate_per_minute=60, concurrency=50), provider="aisa",
    ) == ([], False)  # fmt: skip


@pytest.fixture(scope="module")
def poor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    folder = tmp_path_factory.mktemp("poor")
    sizes = {"alpha.example": 250, "beta.example": 40}
    with emulator_process(folder, sizes, "--balance-usd", "0.03") as process:
        yield process


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    folder = tmp_path_factory.mktemp("rich")
    with emulator_process(folder, {"beta.example": 40}) as process:
        yield process


def _cli(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60,
        env={**os.environ, **DEMO_ENV}, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _records(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines()]


def test_a_balance_short_of_the_estimate_stops_the_night_when_asked(
    tmp_path: Path, poor: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    result = _cli(cli_run(configs, out, poor, "--require-balance", "--quiet"))
    assert result.returncode == ExitCode.ACCOUNT, result.stdout + result.stderr
    assert poor.calls() == []  # not one call
    assert result.stdout == ""
    # Neither job has run before: the estimate is the lower bound, one call each.
    assert result.stderr.splitlines() == [
        "error: the account's balance (0.0300 USD) does not cover the night's estimate "
        "(0.0400 USD): the run would stop when the money runs out; add funds, or lower "
        "--budget-usd (--require-balance: nothing was sent)"
    ]
    # Without --require-balance: said once, as a warning, and the run goes on until the
    # money runs out (the API then refuses: 40210, status 4).
    night = _cli(cli_run(configs, out, poor))
    records = _records(night.stderr)
    warnings = [r["message"] for r in records if r["level"] == "warning"]
    note = result.stderr.splitlines()[0].removeprefix("error: ").split(" (--")[0]
    assert warnings[0] == note and warnings.count(note) == 1
    assert len(poor.calls()) >= 1 and night.returncode == ExitCode.ACCOUNT


def test_the_limits_above_the_accounts_are_said_once(tmp_path: Path, rich: EmulatorProcess) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS[1:])
    result = _cli(cli_run(configs, out, rich, "--rate-per-minute", "3000", "--concurrency", "31"))
    assert result.returncode == ExitCode.OK, result.stderr
    records = _records(result.stderr)
    warnings = [r["message"] for r in records if r["level"] == "warning"]
    assert warnings == [
        "--rate-per-minute 3000 is more than the account allows (2000 a minute): the API "
        "would refuse the excess; use --rate-per-minute 2000",
        "--concurrency 31 is more than DataForSEO allows (30 at once per account): the API "
        "would refuse the excess; use --concurrency 30",
    ]
    [checked] = [r for r in records if r["message"] == "account checked"]
    assert (checked["rate_per_minute"], checked["estimate_usd"]) == (2000, 0.02)
    assert checked["balance_usd"] == 1_000_000.0  # the emulator's "unlimited"
    assert "demo-password" not in result.stdout + result.stderr


def test_an_unreadable_balance_is_a_note_or_a_stop(tmp_path: Path) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    # Nothing listens on port 9 of loopback: refused at once.
    base = ["--run-date", "2026-11-29", "--base-url", "http://127.0.0.1:9/v3",
            "--unreachable-after", "0.5"]  # fmt: skip
    command = [sys.executable, "-m", "intersect_batch", "run", str(configs), "--out", str(out)]
    stop = _cli([*command, *base, "--require-balance"])
    assert stop.returncode == ExitCode.ACCOUNT
    [line] = stop.stderr.splitlines()[:1]
    assert "--require-balance: the account's balance could not be read: " in line
    assert "http://127.0.0.1:9/v3/appendix/user_data could not be reached" in line
    assert not (out / "2026-11-29" / "run.json").exists()
    goes_on = _cli([*command, *base])
    records = _records(goes_on.stderr)
    assert records[0]["message"].startswith("the account's balance was not checked: ")
    assert records[-1]["message"] == "run finished"
    assert goes_on.returncode == ExitCode.ACCOUNT  # the crawl itself could not reach it
