"""The exit statuses, and the one place that decides which a run ends with.

====  ==============================================================================
0     every job this run was asked to run is complete
1     some job failed, is partial (budget, retries exhausted, a safety cap) or has an
      invalid config
2     nothing could run: bad usage, no valid job config, missing credentials
3     another run holds the output folder's lock; this run did nothing
4     the API refused the account (credentials, funds, daily cost limit) or could not
      be reached: the run stopped, its progress is saved
130   interrupted by SIGINT (Ctrl-C); progress is saved, re-run to continue
141   stdout's reader went away (a closed pipe: intersect-batch schema | head -1);
      nothing more is said
143   stopped by SIGTERM; progress is saved, re-run to continue
====  ==============================================================================
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterable

from intersect_batch.errors import IntersectBatchError, LockError

__all__ = ["ExitCode", "exit_code_for_error", "exit_code_for_run"]


class ExitCode(enum.IntEnum):
    """What ``intersect-batch`` exits with (see the table above)."""

    OK = 0
    ATTENTION = 1
    USAGE = 2
    LOCKED = 3
    ACCOUNT = 4
    SIGINT = 128 + signal.SIGINT
    SIGTERM = 128 + signal.SIGTERM


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
