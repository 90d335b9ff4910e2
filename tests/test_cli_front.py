"""The command line's front door: errors that name the option, help, pipes, the README's table."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from intersect_batch import arguments, cli
from intersect_batch.exitcode import EXIT_STATUSES, ExitCode, status_lines, status_markdown
from tests.support import write_jobs

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run the CLI, expect argparse's exit 2, return stderr's lines."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err.splitlines()


def test_an_unknown_option_shows_its_commands_usage_and_a_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _usage_error(["run", str(tmp_path), "--frsh"], capsys)
    assert lines[0] == (
        "intersect-batch run: error: unrecognized arguments: --frsh; did you mean --fresh?"
    )
    assert lines[1].startswith("usage: intersect-batch run ")
    lines = _usage_error(["list", str(tmp_path), "--jsn"], capsys)
    assert lines[0].endswith("did you mean --json?")
    assert lines[1].startswith("usage: intersect-batch list ")
    # Nothing close: no guess.
    lines = _usage_error(["report", str(tmp_path), "--zzzzzz"], capsys)
    assert lines[0] == "intersect-batch report: error: unrecognized arguments: --zzzzzz"


def test_a_bad_run_date_says_so_on_the_first_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _usage_error(["run", str(tmp_path), "--run-date", "29/11/2026"], capsys)
    assert lines[0] == (
        "intersect-batch run: error: argument --run-date: expected YYYY-MM-DD, got '29/11/2026'"
    )


def test_a_run_date_in_the_future_is_refused_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    write_jobs(tmp_path / "configs", "a.yaml", [{"id": "a", "targets": ["a.example"]}])
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    args = ["run", str(tmp_path / "configs"), "--out", str(tmp_path / "out"),
            "--run-date", tomorrow, "--base-url", "http://127.0.0.1:9/v3",
            "--log-format", "text"]  # fmt: skip
    assert cli.main(args) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"--run-date {tomorrow} is after today" in err and "--allow-future" in err
    # Allowed, the run goes on to the next check (no credentials here).
    assert cli.main([*args, "--allow-future"]) == ExitCode.USAGE
    assert "DATAFORSEO_LOGIN" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_out_and_log_file_that_cannot_be_used_name_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jobs(tmp_path / "configs", "a.yaml", [{"id": "a", "targets": ["a.example"]}])
    a_file = tmp_path / "README.md"
    a_file.write_text("# not a folder\n")
    base = ["run", str(tmp_path / "configs"), "--base-url", "http://127.0.0.1:9/v3",
            "--log-format", "text"]  # fmt: skip
    assert cli.main([*base, "--out", str(a_file)]) == ExitCode.USAGE
    assert f"error: --out {a_file} is a file, not a folder" in capsys.readouterr().err
    out = ["--out", str(tmp_path / "out")]
    cases = {
        str(tmp_path / "configs"): "is a folder, not a file",
        str(a_file / "x.log"): f"{a_file} is a file, not a folder",
    }
    for log_file, why in cases.items():
        assert cli.main([*base, *out, "--log-file", log_file]) == ExitCode.USAGE
        err = capsys.readouterr().err
        assert f"error: --log-file {log_file}" in err and why in err, err
    assert cli.main([*base, *out, "--metrics-file", str(a_file / "m.prom")]) == ExitCode.USAGE
    assert f"error: --metrics-file {a_file / 'm.prom'}: {a_file} is a file" in (
        capsys.readouterr().err
    )
    assert a_file.read_text() == "# not a folder\n"
    assert not (tmp_path / "out").exists()


def test_report_on_a_folder_that_does_not_exist_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "out" / "2026-11-29"
    assert cli.main(["report", str(missing)]) == ExitCode.USAGE
    assert f"error: {missing} does not exist" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly() -> None:
    # `intersect-batch schema | head -1`: the reader is gone before the first write.
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "intersect_batch", "schema"],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write)
    assert result.stderr == ""
    assert result.returncode == 128 + signal.SIGPIPE


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    _, subs = arguments.build_parser()
    return subs


def test_every_command_and_option_says_what_it_does_and_its_default() -> None:
    subs = _subcommands()
    assert set(subs) == {"run", "validate", "list", "status", "report", "schema"}
    for name, parser in subs.items():
        assert parser.description, name
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            takes_value = action.nargs != 0 and action.option_strings
            if (takes_value and action.choices is None) or action.default not in (None, False):
                assert "default:" in action.help, (name, action.option_strings)
    text = subs["run"].format_help()
    for variable in ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD", "AISA_API_KEY"):
        assert variable in text
    statuses = text[text.index("exit status:") :]
    for code in ExitCode:
        assert re.search(rf"^\s+{int(code)}\s+\w", statuses, re.MULTILINE), code


def test_the_readme_lists_every_option_of_run() -> None:
    section = README[README.index("## `intersect-batch run` options") :]
    table = section[: section.index("\n\n", section.index("| option |"))]
    listed = set(re.findall(r"`(--[a-z-]+)", table))
    options = {
        option
        for action in _subcommands()["run"]._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert options - listed == set()
    assert "--version" in listed


def test_the_readme_and_the_help_show_exitcodes_table() -> None:
    section = README[README.index("### Exit status\n\n") :]
    table = section[len("### Exit status\n\n") : section.index("\n\n", len("### Exit status\n\n"))]
    assert table == status_markdown()
    help_text = _subcommands()["run"].format_help()
    assert "\n".join(status_lines()) in help_text
    codes = [code for code, _ in EXIT_STATUSES]
    assert sorted(codes) == sorted(ExitCode)
