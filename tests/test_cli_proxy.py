"""A run behind a proxy: HTTP_PROXY / HTTPS_PROXY / NO_PROXY, as every HTTP tool reads them.

The proxy here is a small forwarding proxy (aiohttp) on 127.0.0.1 that sends every request
it is handed to the emulator, whatever host the request names: the run is pointed at
``http://api.emulator.test:PORT/v3``, a name only the proxy can reach, so a completed run
proves every call went through it. What the proxy saw is asserted: each call, and the
proxy's own credentials (from the variable's ``user:password@``) in Proxy-Authorization,
never in any output or file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from intersect_batch.errors import UsageError
from intersect_batch.exitcode import ExitCode
from intersect_batch.proxies import proxy_for
from tests.hostile_cli import assert_nothing_leaked, command, run_cli, secret_forms
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    emulator_process,
    read_lines,
    write_jobs,
)

SIZES = {"alpha.example": 250}
JOBS = [{"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100}]
PROXY_USER, PROXY_PASSWORD = "night", "Pr0xy/pa:ss"
# The command's environment clears every proxy variable the test's machine may have set.
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
NO_PROXY_ENV = {name: "" for lower in PROXY_VARIABLES for name in (lower, lower.upper())}


@dataclass
class Seen:
    """What the proxy was asked: the URL of each request and its Proxy-Authorization."""

    urls: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


@contextlib.contextmanager
def forwarding_proxy(upstream: str) -> Iterator[tuple[int, Seen]]:
    """A proxy on 127.0.0.1 (its own thread and loop) that forwards everything to ``upstream``."""
    seen = Seen()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        seen.urls.append(str(request.url))
        seen.authorizations.append(request.headers.get("Proxy-Authorization"))
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in {"host", "proxy-authorization", "proxy-connection"}
        }
        session: aiohttp.ClientSession = state["session"]
        async with session.request(
            request.method,
            upstream + request.rel_url.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            kept = {
                name: value
                for name, value in answer.headers.items()
                if name.lower() in {"content-type", "content-encoding", "retry-after"}
            }
            return web.Response(status=answer.status, body=body, headers=kept)

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["session"] = aiohttp.ClientSession(auto_decompress=False)
        state["port"] = runner.addresses[0][1]
        state["stop"] = stop = asyncio.Event()
        started.set()
        try:
            await stop.wait()
        finally:
            await state["session"].close()
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        assert started.wait(10), "the proxy did not start"
        yield state["port"], seen
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path_factory.mktemp("emulator"), SIZES) as process:
        yield process


def _run(tmp_path: Path, base_url: str, env: dict[str, str]) -> Any:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    argv = command(
        "run", str(configs), "--out", str(out), "--run-date", RUN_DATE.isoformat(),
        "--base-url", base_url, "--log-file", str(tmp_path / "run.log"),
        # A run whose calls miss the proxy cannot resolve api.emulator.test: it ends soon.
        "--unreachable-after", "3",
    )  # fmt: skip
    return run_cli(argv, env={**NO_PROXY_ENV, **DEMO_ENV, **env}, timeout=60, workdir=tmp_path)


@pytest.mark.slow
def test_the_calls_go_through_the_proxy_the_environment_names(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    port = emulator.url.rsplit(":", 1)[1]
    with forwarding_proxy(emulator.url) as (proxy_port, seen):
        proxy = f"http://{PROXY_USER}:{PROXY_PASSWORD.replace('/', '%2F')}@127.0.0.1:{proxy_port}"
        run = _run(tmp_path, f"http://api.emulator.test:{port}/v3", {"HTTP_PROXY": proxy})
    assert run.returncode == ExitCode.OK, run.stderr[-3000:]
    out = tmp_path / "out" / RUN_DATE.isoformat()
    assert len(read_lines(out / "alpha.jsonl")) == 250
    endpoint = f"http://api.emulator.test:{port}/v3/backlinks/page_intersection/live"
    assert seen.urls == [endpoint] * 3
    token = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
    assert seen.authorizations == [f"Basic {token}"] * 3
    going = [r for r in run.records() if r["message"] == "calls go through a proxy"]
    assert [(r["proxy"], r["from"]) for r in going] == [
        (f"http://127.0.0.1:{proxy_port}", "HTTP_PROXY")
    ]
    assert_nothing_leaked(
        run, [out, tmp_path / "run.log"], [*secret_forms(PROXY_USER, PROXY_PASSWORD), token]
    )


@pytest.mark.slow
@pytest.mark.parametrize("no_proxy", ["", "api.emulator.test"])
def test_loopback_and_no_proxy_hosts_are_reached_directly(
    tmp_path: Path, emulator: EmulatorProcess, no_proxy: str
) -> None:
    with forwarding_proxy(emulator.url) as (proxy_port, seen):
        env = {"HTTP_PROXY": f"127.0.0.1:{proxy_port}", "NO_PROXY": no_proxy}
        run = _run(tmp_path, f"{emulator.url}/v3", env)
    assert run.returncode == ExitCode.OK, run.stderr[-3000:]
    assert seen.urls == []
    assert "calls go through a proxy" not in run.messages()


def test_a_proxy_that_cannot_be_used_is_named_not_shown(tmp_path: Path) -> None:
    run = _run(
        tmp_path, "https://api.example.test/v3", {"HTTPS_PROXY": "socks5://u:Zq9-secret@p:1"}
    )
    assert run.returncode == ExitCode.USAGE
    assert any(
        message.startswith("HTTPS_PROXY must name an http:// proxy") for message in run.messages()
    ), run.stderr
    assert "Zq9-secret" not in run.stdout + run.stderr + (tmp_path / "run.log").read_text()
    assert not (tmp_path / "out").exists()


API = "https://api.dataforseo.com/v3"
API_8443 = "https://api.dataforseo.com:8443/v3"
VIA = {"HTTPS_PROXY": "http://p:1"}


@pytest.mark.parametrize(
    ("url", "env", "shown"),
    [
        (API, {"HTTPS_PROXY": "proxy.corp:3128"}, "http://proxy.corp:3128"),
        (API, {"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2"}, "http://a:1"),
        (API, {"HTTP_PROXY": "http://p:1"}, None),
        ("http://api.example.test/v3", {"HTTP_PROXY": "http://p:1"}, "http://p:1"),
        (API, {"ALL_PROXY": "http://p:1"}, "http://p:1"),
        (API, {**VIA, "NO_PROXY": "*"}, None),
        (API, {**VIA, "NO_PROXY": "dataforseo.com"}, None),
        (API, {**VIA, "no_proxy": ".dataforseo.com"}, None),
        (API, {**VIA, "NO_PROXY": "taforseo.com"}, "http://p:1"),
        (API_8443, {**VIA, "NO_PROXY": "api.dataforseo.com:443"}, "http://p:1"),
        (API_8443, {**VIA, "NO_PROXY": "x, api.dataforseo.com:8443"}, None),
        ("https://10.1.2.3/v3", {**VIA, "NO_PROXY": "10.0.0.0/8"}, None),
        ("https://[fd00::1]/v3", {**VIA, "NO_PROXY": "fd00::/8"}, None),
        ("http://127.0.0.1:8080/v3", {"HTTP_PROXY": "http://p:1"}, None),
        ("http://localhost:8080/v3", {"HTTP_PROXY": "http://p:1"}, None),
        ("http://[::1]:8080/v3", {"HTTP_PROXY": "http://p:1"}, None),
        (API, {"HTTPS_PROXY": "http://u:pw@p:1"}, "http://p:1"),
    ],
)
def test_which_proxy_a_base_url_gets(url: str, env: dict[str, str], shown: str | None) -> None:
    proxy = proxy_for(url, env)
    assert (proxy.shown if proxy else None) == shown
    if proxy is not None:
        assert "pw" not in repr(proxy)


def test_a_proxy_url_that_does_not_parse_is_refused_naming_the_variable() -> None:
    with pytest.raises(UsageError, match=r"^HTTPS_PROXY is not a valid proxy URL"):
        proxy_for(API, {"HTTPS_PROXY": "http://p:notaport"})
