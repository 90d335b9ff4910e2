"""``intersect-batch``: the command line, a thin shell over the library.

What it adds to :func:`~intersect_batch.runner.run_batch` is what a person or cron
meets: usage errors that name the option (exit 2), progress bars or JSON logs, the
summary table, the one last line, a ``run finished`` record that closes every log, and
SIGINT / SIGTERM at any stage ending in 130 / 143 without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import difflib
import functools
import logging
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import anyio
import msgspec
from rich.console import Console

from intersect_batch import exitcode
from intersect_batch._version import __version__
from intersect_batch.config import job_file_schema, load_jobs
from intersect_batch.errors import IntersectBatchError, UsageError
from intersect_batch.estimate import DryRun, dry_run
from intersect_batch.exitcode import ExitCode, exit_code_for_error
from intersect_batch.interrupts import Interrupts, file_state, record_interrupted
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import read_ledger
from intersect_batch.listing import list_jobs
from intersect_batch.logs import close_logging, configure_logging
from intersect_batch.manifest import RunSummary
from intersect_batch.metrics import RunMetrics, write_metrics
from intersect_batch.plan import SAFETY_FACTOR, SAFETY_FLOOR
from intersect_batch.progress import LogProgress, RichProgress, summary_table
from intersect_batch.providers import PROVIDERS, resolve_provider
from intersect_batch.report import write_report
from intersect_batch.runner import RunOutcome, run_batch
from intersect_batch.settings import (
    Limits,
    ProgressSettings,
    ReportSettings,
    RetryPolicy,
    RunSettings,
    Timeouts,
)
from intersect_batch.stop import CrawlControl

__all__ = ["main"]

log = logging.getLogger("intersect_batch")

#: What a process stopped by a closed pipe conventionally exits with.
BROKEN_PIPE_EXIT = 128 + signal.SIGPIPE


# -- the parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors come first, one line, then the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            ExitCode.USAGE,
            f"{self.prog}: error: {message}\n{self.format_usage()}(see '{self.prog} --help')\n",
        )


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs keep their line breaks (tables); option help is wrapped as usual."""


def _run_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text}")
        return value

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _exit_status_table() -> str:
    """The exit statuses, as :mod:`intersect_batch.exitcode` documents them (one table)."""
    doc = exitcode.__doc__ or ""
    _, table, _ = doc.split("====  ", 2)
    rows = table.splitlines()[1:]
    return "\n".join(f"  {row}" for row in rows if row.strip())


def _credentials_text() -> str:
    lines = []
    for name in sorted(PROVIDERS):
        provider = PROVIDERS[name]
        needs = (
            "AISA_API_KEY"
            if provider.auth == "bearer"
            else "DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD"
        )
        lines.append(f"  {name:11} {needs}  ({provider.base_url})")
    return "\n".join(lines)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config_dir", type=Path, metavar="CONFIG_DIR", help="the folder of *.yaml job files"
    )
    parser.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="ID",
        help="only this job (repeatable; default: every job)",
    )
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="GLOB",
        help="only the jobs whose id matches, e.g. 'crm-*' (repeatable; default: every job)",
    )


def _add_run_options(crawl: argparse.ArgumentParser) -> None:
    limits, timeouts, retry, run = Limits(), Timeouts(), RetryPolicy(), RunSettings()
    progress = ProgressSettings()
    crawl.add_argument(
        "--out",
        type=Path,
        default=run.out_dir,
        metavar="DIR",
        help=f"results go to DIR/RUN_DATE/ (default: ./{run.out_dir})",
    )
    crawl.add_argument(
        "--run-date",
        type=_run_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="the night to run or resume (default: today, UTC)",
    )
    crawl.add_argument(
        "--allow-future",
        action="store_true",
        help="accept a --run-date after today (UTC); refused by default",
    )
    crawl.add_argument(
        "--provider",
        choices=sorted(PROVIDERS),
        default="dataforseo",
        help="where the API lives and how it is paid (default: dataforseo)",
    )
    crawl.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="the provider at another base URL: the emulator, a proxy (default: the "
        "provider's own); no credentials, query or fragment in it",
    )
    crawl.add_argument(
        "--rate-per-minute",
        type=_positive_int,
        default=limits.rate_per_minute,
        metavar="N",
        help=f"the account's calls per minute (default: {limits.rate_per_minute})",
    )
    crawl.add_argument(
        "--concurrency",
        type=_positive_int,
        default=limits.concurrency,
        metavar="N",
        help=f"calls in flight at once, across all jobs (default: {limits.concurrency})",
    )
    crawl.add_argument(
        "--budget-usd",
        type=float,
        default=None,
        metavar="X",
        help="never start a call whose worst case would take the night's spend over X "
        "(default: no cap)",
    )
    crawl.add_argument(
        "--fresh", action="store_true", help="start the run date over, ignoring saved progress"
    )
    crawl.add_argument(
        "--dry-run",
        action="store_true",
        help="print the calls and cost a full run needs; each job costs one limit-1 probe "
        "call, counted in the night's spend and --budget-usd",
    )
    crawl.add_argument(
        "--no-probe",
        action="store_true",
        help="with --dry-run: spend nothing, use the last run's counts or give bounds",
    )
    crawl.add_argument(
        "--attempts",
        type=_positive_int,
        default=retry.attempts,
        metavar="N",
        help=f"calls per page at most, retries included (default: {retry.attempts})",
    )
    crawl.add_argument(
        "--max-calls",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="a safety cap on this run's calls, with or without a budget; 0: none "
        f"(default: {SAFETY_FACTOR} x what the jobs' last runs needed, at least "
        f"{SAFETY_FLOOR})",
    )
    crawl.add_argument(
        "--patience",
        type=_positive_float,
        default=retry.patience,
        metavar="S",
        help="seconds of rate or concurrency refusals (40202, 40209, HTTP 429) the run "
        f"bears in all before it stops, its jobs partial (default: {retry.patience:g})",
    )
    crawl.add_argument(
        "--unreachable-after",
        type=_positive_float,
        default=retry.unreachable_after,
        metavar="S",
        help="seconds the API may be unreachable (connection refused, no DNS answer) "
        f"before the run stops with status 4 (default: {retry.unreachable_after:g})",
    )
    crawl.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=timeouts.connect,
        metavar="S",
        help=f"seconds to connect (default: {timeouts.connect:g})",
    )
    crawl.add_argument(
        "--read-timeout",
        type=_positive_float,
        default=timeouts.read,
        metavar="S",
        help="the longest wait for the next bytes of an answer; above the API's 120 s cap "
        f"(default: {timeouts.read:g})",
    )
    crawl.add_argument(
        "--deadline",
        type=_positive_float,
        default=timeouts.deadline,
        metavar="S",
        help="the whole call, sending to the last byte, so an answer trickling in ends too "
        f"(default: {timeouts.deadline:g})",
    )
    crawl.add_argument(
        "--grace",
        type=_positive_float,
        default=run.grace,
        metavar="S",
        help="seconds the calls in flight get after SIGINT / SIGTERM; a second signal stops "
        f"at once (default: {run.grace:g})",
    )
    crawl.add_argument(
        "--keep-days",
        type=_positive_int,
        default=None,
        metavar="N",
        help="after a fully complete run, remove run folders (made by this tool) older than "
        "N days (default: keep all)",
    )
    crawl.add_argument(
        "--report",
        action="store_true",
        help="also write report.html and an opportunities CSV per job into the run folder",
    )
    crawl.add_argument(
        "--json",
        action="store_true",
        help="print run.json's content to stdout, and nothing else there (the last line "
        "goes to stderr)",
    )
    crawl.add_argument(
        "--metrics-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the run's figures in Prometheus text format (node_exporter's "
        "textfile collector reads *.prom) (default: none)",
    )
    crawl.add_argument(
        "--no-progress", action="store_true", help="no progress bars, even on a terminal"
    )
    crawl.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=progress.interval,
        metavar="S",
        help="without bars: a progress log record every S seconds "
        f"(default: {progress.interval:g})",
    )
    crawl.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None,
        help="how stderr's records look (default: text on a terminal, else json)",
    )
    crawl.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="the least severe record logged (default: info)",
    )
    crawl.add_argument(
        "--log-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="also append the records to PATH as JSON lines; its folder is created (default: none)",
    )


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    run, reporting = RunSettings(), ReportSettings()
    parser = _Parser(
        prog="intersect-batch",
        description="Nightly batch crawls of DataForSEO's page_intersection/live endpoint.",
        epilog="'intersect-batch COMMAND --help' tells more about each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    subs: dict[str, argparse.ArgumentParser] = {}

    subs["run"] = crawl = commands.add_parser(
        "run",
        help="crawl every job of a config folder",
        description=textwrap.fill(
            "Crawl every job of CONFIG_DIR into --out/RUN_DATE/: one JSONL file a job, its "
            "manifest, run.json. The same command again the same day resumes.",
            width=79,
        ),
        epilog="credentials, from the environment (--provider):\n"
        + _credentials_text()
        + "\n\nexit status:\n"
        + _exit_status_table(),
        formatter_class=_Formatter,
    )
    _add_selection(crawl)
    _add_run_options(crawl)

    subs["validate"] = validate = commands.add_parser(
        "validate",
        help="check a config folder without any call",
        description="Check every job file of CONFIG_DIR without any call; exit 0 only if "
        "all are valid (1: some error, 2: no job file).",
    )
    validate.add_argument(
        "config_dir", type=Path, metavar="CONFIG_DIR", help="the folder of *.yaml job files"
    )

    subs["list"] = listing = commands.add_parser(
        "list",
        help="list a config folder's jobs, with pages when an earlier run knows them",
        description="List the jobs of CONFIG_DIR: id, file:line, targets, and the pages "
        "the last run under --out needed.",
    )
    _add_selection(listing)
    listing.add_argument(
        "--out",
        type=Path,
        default=run.out_dir,
        metavar="DIR",
        help=f"where earlier runs are (default: ./{run.out_dir})",
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per job")

    subs["report"] = report = commands.add_parser(
        "report",
        help="write a run folder's HTML report and opportunity CSVs",
        description="Write RUN_DIR/report.html and an opportunities CSV per job.",
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="e.g. out/2026-11-29")
    report.add_argument(
        "--history",
        type=_positive_int,
        default=reporting.history,
        metavar="N",
        help=f"runs shown in the spend and item charts (default: {reporting.history})",
    )
    report.add_argument(
        "--top",
        type=_positive_int,
        default=reporting.top,
        metavar="N",
        help=f"referring domains listed per job (default: {reporting.top})",
    )

    subs["schema"] = commands.add_parser(
        "schema",
        help="print the JSON Schema of a job file",
        description="Print the JSON Schema of a job file, for editors.",
    )
    # The emulator has its own parser (main() hands it the arguments before this one).
    commands.add_parser(
        "emulate",
        help="start the bundled API emulator ('emulate --help' for its options)",
        add_help=False,
    )
    return parser, subs


def _parse(arguments: list[str]) -> argparse.Namespace:
    """The parsed command line; an unknown option gets its command's usage and a guess."""
    parser, subs = _build_parser()
    args, unknown = parser.parse_known_args(arguments)
    if unknown:
        sub = subs.get(args.command, parser)
        options = [o for action in sub._actions for o in action.option_strings]
        first = unknown[0].split("=", 1)[0]
        guess = difflib.get_close_matches(first, options, n=1, cutoff=0.6)
        hint = f"; did you mean {guess[0]}?" if guess and first.startswith("-") else ""
        sub.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args


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


def _print_dry_run(result: DryRun) -> None:
    def money(value: float | None) -> str:
        return "?" if value is None else f"{value:.4f}"

    print(f"{'job':32} {'source':16} {'total':>9} {'calls':>7} {'cost USD':>10}")
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
        print(f"{item.job_id:32} {item.source:16} {total:>9} {calls:>7} {cost:>10}")
        if item.error:
            print(f"  error: {item.error}")
    if result.calls is not None:
        print(f"total: {result.calls} calls, {money(result.cost_usd)} USD")
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
            f"{result.probe_calls} probe call(s) (limit 1), counted in the night's spend"
        )
    else:
        print("the dry run spent nothing")


# -- run ----------------------------------------------------------------------------------


def _today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _settings(args: argparse.Namespace) -> RunSettings:
    defaults = RunSettings()
    return RunSettings(
        out_dir=args.out,
        run_date=args.run_date or defaults.run_date,
        limits=Limits(rate_per_minute=args.rate_per_minute, concurrency=args.concurrency),
        timeouts=Timeouts(
            connect=args.connect_timeout, read=args.read_timeout, deadline=args.deadline
        ),
        retry=RetryPolicy(
            attempts=args.attempts,
            patience=args.patience,
            unreachable_after=args.unreachable_after,
        ),
        budget_usd=args.budget_usd,
        fresh=args.fresh,
        grace=args.grace,
        max_calls=args.max_calls,
    )


def _check_run_args(args: argparse.Namespace) -> None:
    """Refuse, naming the option, what cannot run; before any file is touched."""
    if args.no_probe and not args.dry_run:
        raise UsageError("--no-probe goes with --dry-run")
    if args.budget_usd is not None and not args.budget_usd > 0:
        raise UsageError("--budget-usd must be more than 0")
    today = _today_utc()
    if args.run_date is not None and args.run_date > today and not args.allow_future:
        raise UsageError(
            f"--run-date {args.run_date.isoformat()} is after today ({today.isoformat()}, "
            "UTC); add --allow-future if that is meant"
        )
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    for option, path in (
        ("--out", out),
        ("--log-file", args.log_file),
        ("--metrics-file", args.metrics_file),
    ):
        if path is None:
            continue
        if option != "--out" and path.is_dir():
            raise UsageError(f"{option} {path} is a folder, not a file")
        above = next((parent for parent in path.parents if parent.exists()), None)
        if above is not None and not above.is_dir():
            raise UsageError(f"{option} {path}: {above} is a file, not a folder")


def _check_metrics_file(path: Path) -> None:
    """Make the metrics file's folder; a UsageError when nothing can be written there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.{os.getpid()}.check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--metrics-file {path}: {exc.strerror or exc}") from None


class _Session:
    """One ``run`` command: where its records go, and how it ends."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.time()
        self.console: Console | None = None
        self.logging = False
        self.json_stderr = False
        self.metrics_file: Path | None = None

    # -- the logs --

    def configure_logging(self) -> None:
        args = self.args
        terminal = sys.stderr.isatty() and not args.no_progress and not args.dry_run
        fmt: Literal["text", "json"] = args.log_format or (
            "text" if sys.stderr.isatty() else "json"
        )
        console = Console(stderr=True) if terminal and fmt == "text" else None
        try:
            configure_logging(
                level=args.log_level, fmt=fmt, log_file=args.log_file, console=console
            )
        except OSError as exc:
            raise UsageError(f"--log-file {args.log_file}: {exc.strerror or exc}") from None
        self.console = console if terminal else None
        self.logging = True
        self.json_stderr = fmt == "json"

    def error(self, message: str) -> None:
        """An error for the person (stderr) and for the log."""
        if self.logging and self.json_stderr:
            log.error("%s", message)
            return
        print(f"error: {message}", file=sys.stderr)
        if self.logging:
            log.error("%s", message, extra={"_file_only": True})

    # -- the end --

    def finish(
        self,
        exit_code: int,
        *,
        summary: RunSummary | None = None,
        line: str | None = None,
        metrics: bool = True,
    ) -> int:
        """Write the metrics (unless the run did), close every log with ``run finished``."""
        finished = time.time()
        if metrics and self.metrics_file is not None:
            throttled = None
            if summary is not None:
                with contextlib.suppress(OSError, msgspec.DecodeError):
                    folder = RunFolder(self.args.out, dt.date.fromisoformat(summary.run_date))
                    throttled = read_ledger(folder.ledger).throttled_s
            figures = RunMetrics(
                exit_code=exit_code,
                finished_at=finished,
                duration_s=round(finished - self.started, 3),
                summary=summary,
                night_throttled_s=throttled,
            )
            try:
                write_metrics(self.metrics_file, figures)
            except OSError as exc:
                self.error(f"cannot write --metrics-file {self.metrics_file}: {exc}")
        if self.logging:
            extra: dict[str, Any] = {"exit_code": int(exit_code)}
            if summary is not None:
                night, invocation = summary.night, summary.invocation
                extra["run_date"] = summary.run_date
                extra["night"] = {
                    "jobs_by_status": night.jobs_by_status,
                    "items": night.items,
                    "calls": night.calls,
                    "cost_usd": night.cost_usd,
                    "invocations": night.invocations,
                }
                extra["invocation"] = {
                    "items": invocation.items,
                    "calls": invocation.calls,
                    "cost_usd": invocation.cost_usd,
                    "duration_s": invocation.duration_s,
                }
            if line is not None:
                extra["line"] = line
            log.info("run finished", extra=extra)
            close_logging()
        return exit_code


async def _crawl(
    args: argparse.Namespace, session: _Session, interrupts: Interrupts
) -> RunOutcome | None:
    """The run, or None when a signal stopped it outside the crawl."""
    provider = resolve_provider(args.provider, args.base_url)
    control = CrawlControl()
    run = functools.partial(
        run_batch,
        args.config_dir,
        provider=provider,
        environ=os.environ,
        settings=_settings(args),
        job_ids=args.job,
        patterns=args.match,
        control=control,
        keep_days=args.keep_days,
        report=args.report,
        metrics_file=args.metrics_file,
    )
    outcome = None
    with anyio.CancelScope() as scope, interrupts.cancelling(scope, control):
        if session.console is not None:
            with RichProgress(session.console) as progress:
                outcome = await run(observer=progress)
        else:
            outcome = await run(observer=LogProgress(args.progress_interval))
    return outcome


def _say(text: str, *, to_stderr: bool) -> None:
    print(text, file=sys.stderr if to_stderr else sys.stdout, flush=True)


def _run(args: argparse.Namespace) -> int:
    session = _Session(args)
    try:
        _check_run_args(args)
        if args.metrics_file is not None and not args.dry_run:
            _check_metrics_file(args.metrics_file)
            session.metrics_file = args.metrics_file
        session.configure_logging()
    except UsageError as exc:
        session.error(str(exc))
        return session.finish(ExitCode.USAGE)
    if args.dry_run:
        try:
            return session.finish(anyio.run(_dry_run, args), metrics=False)
        except IntersectBatchError as exc:
            session.error(str(exc))
            return session.finish(exit_code_for_error(exc), metrics=False)
    folder = _settings(args).folder
    before = file_state(folder.run_json)
    interrupts = Interrupts(grace=args.grace)
    with interrupts.installed():
        try:
            outcome = anyio.run(_crawl, args, session, interrupts)
        except IntersectBatchError as exc:
            session.error(str(exc))
            return session.finish(exit_code_for_error(exc))
        except OSError as exc:
            # The output folder itself failed (full, read-only): say so, without a traceback.
            where = f" ({exc.filename})" if exc.filename else ""
            session.error(f"{exc.strerror or exc}{where}")
            return session.finish(exit_code_for_error(exc))
        if outcome is None or interrupts.signum is not None:
            # Stopped outside the crawl, or asked to stop while its last step finished.
            signum = interrupts.signum or signal.SIGINT
            return _end_interrupted(session, folder, before, signum)
        return _end(session, outcome)


def _end(session: _Session, outcome: RunOutcome) -> int:
    """Print the summary and the last line; the run already wrote run.json and metrics."""
    args = session.args
    summary = outcome.summary
    *details, last = outcome.message.splitlines() or [""]
    if args.json and summary is not None:
        _say(msgspec.json.encode(summary).decode(), to_stderr=False)
    elif summary is not None and sys.stdout.isatty():
        Console().print(summary_table(summary))
    # With --json, stdout holds the JSON alone; with JSON logs, the last line rides in
    # the closing record (stderr stays one JSON object a line).
    to_stderr = bool(args.json)
    if not (to_stderr and session.json_stderr):
        for text in (*details, last):
            _say(text, to_stderr=to_stderr)
    return session.finish(outcome.exit_code, summary=summary, line=last, metrics=False)


def _end_interrupted(
    session: _Session, folder: RunFolder, before: tuple[int, int] | None, signum: int
) -> int:
    code = 128 + signum
    name = signal.Signals(signum).name
    summary = record_interrupted(folder, before, signum)
    if summary is not None:
        where = f"results in {folder.path}/ (summary: {folder.run_json})"
    else:
        where = "run.json was not written"
    line = f"attention: {name}: progress is saved; run the same command to continue; {where}"
    if session.args.json and summary is not None:
        _say(msgspec.json.encode(summary).decode(), to_stderr=False)
    if not (session.args.json and session.json_stderr):
        _say(line, to_stderr=bool(session.args.json))
    return session.finish(code, summary=summary, line=line)


async def _dry_run(args: argparse.Namespace) -> int:
    outcome = await dry_run(
        args.config_dir,
        provider=resolve_provider(args.provider, args.base_url),
        environ=os.environ,
        settings=_settings(args),
        ids=args.job,
        patterns=args.match,
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


def _command(arguments: list[str]) -> int:
    args = _parse(arguments)
    if args.command == "schema":
        print(msgspec.json.format(msgspec.json.encode(job_file_schema()), indent=2).decode())
        return ExitCode.OK
    if args.command == "validate":
        return _validate(args.config_dir)
    if args.command == "run":
        return _run(args)
    try:
        return _report(args) if args.command == "report" else _list(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and the exit's flush must not fail."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["emulate"]:
            from intersect_batch.emulator import main as emulate

            return emulate(arguments[1:])
        status = _command(arguments)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # `intersect-batch schema | head -1`: the reader has what it wanted.
        _silence_stdout()
        return BROKEN_PIPE_EXIT
    except KeyboardInterrupt:
        # Ctrl-C where no stage handles it (while the arguments are parsed).
        return ExitCode.SIGINT
