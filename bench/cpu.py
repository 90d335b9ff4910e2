"""Scenario 3: CPU per item on the same recorded responses (1000 realistic items a page).

Ours: ``read_answer`` (envelope typed, items kept raw) then ``JobStore.commit`` (dedup by
url_from, append, fsync, checkpoint) and ``finalize``: the real path from answer bytes to
the JSONL file. Against stdlib ``json`` (loads the answer, dumps each item) and the official
client's pydantic models (its own deserializer, then ``model_dump_json`` per item); both
write their lines to a file too. CPU is this process's CPU time (the best of a few repeats);
MB/s is answer bytes per CPU second.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import DEMO_ENV, SHARED_TARGET, emulator_process, rounded
from intersect_batch.answer import Answer, read_answer
from intersect_batch.checkpoint import Counters, PageIn
from intersect_batch.layout import RunFolder
from intersect_batch.scrub import Scrubber
from intersect_batch.settings import AnswerCaps
from intersect_batch.store import JobStore

HEADERS = {"content-type": "application/json; charset=utf-8"}
CAPS = AnswerCaps()
SCRUBBER = Scrubber([DEMO_ENV["DATAFORSEO_PASSWORD"]])


def record_pages(work: Path, *, pages: int, page_size: int, seed: int) -> list[bytes]:
    """Answer bodies of ``pages`` consecutive pages of one query, as the emulator sent them."""
    target = "recorded.example"
    token = base64.b64encode(
        f"{DEMO_ENV['DATAFORSEO_LOGIN']}:{DEMO_ENV['DATAFORSEO_PASSWORD']}".encode()
    ).decode()
    bodies = []
    with emulator_process(
        work / "emulator-calls.jsonl", seed=seed, sizes={target: pages * page_size}, gzip=False
    ) as emulator:
        for page in range(pages):
            task = [
                {
                    "targets": {"1": target, "2": SHARED_TARGET},
                    "offset": page * page_size,
                    "limit": page_size,
                }
            ]
            request = urllib.request.Request(
                emulator.dataforseo_base + "/backlinks/page_intersection/live",
                data=json.dumps(task).encode(),
                headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request) as response:
                bodies.append(response.read())
    return bodies


@contextmanager
def _no_fsync() -> Iterator[None]:
    original = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = original


def ours(bodies: list[bytes], folder: Path, job_id: str) -> int:
    run = RunFolder(folder, dt.date(2026, 11, 29))
    run.path.mkdir(parents=True, exist_ok=True)
    store = JobStore(run, job_id)
    store.open("bench")
    items = 0
    for page, body in enumerate(bodies):
        fetched = read_answer(Answer(200, HEADERS, body), caps=CAPS, scrubber=SCRUBBER)
        store.commit([PageIn(page, fetched.lines, fetched.total_count)], Counters())
        items += len(fetched.lines)
    store.finalize()
    return items


def stdlib_json(bodies: list[bytes], folder: Path, job_id: str) -> int:
    items = 0
    with open(folder / f"{job_id}.jsonl", "w") as sink:
        for body in bodies:
            envelope = json.loads(body)
            page = envelope["tasks"][0]["result"][0]["items"]
            sink.write("".join(json.dumps(item) + "\n" for item in page))
            items += len(page)
    return items


def pydantic_models(bodies: list[bytes], folder: Path, job_id: str) -> int:
    from dataforseo_client import api_client, configuration

    client = api_client.ApiClient(configuration.Configuration())
    items = 0
    with open(folder / f"{job_id}.jsonl", "w") as sink:
        for body in bodies:
            response = client.deserialize(
                body.decode(), "BacklinksPageIntersectionLiveResponseInfo", "application/json"
            )
            page = response.tasks[0].result[0].items or []
            sink.write("".join(item.model_dump_json() + "\n" for item in page))
            items += len(page)
    return items


def _measure(
    path: Callable[[list[bytes], Path, str], int],
    bodies: list[bytes],
    folder: Path,
    passes: int,
    repeats: int = 3,
) -> dict[str, float]:
    """The best of ``repeats`` timings of ``passes`` passes over the pages (noise only adds)."""
    size = sum(len(b) for b in bodies) * passes
    best: tuple[float, float, int] | None = None
    for repeat in range(repeats):
        items = 0
        cpu, wall = time.process_time(), time.perf_counter()
        for n in range(passes):
            items += path(bodies, folder, f"pass-{repeat}-{n}")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if best is None or cpu < best[0]:
            best = (cpu, wall, items)
    assert best is not None
    cpu, wall, items = best
    return {
        "us_cpu_per_item": rounded(cpu / items * 1e6, 2),
        "mb_per_cpu_s": rounded(size / cpu / 1e6, 1),
        "wall_s": rounded(wall),
        "items": items,
    }


def run(work: Path, *, pages: int, page_size: int, passes: int, seed: int) -> dict[str, Any]:
    folder = work / "cpu"
    folder.mkdir(parents=True, exist_ok=True)
    bodies = record_pages(folder, pages=pages, page_size=page_size, seed=seed)
    out = folder / "out"
    out.mkdir()
    figures: dict[str, Any] = {
        "pages": pages,
        "items_per_page": page_size,
        "bytes_per_item": round(sum(len(b) for b in bodies) / (pages * page_size)),
    }
    paths: dict[str, Any] = {}
    paths["intersect-batch"] = _measure(ours, bodies, out, passes)
    with _no_fsync():
        paths["intersect-batch-without-fsync"] = _measure(ours, bodies, out, passes)
    paths["stdlib-json"] = _measure(stdlib_json, bodies, out, passes)
    try:
        import dataforseo_client  # noqa: F401
    except ImportError:
        paths["dataforseo-client-pydantic"] = {
            "skipped": "dataforseo-client is not installed (make bench installs it)"
        }
    else:
        paths["dataforseo-client-pydantic"] = _measure(pydantic_models, bodies, out, 1, repeats=2)
    base = paths["intersect-batch"]["us_cpu_per_item"]
    for result in paths.values():
        if "us_cpu_per_item" in result:
            result["cpu_ratio_vs_intersect_batch"] = rounded(result["us_cpu_per_item"] / base, 2)
    figures["paths"] = paths
    return figures
