"""``run --env-file``: KEY=VALUE lines read without a shell, values never echoed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from intersect_batch.emulator import EmulatorSettings, running_emulator
from intersect_batch.envfile import read_env_file
from intersect_batch.errors import UsageError
from intersect_batch.exitcode import ExitCode
from tests.support import RUN_DATE, write_jobs

# What breaks `. env-file` in a shell: $, &, a quote, a space.
PASSWORD = "pa$$word&1'x y"
LOGIN = "ops@example.com"
ENV_FILE = (
    "# the API password, not the account's\r\n"
    "\r\n"
    f"export DATAFORSEO_LOGIN={LOGIN}\r\n"
    f'DATAFORSEO_PASSWORD="{PASSWORD}"\r\n'
    "PATH=/nowhere\r\n"
    "OTHER_SECRET='not taken'\r\n"
)


def test_the_lines_are_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "intersect-batch.env"
    path.write_bytes(ENV_FILE.encode())
    assert read_env_file(path) == {"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}
    path.write_text("AISA_API_KEY = 'k&$ey' \nAISA_API_KEY=  plain value  \n")
    assert read_env_file(path) == {"AISA_API_KEY": "plain value"}
    path.write_text("AISA_API_KEY='half\n")
    assert read_env_file(path) == {"AISA_API_KEY": "'half"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"DATAFORSEO_LOGIN=me\nhunter2-secret\n", "{path}:2: not a KEY=VALUE line"),
        (b"1BAD=hunter2-secret\n", "{path}:1: not a KEY=VALUE line"),
        (b"DATAFORSEO_PASSWORD=\xffhunter2-secret\n", "{path}: not UTF-8 text"),
        (b"#" * 70_000, "{path}: larger than 64 KiB"),
    ],
)
def test_a_bad_file_is_named_and_its_lines_are_not_quoted(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "intersect-batch.env"
    path.write_bytes(content)
    with pytest.raises(UsageError) as caught:
        read_env_file(path)
    assert str(caught.value) == "--env-file " + message.format(path=path)
    assert "hunter2" not in str(caught.value)


def test_a_missing_or_odd_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        read_env_file(tmp_path / "missing.env")
    with pytest.raises(UsageError, match="not a regular file"):
        read_env_file(tmp_path)
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        read_env_file(fifo)  # never opened: nothing blocks


async def _run_with_env_file(tmp_path: Path, env_file: Path, *extra: str) -> tuple[int, str, str]:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", [{"id": "one", "targets": ["one.example", "b.example"]}])
    settings = EmulatorSettings(login=LOGIN, password=PASSWORD, sizes={"one.example": 30})
    # The environment holds a wrong password: the file's wins.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAFORSEO", "AISA"))}
    env["DATAFORSEO_PASSWORD"] = "wrong"
    async with running_emulator(settings) as emu:
        result = await anyio.run_process(
            [sys.executable, "-m", "intersect_batch", "run", str(configs), "--out", str(out),
             "--run-date", RUN_DATE.isoformat(), "--base-url", emu.dataforseo_base,
             "--env-file", str(env_file), *extra],
            env=env, check=False,
        )  # fmt: skip
        calls = len(emu.calls())
    assert calls == (1 if result.returncode == 0 else 0)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_run_takes_the_credentials_from_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / "intersect-batch.env"
    env_file.write_bytes(ENV_FILE.encode())
    env_file.chmod(0o600)
    code, stdout, stderr = anyio.run(_run_with_env_file, tmp_path, env_file, "--log-level", "debug")
    assert code == ExitCode.OK, stdout + stderr
    assert stdout.splitlines()[-1].startswith("ok: night 2026-11-29: 1 complete;")
    for secret in (PASSWORD, "pa$$word", "pa$$", "wrong"):
        assert secret not in stdout + stderr


def test_a_bad_env_file_stops_the_run_before_any_call(tmp_path: Path) -> None:
    env_file = tmp_path / "intersect-batch.env"
    env_file.write_text(f"DATAFORSEO_LOGIN={LOGIN}\n{PASSWORD}\n")
    code, stdout, stderr = anyio.run(_run_with_env_file, tmp_path, env_file)
    assert code == ExitCode.USAGE and stdout == ""
    lines = [line for line in stderr.splitlines() if '"run finished"' not in line]
    assert len(lines) == 1 and f"--env-file {env_file}:2: not a KEY=VALUE line" in lines[0]
    assert "pa$$" not in stderr and "Traceback" not in stderr
