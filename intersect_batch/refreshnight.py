"""One ``refresh: incremental`` job's night as the run holds it.

Planning a night (:mod:`intersect_batch.refresh`) fills it in: the job, the decision and
its requests; the requests' ends are recorded on it; closing the night
(:mod:`intersect_batch.refreshclose`) reads it. It is a module of its own so that both
sides share the state without either importing the other's logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from intersect_batch.config import JobEntry
from intersect_batch.crawl import CrawlJob
from intersect_batch.incremental import Decision, NightRecord
from intersect_batch.manifest import JobManifest

__all__ = ["JobNight"]


@dataclass
class JobNight:
    """One ``refresh: incremental`` job's night in this run."""

    entry: JobEntry
    job: CrawlJob
    decision: Decision
    last: NightRecord | None
    requests: list[CrawlJob] = field(default_factory=list)
    #: Requests this invocation crawls that have not ended yet.
    pending: set[str] = field(default_factory=set)
    ended: dict[str, JobManifest] = field(default_factory=dict)
