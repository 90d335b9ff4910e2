"""Surviving the night: retries, account stops, the budget, the dry run, shifting pages."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from intersect_batch import cli
from intersect_batch.config import load_jobs
from intersect_batch.emulator import EmulatorSettings, FaultSettings, running_emulator
from intersect_batch.errors import UsageError
from intersect_batch.estimate import estimate
from intersect_batch.exitcode import ExitCode
from intersect_batch.lock import output_lock
from intersect_batch.logs import close_logging, configure_logging
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import run_batch
from intersect_batch.settings import Limits, RetryPolicy
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    calls_for,
    fast_settings,
    manifest,
    read_lines,
    run,
    served_items,
    write_jobs,
)

pytestmark = pytest.mark.anyio

SIZES = {"alpha.example": 2300, "delta.example": 1700, "one.example": 1}
JOBS: list[dict[str, Any]] = [
    {"id": "alpha", "targets": ["alpha.example", "beta.example"], "page_size": 250},
    {"id": "delta", "targets": ["delta.example", "beta.example"], "page_size": 400},
]


def _url_from(item: dict[str, Any]) -> str:
    first = item["page_intersection"]["1"][0]
    return str(first["url_from"])


async def test_every_transient_fault_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    jobs = [dict(JOBS[0], page_size=50), dict(JOBS[1], page_size=100)]  # 47 + 17 pages
    write_jobs(configs, "jobs.yaml", jobs)
    faults = FaultSettings(
        http_500=0.06,
        internal_error=0.06,
        task_failed=0.06,
        drop_connection=0.06,
        truncated_body=0.06,
        timeout=0.06,
        timeout_delay=0.005,
        status_codes={50301: 0.05, 50303: 0.04, 40209: 0.04, 40202: 0.04},
    )
    settings = fast_settings(
        tmp_path / "out", retry=RetryPolicy(attempts=12, base=0.001, cap=0.005, slowdown=0.005)
    )
    async with running_emulator(EmulatorSettings(seed=11, sizes=SIZES, faults=faults)) as emu:
        outcome = await run(configs, emu, settings)
        calls = emu.calls()
    # The same data, served without faults, fetched independently of the crawler.
    async with running_emulator(EmulatorSettings(seed=11, sizes=SIZES)) as clean:
        expected = {
            job["id"]: (await served_items(clean, {"targets": _targets(job)}))[1] for job in jobs
        }
    assert outcome.exit_code == ExitCode.OK, outcome.message
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    failures = Counter(c.fault or c.status_code for c in calls if c.fault or c.status_code != 20000)
    # Every kind of fault happened at least once in this seeded run.
    for kind in ("http_500", "drop_connection", "truncated_body", "timeout", "internal_error"):
        assert failures[kind] > 0, failures
    for job in jobs:
        job_id = str(job["id"])
        items = read_lines(run_dir / f"{job_id}.jsonl")
        assert items == expected[job_id]
        assert len({_url_from(item) for item in items}) == len(items)
        job_calls = calls_for(calls, list(job["targets"]))
        failed = [c for c in job_calls if c.fault is not None or c.status_code != 20000]
        got = manifest(run_dir, job_id)
        # Each failure the server saw is one retry in the manifest.
        assert got["retries"] == len(failed) > 0
        assert got["calls"] == len(job_calls)


def _targets(job: dict[str, Any]) -> dict[str, str]:
    return {str(i): t for i, t in enumerate(job["targets"], start=1)}


async def test_a_rate_refusal_slows_the_whole_run(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    faults = FaultSettings(status_codes={40202: 0.2})
    settings = fast_settings(
        tmp_path / "out",
        limits=Limits(rate_per_minute=60_000, concurrency=1),
        retry=RetryPolicy(attempts=10, base=0.0001, cap=0.0001, slowdown=0.05),
    )
    async with running_emulator(EmulatorSettings(seed=5, sizes=SIZES, faults=faults)) as emu:
        outcome = await run(configs, emu, settings)
        calls = emu.calls()
    assert outcome.exit_code == ExitCode.OK
    refused = [i for i, c in enumerate(calls) if c.status_code == 40202]
    assert refused
    for i in refused:
        if i + 1 < len(calls):
            # The pause (0.05 s) holds every call, not only the refused one's retry.
            assert calls[i + 1].t - calls[i].t >= 0.045


async def test_bad_credentials_stop_the_run_within_the_calls_in_flight(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(
        configs,
        "many.yaml",
        [{"id": f"job-{n}", "targets": [f"s{n}.example", "beta.example"]} for n in range(12)],
    )
    secret = "wrong-pass-Zq8"
    environ = {"DATAFORSEO_LOGIN": "demo", "DATAFORSEO_PASSWORD": secret}
    settings = fast_settings(tmp_path / "out", limits=Limits(rate_per_minute=60_000, concurrency=4))
    async with running_emulator(EmulatorSettings()) as emu:
        outcome = await run(configs, emu, settings, environ=environ)
        calls = emu.calls()
    assert outcome.exit_code == ExitCode.ACCOUNT
    assert 1 <= len(calls) <= 4
    assert {c.http_status for c in calls} == {401}
    assert "check the API login and password" in outcome.message
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    # The jobs whose call went out end partial, saying why; the others never started:
    # run.json names them, and they have no file of their own.
    started = sorted(p.name.removesuffix(".manifest.json") for p in run_dir.glob("*.manifest.json"))
    assert len(started) == len(calls)
    for job_id in started:
        assert manifest(run_dir, job_id)["status"] == "partial"
        assert "40100" in manifest(run_dir, job_id)["reason"]
    summary = json.loads((run_dir / "run.json").read_text())
    assert sorted(summary["not_started"] + started) == sorted(f"job-{n}" for n in range(12))
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace")
    assert secret not in outcome.message


async def test_an_empty_balance_stops_the_run_and_a_rerun_pays_no_page_twice(
    tmp_path: Path,
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    settings = fast_settings(tmp_path / "out", limits=Limits(rate_per_minute=60_000, concurrency=2))
    # Enough for a few pages of 250-400 items, not for all 11.
    async with running_emulator(EmulatorSettings(sizes=SIZES, balance_usd=0.1)) as emu:
        first = await run(configs, emu, settings)
        first_calls = emu.calls()
    assert first.exit_code == ExitCode.ACCOUNT
    assert "Insufficient funds" in first.message or "40210" in first.message
    assert any(c.http_status == 402 for c in first_calls)
    served_first = [(c.targets, c.offset) for c in first_calls if c.status_code == 20000]
    assert len(first_calls) - len(served_first) <= 2

    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        second = await run(configs, emu, settings)
        second_calls = emu.calls()
        expected = {
            job["id"]: (await served_items(emu, {"targets": _targets(job)}))[1] for job in JOBS
        }
    assert second.exit_code == ExitCode.OK
    served_second = [(c.targets, c.offset) for c in second_calls]
    # No page paid in the first run is asked for again.
    assert not set(map(repr, served_first)) & set(map(repr, served_second))
    assert len(served_first) + len(served_second) == 10 + 5
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    for job_id, items in expected.items():
        assert read_lines(run_dir / f"{job_id}.jsonl") == items


async def test_the_budget_holds_and_a_higher_one_resumes(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    budget = 0.2
    settings = fast_settings(tmp_path / "out", budget_usd=budget)
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        first = await run(configs, emu, settings)
        first_calls = emu.calls()
        second = await run(configs, emu, fast_settings(tmp_path / "out"))
        all_calls = emu.calls()
    assert first.exit_code == ExitCode.ATTENTION
    assert sum(c.cost for c in first_calls) <= budget
    assert first.summary is not None and first.summary.night.cost_usd <= budget
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    assert second.exit_code == ExitCode.OK
    # Across both runs: exactly the minimum of calls, each page once.
    pages = Counter((repr(c.targets), c.offset) for c in all_calls)
    assert len(all_calls) == 10 + 5 and max(pages.values()) == 1
    assert manifest(run_dir, "alpha")["items_written"] == 2300
    first_summary = first.summary
    assert any(job.reason and job.reason.startswith("budget") for job in first_summary.jobs)


async def test_dry_run_figures_equal_what_the_real_run_then_spends(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(
        configs,
        "jobs.yaml",
        [
            *JOBS,
            {
                "id": "capped",
                "targets": ["alpha.example", "x.example"],
                "max_items": 700,
                "page_size": 300,
            },
        ],
    )
    settings = fast_settings(tmp_path / "out")
    entries = load_jobs(configs).jobs
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        provider = resolve_provider("dataforseo", emu.dataforseo_base)
        bounds = await estimate(
            entries, provider=provider, credentials=None, settings=settings, probe=False
        )
        assert emu.calls() == []
        dry = await estimate(
            entries,
            provider=provider,
            credentials=provider.credentials(DEMO_ENV),
            settings=settings,
            probe=True,
        )
        probes = emu.calls()
        real = await run(configs, emu, settings)
        real_calls = emu.calls()[len(probes) :]
    assert bounds.calls is None and bounds.calls_min == 3
    assert bounds.jobs[2].calls_max == 3
    assert dry.probe_calls == len(probes) == 3
    assert {c.limit for c in probes} == {1}
    assert dry.probe_cost_usd == pytest.approx(sum(c.cost for c in probes))
    assert real.exit_code == ExitCode.OK
    assert dry.calls == len(real_calls) == 10 + 5 + 3
    assert dry.cost_usd == pytest.approx(sum(c.cost for c in real_calls))


async def test_live_data_duplicates_are_dropped_and_drift_recorded(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(
        configs,
        "jobs.yaml",
        [{"id": "live", "targets": ["alpha.example", "b.example"], "page_size": 100}],
    )
    settings = fast_settings(
        tmp_path / "out",
        limits=Limits(rate_per_minute=60_000, concurrency=1),
        drift_threshold=0.0001,
    )
    async with running_emulator(EmulatorSettings(sizes=SIZES, live_data=0.01, seed=2)) as emu:
        outcome = await run(configs, emu, settings)
    assert outcome.exit_code == ExitCode.OK
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    items = read_lines(run_dir / "live.jsonl")
    got = manifest(run_dir, "live")
    assert len({_url_from(item) for item in items}) == len(items) == got["items_written"]
    assert got["duplicates_dropped"] > 0
    assert got["items_received"] == got["items_written"] + got["duplicates_dropped"]
    totals = got["total_count"]
    assert totals["min"] < totals["max"] and totals["flagged"] is True


async def test_a_changed_job_restarts_and_a_complete_one_is_skipped(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    async with running_emulator(EmulatorSettings(sizes=SIZES)) as emu:
        await run(configs, emu, fast_settings(tmp_path / "out", budget_usd=0.15))
        before = len(emu.calls())
        changed = [dict(JOBS[0], tag="v2"), JOBS[1]]
        write_jobs(configs, "jobs.yaml", changed)
        outcome = await run(configs, emu, fast_settings(tmp_path / "out"))
        second = emu.calls()[before:]
        third = await run(configs, emu, fast_settings(tmp_path / "out"))
        after_third = emu.calls()[before + len(second) :]
        fresh = await run(configs, emu, fast_settings(tmp_path / "out", fresh=True))
        after_fresh = emu.calls()[before + len(second) :]
    assert outcome.exit_code == third.exit_code == fresh.exit_code == ExitCode.OK
    alpha = [c for c in second if c.tag == "v2"]
    # The changed job started over at page 0 with its new parameters: all 10 pages.
    assert sorted(c.offset or 0 for c in alpha) == [250 * n for n in range(10)]
    # A complete job is skipped: no call at all.
    assert after_third == []
    assert third.summary is not None
    assert {job.reason for job in third.summary.jobs} == {"already complete"}
    # --fresh fetches everything again.
    assert len(after_fresh) == 15


def test_a_second_run_on_the_same_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    for key, value in DEMO_ENV.items():
        monkeypatch.setenv(key, value)
    with output_lock(tmp_path / "out"):
        code = cli.main(
            [
                "run",
                str(configs),
                "--out",
                str(tmp_path / "out"),
                "--base-url",
                "http://127.0.0.1:9/v3",
                "--log-format",
                "json",
            ]
        )
    assert code == ExitCode.LOCKED
    err = capsys.readouterr().err
    assert "another intersect-batch run" in err and "did nothing" in err
    assert not (tmp_path / "out" / RUN_DATE.isoformat()).exists()


async def test_secrets_reach_no_file_and_no_log_line(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS[:1])
    login, password = "acct-login-7Hq", "api-pass-W3x9"
    log_file = tmp_path / "run.log"
    configure_logging(level="debug", fmt="json", log_file=log_file)
    try:
        emulator = EmulatorSettings(
            sizes=SIZES,
            login=login,
            password=password,
            faults=FaultSettings(http_500=0.2),
        )
        async with running_emulator(emulator) as emu:
            good = await run(
                configs,
                emu,
                fast_settings(tmp_path / "out"),
                environ={"DATAFORSEO_LOGIN": login, "DATAFORSEO_PASSWORD": password},
            )
            bad = await run(
                configs,
                emu,
                fast_settings(tmp_path / "out2"),
                environ={"DATAFORSEO_LOGIN": login, "DATAFORSEO_PASSWORD": "nope-" + password},
            )
    finally:
        close_logging()
    assert good.exit_code == ExitCode.OK and bad.exit_code == ExitCode.ACCOUNT
    log_lines = log_file.read_text().splitlines()
    assert any(json.loads(line).get("job") == "alpha" for line in log_lines)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "configs" not in p.parts]
    assert len(written) > 4
    for path in written:
        text = path.read_text(errors="replace")
        assert login not in text and password not in text, path
    for message in (good.message, bad.message):
        assert login not in message and password not in message


async def test_the_aisa_route_bearer_auth_and_its_429s(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)
    faults = FaultSettings(status_codes={40209: 0.15, 40202: 0.1})
    settings = fast_settings(
        tmp_path / "out", retry=RetryPolicy(attempts=10, base=0.001, cap=0.01, slowdown=0.01)
    )
    async with running_emulator(EmulatorSettings(seed=9, sizes=SIZES, faults=faults)) as emu:
        with pytest.raises(UsageError, match="AISA_API_KEY"):
            await run_batch(
                configs,
                provider=resolve_provider("aisa", emu.aisa_base),
                environ={},
                settings=settings,
            )
        assert emu.calls() == []
        outcome = await run_batch(
            configs,
            provider=resolve_provider("aisa", emu.aisa_base),
            environ={"AISA_API_KEY": "demo-key"},
            settings=settings,
        )
        calls = emu.calls()
    assert outcome.exit_code == ExitCode.OK, outcome.message
    assert {c.route for c in calls} == {"aisa"}
    refused = [c for c in calls if c.http_status == 429]
    assert refused
    run_dir = tmp_path / "out" / RUN_DATE.isoformat()
    assert sum(manifest(run_dir, str(job["id"]))["retries"] for job in JOBS) == len(refused)
    assert manifest(run_dir, "alpha")["items_written"] == 2300
