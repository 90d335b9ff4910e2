"""--metrics-file per job: each job's status and its new and lost pages, readable HELP."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import anyio
from prometheus_client.parser import text_string_to_metric_families

from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from tests.support import fast_settings, run, write_jobs

ALPHA = {"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100}
BETA = {"id": "beta", "targets": ["beta.example", "b.example"], "page_size": 100}
BROKEN = {"id": "broken", "targets": ["beta.example"], "order_by": ["1.no_such_field,desc"]}


def _families(path: Path) -> tuple[dict[str, float], dict[str, str]]:
    samples: dict[str, float] = {}
    helps: dict[str, str] = {}
    for family in text_string_to_metric_families(path.read_text()):
        helps[family.name] = family.documentation
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples, helps


async def _two_nights(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    configs, out = tmp_path / "configs", tmp_path / "out"
    metrics = tmp_path / "intersect-batch.prom"
    emulator = EmulatorSettings(
        seed=11, live_data=0.05, sizes={"alpha.example": 250, "beta.example": 120}
    )
    async with running_emulator(emulator) as emu:
        write_jobs(configs, "jobs.yaml", [ALPHA, BETA])
        first = await run(configs, emu, fast_settings(out, run_date=dt.date(2026, 11, 28)))
        assert first.exit_code == ExitCode.OK, first.message
        write_jobs(configs, "jobs.yaml", [ALPHA, BETA, BROKEN])
        second = await run(
            configs, emu, fast_settings(out, run_date=dt.date(2026, 11, 29)), metrics_file=metrics
        )
        assert second.exit_code == ExitCode.ATTENTION, second.message
    summary: dict[str, Any] = json.loads((out / "2026-11-29" / "run.json").read_text())
    return metrics, summary


def test_each_job_has_its_status_and_its_new_and_lost_pages(tmp_path: Path) -> None:
    metrics, summary = anyio.run(_two_nights, tmp_path)
    samples, helps = _families(metrics)
    lines = {line["job_id"]: line for line in summary["jobs"]}
    assert set(lines) == {"alpha", "beta", "broken"}
    for job_id, line in lines.items():
        for status in ("complete", "failed", "partial", "invalid"):
            wanted = 1 if line["status"] == status else 0
            assert samples[f"intersect_batch_job_status{{job={job_id},status={status}}}"] == wanted
    assert lines["broken"]["status"] == "failed"
    for job_id in ("alpha", "beta"):
        diff = lines[job_id]["diff"]
        assert diff["previous_run"] == "2026-11-28" and diff["skipped"] is None
        assert samples[f"intersect_batch_job_new_items{{job={job_id}}}"] == diff["new"]
        assert samples[f"intersect_batch_job_lost_items{{job={job_id}}}"] == diff["lost"]
    # A job without a diff (it failed) has no new/lost series: 0 would be a claim.
    assert "intersect_batch_job_new_items{job=broken}" not in samples
    night = summary["night"]
    assert night["new_items"] > 0 and night["lost_items"] > 0
    assert samples["intersect_batch_night_new_items"] == night["new_items"]
    assert samples["intersect_batch_night_lost_items"] == night["lost_items"]
    assert night["new_items"] == sum(lines[j]["diff"]["new"] for j in ("alpha", "beta"))
    assert helps["intersect_batch_night_items"] == (
        "Items in the run date's folder: every complete job's result, all invocations."
    )
    assert helps["intersect_batch_invocation_items"] == (
        "Items this invocation fetched from the API."
    )
    for name, text in helps.items():
        # Every HELP is a sentence about one figure: no "(night); ... (invocation)" riddles.
        assert text.endswith(".") and "(night)" not in text and "(invocation)" not in text, name
