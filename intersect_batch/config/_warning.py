"""A note about a job that loads and runs, but may not do what its author meant."""

from __future__ import annotations

from dataclasses import dataclass

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
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.job is not None:
            parts.append(f"job {self.job!r}")
        if self.field is not None:
            parts.append(self.field)
        return ": ".join([*parts, self.message])

    def __str__(self) -> str:
        return self.describe()
