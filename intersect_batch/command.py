"""What a ``run`` command asks for: its options checked together, and built once.

:func:`check_run` refuses, naming the option (exit 2), what cannot run, before any file
is touched; :func:`run_command` builds the one :class:`RunCommand` the command line
hands the library: settings, options and provider.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from intersect_batch.envfile import read_env_file
from intersect_batch.errors import UsageError
from intersect_batch.providers import Provider, resolve_provider
from intersect_batch.settings import (
    Limits,
    RetryPolicy,
    RunOptions,
    RunSettings,
    Timeouts,
    check_keep_days,
)

__all__ = ["RunCommand", "check_run", "run_command"]


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
        full=args.full,
        grace=args.grace,
        max_calls=args.max_calls,
    )


def _check_run_args(args: argparse.Namespace) -> None:
    """Refuse, naming the option, what cannot run; before any file is touched."""
    if args.no_probe and not args.dry_run:
        raise UsageError("--no-probe goes with --dry-run")
    if args.budget_usd is not None and not (args.budget_usd > 0 and math.isfinite(args.budget_usd)):
        # inf (or 1e400, which a float reads as inf) would be no cap at all.
        raise UsageError("--budget-usd must be a number of USD more than 0 (and finite)")
    today = _today_utc()
    if args.keep_days is not None:
        problem = check_keep_days(args.keep_days, args.run_date or today)
        if problem is not None:
            raise UsageError(problem)
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


def _check_run_date(args: argparse.Namespace) -> None:
    """Refuse a --run-date after today (UTC) unless --allow-future says it is meant."""
    today = _today_utc()
    if args.run_date is not None and args.run_date > today and not args.allow_future:
        raise UsageError(
            f"--run-date {args.run_date.isoformat()} is after today ({today.isoformat()}, "
            "UTC); add --allow-future if that is meant"
        )


def _check_metrics_file(path: Path) -> None:
    """Make the metrics file's folder; a UsageError when nothing can be written there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.{os.getpid()}.check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--metrics-file {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, kw_only=True)
class RunCommand:
    """What one ``run`` command asks for, built once from its arguments."""

    config_dir: Path
    provider: Provider
    settings: RunSettings
    options: RunOptions
    #: Where the credentials are read: the environment, and ``--env-file`` over it.
    environ: Mapping[str, str]


def check_run(args: argparse.Namespace) -> Path | None:
    """Refuse, naming the option, what cannot run; return the metrics file to write, if any.

    Checks the values and the paths' kinds before any file is touched; then the metrics
    file's folder is made and tried (not with ``--dry-run``, which writes none).
    """
    _check_run_args(args)
    if args.metrics_file is None or args.dry_run:
        return None
    _check_metrics_file(args.metrics_file)
    path: Path = args.metrics_file
    return path


def run_command(args: argparse.Namespace) -> RunCommand:
    """The ``run`` command's request, once :func:`check_run` passed.

    A UsageError names what cannot run: the provider, its base URL, the env file.
    """
    # Refused once the logs are set up, like the provider and the env file: a JSON error
    # record and ``run finished`` when stderr is not a terminal.
    _check_run_date(args)
    provider = resolve_provider(args.provider, args.base_url)
    environ = dict(os.environ)
    if args.env_file is not None:
        environ.update(read_env_file(args.env_file))
    return RunCommand(
        config_dir=args.config_dir,
        provider=provider,
        settings=_settings(args),
        options=RunOptions(
            job_ids=tuple(args.job),
            patterns=tuple(args.match),
            keep_days=args.keep_days,
            report=args.report,
            metrics_file=None if args.dry_run else args.metrics_file,
        ),
        environ=environ,
    )
