"""How much of a config folder the loader will read: one frozen settings object."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigLimits"]


@dataclass(frozen=True, kw_only=True)
class ConfigLimits:
    """The loader's bounds; a folder or file over one is an error that names the limit.

    ``ConfigLimits(max_file_bytes=8 MiB, max_jobs=50_000, max_depth=32, max_values=1_000_000)``

    - ``max_file_bytes``: a job file larger than this is not read (8 MiB: about 40,000
      jobs of a few lines each; split larger sets over several files).
    - ``max_jobs``: jobs in the whole folder. Past it no job of the folder loads: a folder
      that large is most likely a generator's mistake, and each job costs at least one
      paid call (50,000 jobs: about 1,000 USD and 25 minutes at 2,000 calls a minute).
    - ``max_depth``: how deeply YAML lists and mappings may nest in a file; a job file
      needs about 6 levels, 8 filter groups inside each other about 14.
    - ``max_values``: YAML values (scalars, lists, mappings) in one file. Parsing holds
      every value of a file in memory at once (200-350 bytes each), so this bounds what
      one file can take to about 250 MB, even when made of one-character values; a
      realistic 8 MiB file has about as many values (a 20,000-job file of 4-line jobs:
      440,000).
    """

    max_file_bytes: int = 8 * 1024 * 1024
    max_jobs: int = 50_000
    max_depth: int = 32
    max_values: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_jobs", "max_depth", "max_values"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ConfigLimits.{name} must be a positive integer, got {value!r}")
