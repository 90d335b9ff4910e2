"""Huge answers cost no more memory than the caps: peak RSS of a process that fetches them.

The server runs in the test's process and streams its answer; a fresh Python process
fetches it with the default caps and reports its own peak RSS (VmHWM, Linux), so the
figure is the client's alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from intersect_batch.settings import AnswerCaps
from tests.hostile_server import MiB, gzip_bomb, serve, streamed

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's"),
]

ROOT = Path(__file__).resolve().parent.parent
PEAK_LIMIT_MB = 150

FETCH = """
import asyncio, json, sys

import aiohttp

from intersect_batch.client import fetch_page
from intersect_batch.errors import ApiError
from intersect_batch.providers import resolve_provider
from intersect_batch.settings import AnswerCaps, Timeouts


async def main(base):
    provider = resolve_provider("dataforseo", base)
    credentials = provider.credentials(
        {"DATAFORSEO_LOGIN": "ops@shop.example", "DATAFORSEO_PASSWORD": "0f3c9a77d1e2b4c8"}
    )
    async with aiohttp.ClientSession() as session:
        try:
            await fetch_page(
                session, provider, credentials, {"targets": {"1": "a.example"}},
                timeouts=Timeouts(), caps=AnswerCaps(), scrubber=credentials.scrubber(),
            )
        except ApiError as exc:
            return type(exc).__name__, exc.message
    return "FetchedPage", ""


kind, message = asyncio.run(main(sys.argv[1]))
# VmHWM, not getrusage: ru_maxrss keeps the parent's peak across fork and exec.
with open("/proc/self/status") as status:
    line = next(line for line in status if line.startswith("VmHWM:"))
peak_mb = int(line.split()[1]) / 1024
print(json.dumps({"kind": kind, "message": message, "peak_mb": peak_mb}))
"""


async def _fetch_in_a_process(base: str) -> dict[str, Any]:
    # Seconds, not minutes: a client that read or inflated it all would not end in time.
    with anyio.fail_after(30):
        done = await anyio.run_process([sys.executable, "-c", FETCH, base], cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_default_caps_fit_under_the_memory_limit() -> None:
    caps = AnswerCaps()
    # What the caps let an answer hold, plus the interpreter, must stay under the limit.
    assert caps.max_inflated_bytes <= 80 * MiB and caps.max_body_bytes <= 80 * MiB


async def test_a_2_mb_gzip_inflating_to_2_gb_is_cut_at_the_cap_in_bounded_memory() -> None:
    first, block, blocks = gzip_bomb(b'{"status_code":20000,"tasks":[', 2048 * MiB)
    handler = streamed(first, block, blocks, headers={"Content-Encoding": "gzip"})
    async with serve(handler) as (base, seen):
        result = await _fetch_in_a_process(base)
    assert 1.5 * MiB < seen.sent_bytes < 3 * MiB
    assert result["kind"] == "JobFatalApiError"
    assert "inflates past 67,108,864 bytes" in result["message"]
    assert "AnswerCaps.max_inflated_bytes" in result["message"]
    assert result["peak_mb"] < PEAK_LIMIT_MB, result


async def test_a_500_mb_body_is_read_up_to_the_cap_in_bounded_memory() -> None:
    handler = streamed(b"[", b" " * MiB, 500)  # chunked: no length to refuse it early
    async with serve(handler) as (base, seen):
        result = await _fetch_in_a_process(base)
        with anyio.fail_after(10):
            await seen.client_left.wait()
    assert result["kind"] == "JobFatalApiError"
    assert "passed 67,108,864 bytes" in result["message"]
    assert "AnswerCaps.max_body_bytes" in result["message"]
    assert result["peak_mb"] < PEAK_LIMIT_MB, result
    # Reading stopped at the cap: the server could not send the rest.
    assert seen.sent_bytes < 200 * MiB
