"""``intersect-batch``: the command line, a thin shell over the library."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import anyio
import msgspec
from rich.console import Console

from intersect_batch._version import __version__
from intersect_batch.config import job_file_schema, load_jobs
from intersect_batch.errors import IntersectBatchError, UsageError
from intersect_batch.estimate import DryRun, estimate
from intersect_batch.exitcode import ExitCode, exit_code_for_error
from intersect_batch.listing import list_jobs
from intersect_batch.logs import configure_logging
from intersect_batch.plan import select_jobs
from intersect_batch.progress import LogProgress, RichProgress, summary_table
from intersect_batch.providers import PROVIDERS, resolve_provider
from intersect_batch.report import write_report
from intersect_batch.runner import run_batch
from intersect_batch.settings import (
    Limits,
    ProgressSettings,
    ReportSettings,
    RetryPolicy,
    RunSettings,
    Timeouts,
)

__all__ = ["main"]


def _run_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config_dir", type=Path, metavar="CONFIG_DIR")
    parser.add_argument(
        "--job", action="append", default=[], metavar="ID", help="run only this job (repeatable)"
    )
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only the jobs whose id matches (repeatable)",
    )


def _build_parser() -> argparse.ArgumentParser:
    limits, timeouts, retry, run = Limits(), Timeouts(), RetryPolicy(), RunSettings()
    progress, reporting = ProgressSettings(), ReportSettings()
    parser = argparse.ArgumentParser(
        prog="intersect-batch",
        description="Nightly batch crawls of DataForSEO's page_intersection/live endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crawl = commands.add_parser(
        "run", help="crawl every job of a config folder", description="Crawl every job."
    )
    _add_selection(crawl)
    crawl.add_argument("--out", type=Path, default=run.out_dir, help="output folder (./out)")
    crawl.add_argument(
        "--run-date", type=_run_date, default=None, help="YYYY-MM-DD (default: today, UTC)"
    )
    crawl.add_argument("--provider", choices=sorted(PROVIDERS), default="dataforseo")
    crawl.add_argument("--base-url", default=None, help="another base URL (emulator, proxy)")
    crawl.add_argument(
        "--rate-per-minute",
        type=_positive_int,
        default=limits.rate_per_minute,
        help=f"the account's calls per minute ({limits.rate_per_minute})",
    )
    crawl.add_argument(
        "--concurrency",
        type=_positive_int,
        default=limits.concurrency,
        help=f"calls in flight at once ({limits.concurrency})",
    )
    crawl.add_argument(
        "--budget-usd", type=float, default=None, help="never spend more than this per run"
    )
    crawl.add_argument(
        "--fresh", action="store_true", help="start the run date over, ignoring saved progress"
    )
    crawl.add_argument(
        "--dry-run",
        action="store_true",
        help="print the calls and cost a full run needs (one limit-1 probe call per job)",
    )
    crawl.add_argument(
        "--no-probe", action="store_true", help="with --dry-run: spend nothing, give bounds"
    )
    crawl.add_argument(
        "--attempts",
        type=_positive_int,
        default=retry.attempts,
        help=f"calls per page at most, retries included ({retry.attempts})",
    )
    crawl.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=timeouts.connect,
        help=f"seconds ({timeouts.connect:g})",
    )
    crawl.add_argument(
        "--read-timeout",
        type=_positive_float,
        default=timeouts.read,
        help=f"seconds; above the API's 120 s cap ({timeouts.read:g})",
    )
    crawl.add_argument(
        "--grace",
        type=_positive_float,
        default=run.grace,
        help=f"seconds in-flight calls get after SIGINT/SIGTERM ({run.grace:g})",
    )
    crawl.add_argument(
        "--keep-days",
        type=_positive_int,
        default=None,
        metavar="N",
        help="after a fully complete run, remove run folders older than N days",
    )
    crawl.add_argument(
        "--report",
        action="store_true",
        help="write report.html and an opportunities CSV per job into the run folder",
    )
    crawl.add_argument("--json", action="store_true", help="print the summary as JSON")
    crawl.add_argument(
        "--no-progress", action="store_true", help="no progress bars, even on a terminal"
    )
    crawl.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=progress.interval,
        metavar="S",
        help=f"without a terminal: log a progress line every S seconds ({progress.interval:g})",
    )
    crawl.add_argument("--log-format", choices=["text", "json"], default=None)
    crawl.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    crawl.add_argument("--log-file", type=Path, default=None, help="also log JSON lines here")

    validate = commands.add_parser("validate", help="check a config folder without any call")
    validate.add_argument("config_dir", type=Path, metavar="CONFIG_DIR")

    listing = commands.add_parser(
        "list", help="list a config folder's jobs, with pages when an earlier run knows them"
    )
    _add_selection(listing)
    listing.add_argument("--out", type=Path, default=run.out_dir, help="output folder (./out)")
    listing.add_argument("--json", action="store_true", help="one JSON object per job")

    report = commands.add_parser(
        "report", help="write a run folder's HTML report and opportunity CSVs"
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="e.g. out/2026-11-29")
    report.add_argument(
        "--history",
        type=_positive_int,
        default=reporting.history,
        metavar="N",
        help=f"runs shown in the spend and item charts ({reporting.history})",
    )
    report.add_argument(
        "--top",
        type=_positive_int,
        default=reporting.top,
        metavar="N",
        help=f"referring domains listed per job ({reporting.top})",
    )

    commands.add_parser("schema", help="print the JSON Schema of a job file")

    emulate = commands.add_parser("emulate", help="start the bundled API emulator", add_help=False)
    emulate.add_argument("args", nargs=argparse.REMAINDER)
    return parser


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
    if result.probe_calls:
        print(
            f"the dry run spent {result.probe_cost_usd:.4f} USD on "
            f"{result.probe_calls} probe call(s) (limit 1)"
        )
    else:
        print("the dry run spent nothing")


def _settings(args: argparse.Namespace) -> RunSettings:
    defaults = RunSettings()
    return RunSettings(
        out_dir=args.out,
        run_date=args.run_date or defaults.run_date,
        limits=Limits(rate_per_minute=args.rate_per_minute, concurrency=args.concurrency),
        timeouts=Timeouts(connect=args.connect_timeout, read=args.read_timeout),
        retry=RetryPolicy(attempts=args.attempts),
        budget_usd=args.budget_usd,
        fresh=args.fresh,
        grace=args.grace,
    )


async def _dry_run(args: argparse.Namespace) -> int:
    provider = resolve_provider(args.provider, args.base_url)
    loaded = load_jobs(args.config_dir)
    for error in loaded.errors:
        print(f"error: {error.describe()}", file=sys.stderr)
    if not loaded.jobs:
        raise UsageError(f"no valid job in {args.config_dir}: nothing to estimate")
    entries = select_jobs(loaded.jobs, args.job, args.match)
    credentials = None if args.no_probe else provider.credentials(os.environ)
    result = await estimate(
        entries,
        provider=provider,
        credentials=credentials,
        settings=_settings(args),
        probe=not args.no_probe,
    )
    if args.json:
        print(msgspec.json.encode(result).decode())
    else:
        _print_dry_run(result)
    failed = loaded.errors or any(item.error for item in result.jobs)
    return ExitCode.ATTENTION if failed else ExitCode.OK


async def _run(args: argparse.Namespace) -> int:
    if args.no_probe and not args.dry_run:
        raise UsageError("--no-probe goes with --dry-run")
    if args.budget_usd is not None and args.budget_usd <= 0:
        raise UsageError("--budget-usd must be more than 0")
    if args.dry_run:
        return await _dry_run(args)
    provider = resolve_provider(args.provider, args.base_url)
    run = functools.partial(
        run_batch,
        args.config_dir,
        provider=provider,
        environ=os.environ,
        settings=_settings(args),
        job_ids=args.job,
        patterns=args.match,
        handle_signals=True,
        keep_days=args.keep_days,
        report=args.report,
    )
    terminal = sys.stderr.isatty() and not args.no_progress
    if terminal:
        console = Console(stderr=True)
        _configure_logging(args, console)
        with RichProgress(console) as progress:
            outcome = await run(observer=progress)
    else:
        _configure_logging(args, None)
        outcome = await run(observer=LogProgress(args.progress_interval))
    if args.json and outcome.summary is not None:
        print(msgspec.json.encode(outcome.summary).decode())
    elif outcome.summary is not None and sys.stdout.isatty():
        Console().print(summary_table(outcome.summary))
    print(outcome.message)
    return outcome.exit_code


def _configure_logging(args: argparse.Namespace, console: Console | None) -> None:
    fmt: Literal["text", "json"] | None = args.log_format or (
        "text" if console is not None else None
    )
    configure_logging(
        level=args.log_level,
        fmt=fmt,
        log_file=args.log_file,
        console=console if fmt == "text" else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["emulate"]:
        from intersect_batch.emulator import main as emulate

        return emulate(arguments[1:])
    parser = _build_parser()
    args = parser.parse_args(arguments)
    if args.command == "schema":
        print(msgspec.json.format(msgspec.json.encode(job_file_schema()), indent=2).decode())
        return ExitCode.OK
    if args.command == "validate":
        return _validate(args.config_dir)
    if args.command == "report":
        try:
            path = write_report(args.run_dir, history=args.history, top=args.top)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.USAGE
        print(f"report: {path}")
        return ExitCode.OK
    if args.command == "list":
        try:
            return _list(args)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    if args.dry_run:
        configure_logging(level=args.log_level, fmt=args.log_format, log_file=args.log_file)
    try:
        return anyio.run(_run, args)
    except IntersectBatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code_for_error(exc)
    except OSError as exc:
        # The output folder itself failed (full, read-only): say so, without a traceback.
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return exit_code_for_error(exc)
