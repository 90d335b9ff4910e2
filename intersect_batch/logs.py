"""Logging for people (text) and for machines (one JSON object per line)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

import msgspec
from rich.console import Console

from intersect_batch.errors import printable
from intersect_batch.scrub import Scrubber, ScrubbingFilter

__all__ = [
    "ALWAYS",
    "ConsoleHandler",
    "JsonFormatter",
    "TerminalNoise",
    "TextFormatter",
    "close_logging",
    "configure_logging",
    "scrubbed_logs",
]

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()) | {
    "message",
    "asctime",
    "taskName",
}

_encoder = msgspec.json.Encoder()

#: An extra that writes a record whatever ``--log-level`` says: ``run finished`` closes
#: every log (``extra={ALWAYS: True}``).
ALWAYS = "_always"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    # A leading underscore marks a hint for the handlers (see TerminalNoise), not a field.
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, message, and every extra (job, offset...)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level message key=value ...``, for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        # A folder or a job's name may hold a newline or an escape sequence: escaped, it
        # cannot forge a line of the log or drive the terminal.
        extras = " ".join(printable(f"{k}={v}") for k, v in _extras(record).items())
        text = f"{when} {record.levelname.lower():7} {record.getMessage()}"
        if extras:
            text = f"{text}  {extras}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


class TerminalNoise(logging.Filter):
    """Keeps off a terminal with progress bars what the bars and the summary table say.

    Every finished job (the table lists it), a first night's "no earlier complete run"
    (nothing to compare is the normal case then), the closing ``run finished`` record (the
    last line says it), and the records the progress display shows itself (marked
    ``_shown_by_progress``). The JSON log and ``--log-file`` keep them all.
    """

    QUIET = frozenset({"job complete", "job already complete: skipped", "run finished"})

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_shown_by_progress", False):
            return False
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return message not in self.QUIET and message != "diff: no earlier complete run"


class _LevelOrAlways(logging.Filter):
    """Lets through records at ``level`` or above, and those marked :data:`ALWAYS`."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or bool(getattr(record, ALWAYS, False))


def _not_file_only(record: logging.LogRecord) -> bool:
    """Keeps off stderr a record already said there another way (marked ``_file_only``)."""
    return not getattr(record, "_file_only", False)


class ConsoleHandler(logging.Handler):
    """Prints records through a rich Console, so they scroll above its live progress bars."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), markup=False, highlight=False)
        except Exception:  # a broken terminal must not stop the crawl
            self.handleError(record)


def configure_logging(
    *,
    level: str = "info",
    fmt: Literal["text", "json"] | None = None,
    log_file: Path | None = None,
    stream: TextIO | None = None,
    console: Console | None = None,
    quiet: bool = False,
) -> None:
    """Send the package's records to stderr (and a file); JSON unless stderr is a TTY.

    ``quiet``: nothing to stderr, only to the file. Whatever the ``level``, a record
    marked :data:`ALWAYS` (``run finished``) is written.

    With a ``console`` (a terminal showing progress bars), records go through it, less
    what the bars and the summary table show (:class:`TerminalNoise`). The log file's
    folder is created; an ``OSError`` says why the file cannot be opened for appending.
    """
    stream = stream or sys.stderr
    if fmt is None:
        fmt = "text" if stream.isatty() else "json"
    formatter: logging.Formatter = TextFormatter() if fmt == "text" else JsonFormatter()
    file_handler = None
    if log_file is not None:
        # Opened first: a file that cannot be opened leaves the logging as it was.
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
    logger = logging.getLogger("intersect_batch")
    close_logging()
    wanted = logging.getLevelName(level.upper())
    # The logger lets info through (the closing record is info); each handler keeps to
    # the level asked for, less what is marked ALWAYS.
    logger.setLevel(min(wanted, logging.INFO))
    logger.propagate = False
    by_level = _LevelOrAlways(wanted)
    if not quiet:
        handler: logging.Handler
        if console is not None:
            handler = ConsoleHandler(console)
            handler.addFilter(TerminalNoise())
        else:
            handler = logging.StreamHandler(stream)
        handler.addFilter(by_level)
        handler.addFilter(_not_file_only)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    else:
        # Without any handler, logging would print warnings to stderr itself.
        logger.addHandler(logging.NullHandler())
    if file_handler is not None:
        file_handler.addFilter(by_level)
        file_handler.setFormatter(JsonFormatter())
        logger.addHandler(file_handler)


def close_logging() -> None:
    """Detach and close the handlers :func:`configure_logging` added."""
    logger = logging.getLogger("intersect_batch")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def scrubbed_logs(scrubber: Scrubber) -> Iterator[None]:
    """While inside, every record the package's handlers write is scrubbed of secrets.

    The last line of defence: texts from outside are scrubbed where they enter, and this
    catches what a record carries anyway (an exception string, an extra).
    """
    logger = logging.getLogger("intersect_batch")
    scrubbing = ScrubbingFilter(scrubber)
    handlers = list(logger.handlers)
    for handler in handlers:
        handler.addFilter(scrubbing)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(scrubbing)
