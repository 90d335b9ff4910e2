"""The exception tree of intersect-batch.

Every error names what it is about (a file and line, a job, an offset) so that the
person reading it can act on it::

    IntersectBatchError
    ├── UsageError              bad command-line input, missing credentials
    ├── ConfigError             a job config that cannot run (file, job, field, line)
    ├── ApiError                one call's failure, classified (job, offset, codes)
    │   ├── TransientApiError   worth retrying: timeouts, cut-short bodies, 5xx, 40103 ...
    │   │   ├── ThrottledApiError    over the account's limits (40202, 40209, HTTP 429):
    │   │   │                        pause the run, do not spend the page's attempts
    │   │   └── UnreachableApiError  the host cannot be reached at all (refused, DNS,
    │   │                            no route): a streak of them means the run cannot go on
    │   ├── JobFatalApiError    this job cannot go on: 40501, 40506, 40000, oversized answers
    │   └── RunFatalApiError    no job can go on: 40100, 40210, 40203, 40400 ...
    ├── OutputError             the output folder cannot be written
    └── LockError               another run holds the output folder
"""

from __future__ import annotations

import copy
from typing import Self

__all__ = [
    "ApiError",
    "ConfigError",
    "IntersectBatchError",
    "JobFatalApiError",
    "LockError",
    "OutputError",
    "RunFatalApiError",
    "ThrottledApiError",
    "TransientApiError",
    "UnreachableApiError",
    "UsageError",
    "config_place",
    "printable",
]


class IntersectBatchError(Exception):
    """The root of every error this package raises on purpose."""


class UsageError(IntersectBatchError):
    """The command line or the environment asks for something that cannot run."""


class ConfigError(IntersectBatchError):
    """A job config is invalid; says which file, job, field and line."""

    def __init__(
        self,
        message: str,
        *,
        file: str,
        job: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.job = job
        self.field = field
        self.line = line
        super().__init__(self.describe())

    def describe(self) -> str:
        """``file:line: job 'id': field: message``, leaving out what is unknown."""
        return config_place(
            self.message, file=self.file, job=self.job, field=self.field, line=self.line
        )


def printable(text: str) -> str:
    """``text`` with its control and invisible characters escaped (``\\n``, ``\\x1b``).

    A file or folder name may hold a newline or an escape sequence: said raw, it would
    forge a line of the output or drive the terminal.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def config_place(
    message: str, *, file: str, job: str | None, field: str | None, line: int | None
) -> str:
    """``file:line: job 'id': field: message``, leaving out what is unknown."""
    file = printable(file)
    where = file if line is None else f"{file}:{line}"
    parts = [where]
    if job is not None:
        parts.append(f"job {job!r}")
    if field is not None:
        parts.append(field)
    return ": ".join([*parts, message])


class ApiError(IntersectBatchError):
    """One call failed. Carries the job, the offset and the codes the API answered.

    ``maybe_billed`` is True when the request may have reached the API and been billed
    while no decodable answer says what it cost (a timeout after sending, a dropped or
    cut-short body, an undecodable 200): the caller counts it as spent at the worst case.
    It is False when the request never left (a refused connection) and when the API's own
    envelope answered, which states the cost; ``cost`` is then what the answer reported
    (USD), ``None`` when it said nothing.
    """

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        offset: int | None = None,
        http_status: int | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        maybe_billed: bool = False,
        cost: float | None = None,
    ) -> None:
        self.message = message
        self.job_id = job_id
        self.offset = offset
        self.http_status = http_status
        self.status_code = status_code
        self.retry_after = retry_after
        self.maybe_billed = maybe_billed
        self.cost = cost
        super().__init__(self.describe())

    def describe(self) -> str:
        """``job 'id' offset N: [code] message``, leaving out what is unknown."""
        parts: list[str] = []
        if self.job_id is not None:
            parts.append(f"job {self.job_id!r}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        code = self.status_code if self.status_code is not None else self.http_status
        text = self.message if code is None else f"[{code}] {self.message}"
        return ": ".join([" ".join(parts), text]) if parts else text

    def at(self, *, job_id: str, offset: int) -> Self:
        """The same error (same class, every attribute kept), now naming the job and offset."""
        located = copy.copy(self)
        located.job_id, located.offset = job_id, offset
        located.args = (located.describe(),)
        return located


class TransientApiError(ApiError):
    """Worth retrying after a back-off: the same call may succeed later."""

    kind = "transient"


class ThrottledApiError(TransientApiError):
    """The account is over its per-minute or simultaneous limit: the whole run pauses.

    The call is retried once the pause is over, without spending one of the page's
    attempts (the page did nothing wrong).
    """


class UnreachableApiError(TransientApiError):
    """The host could not be reached at all (refused, DNS failure, no route, connect timeout).

    The request never left, so nothing was billed. One is worth a retry; a run-level
    streak of them means the base URL or the network is wrong.
    """


class JobFatalApiError(ApiError):
    """The API rejected this job's request; other jobs can go on."""

    kind = "job_fatal"


class RunFatalApiError(ApiError):
    """The account cannot make calls now (auth, money, limits): stop the run."""

    kind = "run_fatal"


class OutputError(IntersectBatchError):
    """A job's output could not be written (disk full, permissions)."""


class LockError(IntersectBatchError):
    """Another run holds the lock on the output folder."""
