"""The README's DuckDB queries, run as written over three real nights of one job."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest

from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.exitcode import ExitCode
from tests.support import fast_settings, run, write_jobs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
NIGHTS = [dt.date(2026, 11, 27), dt.date(2026, 11, 28), dt.date(2026, 11, 29)]
JOB = {"id": "crm-link-gap", "targets": ["alpha.example", "beta.example"], "page_size": 100}


def _queries() -> list[str]:
    section = README[README.index("And with DuckDB") : README.index("## What the tool does")]
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)


async def _nights(out: Path) -> None:
    configs = out.parent / "configs"
    write_jobs(configs, "jobs.yaml", [JOB])
    emulator = EmulatorSettings(seed=5, live_data=0.05, size_min=200, size_max=400)
    async with running_emulator(emulator) as emu:
        for night in NIGHTS:
            outcome = await run(configs, emu, fast_settings(out, run_date=night))
            assert outcome.exit_code == ExitCode.OK, outcome.message


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("duckdb")
    anyio.run(_nights, root / "out")
    return root


def _rows(query: str) -> list[tuple[Any, ...]]:
    """The rows of ``query``, run in a fresh in-memory database."""
    with duckdb.connect() as connection:
        return connection.execute(query).fetchall()


def _manifest(folder: Path, night: dt.date) -> dict[str, object]:
    path = folder / "out" / night.isoformat() / "crm-link-gap.manifest.json"
    document: dict[str, object] = json.loads(path.read_text())
    return document


def _urls(folder: Path, night: dt.date) -> set[str]:
    lines = (folder / "out" / night.isoformat() / "crm-link-gap.jsonl").read_text().splitlines()
    return {json.loads(line)["page_intersection"]["1"][0]["url_from"] for line in lines}


def test_the_readme_has_the_three_queries() -> None:
    queries = _queries()
    assert len(queries) == 3
    assert "out/*/crm-link-gap.jsonl" in queries[1] and "filename = true" in queries[1]


def test_one_nights_domains_by_rank(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    rows = _rows(_queries()[0])
    lines = (folder / "out" / "2026-11-29" / "crm-link-gap.jsonl").read_text().splitlines()
    best: dict[str, tuple[float, int]] = {}
    for line in lines:
        first = json.loads(line)["page_intersection"]["1"][0]
        rank, pages = best.get(first["domain_from"], (float("-inf"), 0))
        best[first["domain_from"]] = (max(rank, first["domain_from_rank"]), pages + 1)
    assert len(rows) == min(20, len(best))
    for domain, rank, pages in rows:
        assert (rank, pages) == best[domain]
    ranks = [rank for _, rank, _ in rows]
    assert ranks == sorted(ranks, reverse=True)
    assert ranks[0] == max(rank for rank, _ in best.values())


def test_every_nights_pages(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    rows = _rows(_queries()[1])
    assert rows == [
        (night.isoformat(), _manifest(folder, night)["items_written"]) for night in NIGHTS
    ]


def test_the_pages_each_night_found_first(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    rows = _rows(_queries()[2])
    seen: set[str] = set()
    expected = []
    for night in NIGHTS:
        urls = _urls(folder, night)
        expected.append((night.isoformat(), len(urls - seen)))
        seen |= urls
    # A night that found nothing new has no row (live data often brings back old pages).
    assert rows == [(night, count) for night, count in expected if count]
    assert len(rows) >= 2
    # The second night's first-seen pages are its diff's new pages (the first night is
    # its only earlier one).
    diff = _manifest(folder, NIGHTS[1])["diff"]
    assert isinstance(diff, dict) and diff["previous_run"] == "2026-11-27"
    assert rows[1][1] == diff["new"] > 0
