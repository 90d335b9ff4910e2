"""A note about a job that loads and runs, but may not do what its author meant."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import config_place

__all__ = ["ConfigWarning"]


@dataclass(frozen=True, kw_only=True)
class ConfigWarning:
    """Where and why a valid job deserves a second look; the job still runs.

    Said like a ConfigError: ``file:line: job 'id': field: message``.
    """

    message: str
    file: str
    job: str | None = None
    field: str | None = None
    line: int | None = None

    def describe(self) -> str:
        """``file:line: job 'id': field: message``, leaving out what is unknown."""
        return config_place(
            self.message, file=self.file, job=self.job, field=self.field, line=self.line
        )

    def __str__(self) -> str:
        return self.describe()
