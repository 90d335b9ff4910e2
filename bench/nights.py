"""Scenario 7: a week of nights of one job whose index changes by about 1 % a day.

The emulator runs with a timeline (``--timeline-origin``): each day about 1 % of the
job's pages first appear, a few come back with their old first_seen, a few vanish. The
job has ``refresh: incremental``: night 0 is full, the next ones ask only for what is new,
and the night ``full_every_days`` after night 0 is full again. Each night moves the
emulator's date and runs the real CLI. Figures: each night's cost as the manifests report
it, the incremental nights' cost over the first full night's, and the pages the second
full night found the incremental ones missed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, cli_env

ORIGIN = dt.date(2026, 12, 1)
TARGET = "nightly.example"


def run(work: Path, *, size: int, page_size: int, nights: int, seed: int) -> dict[str, Any]:
    folder = work / "nights"
    configs = folder / "configs"
    configs.mkdir(parents=True)
    full_every = max(2, nights - 1)
    job = {
        "id": "nightly",
        "targets": [TARGET, "shared.example"],
        "page_size": page_size,
        "refresh": "incremental",
        "full_every_days": full_every,
    }
    (configs / "nightly.yaml").write_text(yaml.safe_dump({"jobs": [job]}, sort_keys=False))
    serve = [
        sys.executable, "-m", "intersect_batch.emulator", "--port", "0", "--seed", str(seed),
        "--size", f"{TARGET}={size}", "--timeline-origin", ORIGIN.isoformat(),
        "--horizon-days", "10", "--daily-new", "0.01", "--daily-return", "0.001",
        "--daily-vanish", "0.001", "--rate-per-minute", "1000000",
    ]  # fmt: skip
    emulator = subprocess.Popen(
        serve,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    rows: list[dict[str, Any]] = []
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        for number in range(nights):
            date = ORIGIN + dt.timedelta(days=number)
            request = urllib.request.Request(
                f"{url}/_emulator/as-of", data=date.isoformat().encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10):
                pass
            command = [
                sys.executable, "-m", "intersect_batch", "run", str(configs),
                "--base-url", f"{url}/v3", "--out", str(folder / "out"),
                "--run-date", date.isoformat(), "--allow-future", "--rate-per-minute",
                "1000000", "--log-format", "json", "--log-level", "warning",
            ]  # fmt: skip
            done = subprocess.run(command, env=cli_env(), capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"night {date}: exit {done.returncode}: {done.stderr[-500:]}")
            manifest = json.loads(
                (folder / "out" / date.isoformat() / "nightly.manifest.json").read_text()
            )
            note = manifest["refresh"]
            rows.append(
                {
                    "date": date.isoformat(),
                    "mode": note["mode"],
                    "items": manifest["items_written"],
                    "calls": manifest["calls"],
                    "cost_usd": manifest["cost_usd"],
                    "new": (manifest["diff"] or {}).get("new"),
                    "missed_by_incremental": note.get("missed_by_incremental"),
                }
            )
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    full = rows[0]["cost_usd"]
    cheap = [row["cost_usd"] for row in rows if row["mode"] == "incremental"]
    return {
        "size": size,
        "page_size": page_size,
        "nights": rows,
        "full_cost_usd": full,
        "incremental_mean_cost_usd": round(sum(cheap) / len(cheap), 6) if cheap else math.nan,
        "incremental_over_full": round(max(cheap) / full, 4) if cheap else math.nan,
        "missed_by_incremental": rows[-1]["missed_by_incremental"],
    }
