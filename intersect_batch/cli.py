"""``intersect-batch``: the command line, a thin shell over the library.

It parses (:mod:`intersect_batch.arguments`), makes one library call per command, and
prints. What it adds to :func:`~intersect_batch.runner.run_batch` is what a person or
cron meets: usage errors that name the option (exit 2), progress bars or JSON logs, the
summary table, the one last line, a ``run finished`` record that closes every log, and
SIGINT / SIGTERM at any stage ending in 130 / 143 without a traceback. A closed or full
stdout or stderr changes none of that: the files are the run's record.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TextIO

import anyio
import msgspec
from rich.console import Console

from intersect_batch.account import AccountCheckError
from intersect_batch.arguments import parse
from intersect_batch.closing import finished_record, interrupted_line
from intersect_batch.command import RunCommand, check_run, run_command
from intersect_batch.config import job_file_schema, load_jobs
from intersect_batch.errors import IntersectBatchError, UsageError, printable
from intersect_batch.estimate import DryRun, dry_run
from intersect_batch.exitcode import ExitCode, exit_code_for_error
from intersect_batch.interrupts import Interrupts
from intersect_batch.layout import run_date_of
from intersect_batch.listing import list_jobs
from intersect_batch.logs import ALWAYS, close_logging, configure_logging
from intersect_batch.manifest import RunSummary
from intersect_batch.nights import collect_status, render_status
from intersect_batch.preflight import check_account
from intersect_batch.progress import RichProgress
from intersect_batch.report import write_report
from intersect_batch.runfile import file_state, record_ending
from intersect_batch.runner import RunOutcome, run_batch
from intersect_batch.stop import CrawlControl
from intersect_batch.summary import attention_lines, summary_table
from intersect_batch.tally import LogProgress

__all__ = ["main"]

log = logging.getLogger("intersect_batch")


# -- commands but run -------------------------------------------------------------------------


def _validate(config_dir: Path) -> int:
    loaded = load_jobs(config_dir)
    for error in loaded.errors:
        print(f"error: {error.describe()}", file=sys.stderr)
    # Warnings are about jobs that run as written: they never change the exit status.
    for warning in loaded.warnings:
        print(f"warning: {warning.describe()}", file=sys.stderr)
    print(
        f"{len(loaded.jobs)} valid job(s) in {len(loaded.files)} file(s), "
        f"{len(loaded.errors)} error(s)"
        + (f", {len(loaded.warnings)} warning(s)" if loaded.warnings else "")
    )
    if not loaded.files:
        return ExitCode.USAGE
    return ExitCode.ATTENTION if loaded.errors else ExitCode.OK


def _list(args: argparse.Namespace) -> int:
    listing = list_jobs(args.config_dir, args.out, ids=args.job, patterns=args.match)
    for error in listing.loaded.errors:
        print(f"error: {error.describe()}", file=sys.stderr)
    if not listing.loaded.files:
        return ExitCode.USAGE
    for row in listing.jobs:
        if args.json:
            print(msgspec.json.encode(row).decode())
            continue
        pages = "?" if row.estimated_pages is None else str(row.estimated_pages)
        gap = f"  not: {', '.join(row.exclude_targets)}" if row.exclude_targets else ""
        print(f"{row.id:32} pages {pages:>6}  {row.file}\n    {', '.join(row.targets)}{gap}")
    return ExitCode.ATTENTION if listing.loaded.errors else ExitCode.OK


def _report(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if not run_dir.exists():
        raise UsageError(f"{run_dir} does not exist (a run folder is OUT/YYYY-MM-DD)")
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is a file, not a run folder")
    path = write_report(run_dir, history=args.history, top=args.top)
    print(f"report: {path}")
    return ExitCode.OK


def _status(args: argparse.Namespace) -> int:
    out: Path = args.out
    if not out.is_dir():
        raise UsageError(f"--out {out} is not a folder (the output folder of 'run')")
    if run_date_of(out) is not None:
        raise UsageError(f"--out {out} is one night's folder: give the folder above it")
    status = collect_status(out, nights=args.nights)
    print(msgspec.json.encode(status).decode() if args.json else render_status(status))
    return ExitCode.OK


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _print_dry_run(result: DryRun) -> None:
    if result.credentials_refused is not None:
        # Nothing could be estimated: no table, no bounds, one line that says why.
        print(f"credentials refused: {result.credentials_refused}")
        return

    def money(value: float | None) -> str:
        return "?" if value is None else f"{value:.4f}"

    rows: list[tuple[list[str], str | None]] = []
    for item in result.jobs:
        if item.calls is not None:
            calls, cost = str(item.calls), money(item.cost_usd)
        else:
            top = "?" if item.calls_max is None else str(item.calls_max)
            calls, cost = (
                f"{item.calls_min}-{top}",
                f"{money(item.cost_min_usd)}-" + money(item.cost_max_usd),
            )
        total = "" if item.total_count is None else str(item.total_count)
        rows.append(([item.job_id, item.source, total, calls, cost], item.error))
    # Each column as wide as its widest cell: long ids and bounds keep the table aligned.
    heading = ["job", "source", "total", "calls", "cost USD"]
    widths = [max(len(cells[i]) for cells in [heading] + [r for r, _ in rows]) for i in range(5)]
    for cells, error in [(heading, None), *rows]:
        texts = [cell.ljust(width) for cell, width in zip(cells[:2], widths, strict=False)]
        figures = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True)]
        print("  ".join(texts + figures))
        if error:
            print(f"  error: {error}")
    if result.calls is not None:
        print(f"total: {_plural(result.calls, 'call')}, {money(result.cost_usd)} USD")
    else:
        top = "?" if result.calls_max is None else str(result.calls_max)
        print(
            f"total: {result.calls_min}-{top} calls, "
            f"{money(result.cost_min_usd)}-{money(result.cost_max_usd)} USD (bounds)"
        )
    if result.budget_stop is not None:
        names = ", ".join(result.not_probed[:5])
        more = f" and {len(result.not_probed) - 5} more" if len(result.not_probed) > 5 else ""
        print(f"{result.budget_stop}: not probed: {names}{more}")
    if result.budget_usd is not None:
        left = max(0.0, result.budget_usd - result.night_spent_usd)
        print(
            f"the night's budget: {result.night_spent_usd:.4f} of {result.budget_usd} USD "
            f"spent, this dry run included; {left:.4f} USD left"
        )
        if result.cost_min_usd > left + 1e-9:
            print("the run needs more than is left: it would stop at the budget, jobs partial")
    if result.probe_calls:
        print(
            f"the dry run spent {result.probe_cost_usd:.4f} USD on "
            f"{_plural(result.probe_calls, 'probe call')} (limit 1), counted in the night's "
            "spend"
        )
    else:
        print("the dry run spent nothing")


# -- run ----------------------------------------------------------------------------------


class _Session:
    """One ``run`` command: where its records go, and how it ends."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.time()
        self.console: Console | None = None
        self.logging = False
        self.json_stderr = False
        self.metrics_file: Path | None = None
        #: What the account check said before the night (see preflight.check_account).
        self.notes: list[str] = []
        #: The error that ended the run, for ``--json``'s one object on stdout.
        self.failure: str | None = None

    # -- the logs --

    def configure_logging(self) -> None:
        args = self.args
        on_terminal = _isatty(sys.stderr)
        terminal = on_terminal and not args.no_progress and not args.dry_run and not args.quiet
        fmt: Literal["text", "json"] = args.log_format or ("text" if on_terminal else "json")
        console = Console(stderr=True) if terminal and fmt == "text" else None
        try:
            configure_logging(
                level=args.log_level,
                fmt=fmt,
                log_file=args.log_file,
                console=console,
                quiet=args.quiet,
            )
        except OSError as exc:
            raise UsageError(f"--log-file {args.log_file}: {exc.strerror or exc}") from None
        self.console = console if terminal else None
        self.logging = True
        self.json_stderr = fmt == "json"

    def error(self, message: str) -> None:
        """An error for the person (stderr) and for the log."""
        message = printable(message)
        self.failure = message
        if self.logging and self.json_stderr and not self.args.quiet:
            log.error("%s", message)
            return
        _say(f"error: {message}", to_stderr=True)
        if self.logging:
            log.error("%s", message, extra={"_file_only": True})

    # -- the end --

    def finish(
        self, exit_code: int, summary: RunSummary | None = None, line: str | None = None
    ) -> int:
        """Close every log with ``run finished``: the status, the totals, the last line.

        With ``--json``, a run that ended on an error before run.json prints that error
        to stdout as one object (``{"error": ..., "exit_code": ...}``), never nothing.
        """
        if self.args.json and summary is None and self.failure is not None:
            error = {"error": self.failure, "exit_code": int(exit_code)}
            _say(msgspec.json.encode(error).decode(), to_stderr=False)
        if self.logging:
            # Written whatever --log-level says: every log ends with it.
            record = finished_record(exit_code, summary, line)
            log.info("run finished", extra={**record, ALWAYS: True})
            close_logging()
        return exit_code

    def ended_early(self, exit_code: int) -> int:
        """A run that ended before run.json: its metrics (if asked), then the logs closed."""
        record_ending(exit_code, started=self.started, metrics_file=self.metrics_file)
        return self.finish(exit_code)


async def _crawl(
    command: RunCommand, session: _Session, interrupts: Interrupts
) -> RunOutcome | None:
    """The run, or None when a signal stopped it outside the crawl."""
    control = CrawlControl()

    async def run(observer: LogProgress | RichProgress) -> RunOutcome:
        return await run_batch(
            command.config_dir,
            provider=command.provider,
            environ=command.environ,
            settings=command.settings,
            options=command.options,
            observer=observer,
            control=control,
        )

    outcome = None
    with anyio.CancelScope() as scope, interrupts.cancelling(scope, control):
        if session.console is not None:
            with RichProgress(session.console) as progress:
                outcome = await run(progress)
        else:
            outcome = await run(LogProgress(session.args.progress_interval))
    return outcome


def _run(args: argparse.Namespace) -> int:
    session = _Session(args)
    try:
        session.metrics_file = check_run(args)
        session.configure_logging()
        command = run_command(args)
    except UsageError as exc:
        session.error(str(exc))
        return session.ended_early(ExitCode.USAGE)
    if args.dry_run:
        try:
            return session.finish(anyio.run(_dry_run, args, command))
        except IntersectBatchError as exc:
            session.error(str(exc))
            return session.finish(exit_code_for_error(exc))
    try:
        session.notes = anyio.run(
            functools.partial(check_account, command, require_balance=args.require_balance)
        )
    except AccountCheckError as exc:
        session.error(str(exc))
        return session.ended_early(ExitCode.ACCOUNT)
    folder = command.settings.folder
    before = file_state(folder.run_json)
    interrupts = Interrupts(grace=args.grace)
    with interrupts.installed():
        try:
            outcome = anyio.run(_crawl, command, session, interrupts)
        except IntersectBatchError as exc:
            session.error(str(exc))
            return session.ended_early(exit_code_for_error(exc))
        except OSError as exc:
            # The output folder itself failed (full, read-only): say so, without a traceback.
            where = f" ({exc.filename})" if exc.filename else ""
            session.error(f"{exc.strerror or exc}{where}")
            return session.ended_early(exit_code_for_error(exc))
        if outcome is None or interrupts.signum is not None:
            # Stopped outside the crawl, or asked to stop while its last step finished.
            signum = interrupts.signum or signal.SIGINT
            return _end_interrupted(session, command, before, signum)
        return _end(session, outcome)


def _end(session: _Session, outcome: RunOutcome) -> int:
    """Print the summary and the last line; the run already wrote run.json and metrics."""
    args = session.args
    summary = outcome.summary
    *details, last = [printable(line) for line in outcome.message.splitlines()] or [""]
    if args.json and summary is not None:
        _say(msgspec.json.encode(summary).decode(), to_stderr=False)
    elif summary is not None and _isatty(sys.stdout) and not args.quiet:
        _print_table(summary)
    # With --json, stdout holds the JSON alone; with JSON logs, the last line rides in
    # the closing record (stderr stays one JSON object a line).
    to_stderr = bool(args.json)
    if args.quiet:
        # Cron mails what is printed: the last line, and what failed when something did
        # (the account check's warnings included).
        if outcome.exit_code != ExitCode.OK or session.notes:
            failed = attention_lines(summary) if summary is not None else []
            for text in (*session.notes, *details, *failed, last):
                _say(text, to_stderr=to_stderr)
        elif not to_stderr:
            _say(last, to_stderr=False)
    elif not (to_stderr and session.json_stderr):
        for text in (*details, last):
            _say(text, to_stderr=to_stderr)
    return session.finish(outcome.exit_code, summary, line=last)


def _end_interrupted(
    session: _Session, command: RunCommand, before: tuple[int, int] | None, signum: int
) -> int:
    code = 128 + signum
    folder = command.settings.folder
    summary = record_ending(
        code,
        started=session.started,
        metrics_file=session.metrics_file,
        folder=folder,
        before=before,
        signum=signum,
    )
    line = interrupted_line(folder, signum, recorded=summary is not None)
    if session.args.json and summary is not None:
        _say(msgspec.json.encode(summary).decode(), to_stderr=False)
    if not (session.args.json and session.json_stderr):
        _say(line, to_stderr=bool(session.args.json))
    return session.finish(code, summary, line=line)


async def _dry_run(args: argparse.Namespace, command: RunCommand) -> int:
    outcome = await dry_run(
        command.config_dir,
        provider=command.provider,
        environ=command.environ,
        settings=command.settings,
        ids=command.options.job_ids,
        patterns=command.options.patterns,
        probe=not args.no_probe,
    )
    for error in outcome.loaded.errors:
        print(f"error: {error.describe()}", file=sys.stderr)
    for warning in outcome.loaded.warnings:
        print(f"warning: {warning.describe()}", file=sys.stderr)
    result = outcome.result
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        _print_dry_run(result)
    if result.stopped is not None:
        return ExitCode.ACCOUNT
    failed = outcome.loaded.errors or any(item.error for item in result.jobs)
    return ExitCode.ATTENTION if failed else ExitCode.OK


# -- the standard streams -----------------------------------------------------------------


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):
        return False


def _say(text: str, *, to_stderr: bool) -> None:
    """Print a line; a stream that cannot take it (closed, a full disk) loses it, quietly.

    A run's output is a courtesy: its files (run.json, the manifests, ``--log-file``)
    are the record, and its exit status tells the night's truth either way. A lost
    stdout is logged (stderr and ``--log-file``); a broken pipe is a reader that went
    away, and is said nowhere.
    """
    stream = sys.stderr if to_stderr else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except OSError as exc:
        _lose(stream)
        if not to_stderr and not isinstance(exc, BrokenPipeError):
            log.warning(
                "stdout could not be written (%s): its lines are lost; run.json holds the run",
                exc.strerror or exc,
            )


def _print_table(summary: RunSummary) -> None:
    try:
        Console().print(summary_table(summary))
    except OSError:
        _lose(sys.stdout)


def _lose(stream: TextIO) -> None:
    """Point ``stream`` at /dev/null: what it held is lost, and the exit's flush must not fail."""
    try:
        fileno = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, fileno)
    except OSError:
        pass
    finally:
        os.close(devnull)


def _open_standard_streams() -> None:
    """Give a closed stdin, stdout or stderr (``2>&-``) /dev/null in its place.

    Python leaves ``sys.stderr`` None then, and the next file the run opened would take
    descriptor 2: whatever is written to "stderr" would land in it. /dev/null keeps the
    numbers taken; the records still go to ``--log-file``.
    """
    for fileno, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fileno)
        except OSError:
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
            except OSError:
                continue
            if devnull != fileno:
                os.dup2(devnull, fileno)
                os.close(devnull)
        if getattr(sys, name) is None:
            mode = "r" if fileno == 0 else "w"
            setattr(sys, name, open(fileno, mode, closefd=False, errors="backslashreplace"))  # noqa: SIM115


def _command(arguments: list[str]) -> int:
    args = parse(arguments)
    if args.command == "schema":
        print(msgspec.json.format(msgspec.json.encode(job_file_schema()), indent=2).decode())
        return ExitCode.OK
    if args.command == "validate":
        return _validate(args.config_dir)
    if args.command == "run":
        return _run(args)
    try:
        if args.command == "status":
            return _status(args)
        return _report(args) if args.command == "report" else _list(args)
    except UsageError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return ExitCode.USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    _open_standard_streams()
    arguments = list(sys.argv[1:] if argv is None else argv)
    status: int | None = None
    try:
        if arguments[:1] == ["emulate"]:
            from intersect_batch.emulator import main as emulate

            return emulate(arguments[1:])
        status = _command(arguments)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # `intersect-batch schema | head -1`: the reader has what it wanted.
        _lose(sys.stdout)
        return ExitCode.BROKEN_PIPE
    except OSError as exc:
        # stdout on a full disk (> /dev/full): what the command printed is lost.
        _lose(sys.stdout)
        if arguments[:1] == ["run"] and status is not None:
            # The run's files are its record; its status says what they hold.
            return status
        _say(f"error: cannot write stdout: {exc.strerror or exc}", to_stderr=True)
        return ExitCode.ATTENTION
    except KeyboardInterrupt:
        # Ctrl-C where no stage handles it (while the arguments are parsed).
        return ExitCode.SIGINT
