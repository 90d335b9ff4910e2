"""Job configs: a folder of YAML files -> validated Jobs, or errors that name file and line.

Each file holds an optional ``defaults:`` mapping and a ``jobs:`` list; see
``configs/`` for examples and ``job_file_schema()`` for the JSON Schema editors use.
``ConfigLimits`` bounds what the loader reads; ``RESERVED_ID_SUFFIXES`` are the id
endings that would make two jobs share an output file.
"""

from __future__ import annotations

from ._limits import ConfigLimits
from ._loader import JobEntry, LoadResult, load_jobs
from ._model import RESERVED_ID_SUFFIXES, Job, job_file_schema
from ._warning import ConfigWarning

__all__ = [
    "RESERVED_ID_SUFFIXES",
    "ConfigLimits",
    "ConfigWarning",
    "Job",
    "JobEntry",
    "LoadResult",
    "job_file_schema",
    "load_jobs",
]
