"""The command line's words: every command, its options, their help and their defaults.

Every option's default comes from :mod:`intersect_batch.settings`; a value argparse
cannot read is refused here, naming the option (exit 2). What the ``run`` options mean
together is :mod:`intersect_batch.command`'s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from intersect_batch._version import __version__
from intersect_batch.exitcode import ExitCode, status_lines
from intersect_batch.plan import SAFETY_FACTOR, SAFETY_FLOOR
from intersect_batch.providers import PROVIDERS
from intersect_batch.settings import (
    Limits,
    ProgressSettings,
    ReportSettings,
    RetryPolicy,
    RunSettings,
    Timeouts,
)

__all__ = ["build_parser", "parse"]


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors come first, one line, then the usage.

    Abbreviated options are refused (``--budget`` is not ``--budget-usd``): in a
    crontab, a prefix that matches today may match another option tomorrow. A value
    that is not one of the choices (a command, ``--provider``) gets a guess.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            choices = [c.strip().strip("'") for c in found.group(2).split(",")]
            guess = difflib.get_close_matches(found.group(1), choices, n=1, cutoff=0.6)
            if guess:
                message = f"{message}; did you mean {guess[0]}?"
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
        "--env-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the credentials from KEY=VALUE lines of FILE, without a shell ($, & and "
        "quotes in a value stay as written); they win over the environment (default: the "
        "environment alone)",
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
        "--require-balance",
        action="store_true",
        help="stop (status 4) before any call when the account's balance, asked of the "
        "free appendix/user_data, does not cover the night's estimate or cannot be read "
        "(default: a warning, and the run goes on)",
    )
    crawl.add_argument(
        "--fresh", action="store_true", help="start the run date over, ignoring saved progress"
    )
    crawl.add_argument(
        "--full",
        action="store_true",
        help="a full night for every job, refresh: incremental ones too",
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
        "--quiet",
        action="store_true",
        help="for cron mail: a clean night prints the last line alone and nothing on stderr; "
        "a night that needs attention prints what failed, then the last line (--log-file "
        "still gets every record)",
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


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
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
        + "\n".join(status_lines()),
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

    subs["status"] = status = commands.add_parser(
        "status",
        help="the last nights of an output folder at a glance, and each job's last status",
        description="The last nights under --out: each night's jobs by status, items, new "
        "and lost pages, cost; then each job with its last status and last complete night.",
    )
    status.add_argument(
        "--out",
        type=Path,
        default=run.out_dir,
        metavar="DIR",
        help=f"the output folder (default: ./{run.out_dir})",
    )
    status.add_argument(
        "--nights", type=_positive_int, default=7, metavar="N", help="nights shown (default: 7)"
    )
    status.add_argument("--json", action="store_true", help="the same, as one JSON document")

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


def parse(arguments: list[str]) -> argparse.Namespace:
    """The parsed command line; an unknown option gets its command's usage and a guess."""
    parser, subs = build_parser()
    args, unknown = parser.parse_known_args(arguments)
    if unknown:
        sub = subs.get(args.command, parser)
        options = [o for action in sub._actions for o in action.option_strings]
        first = unknown[0].split("=", 1)[0]
        guess = difflib.get_close_matches(first, options, n=1, cutoff=0.6)
        hint = f"; did you mean {guess[0]}?" if guess and first.startswith("-") else ""
        sub.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    return args
