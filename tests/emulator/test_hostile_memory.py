"""Serving a 2 GiB gzip bomb and a 256 MiB body leaves the emulator's peak RSS flat.

The writers hold one ~64 KiB block (the bomb: one ~1 KiB deflate block and a 1 MiB
remainder) whatever the size, so what holds at 256 MiB holds at 512 MiB or more: the
growth measured here does not depend on the sizes, only the time to send them does.
"""

from __future__ import annotations

import base64
import http.client
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc"),
]

AUTH = "Basic " + base64.b64encode(b"demo:demo-password").decode()
HUGE = 256 * 1024 * 1024
BOMB = 2 * 1024 * 1024 * 1024


def peak_rss_kib(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM line")


def fetch(url: str, target: str) -> tuple[dict[str, str], int]:
    """POST one task for ``target``; the headers and the body's length (read and dropped)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        body = msgspec.json.encode([{"targets": {"1": target}, "limit": 5}])
        connection.request(
            "POST",
            "/v3/backlinks/page_intersection/live",
            body=body,
            headers={"Authorization": AUTH, "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        size = 0
        while chunk := response.read(1024 * 1024):
            size += len(chunk)
        return dict(response.getheaders()), size
    finally:
        connection.close()


def test_huge_answers_do_not_grow_the_emulator():
    command = [
        sys.executable, "-m", "intersect_batch.emulator", "--port", "0",
        "--size", "plain.com=5", "--size", "bomb.com=5", "--size", "huge.com=5",
        "--fault-at", "0=gzip_bomb@bomb.com", "--fault-at", "0=huge_body@huge.com",
        "--huge-body-size", str(HUGE),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        _, plain = fetch(url, "plain.com")  # warm: imports, caches, first answer
        baseline = peak_rss_kib(proc.pid)
        bomb_headers, bomb = fetch(url, "bomb.com")
        huge_headers, huge = fetch(url, "huge.com")
        growth = peak_rss_kib(proc.pid) - baseline
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert bomb_headers["Content-Encoding"] == "gzip"
    assert BOMB // 1100 < bomb < BOMB // 900  # ~2 MiB that inflate to 2 GiB
    assert huge == HUGE and int(huge_headers["Content-Length"]) == HUGE
    assert plain < 20_000
    assert growth < 20 * 1024, f"peak RSS grew by {growth} KiB"
