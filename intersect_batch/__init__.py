"""intersect-batch: nightly batch crawls of DataForSEO's page_intersection/live endpoint."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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

try:
    __version__ = version("intersect-batch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ApiError",
    "ConfigError",
    "IntersectBatchError",
    "JobFatalApiError",
    "LockError",
    "OutputError",
    "RunFatalApiError",
    "TransientApiError",
    "UsageError",
    "__version__",
]
