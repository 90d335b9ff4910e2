"""Under cron: the README's crontab line on a fresh machine, --json for jq, --metrics-file."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from intersect_batch import cli
from intersect_batch.exitcode import ExitCode
from tests.support import (
    DEMO_ENV,
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    write_jobs,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    # Small results (a page or two a job): the point is the command, not the volume.
    folder = tmp_path_factory.mktemp("emulator")
    # trickle.example's answers come 16 bytes every 50 ms (the --deadline test).
    trickle = ("--fault-at", "0=trickle@trickle.example", "--trickle-pause", "0.05")
    with emulator_process(folder, {}, "--size-max", "600", *trickle) as process:
        yield process


def _crontab_command() -> str:
    """The command of the README's crontab line (after its five time fields)."""
    block = README.split("```cron\n", 1)[1].split("```", 1)[0]
    line = next(text for text in block.splitlines() if text and not text.startswith("#"))
    return line.split(None, 5)[5]


def test_the_readmes_cron_line_works_in_an_empty_folder(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    home = tmp_path / "home"
    project = home / "backlinks"
    shutil.copytree(ROOT / "configs", project / "configs")
    tool = project / ".venv" / "bin" / "intersect-batch"
    tool.parent.mkdir(parents=True)
    tool.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m intersect_batch "$@"\n')
    tool.chmod(0o755)
    env_file = home / ".config" / "intersect-batch.env"
    env_file.parent.mkdir()
    env_file.write_text("".join(f"{k}={v}\n" for k, v in DEMO_ENV.items()))
    env_file.chmod(0o600)
    command = f"{_crontab_command()} --base-url {emulator.url}/v3"
    assert "--log-file out/intersect-batch.log" in command
    assert not (project / "out").exists()
    before = len(emulator.calls())
    # As cron runs it: sh -c, a bare environment, no terminal, no input.
    result = subprocess.run(
        ["/bin/sh", "-c", command],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == ExitCode.OK, result.stdout + result.stderr[-3000:]
    assert len(emulator.calls()) > before
    today = dt.datetime.now(dt.UTC).date().isoformat()
    run_dir = project / "out" / today
    assert len(list(run_dir.glob("*.jsonl"))) == 5
    # --quiet: a clean night mails one line, and nothing on stderr; the log keeps it all.
    assert "--quiet" in command and "--report" in command
    [last] = result.stdout.splitlines()
    assert last.startswith(f"ok: night {today}: 5 complete;")
    assert result.stderr == ""
    assert (run_dir / "report.html").is_file()
    log_records = [
        json.loads(line)
        for line in (project / "out" / "intersect-batch.log").read_text().splitlines()
    ]
    assert [r["message"] for r in log_records][:2] == ["account checked", "run starting"]
    assert log_records[-1]["message"] == "run finished"
    assert log_records[-1]["exit_code"] == 0 and log_records[-1]["line"] == last


def _metrics(path: Path) -> dict[str, Any]:
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def test_json_on_stdout_alone_and_metrics_for_node_exporter(
    tmp_path: Path,
    emulator: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in DEMO_ENV.items():
        monkeypatch.setenv(name, value)
    configs = ROOT / "configs"
    out, metrics = tmp_path / "out", tmp_path / "textfile" / "intersect-batch.prom"
    command = [*cli_run(configs, out, emulator)[3:], "--json", "--metrics-file", str(metrics)]
    run_json = out / RUN_DATE.isoformat() / "run.json"

    # 1. JSON logs: stdout is run.json's content and nothing else; the last line rides
    #    in the closing record, so stderr stays one JSON object a line.
    assert cli.main([*command, "--log-format", "json"]) == ExitCode.OK
    captured = capsys.readouterr()
    assert json.loads(captured.out) == json.loads(run_json.read_text())
    records = [json.loads(line) for line in captured.err.splitlines()]
    assert records[-1]["message"] == "run finished"
    assert records[-1]["line"].startswith("ok: night 2026-11-29: 5 complete;")
    summary = json.loads(run_json.read_text())
    first = _metrics(metrics)
    night, invocation = summary["night"], summary["invocation"]
    assert first["intersect_batch_last_run_exit_code"] == 0
    assert (
        first["intersect_batch_last_success_timestamp_seconds"]
        == (first["intersect_batch_last_run_timestamp_seconds"])
    )
    assert first["intersect_batch_jobs{status=complete}"] == 5
    assert first["intersect_batch_jobs{status=failed}"] == 0
    assert first["intersect_batch_night_items"] == night["items"]
    assert first["intersect_batch_night_calls"] == night["calls"]
    assert first["intersect_batch_night_cost_usd"] == night["cost_usd"]
    assert first["intersect_batch_invocation_calls"] == invocation["calls"]
    assert first["intersect_batch_invocation_throttled_seconds"] == invocation["throttled_s"]
    assert first["intersect_batch_night_throttled_seconds"] == 0
    assert first["intersect_batch_night_invocations"] == 1
    assert first["intersect_batch_last_run_info{run_date=2026-11-29,version=0.1.0}"] == 1

    # 2. Text logs: the last line goes to stderr; stdout is still only JSON.
    assert cli.main([*command, "--log-format", "text"]) == ExitCode.OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["night"]["invocations"] == 2
    assert "ok: night 2026-11-29: 5 complete;" in captured.err
    assert "nothing to run (5 already complete)" in captured.err
    second = _metrics(metrics)
    assert second["intersect_batch_invocation_calls"] == 0

    # 3. A run that fails (no credentials): the time of the last success is kept.
    monkeypatch.delenv("DATAFORSEO_PASSWORD")
    assert cli.main([*command, "--log-format", "json"]) == ExitCode.USAGE
    assert "DATAFORSEO_PASSWORD" in capsys.readouterr().err
    third = _metrics(metrics)
    assert third["intersect_batch_last_run_exit_code"] == ExitCode.USAGE
    assert (
        third["intersect_batch_last_success_timestamp_seconds"]
        == (second["intersect_batch_last_success_timestamp_seconds"])
    )
    assert (
        third["intersect_batch_last_run_timestamp_seconds"]
        >= (second["intersect_batch_last_run_timestamp_seconds"])
    )
    assert "intersect_batch_night_calls" not in third
    assert [p.name for p in metrics.parent.iterdir()] == ["intersect-batch.prom"]


def test_deadline_ends_a_call_whose_answer_trickles_in(
    tmp_path: Path,
    emulator: EmulatorProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in DEMO_ENV.items():
        monkeypatch.setenv(name, value)
    configs = tmp_path / "configs"
    write_jobs(
        configs, "jobs.yaml", [{"id": "slowly", "targets": ["trickle.example", "b.example"]}]
    )
    command = cli_run(configs, tmp_path / "out", emulator, "--deadline", "0.3", "--attempts", "1")
    assert cli.main([*command[3:], "--log-format", "json"]) == ExitCode.ATTENTION
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "slowly failed (" in last and "0.3 s deadline" in last
