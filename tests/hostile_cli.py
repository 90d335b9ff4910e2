"""The command line as a hostile night meets it: a subprocess, bounded, measured, searched.

:func:`run_cli` starts ``python -m intersect_batch ...`` in a session of its own, under a
small measuring parent, and returns a :class:`CliRun`: exit status, stdout, stderr, and
the peak RSS of the command (``ru_maxrss`` of the parent's children: the parent is a
fresh, small interpreter, so the figure is the command's own). A command that outlives
its time is killed with its whole session and the test fails: time is bounded, never
measured.

Settings the command line has no flag for (the whole-call deadline, the run's safety cap
on calls, the back-off) are handed in as ``overrides``: the real ``cli.main`` then runs
with those defaults changed, and nothing else.

:func:`secret_forms` lists every way a password can be written out (raw, in Basic auth's
base64, URL-encoded, JSON-escaped); :func:`assert_nothing_leaked` searches stdout,
stderr and every file under the given paths for each of them.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# The parent: runs the command, then reports its status and its peak RSS in a file.
_MEASURE = """
import json, resource, subprocess, sys
report, nofile, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def lower_nofile():
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

status = subprocess.call(command, preexec_fn=lower_nofile)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(report, "w") as handle:
    json.dump({"status": status, "peak_mb": peak_kb / 1024}, handle)
"""

# The command line with some defaults changed: the settings classes it reads are
# replaced, in the modules that read them (the options' defaults, the settings they
# build), by the same classes with other defaults.
_WITH_DEFAULTS = """
import functools, json, sys
import intersect_batch.cli as cli
from intersect_batch import arguments, command, settings

for name, values in json.loads(sys.argv[1]).items():
    for module in (arguments, command):
        if hasattr(module, name):
            setattr(module, name, functools.partial(getattr(settings, name), **values))
sys.exit(cli.main(sys.argv[2:]))
"""


@dataclass(frozen=True)
class CliRun:
    """What one command left for its caller: status, output, peak memory."""

    returncode: int
    stdout: str
    stderr: str
    peak_mb: float

    def records(self) -> list[dict[str, Any]]:
        """stderr's JSON log records (the command runs without a terminal)."""
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    def messages(self) -> list[str]:
        """The ``message`` of every log record, in order."""
        return [str(record["message"]) for record in self.records()]


def command(*args: str, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """``python -m intersect_batch ARGS``, or the same ``cli.main`` with other defaults.

    ``overrides`` maps a class of :mod:`intersect_batch.settings` the CLI builds
    (``Timeouts``, ``RunSettings``, ``RetryPolicy``) to the defaults to change, e.g.
    ``{"Timeouts": {"deadline": 3.0}}``; the CLI's own flags still win.
    """
    if not overrides:
        return [sys.executable, "-m", "intersect_batch", *args]
    return [sys.executable, "-c", _WITH_DEFAULTS, json.dumps(overrides), *args]


def run_cli(
    argv: list[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    workdir: Path,
    nofile: int = 0,
    umask: int = -1,
) -> CliRun:
    """Run ``argv`` to its end (at most ``timeout`` seconds) and measure its peak RSS.

    ``nofile``: RLIMIT_NOFILE (soft and hard) of the command, 0 to keep the test's.
    ``umask``: the command's umask, -1 to keep the test's. The command's stdin is empty
    and not a terminal.
    """
    handle, name = tempfile.mkstemp(prefix="measure-", suffix=".json", dir=workdir)
    os.close(handle)
    report = Path(name)
    process = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, str(report), str(nofile), *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        umask=umask,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"the command did not end within {timeout:g} s: {argv[3:]}\n"
            + stderr.decode(errors="replace")[-3000:]
        ) from None
    measured = json.loads(report.read_text())
    report.unlink()
    return CliRun(
        returncode=int(measured["status"]),
        stdout=stdout.decode(errors="replace"),
        stderr=stderr.decode(errors="replace"),
        peak_mb=float(measured["peak_mb"]),
    )


def secret_forms(login: str, password: str) -> list[str]:
    """Every way ``password`` could be written out: raw, base64, URL-encoded, JSON-escaped."""
    pair = f"{login}:{password}"
    forms = {
        password,
        base64.b64encode(pair.encode()).decode(),
        urllib.parse.quote(pair, safe=""),
        urllib.parse.quote(password, safe=""),
        urllib.parse.quote_plus(password, safe=""),
        json.dumps(password)[1:-1],
        json.dumps(password, ensure_ascii=False)[1:-1],
    }
    return sorted(forms)


def files_under(paths: Iterable[Path]) -> list[Path]:
    """Every regular file at or under ``paths`` (symlinks not followed)."""
    found: list[Path] = []
    for path in paths:
        if path.is_symlink():
            continue
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and not p.is_symlink())
    return found


def assert_nothing_leaked(run: CliRun, paths: Iterable[Path], forbidden: Iterable[str]) -> None:
    """No traceback; none of ``forbidden`` in stdout, stderr or any file under ``paths``."""
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    words = [word for word in forbidden if word]
    assert words
    for word in words:
        assert word not in run.stdout, f"{word!r} in stdout"
        assert word not in run.stderr, f"{word!r} in stderr"
    files = files_under(paths)
    assert files, "the run wrote no file to search"
    for path in files:
        data = path.read_bytes()
        for word in words:
            assert word.encode() not in data, f"{word!r} in {path}"
