"""Scenario 2: the same batch, the same emulator settings, three crawlers one after another.

(a) the official ``dataforseo-client`` package in a sequential page-by-page loop (skipped,
and said so, when the package is not installed: it lives in the bench environment only);
(b) a plain aiohttp loop that awaits each page before asking for the next, jobs one after
another; and intersect-batch. Each writes one JSONL line per item, like intersect-batch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from bench.common import DEMO_ENV, QUOTA_WINDOW, RUN_DATE, Batch, emulator_process, rounded
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import run_batch
from intersect_batch.settings import Limits, RunSettings

ENDPOINT = "/backlinks/page_intersection/live"


def official_client_loop(batch: Batch, base: str, out: Path) -> int:
    """DataForSEO's own client, page after page, job after job; returns the calls made."""
    from dataforseo_client import api_client, configuration
    from dataforseo_client.api.backlinks_api import BacklinksApi
    from dataforseo_client.models.backlinks_page_intersection_live_request_info import (
        BacklinksPageIntersectionLiveRequestInfo,
    )

    # The client sends every optional field, unset ones as null; the emulator takes a null
    # exclude_targets for an invalid one (40501), so unset fields are left out here.
    to_dict = BacklinksPageIntersectionLiveRequestInfo.to_dict

    def without_nulls(self: BacklinksPageIntersectionLiveRequestInfo) -> dict[str, Any]:
        return {key: value for key, value in to_dict(self).items() if value is not None}

    BacklinksPageIntersectionLiveRequestInfo.to_dict = without_nulls  # type: ignore[method-assign]
    config = configuration.Configuration(
        host=base.removesuffix("/v3"),
        username=DEMO_ENV["DATAFORSEO_LOGIN"],
        password=DEMO_ENV["DATAFORSEO_PASSWORD"],
    )
    calls = 0
    out.mkdir(parents=True, exist_ok=True)
    with api_client.ApiClient(config) as client:
        api = BacklinksApi(client)
        for job in batch.jobs:
            targets = {str(i): t for i, t in enumerate(job.targets, start=1)}
            with open(out / f"{job.job_id}.jsonl", "w") as sink:
                offset, total = 0, None
                while total is None or offset < total:
                    request = BacklinksPageIntersectionLiveRequestInfo(
                        targets=targets, limit=job.page_size, offset=offset
                    )
                    response = api.page_intersection_live([request])
                    calls += 1
                    task = response.tasks[0]
                    if task.status_code != 20000:
                        raise RuntimeError(f"{job.job_id} at {offset}: {task.status_message}")
                    result = task.result[0]
                    total = result.total_count or 0
                    # The generated to_json() cannot serialize nested models: pydantic's can.
                    sink.writelines(item.model_dump_json() + "\n" for item in result.items or [])
                    offset += job.page_size
    return calls


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


async def aiohttp_loop(batch: Batch, base: str, out: Path) -> int:
    """A plain aiohttp loop: await each page before asking for the next, one job at a time."""
    calls = 0
    auth = aiohttp.BasicAuth(DEMO_ENV["DATAFORSEO_LOGIN"], DEMO_ENV["DATAFORSEO_PASSWORD"])
    async with aiohttp.ClientSession(auth=auth) as session:
        for job in batch.jobs:
            targets = {str(i): t for i, t in enumerate(job.targets, start=1)}
            lines: list[str] = []
            offset, total = 0, None
            while total is None or offset < total:
                body = [{"targets": targets, "limit": job.page_size, "offset": offset}]
                async with session.post(base + ENDPOINT, json=body) as response:
                    envelope = await response.json()
                calls += 1
                task = envelope["tasks"][0]
                if task["status_code"] != 20000:
                    raise RuntimeError(f"{job.job_id} at {offset}: {task['status_message']}")
                result = task["result"][0]
                total = result["total_count"]
                lines.extend(json.dumps(item) + "\n" for item in result["items"] or [])
                offset += job.page_size
            _write_lines(out / f"{job.job_id}.jsonl", lines)
    return calls


def _timed(run: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    calls = run()
    return time.perf_counter() - start, calls


def run(
    batch: Batch,
    work: Path,
    *,
    seed: int,
    scale: float,
    latency_median: float,
    latency_spread: float,
    rate_per_minute: int,
    concurrency: int,
) -> dict[str, Any]:
    folder = work / "peers"
    config = batch.write(folder / "configs")
    emulator_settings: dict[str, Any] = {
        "seed": seed,
        "sizes": batch.sizes,
        "rate_per_minute": rate_per_minute,
        "max_concurrent": concurrency,
        "latency_median": latency_median,
        "latency_spread": latency_spread,
    }
    contenders: dict[str, dict[str, Any]] = {}
    with emulator_process(
        folder / "emulator-calls.jsonl", clock_scale=scale, **emulator_settings
    ) as emulator:
        base = emulator.dataforseo_base
        limits = Limits(
            rate_per_minute=rate_per_minute,
            concurrency=concurrency,
            rate_period=QUOTA_WINDOW / scale,
        )
        settings = RunSettings(out_dir=folder / "ours", run_date=RUN_DATE, limits=limits)

        def ours() -> int:
            outcome = anyio.run(
                lambda: run_batch(
                    config,
                    provider=resolve_provider("dataforseo", base),
                    environ=DEMO_ENV,
                    settings=settings,
                )
            )
            if outcome.exit_code != 0 or outcome.summary is None:
                raise RuntimeError(f"intersect-batch exited {outcome.exit_code}")
            return outcome.summary.invocation.calls

        wall, calls = _timed(ours)
        contenders["intersect-batch"] = {"wall_s": rounded(wall), "calls": calls}
        wall, calls = _timed(lambda: asyncio.run(aiohttp_loop(batch, base, folder / "aiohttp")))
        contenders["aiohttp-sequential"] = {"wall_s": rounded(wall), "calls": calls}
        try:
            import dataforseo_client  # noqa: F401
        except ImportError:
            contenders["dataforseo-client-sequential"] = {
                "skipped": "dataforseo-client is not installed (make bench installs it)"
            }
        else:
            wall, calls = _timed(
                lambda: official_client_loop(batch, base, folder / "dataforseo-client")
            )
            contenders["dataforseo-client-sequential"] = {"wall_s": rounded(wall), "calls": calls}
    ours_wall = contenders["intersect-batch"]["wall_s"]
    for figures in contenders.values():
        if "wall_s" in figures:
            figures["wall_ratio_vs_intersect_batch"] = rounded(figures["wall_s"] / ours_wall, 2)
    return {
        "jobs": len(batch.jobs),
        "calls": batch.calls,
        "items": batch.items,
        "page_size": batch.jobs[0].page_size,
        "time_scale": scale,
        "latency_model_s": {"median": latency_median * scale, "spread": latency_spread},
        "rate_per_minute": rate_per_minute,
        "concurrency": concurrency,
        "contenders": contenders,
    }
