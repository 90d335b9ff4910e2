"""A week of nights against an index that changes by date, as cron would run them.

The emulator runs as a process of its own with a timeline (1 % of the pages new each day,
some found again with their old first_seen, some vanishing); each night moves its date
and runs the real command. What each night should hold is learned independently: the
whole index of the day, fetched straight from the emulator.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.estimate import dry_run
from intersect_batch.providers import resolve_provider
from intersect_batch.settings import RunSettings
from tests.support import DEMO_ENV, EmulatorProcess, emulator_process, write_jobs

pytestmark = pytest.mark.slow

ORIGIN = dt.date(2026, 12, 1)
NIGHTS = [ORIGIN + dt.timedelta(days=n) for n in range(8)]
SIZES = {"alpha.example": 2000, "wide.example": 400}
TIMELINE = (
    "--timeline-origin", ORIGIN.isoformat(), "--daily-new", "0.01",
    "--daily-return", "0.002", "--daily-vanish", "0.002",
)  # fmt: skip
GAP = ["alpha.example", "beta.example"]
WIDE = ["wide.example", *(f"t{n}.example" for n in range(2, 11))]
OWN_FILTER = ["1.dofollow", "=", True]
JOBS = [
    {"id": "gap", "targets": GAP, "page_size": 100},
    {"id": "wide", "targets": WIDE, "page_size": 100, "filters": OWN_FILTER},
]
PER_CALL, PER_ITEM = 0.02, 0.00003


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path, SIZES, *TIMELINE) as process:
        yield process


def _set_date(emulator: EmulatorProcess, date: dt.date) -> None:
    request = urllib.request.Request(
        f"{emulator.url}/_emulator/as-of", data=date.isoformat().encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.read().decode().strip() == date.isoformat()


def _index(
    emulator: EmulatorProcess, date: dt.date, targets: list[str], filters: Any = None
) -> list[dict[str, Any]]:
    """Every item the emulator has for the query as of ``date``, in its order."""
    token = base64.b64encode(b"demo:demo-password").decode()
    items: list[dict[str, Any]] = []
    offset, total = 0, 1
    while offset < total:
        task: dict[str, Any] = {
            "targets": {str(n): t for n, t in enumerate(targets, 1)},
            "offset": offset,
            "limit": 1000,
        }
        if filters is not None:
            task["filters"] = filters
        request = urllib.request.Request(
            f"{emulator.url}/v3/backlinks/page_intersection/live",
            data=json.dumps([task]).encode(),
            headers={
                "Authorization": f"Basic {token}",
                "Content-Type": "application/json",
                "X-Emulator-As-Of": date.isoformat(),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            result = json.loads(answer.read())["tasks"][0]["result"][0]
        total = result["total_count"]
        items += result["items"] or []
        offset += 1000
    return items


def _url(item: dict[str, Any]) -> str:
    return str(next(iter(item["page_intersection"].values()))[0]["url_from"])


def _newest(item: dict[str, Any]) -> str:
    return str(max(links[0]["first_seen"] for links in item["page_intersection"].values()))


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def _command(
    out: Path, configs: Path, emulator: EmulatorProcess, date: dt.date, *extra: str
) -> list[str]:
    return [
        sys.executable, "-m", "intersect_batch", "run", str(configs), "--out", str(out),
        "--run-date", date.isoformat(), "--allow-future", "--base-url", f"{emulator.url}/v3",
        "--rate-per-minute", "60000", "--log-format", "json", *extra,
    ]  # fmt: skip


def _run(out: Path, configs: Path, emulator: EmulatorProcess, date: dt.date, *extra: str) -> str:
    done = subprocess.run(
        _command(out, configs, emulator, date, "--concurrency", "4", *extra),
        env={**os.environ, **DEMO_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return done.stdout.strip().splitlines()[-1]


def _cost(counts: list[int]) -> float:
    """What the API charges for requests returning these many items (100 a page)."""
    calls = sum(max(1, math.ceil(n / 100)) for n in counts)
    return round(calls * PER_CALL + sum(counts) * PER_ITEM, 6)


def _requests(targets: list[str], cutoff: str, room: int) -> list[Any]:
    numbers = [str(n) for n in range(1, len(targets) + 1)]
    out = []
    for start in range(0, len(numbers), room):
        conditions: list[Any] = [
            [f"{n}.first_seen", ">", cutoff] for n in numbers[start : start + room]
        ]
        group: list[Any] = conditions[0]
        if len(conditions) > 1:
            group = [conditions[0]]
            for condition in conditions[1:]:
                group += ["or", condition]
        out.append(group)
    return out


def test_a_week_of_nights_pays_for_what_changed_and_the_full_night_measures_the_misses(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS, defaults={"refresh": "incremental"})
    out = tmp_path / "out"
    costs: dict[str, list[float]] = {"gap": [], "wide": []}
    for number, night in enumerate(NIGHTS):
        _set_date(emulator, night)
        calls_before = len(emulator.calls())
        last_line = _run(out, configs, emulator, night)
        folder = out / night.isoformat()
        calls = emulator.calls()[calls_before:]
        assert calls and all(call["as_of"] == night.isoformat() for call in calls)
        assert max(call["conditions"] or 0 for call in calls) <= 8
        for job_id, targets, filters in (("gap", GAP, None), ("wide", WIDE, OWN_FILTER)):
            manifest = json.loads((folder / f"{job_id}.manifest.json").read_text())
            note = manifest["refresh"]
            index = _index(emulator, night, targets, filters)
            lines = _lines(folder / f"{job_id}.jsonl")
            urls = [_url(json.loads(line)) for line in lines]
            assert len(set(urls)) == len(urls), "each page once"
            diff = (
                [json.loads(line) for line in _lines(folder / f"{job_id}.diff.jsonl")]
                if number
                else []
            )
            costs[job_id].append(manifest["cost_usd"])
            if number in (0, 7):
                # A full night: exactly the index of its day.
                assert note["mode"] == "full"
                assert [json.loads(line) for line in lines] == index
                assert manifest["cost_usd"] == _cost([len(index)])
                continue
            previous = _lines(out / NIGHTS[number - 1].isoformat() / f"{job_id}.jsonl")
            cutoff = f"{(night - dt.timedelta(days=3)).isoformat()} 00:00:00 +00:00"
            room = 8 - (1 if filters else 0)
            asked = [
                _index(emulator, night, targets, [group, "and", filters] if filters else group)
                for group in _requests(targets, cutoff, room)
            ]
            known = {_url(json.loads(line)) for line in previous}
            fresh: dict[str, dict[str, Any]] = {}
            for items in asked:
                for item in items:
                    if _url(item) not in known:
                        fresh.setdefault(_url(item), item)
            # The last night's set, byte for byte, then every page new since, each once.
            assert lines[: len(previous)] == previous
            assert [json.loads(line) for line in lines[len(previous) :]] == list(fresh.values())
            assert {_url(i) for i in fresh.values()} == {
                _url(i) for i in index if _newest(i) > cutoff and _url(i) not in known
            }
            assert diff == [
                {"change": "new", "key": url, "item": item} for url, item in fresh.items()
            ]
            assert note == {
                "mode": "incremental",
                "why": f"new since {cutoff}",
                "rests_on": ORIGIN.isoformat(),
                "carried_from": NIGHTS[number - 1].isoformat(),
                "cutoff": cutoff,
                "requests": len(asked),
                "items_carried": len(previous),
                "items_fetched": sum(len(items) for items in asked),
                "lost": "checked on full nights, next on 2026-12-08",
                "next_full": "2026-12-08",
            }
            assert manifest["cost_usd"] == _cost([len(items) for items in asked])
            assert manifest["diff"] == {
                "previous_run": NIGHTS[number - 1].isoformat(), "new": len(fresh), "lost": 0,
                "skipped": None, "unavailable": False,
            }  # fmt: skip
        # Two jobs, whatever the number of requests they were crawled as.
        assert "this invocation: 2 jobs run, " in last_line
        if 0 < number < 7:
            assert "lost: checked on full nights, next on 2026-12-08 (gap, wide)" in last_line
            wide_calls = [c for c in calls if c["targets"]["1"] == "wide.example"]
            assert sorted({c["conditions"] for c in wide_calls}) == [4, 8]
        else:
            assert "lost:" not in last_line

    # The full night of day 7 measures what the incremental nights missed: the pages found
    # again with an old first_seen, which no "first seen since" request can return.
    first, last = (out / NIGHTS[0].isoformat(), out / NIGHTS[7].isoformat())
    for job_id, targets, filters in (("gap", GAP, None), ("wide", WIDE, OWN_FILTER)):
        day0 = {_url(i) for i in _index(emulator, NIGHTS[0], targets, filters)}
        day7 = _index(emulator, NIGHTS[7], targets, filters)
        found_again = [_url(i) for i in day7 if _url(i) not in day0 and _newest(i) < "2025-07-01"]
        note = json.loads((last / f"{job_id}.manifest.json").read_text())["refresh"]
        assert note == {
            "mode": "full",
            "why": "last full night 2026-12-01, 7 days ago",
            "next_full": "2026-12-15",
            "missed_by_incremental": len(found_again),
            "missed_since": "2026-12-01",
        }
        run_line = next(
            j for j in json.loads((last / "run.json").read_text())["jobs"] if j["job_id"] == job_id
        )
        assert run_line["refresh"] == note
        incremental = _lines(out / NIGHTS[6].isoformat() / f"{job_id}.jsonl")
        before = {_url(json.loads(line)) for line in incremental}
        diff = [json.loads(line) for line in _lines(last / f"{job_id}.diff.jsonl")]
        assert [d["key"] for d in diff if d["change"] == "new"] == [
            _url(i) for i in day7 if _url(i) not in before
        ]
        now = {_url(i) for i in day7}
        assert [d["key"] for d in diff if d["change"] == "lost"] == [
            _url(json.loads(line)) for line in incremental if _url(json.loads(line)) not in now
        ]
        assert (first / f"{job_id}.jsonl").exists()
    assert len(found_again) > 0
    gap_missed = json.loads((last / "gap.manifest.json").read_text())["refresh"]
    assert gap_missed["missed_by_incremental"] == 34
    # The money: an incremental night of 'gap' costs a few percent of a full one.
    assert costs["gap"][0] == 0.29786
    assert costs["gap"][1:7] == [0.02072, 0.02129, 0.02192, 0.02246, 0.02252, 0.02246]
    assert costs["gap"][7] == 0.34218
    assert max(costs["gap"][1:7]) / costs["gap"][0] <= 0.10
    # A job of two pages saves little: each of its two requests is a call.
    assert costs["wide"] == [0.04576, 0.04018, 0.0403, 0.0406, 0.0409, 0.04114, 0.04132, 0.06645]
    assert not any((out / n.isoformat() / ".state").exists() for n in NIGHTS)


def test_kill_9_on_an_incremental_night_resumes_byte_identically(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    jobs = [{**job, "page_size": 5} for job in JOBS]
    write_jobs(configs, "jobs.yaml", jobs, defaults={"refresh": "incremental"})
    night0, night3 = NIGHTS[0], NIGHTS[3]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    _set_date(emulator, night0)
    for out in (reference, killed):
        _run(out, configs, emulator, night0)
    _set_date(emulator, night3)
    start = len(emulator.calls())
    _run(reference, configs, emulator, night3)
    total = len(emulator.calls()) - start
    expected = {p.name: p.read_bytes() for p in (reference / night3.isoformat()).glob("*.jsonl")}
    assert sorted(expected) == ["gap.diff.jsonl", "gap.jsonl", "wide.diff.jsonl", "wide.jsonl"]
    assert total >= 12
    for point in (total // 2, total - 3):
        out = tmp_path / f"killed-{point}"
        shutil_copy(killed, out)
        before = len(emulator.calls())
        process = subprocess.Popen(
            _command(out, configs, emulator, night3, "--concurrency", "2"),
            env={**os.environ, **DEMO_ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while len(emulator.calls()) - before < point:
            assert process.poll() is None, "the run ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
        _run(out, configs, emulator, night3)
        got = {p.name: p.read_bytes() for p in (out / night3.isoformat()).glob("*.jsonl")}
        assert got == expected, f"killed after {point} of {total} calls"
        assert not (out / night3.isoformat() / ".state").exists()


def shutil_copy(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target)


@pytest.mark.anyio
async def test_the_dry_run_prices_an_incremental_night_from_one_probe_per_request(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS, defaults={"refresh": "incremental"})
    out = tmp_path / "out"
    _set_date(emulator, NIGHTS[0])
    _run(out, configs, emulator, NIGHTS[0])
    night = NIGHTS[3]
    _set_date(emulator, night)
    before = len(emulator.calls())
    settings = RunSettings(out_dir=out, run_date=night)
    provider = resolve_provider("dataforseo", f"{emulator.url}/v3")
    outcome = await dry_run(configs, provider=provider, environ=DEMO_ENV, settings=settings)
    probes = emulator.calls()[before:]
    # The last night is day 0: new since two days before it.
    cutoff = f"{(NIGHTS[0] - dt.timedelta(days=2)).isoformat()} 00:00:00 +00:00"
    gap_new = len(_index(emulator, night, GAP, _requests(GAP, cutoff, 8)[0]))
    wide_new = [
        len(_index(emulator, night, WIDE, [group, "and", OWN_FILTER]))
        for group in _requests(WIDE, cutoff, 7)
    ]
    rows = {row.job_id: row for row in outcome.result.jobs}
    assert sorted(rows) == ["gap", "wide"]
    assert (rows["gap"].source, rows["gap"].total_count, rows["gap"].calls) == (
        "probe, incremental",
        gap_new,
        math.ceil(gap_new / 100),
    )
    assert rows["gap"].cost_usd == _cost([gap_new])
    assert (rows["wide"].total_count, rows["wide"].calls) == (sum(wide_new), 2)
    assert rows["wide"].cost_usd == _cost(wide_new)
    # One limit-1 probe per request: 1 for 'gap', 2 for 'wide' (8 and 4 conditions).
    assert sorted((c["limit"], c["conditions"]) for c in probes) == [(1, 2), (1, 4), (1, 8)]
    assert outcome.result.probe_calls == 3
    # With --full, the same night is priced as a full crawl, one probe a job.
    before = len(emulator.calls())
    full = await dry_run(
        configs,
        provider=provider,
        environ=DEMO_ENV,
        settings=RunSettings(out_dir=out, run_date=night, full=True),
    )
    assert [c["conditions"] for c in emulator.calls()[before:]] == [None, 1]
    assert {row.job_id: row.total_count for row in full.result.jobs} == {
        "gap": len(_index(emulator, night, GAP)),
        "wide": len(_index(emulator, night, WIDE, OWN_FILTER)),
    }
