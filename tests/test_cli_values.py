"""Values the command line is handed that cannot run: refused at once, naming the option.

A budget that is no cap, a retention that names no date, a secret that would split an
HTTP header: each ends the command with status 2 before any file or call, and says what
to change, never what the secret holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from intersect_batch import cli
from intersect_batch.errors import UsageError
from intersect_batch.exitcode import ExitCode
from intersect_batch.providers import resolve_provider
from intersect_batch.runner import run_batch
from intersect_batch.settings import RunOptions
from tests.hostile_cli import assert_nothing_leaked, run_cli
from tests.support import (
    DEMO_ENV,
    EmulatorProcess,
    cli_run,
    emulator_process,
    fast_settings,
    write_jobs,
)

JOBS = [{"id": "alpha", "targets": ["alpha.example", "b.example"], "page_size": 100}]
# Port 9 (discard): nothing answers there, and a refused value must never get that far.
NOWHERE = "http://127.0.0.1:9/v3"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with emulator_process(tmp_path_factory.mktemp("emulator"), {"alpha.example": 200}) as emu:
        yield emu


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Run the CLI with ``extra``; expect status 2, nothing written; return stderr."""
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    argv = ["run", str(configs), "--out", str(out), "--base-url", NOWHERE, "--log-format", "text"]
    status = cli.main([*argv, *extra])
    captured = capsys.readouterr()
    assert status == ExitCode.USAGE, captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()
    return captured.err


@pytest.mark.parametrize("budget", ["inf", "1e400", "Infinity", "-inf", "nan", "0", "-1"])
def test_a_budget_that_is_no_cap_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str
) -> None:
    err = _refused(tmp_path, capsys, f"--budget-usd={budget}")
    assert err.splitlines() == [
        "error: --budget-usd must be a number of USD more than 0 (and finite)"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--run-date", "2020-01-01", "--keep-days", "1000000"),
            "error: --keep-days 1000000 reaches back before the year 1 from 2020-01-01; "
            "use at most 737424",
        ),
        (
            ("--run-date", "0001-01-05", "--keep-days", "30"),
            "error: --keep-days 30 reaches back before the year 1 from 0001-01-05; use at most 4",
        ),
    ],
)
def test_a_retention_that_names_no_date_is_refused_before_the_crawl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str
) -> None:
    err = _refused(tmp_path, capsys, *extra)
    assert err.splitlines() == [message]


def test_the_library_refuses_the_same_retention_before_any_call(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", JOBS)

    async def main() -> None:
        await run_batch(
            configs,
            provider=resolve_provider("dataforseo", NOWHERE),
            environ=DEMO_ENV,
            settings=fast_settings(tmp_path / "out"),
            options=RunOptions(keep_days=10**6),
        )

    with pytest.raises(UsageError, match="--keep-days 1000000 reaches back before the year 1"):
        anyio.run(main)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("provider", "env", "message"),
    [
        (
            "dataforseo",
            {"DATAFORSEO_LOGIN": "demo", "DATAFORSEO_PASSWORD": "demo-password\r"},
            "DATAFORSEO_PASSWORD ends in a carriage return (\\r): the env file it comes from "
            "was saved with Windows line endings; convert it (dos2unix FILE, or "
            "sed -i 's/\\r$//' FILE) and run again",
        ),
        (
            "aisa",
            {"AISA_API_KEY": "demo-key\r"},
            "AISA_API_KEY ends in a carriage return (\\r)",
        ),
        (
            "dataforseo",
            {"DATAFORSEO_LOGIN": "demo\tdesk", "DATAFORSEO_PASSWORD": "demo-password"},
            "DATAFORSEO_LOGIN holds a control character (a tab, a line break or another "
            "invisible one); set it again without it",
        ),
        (
            "aisa",
            {"AISA_API_KEY": "demo-\x1bkey"},
            "AISA_API_KEY holds a control character",
        ),
    ],
)
def test_a_secret_with_a_control_character_is_named_never_shown(
    tmp_path: Path, emulator: EmulatorProcess, provider: str, env: dict[str, str], message: str
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", JOBS)
    before = len(emulator.calls())
    log_file = tmp_path / "run.log"
    argv = cli_run(configs, out, emulator, "--provider", provider, "--log-file", str(log_file))
    if provider == "aisa":
        argv[argv.index("--base-url") + 1] = f"{emulator.url}/apis/v1/dataforseo"
    environ = {"DATAFORSEO_LOGIN": "", "DATAFORSEO_PASSWORD": "", "AISA_API_KEY": "", **env}
    run = run_cli(argv, env=environ, timeout=60, workdir=tmp_path)
    assert run.returncode == ExitCode.USAGE, run.stderr[-2000:]
    assert any(message in text for text in run.messages()), run.stderr
    assert emulator.calls()[before:] == []
    secret = next(value for value in env.values() if not value.isprintable())
    visible = "".join(char for char in secret if char.isprintable())
    # Neither the value nor its visible part, in any output or file.
    assert_nothing_leaked(run, [out, log_file], [secret, visible])
