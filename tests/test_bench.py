"""The benchmark harness runs end to end in its tiny mode, so ``make bench`` cannot rot.

The figures of a tiny run prove nothing about speed; the test checks that every scenario
produced its figures and that they are sane (what a broken harness would get wrong).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    # Scenario 7 runs under its own fixture: each fixture's run has its own time limit.
    only = [arg for n in (1, 2, 3, 4, 5, 6, 8) for arg in ("--only", str(n))]
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out), *only],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    table = (out / "results.md").read_text()
    assert table in done.stdout
    return data, table


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_every_scenario_reports_on_the_machine_it_ran_on(results: tuple[dict[str, Any], str]):
    data, table = results
    assert data["mode"] == "tiny"
    assert set(data["scenarios"]) == {
        "1-saturation",
        "2-peers",
        "3-cpu-per-item",
        "4-memory",
        "5-many-jobs",
        "6-resume",
        "8-scale",
    }
    machine = data["machine"]
    assert machine["cpus"] >= 1 and machine["python"]
    assert machine["python"] in table and "| scenario |" in table
    assert table.count("\n| ") >= 8  # the header and a row per figure


def test_saturation_is_a_ratio_to_the_binding_limit(results: tuple[dict[str, Any], str]):
    data, _ = results
    for name, run in data["scenarios"]["1-saturation"].items():
        if name == "scenario_wall_s":
            continue
        assert run["exit_code"] == 0
        assert run["refused"] == {"40202": 0, "40209": 0}
        assert run["max_calls_in_a_60s_window"] <= run["rate_per_minute"]
        # A ratio, not a speed: the harness reports it; how fast the machine was is not
        # a test's business (make bench judges it against its goal).
        assert _positive(run["ratio"]), run
        assert run["bound_per_minute"] <= run["rate_per_minute"]
        # Which limit binds depends on the latencies the machine measured: reported,
        # not asserted.
        assert run["binding_limit"] in {"rate", "concurrency"}


def test_peers_are_timed_or_skipped_with_a_reason(results: tuple[dict[str, Any], str]):
    data, _ = results
    contenders = data["scenarios"]["2-peers"]["contenders"]
    assert contenders["intersect-batch"]["wall_ratio_vs_intersect_batch"] == 1.0
    assert _positive(contenders["aiohttp-sequential"]["wall_ratio_vs_intersect_batch"])
    assert contenders["aiohttp-sequential"]["calls"] == contenders["intersect-batch"]["calls"]
    official = contenders["dataforseo-client-sequential"]
    assert "skipped" in official or _positive(official["wall_ratio_vs_intersect_batch"])


def test_cpu_per_item_is_measured_on_every_available_path(results: tuple[dict[str, Any], str]):
    data, _ = results
    paths = data["scenarios"]["3-cpu-per-item"]["paths"]
    for name in ("intersect-batch", "intersect-batch-without-fsync", "stdlib-json"):
        assert _positive(paths[name]["us_cpu_per_item"]), name
        assert _positive(paths[name]["mb_per_cpu_s"]), name
        assert paths[name]["items"] == 1000
    # msgspec passing raw items through beats loads + dumps even at toy sizes.
    assert paths["stdlib-json"]["cpu_ratio_vs_intersect_batch"] > 1.0
    pydantic = paths["dataforseo-client-pydantic"]
    assert "skipped" in pydantic or _positive(pydantic["us_cpu_per_item"])


def test_memory_many_jobs_and_resume_figures_are_sane(results: tuple[dict[str, Any], str]):
    data, _ = results
    memory = data["scenarios"]["4-memory"]
    for size in ("small", "large"):
        assert memory[size]["exit_code"] == 0
        assert 10 < memory[size]["peak_rss_mb"] < 1000
    assert _positive(memory["rss_ratio_large_vs_small"])

    many = data["scenarios"]["5-many-jobs"]
    assert [run["jobs"] for run in many["runs"].values()] == [2, 4, 8]
    assert all(
        run["exit_code"] == 0 and _positive(run["ms_per_job"]) for run in many["runs"].values()
    )
    assert _positive(many["growth_per_job"])

    resume = data["scenarios"]["6-resume"]
    assert resume["resume_exit_code"] == 0
    assert 0 < resume["killed_after_calls"] < resume["calls_uninterrupted"]
    assert resume["pages_refetched"] <= resume["concurrency"] + resume["pages_in_memory"]
    assert (
        resume["calls_before_kill"] + resume["calls_after_resume"] >= resume["calls_uninterrupted"]
    )


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench-nights")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", "7", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data, (out / "results.md").read_text()


def test_a_week_of_nights_reports_what_an_incremental_night_costs(
    nights: tuple[dict[str, Any], str],
):
    data, table = nights
    assert set(data["scenarios"]) == {"7-nights"}
    week = data["scenarios"]["7-nights"]
    assert [night["mode"] for night in week["nights"]] == ["full", "incremental"]
    assert week["nights"][1]["calls"] == 1
    assert 0 < week["incremental_over_full"] < 1
    assert "7 a week of nights (Fi)" in table


def test_scale_figures_are_sane(results: tuple[dict[str, Any], str]):
    data, table = results
    scale = data["scenarios"]["8-scale"]
    memory = scale["memory"]
    assert [run["jobs"] for run in memory.values()] == [20, 60]
    assert all(run["exit_code"] == 0 and _positive(run["kb_per_job"]) for run in memory.values())
    assert math.isfinite(scale["marginal_kb_per_job"])
    stop = scale["stop"]
    assert stop["exit_code"] == 143 and stop["jobs"] == 300
    assert _positive(stop["startup_s"]) and _positive(stop["stop_s"])
    # The jobs the signal never reached have no file of their own.
    assert 0 < stop["not_started"] < 300 and stop["files_of_jobs_not_started"] == 0
    assert stop["jobs_run"] + stop["not_started"] == 300
    assert "8b SIGTERM" in table
