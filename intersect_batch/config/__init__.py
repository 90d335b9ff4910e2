"""Job configs: a folder of YAML files -> validated Jobs, or errors that name file and line.

Each file holds an optional ``defaults:`` mapping and a ``jobs:`` list; see
``configs/`` for examples and ``job_file_schema()`` for the JSON Schema editors use.
"""

from __future__ import annotations

from ._loader import JobEntry, LoadResult, load_jobs
from ._model import Job, job_file_schema

__all__ = ["Job", "JobEntry", "LoadResult", "job_file_schema", "load_jobs"]
