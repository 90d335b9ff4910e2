"""intersect-batch: nightly batch crawls of DataForSEO's page_intersection/live endpoint.

The command line (``intersect-batch``) is a thin shell over this library::

    from intersect_batch import RunOptions, RunSettings, load_jobs, resolve_provider, run_batch

    outcome = await run_batch(
        Path("configs"),
        provider=resolve_provider("dataforseo"),
        environ=os.environ,
        settings=RunSettings(out_dir=Path("out")),
        options=RunOptions(keep_days=30, report=True),  # optional: which jobs, what follows
    )
"""

from __future__ import annotations

from intersect_batch._version import __version__
from intersect_batch.config import Job, JobEntry, LoadResult, load_jobs
from intersect_batch.errors import (
    ApiError,
    ConfigError,
    IntersectBatchError,
    JobFatalApiError,
    LockError,
    OutputError,
    RunFatalApiError,
    TransientApiError,
    UsageError,
)
from intersect_batch.providers import PROVIDERS, Provider, resolve_provider
from intersect_batch.runner import RunOutcome, run_batch
from intersect_batch.settings import Limits, RetryPolicy, RunOptions, RunSettings, Timeouts

__all__ = [
    "PROVIDERS",
    "ApiError",
    "ConfigError",
    "IntersectBatchError",
    "Job",
    "JobEntry",
    "JobFatalApiError",
    "Limits",
    "LoadResult",
    "LockError",
    "OutputError",
    "Provider",
    "RetryPolicy",
    "RunFatalApiError",
    "RunOptions",
    "RunOutcome",
    "RunSettings",
    "Timeouts",
    "TransientApiError",
    "UsageError",
    "__version__",
    "load_jobs",
    "resolve_provider",
    "run_batch",
]
