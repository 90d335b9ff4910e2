"""Hostile configs, output folders and environments, end to end through the command line.

Every run is ``python -m intersect_batch`` in a subprocess (credentials from the
environment), bounded in time; where memory is the point, its peak RSS is measured. What
is checked is what a person would find: exit statuses, messages on stderr, the files of
the run, and files outside it that must be left exactly as they were.
"""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.config import ConfigLimits
from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from tests.hostile_cli import (
    CliRun,
    assert_nothing_leaked,
    command,
    run_cli,
    secret_forms,
)
from tests.support import (
    RUN_DATE,
    EmulatorProcess,
    cli_run,
    emulator_process,
    read_lines,
    write_jobs,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's /proc"),
]

LOGIN = "ops@night.example"
PASSWORD = 'Pw/7"x+Q=&k\\9zR'
ENV = {"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}
FORMS = secret_forms(LOGIN, PASSWORD)
SIZES = {
    "alpha.example": 300,
    "beta.example": 300,
    "spool.example": 300,
}


def _job(job_id: str, target: str, page_size: int = 100) -> dict[str, Any]:
    return {"id": job_id, "targets": [target, "b.example"], "page_size": page_size}


GOOD = [_job("alpha", "alpha.example"), _job("beta", "beta.example")]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    root = tmp_path_factory.mktemp("emulator")
    args = [
        "--login", LOGIN, "--password", PASSWORD, "--max-concurrent", "100",
        # The spool test's first run: page 1 fails a second late, page 2 is on disk by then.
        "--fault-at", "100=timeout:1@spool.example", "--timeout-delay", "1",
    ]  # fmt: skip
    with emulator_process(root, SIZES, *args) as process:
        yield process


def _run(argv: list[str], tmp_path: Path, *, timeout: float = 30, **options: Any) -> CliRun:
    """Run a command; whatever it did, it printed no traceback and no form of the password."""
    run = run_cli(argv, env=ENV, timeout=timeout, workdir=tmp_path, **options)
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    for form in FORMS:
        assert form not in run.stdout + run.stderr, form
    return run


def _statuses(out: Path) -> dict[str, str]:
    summary = json.loads(RunFolder(out, RUN_DATE).run_json.read_text())
    return {line["job_id"]: line["status"] for line in summary["jobs"]}


# -- configs --------------------------------------------------------------------------------


def _alias_bomb() -> str:
    """Nine lines of aliases inside one job's filters: a billion values once expanded."""
    lines = ["jobs:", "  - id: bomb", "    targets: [bomb.example]", "    filters:"]
    lines.append('      - &a0 ["1.rank", ">", 1]')
    lines += [f"      - &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_and_yaml_nested_1000_deep_name_their_file_and_the_rest_runs(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "good.yaml", GOOD)
    (configs / "bomb.yaml").write_text(_alias_bomb())
    deep = "[" * 1000 + "]" * 1000
    (configs / "deep.yaml").write_text(
        f"jobs:\n  - id: deep\n    targets: [d.example]\n    filters: {deep}\n"
    )
    checked = _run(command("validate", str(configs)), tmp_path)
    run = _run(cli_run(configs, out, emulator), tmp_path)
    for result in (checked, run):
        assert result.returncode == ExitCode.ATTENTION, result.stderr[-3000:]
        assert "bomb.yaml:5: YAML anchors and aliases" in result.stderr
        assert "deep.yaml:4: lists and mappings nested more than 32 levels deep" in result.stderr
        assert result.peak_mb < 150, result.peak_mb
    assert checked.stdout.strip() == "2 valid job(s) in 3 file(s), 2 error(s)"
    assert _statuses(out) == {
        "alpha": "complete",
        "beta": "complete",
        str(configs / "bomb.yaml"): "invalid",
        str(configs / "deep.yaml"): "invalid",
    }


SHADOW = (
    "root:$6$Zq8sSecretHashXy$Qw3rTyUi0pAsDfGhJkL:19000:0:99999:7:::\n"
    "daemon:*:19000:0:99999:7:::\n"
    "opsadmin-Kx81:$y$j9T$Vb7nMsecondHash:19100:0:99999:7:::\n"
)
SHADOW_WORDS = ("Zq8sSecretHash", "Qw3rTyUi0pAsDfGhJkL", "opsadmin-Kx81", "Vb7nMsecondHash")


def test_a_config_linked_to_a_secret_file_never_shows_it_and_files_follow_the_umask(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    secret = tmp_path / "etc" / "shadow"
    secret.parent.mkdir()
    secret.write_text(SHADOW)
    secret.chmod(0o600)
    configs, out, log = tmp_path / "configs", tmp_path / "night" / "out", tmp_path / "night.log"
    write_jobs(configs, "good.yaml", GOOD)
    (configs / "shadow.yaml").symlink_to(secret)
    checked = _run(command("validate", str(configs)), tmp_path)
    run = _run(
        cli_run(configs, out, emulator, "--log-file", str(log), "--report"), tmp_path, umask=0o077
    )
    assert checked.returncode == run.returncode == ExitCode.ATTENTION
    for result in (checked, run):
        assert "configs/shadow.yaml:1: an unknown top-level key" in result.stderr
        assert_nothing_leaked(result, [out, log], [*SHADOW_WORDS, *FORMS])
    assert _statuses(out)["alpha"] == "complete"
    # Created under umask 077: nothing the run made is open to the group or others.
    run_json = RunFolder(out, RUN_DATE).run_json
    assert stat.S_IMODE(run_json.stat().st_mode) == 0o600
    assert stat.S_IMODE(RunFolder(out, RUN_DATE).path.stat().st_mode) == 0o700
    made = [out, *out.rglob("*"), log]
    assert len(made) > 8
    for path in made:
        assert stat.S_IMODE(path.lstat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text() == SHADOW


def _write_41_mb_file(folder: Path) -> Path:
    path = folder / "big.yaml"
    with path.open("w") as handle:
        handle.write("jobs:\n")
        n = 0
        while handle.tell() <= 41 * 2**20:
            handle.writelines(
                f"  - {{id: big-{k}, targets: [t{k}.example]}}\n" for k in range(n, n + 1000)
            )
            n += 1000
    return path


def _write_700000_jobs(folder: Path) -> None:
    # Fourteen files of 50,001 jobs: the first alone passes the folder's job limit.
    per_file = ConfigLimits().max_jobs + 1
    for part in range(14):
        with (folder / f"part{part:02}.yaml").open("w") as handle:
            handle.write("jobs:\n")
            first = part * per_file
            handle.writelines(
                f"- {{id: m{n}, targets: [t.com]}}\n" for n in range(first, first + per_file)
            )


@pytest.mark.parametrize("kind", ["41 MB file", "700,000 jobs"])
def test_a_config_over_the_limits_is_refused_in_seconds_naming_file_and_limit(
    tmp_path: Path, emulator: EmulatorProcess, kind: str
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    configs.mkdir()
    if kind == "41 MB file":
        write_jobs(configs, "good.yaml", GOOD)
        _write_41_mb_file(configs)
        expected = (
            "configs/big.yaml: the file is 41.0 MiB; the limit is 8.0 MiB per file "
            "(ConfigLimits.max_file_bytes)"
        )
    else:
        _write_700000_jobs(configs)
        expected = (
            "configs/part00.yaml:1: jobs: this file's 50,001 jobs bring the folder to 50,001 "
            "jobs, over the limit of 50,000 (ConfigLimits.max_jobs); no job of the folder was "
            "loaded"
        )
    run = _run(cli_run(configs, out, emulator), tmp_path)
    assert expected in run.stderr, run.stderr[-2000:]
    # Parsing holds one file's values at once, bounded by ConfigLimits.max_values.
    assert run.peak_mb < 300, run.peak_mb
    if kind == "41 MB file":
        assert run.returncode == ExitCode.ATTENTION
        assert _statuses(out) == {
            "alpha": "complete",
            "beta": "complete",
            str(configs / "big.yaml"): "invalid",
        }
    else:
        # No job loads: nothing runs, nothing is written.
        assert run.returncode == ExitCode.USAGE
        assert "no valid job in" in run.stderr
        assert not out.exists()


# -- the output folder ----------------------------------------------------------------------

PLANTS = {
    "the lock file": [".intersect-batch.lock"],
    "temporary files": [
        f"{RUN_DATE.isoformat()}/.run.json.tmp",
        f"{RUN_DATE.isoformat()}/.alpha.manifest.json.tmp",
    ],
    "the state folder": [f"{RUN_DATE.isoformat()}/.state"],
    "the run-date folder": [RUN_DATE.isoformat()],
}


def _victim(root: Path) -> Path:
    """A folder of someone else's files, named like the ones a run writes."""
    victim = root / "victim"
    victim.mkdir()
    for name in ("notes.txt", "alpha.part", "alpha.checkpoint.json", "run.json", "2.jsonl"):
        (victim / name).write_text(f"precious {name}\n")
    return victim


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Each file of ``folder``: its mode and its bytes."""
    return {p.name: (p.stat().st_mode, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_symlink_planted_in_the_output_folder_is_never_written_through(
    tmp_path: Path, emulator: EmulatorProcess, plant: str
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", GOOD)
    victim = _victim(tmp_path)
    before = _snapshot(victim)
    links = [out / name for name in PLANTS[plant]]
    for link in links:
        link.parent.mkdir(parents=True, exist_ok=True)
        # A file where a file is expected, the folder where a folder is.
        link.symlink_to(victim if plant.endswith("folder") else victim / "run.json")
    calls_before = len(emulator.calls())
    run = _run(cli_run(configs, out, emulator), tmp_path)
    assert _snapshot(victim) == before, run.stderr[-2000:]
    if plant == "temporary files":
        # Worked around: each link is removed, never followed.
        assert run.returncode == ExitCode.OK, run.stderr[-2000:]
        assert _statuses(out) == {"alpha": "complete", "beta": "complete"}
        assert not any(link.is_symlink() for link in links)
        assert_nothing_leaked(run, [out], FORMS)
    else:
        # Refused before any call, saying which path is a symlink.
        assert run.returncode == ExitCode.USAGE, run.stderr[-2000:]
        assert "is a symlink" in run.stderr
        assert len(emulator.calls()) == calls_before
        assert links[0].is_symlink()


def test_a_run_date_folder_shared_by_two_output_folders_is_refused(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs = tmp_path / "configs"
    write_jobs(configs, "jobs.yaml", GOOD)
    first = _run(cli_run(configs, tmp_path / "out-a", emulator), tmp_path)
    assert first.returncode == ExitCode.OK
    shared = RunFolder(tmp_path / "out-a", RUN_DATE).path
    before = _snapshot(shared)
    (tmp_path / "out-b").mkdir()
    RunFolder(tmp_path / "out-b", RUN_DATE).path.symlink_to(shared)
    second = _run(cli_run(configs, tmp_path / "out-b", emulator, "--fresh"), tmp_path)
    assert second.returncode == ExitCode.USAGE
    assert "the run folder is a symlink" in second.stderr
    assert _snapshot(shared) == before


def test_a_spool_folder_planted_as_a_symlink_is_neither_read_nor_emptied(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", [_job("spool", "spool.example")])
    first = _run(cli_run(configs, out, emulator, "--attempts", "1"), tmp_path)
    assert first.returncode == ExitCode.ATTENTION, first.stderr[-2000:]
    folder = RunFolder(out, RUN_DATE)
    spool = folder.spool("spool")
    waiting = spool / "2.jsonl"  # page 2 came before page 1, which failed
    assert waiting.is_file()
    # Someone else's folder in the spool's place, with a file of the very size the
    # checkpoint vouches for: foreign items, if the run were to take them.
    victim = _victim(tmp_path)
    line = b'{"url_from":"https://victim.example/","pad":"'
    size = waiting.stat().st_size
    (victim / "2.jsonl").write_bytes(line + b"x" * (size - len(line) - 3) + b'"}\n')
    shutil.rmtree(spool)
    spool.symlink_to(victim)
    before = _snapshot(victim)
    second = _run(cli_run(configs, out, emulator), tmp_path)
    assert second.returncode == ExitCode.OK, second.stderr[-2000:]
    assert _snapshot(victim) == before
    assert len(read_lines(folder.result("spool"))) == 300
    assert_nothing_leaked(second, [out], [*FORMS, "victim.example"])


# -- the environment ------------------------------------------------------------------------


def test_a_base_url_holding_a_password_is_a_usage_error_that_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", GOOD)
    url = "http://user:S3cr3t-in-the-url@127.0.0.1:1/v3"
    run = _run(command("run", str(configs), "--out", str(out), "--base-url", url), tmp_path)
    assert run.returncode == ExitCode.USAGE
    assert "--base-url must not hold credentials (user:password@)" in run.stderr
    assert "S3cr3t-in-the-url" not in run.stdout + run.stderr
    assert not out.exists()


def test_a_concurrency_over_the_open_file_limit_is_lowered_with_a_warning(
    tmp_path: Path,
) -> None:
    configs, out = tmp_path / "configs", tmp_path / "out"
    jobs = [_job(f"wide-{n}", f"wide{n}.example", 20) for n in range(6)]
    write_jobs(configs, "jobs.yaml", jobs)
    sizes = {f"wide{n}.example": 400 for n in range(6)}
    # Slow answers and no rate to speak of: every slot is taken at once. Without the
    # fit, a hundred open files make most calls fail with EMFILE ("Too many open files").
    args = ["--login", LOGIN, "--password", PASSWORD, "--latency-median", "0.3"]
    with emulator_process(tmp_path, sizes, *args, "--max-concurrent", "500") as emulator:
        argv = cli_run(
            configs, out, emulator, "--concurrency", "200", "--rate-per-minute", "100000"
        )
        run = _run(argv, tmp_path, nofile=100)
    assert run.returncode == ExitCode.OK, run.stderr[-3000:]
    assert "Too many open files" not in run.stderr
    assert (
        "--concurrency 200 needs about 264 open files and ulimit -n allows 100: using 36 "
        "(raise the limit with ulimit -n)"
    ) in run.messages()
    summary = json.loads(RunFolder(out, RUN_DATE).run_json.read_text())
    assert summary["settings"]["limits"]["concurrency"] == 36
    assert summary["night"]["jobs_by_status"] == {"complete": 6}
    assert summary["night"]["items"] == 2400
    assert_nothing_leaked(run, [out], FORMS)
