"""The exit statuses, what each means, and the one place that decides which a run ends with.

:data:`EXIT_STATUSES` is the table: ``run --help`` prints it (:func:`status_lines`) and
the README's "Exit status" section is its Markdown form (:func:`status_markdown`, which
a test compares with the README).
"""

from __future__ import annotations

import enum
import signal
import textwrap
from collections.abc import Iterable

from intersect_batch.errors import IntersectBatchError, LockError

__all__ = [
    "EXIT_STATUSES",
    "ExitCode",
    "exit_code_for_error",
    "exit_code_for_run",
    "status_lines",
    "status_markdown",
]


class ExitCode(enum.IntEnum):
    """What ``intersect-batch`` exits with (see :data:`EXIT_STATUSES`)."""

    OK = 0
    ATTENTION = 1
    USAGE = 2
    LOCKED = 3
    ACCOUNT = 4
    SIGINT = 128 + signal.SIGINT
    SIGTERM = 128 + signal.SIGTERM
    BROKEN_PIPE = 128 + signal.SIGPIPE


#: Each status and what it means, in the order shown.
EXIT_STATUSES: tuple[tuple[ExitCode, str], ...] = (
    (
        ExitCode.OK,
        "every job this invocation was asked to run is complete (with `--job`, the last "
        "line still names the run date's other jobs that need attention)",
    ),
    (
        ExitCode.ATTENTION,
        "some job failed, is partial (budget, retries exhausted) or has an invalid config",
    ),
    (
        ExitCode.USAGE,
        "nothing could run: bad usage, no valid job config, missing credentials",
    ),
    (
        ExitCode.LOCKED,
        "another run holds the output folder's lock; this run did nothing (a probing "
        "`--dry-run` too)",
    ),
    (
        ExitCode.ACCOUNT,
        "the API refused the account (credentials, funds, daily cost limit) or could not "
        "be reached: the run stopped",
    ),
    (
        ExitCode.SIGINT,
        "interrupted by SIGINT (Ctrl-C), at whatever stage: progress is saved, run the "
        "same command again",
    ),
    (
        ExitCode.BROKEN_PIPE,
        "stdout's reader went away (`intersect-batch schema | head -1`); nothing else is "
        "said (`run` exits with the night's status: its files are the record)",
    ),
    (
        ExitCode.SIGTERM,
        "stopped by SIGTERM, at whatever stage: progress is saved, run the same command again",
    ),
)


def status_lines(width: int = 79) -> list[str]:
    """The table as ``--help`` shows it: each status, then its meaning, wrapped."""
    lines: list[str] = []
    for code, meaning in EXIT_STATUSES:
        wrapped = textwrap.wrap(meaning.replace("`", ""), width=width - 8)
        lines.append(f"  {int(code):<5} {wrapped[0]}")
        lines.extend(f"  {'':5} {rest}" for rest in wrapped[1:])
    return lines


def status_markdown() -> str:
    """The table as the README shows it (Markdown)."""
    rows = ["| status | meaning |", "|---|---|"]
    # A "|" inside a cell, even within backticks, ends the cell unless escaped.
    rows += [
        f"| {int(code)} | " + meaning.replace("|", "\\|") + " |" for code, meaning in EXIT_STATUSES
    ]
    return "\n".join(rows)


def exit_code_for_run(
    *,
    interrupted_by: int | None,
    account_stopped: bool,
    statuses: Iterable[str],
    invalid_configs: int,
) -> ExitCode:
    """The status of a run that got to crawl: a signal first, then the account, then jobs."""
    if interrupted_by is not None:
        return ExitCode(128 + interrupted_by)
    if account_stopped:
        return ExitCode.ACCOUNT
    if invalid_configs or any(status != "complete" for status in statuses):
        return ExitCode.ATTENTION
    return ExitCode.OK


def exit_code_for_error(error: BaseException) -> ExitCode:
    """The status of a run that stopped on an error before or around the crawl."""
    if isinstance(error, LockError):
        return ExitCode.LOCKED
    if isinstance(error, IntersectBatchError):
        return ExitCode.USAGE
    # The output folder itself failed (full, read-only): the run could not do its job.
    return ExitCode.ATTENTION
