"""The call log (memory, HTTP route, JSONL file; no secrets) and the command line."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import fields
from pathlib import Path

import aiohttp
import anyio
import msgspec
import pytest

import intersect_batch.emulator as emulator_pkg
from intersect_batch.emulator import CallRecord, FaultSettings, PinnedFault
from intersect_batch.emulator.app import SERVING_PATH
from intersect_batch.emulator.cli import settings_from_args
from intersect_batch.emulator.settings import FAULT_NAMES

from .support import BASIC, FakeClock, serve

TASK = {"targets": {"1": "example.com", "2": "b.org"}, "limit": 3, "offset": 6, "tag": "t-1"}


@pytest.mark.anyio
async def test_call_log_in_memory_over_http_and_in_a_file(tmp_path):
    log_file = tmp_path / "logs" / "calls.jsonl"
    clock = FakeClock(50.0)
    async with serve(
        sizes={"example.com": 10}, log_file=log_file, clock=clock, password="s3cret-pw",
        api_key="s3cret-key",
    ) as api:  # fmt: skip
        auth = "Basic " + base64.b64encode(b"demo:s3cret-pw").decode()
        await api.dfs([TASK], auth=auth)
        clock.advance(1.5)
        await api.aisa(TASK, auth="Bearer s3cret-key")
        await api.dfs([TASK], auth=BASIC)  # wrong password
        async with api.session.get(api.emu.url + "/_emulator/log") as r:
            over_http = msgspec.json.decode(await r.read(), type=list[CallRecord])
        memory = api.emu.calls()
    assert over_http == memory and len(memory) == 3
    first, second, third = memory
    assert first.t == 50.0 and second.t == 51.5
    assert (first.route, first.credential, first.http_status, first.status_code) == (
        "dataforseo", "demo", 200, 20000,
    )  # fmt: skip
    assert (first.offset, first.limit, first.tag) == (6, 3, "t-1")
    assert (first.items, first.tasks_count) == (3, 1)
    assert first.targets == TASK["targets"] and first.cost == pytest.approx(0.02009)
    assert first.total_count == 10 and first.fault is None and first.latency >= 0
    assert second.route == "aisa" and second.credential is not None
    assert second.credential.startswith("key:") and len(second.credential) == 12
    assert (third.http_status, third.status_code, third.cost) == (401, 40100, 0)
    text = log_file.read_text()
    assert [msgspec.json.decode(line, type=CallRecord) for line in text.splitlines()] == memory
    for secret in ("s3cret-pw", "s3cret-key", "demo-password"):
        assert secret not in text
        assert secret.encode() not in msgspec.json.encode(memory)


def test_flags_build_settings(monkeypatch):
    monkeypatch.setenv("DATAFORSEO_LOGIN", "env-login")
    monkeypatch.setenv("AISA_API_KEY", "env-key")
    s = settings_from_args(
        [
            "--seed", "3", "--size", "a.com=200000", "--size", "b.com=0", "--fault-http-500",
            "0.25", "--fault-status", "50301=0.2", "--fault-status", "40202=0.1", "--no-gzip",
            "--timeout-delay", "2", "--slow-seconds", "0.5", "--rate-per-minute", "10",
            "--live-data", "0.01", "--balance-usd", "5",
        ]
    )  # fmt: skip
    assert s.seed == 3 and dict(s.sizes) == {"a.com": 200000, "b.com": 0}
    assert s.faults.http_500 == 0.25 and dict(s.faults.status_codes) == {50301: 0.2, 40202: 0.1}
    assert s.faults.timeout_delay == 2 and s.faults.slow_seconds == 0.5
    assert not s.gzip and s.rate_per_minute == 10 and s.live_data == 0.01 and s.balance_usd == 5
    assert s.login == "env-login" and s.api_key == "env-key" and s.password == "demo-password"
    with pytest.raises(SystemExit):
        settings_from_args(["--fault-timeout", "2"])
    with pytest.raises(SystemExit):
        settings_from_args(["--size", "nonsense"])


@pytest.mark.slow
def test_cli_prints_a_url_that_answers_and_exits_0_on_sigterm(tmp_path):
    env = {**os.environ, "DATAFORSEO_LOGIN": "cli", "DATAFORSEO_PASSWORD": "pw"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "intersect_batch.emulator", "--port", "0", "--size", "a.com=4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            url + "/v3/backlinks/page_intersection/live",
            data=b'[{"targets": {"1": "a.com"}}]',
            headers={"Authorization": "Basic " + base64.b64encode(b"cli:pw").decode()},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = msgspec.json.decode(response.read())
        assert body["tasks"][0]["result"][0]["total_count"] == 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == ""  # the URL is stdout's only line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_hostile_flags_build_settings():
    s = settings_from_args(
        [
            "--fault-empty-page", "0.1", "--fault-no-results", "0.2", "--fault-short-page", "0.3",
            "--fault-gzip-bomb", "0.01", "--fault-huge-body", "0.02", "--fault-trickle", "0.03",
            "--fault-echo-credentials", "0.04", "--fault-long-message", "0.05",
            "--fault-deep-nesting", "0.06", "--fault-non-object-items", "0.07",
            "--fault-pretty-items", "0.08", "--fault-multiline-items", "0.09",
            "--fault-huge-total", "0.1",
            "--fault-at", "200=empty_page:2", "--fault-at", "0=gzip_bomb@bomb.com",
            "--fault-at", "40=50301",
            "--throttle-for", "90", "--throttle-after", "5", "--throttle-code", "40209",
            "--gzip-bomb-size", "1G", "--huge-body-size", "500M", "--huge-body-chunked",
            "--long-message-size", "64K", "--nesting-depth", "500", "--trickle-bytes", "4",
            "--trickle-pause", "0.25", "--huge-total-count", "123456789",
            "--hostile-error-code", "50000",
        ]
    )  # fmt: skip
    f = s.faults
    assert (f.empty_page, f.no_results, f.short_page) == (0.1, 0.2, 0.3)
    assert (f.gzip_bomb, f.huge_body, f.trickle, f.echo_credentials) == (0.01, 0.02, 0.03, 0.04)
    assert (f.long_message, f.deep_nesting, f.non_object_items) == (0.05, 0.06, 0.07)
    assert (f.pretty_items, f.multiline_items, f.huge_total) == (0.08, 0.09, 0.1)
    assert f.pinned == (
        PinnedFault(offset=200, kind="empty_page", times=2),
        PinnedFault(offset=0, kind="gzip_bomb", target="bomb.com"),
        PinnedFault(offset=40, kind=50301),
    )
    assert (f.throttle_for, f.throttle_after, f.throttle_code) == (90, 5, 40209)
    assert (f.gzip_bomb_size, f.huge_body_size) == (1024**3, 500 * 1024**2)
    assert f.huge_body_chunked and f.long_message_size == 64 * 1024
    assert (f.nesting_depth, f.trickle_bytes, f.trickle_pause) == (500, 4, 0.25)
    assert (f.huge_total_count, f.hostile_error_code) == (123456789, 50000)
    assert settings_from_args([]).faults == FaultSettings()  # every knob off by default


@pytest.mark.parametrize(
    "argv",
    [
        ["--fault-at", "200=empty"],
        ["--fault-at", "200"],
        ["--fault-at", "x=empty_page"],
        ["--fault-empty-page", "1.5"],
        ["--throttle-code", "40100"],
        ["--gzip-bomb-size", "lots"],
        ["--nesting-depth", "0"],
    ],
)
def test_bad_hostile_flags_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        settings_from_args(argv)
    assert exc.value.code == 2
    assert "intersect-batch emulate" in capsys.readouterr().err


def test_every_knob_is_documented_in_help_docstring_choices_and_readme(capsys):
    with pytest.raises(SystemExit):
        settings_from_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    choices = emulator_pkg.__doc__ or ""
    for knob in fields(FaultSettings):
        name = knob.name
        if name in FAULT_NAMES:
            flag = "--fault-" + name.replace("_", "-")
        else:
            flag = {"status_codes": "--fault-status", "pinned": "--fault-at"}.get(
                name, "--" + name.replace("_", "-")
            )
        assert f"``{name}``" in (FaultSettings.__doc__ or ""), name
        assert flag in help_text and f"`{flag}" in readme, flag
    for name in FAULT_NAMES:
        assert name in choices, name
    for name in ("throttle", "PinnedFault"):
        assert name in choices, name


@pytest.mark.anyio
async def test_a_call_being_answered_is_counted_until_it_is_in_the_log():
    async with (
        serve(sizes={"example.com": 20}, latency_median=0.3) as api,
        aiohttp.ClientSession() as session,
    ):

        async def serving() -> int:
            async with session.get(api.emu.url + SERVING_PATH) as answer:
                return int((await answer.json())["serving"])

        assert await serving() == 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(api.dfs, [TASK])
            with anyio.fail_after(5):
                # What a test outside the process sees: it asks (tests/support.settled).
                while await serving() == 0:  # noqa: ASYNC110
                    await anyio.sleep(0.005)
            assert api.emu.calls() == []  # being answered: not in the log yet
        assert await serving() == 0
        assert len(api.emu.calls()) == 1
