"""``--metrics-file``: a run's figures in Prometheus text format, for node_exporter.

node_exporter's textfile collector reads every ``*.prom`` file of one folder at each
scrape; the file is replaced atomically (prometheus-client writes a temporary file
beside it and renames it), so a scrape never reads half a file. Every figure is a gauge
about the last invocation and its run date:

==============================================  ===========================================
``intersect_batch_last_run_timestamp_seconds``  when the last invocation ended (Unix time)
``intersect_batch_last_success_timestamp_seconds``  when the last invocation that exited 0
                                                ended; kept from the previous file when
                                                this one did not (the alert's figure)
``intersect_batch_last_run_exit_code``          its exit status (0, 1, 2, 3, 4, 130, 143)
``intersect_batch_last_run_duration_seconds``   how long it ran
``intersect_batch_last_run_info``               ``version`` and ``run_date`` labels
``intersect_batch_jobs{status}``                the run date's jobs by status
``intersect_batch_job_status{job,status}``      1 for each job's status, 0 for the others
``intersect_batch_job_{new,lost}_items{job}``   a job's new and lost pages since its last
                                                complete night (jobs with a diff only)
``intersect_batch_night_{new,lost}_items``      the night's new and lost pages
``intersect_batch_{night,invocation}_items``    items (the night: in the run folder;
                                                the invocation: fetched by it)
``intersect_batch_{night,invocation}_calls``    calls sent
``intersect_batch_{night,invocation}_retries``  calls that were retries
``intersect_batch_{night,invocation}_cost_usd`` spend the API reported
``intersect_batch_{night,invocation}_throttled_seconds``  time paused by rate refusals
``intersect_batch_night_invocations``           invocations of the run date so far
==============================================  ===========================================

"The night" is every invocation of the run date; "the invocation" is the command that
wrote the file. Figures that need a summary are left out when the run stopped before it
had one (bad usage, the lock held by another run).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, Info, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from intersect_batch.durable import read_file
from intersect_batch.manifest import RunSummary

__all__ = ["LAST_SUCCESS", "RunMetrics", "write_metrics"]

log = logging.getLogger("intersect_batch")

#: The gauge an alert on "no successful run lately" reads.
LAST_SUCCESS = "intersect_batch_last_success_timestamp_seconds"
#: Every status a job line can have: each is written, zeros included, so that an alert on
#: ``intersect_batch_jobs{status="failed"} > 0`` sees the series at every scrape.
_STATUSES = ("complete", "failed", "partial", "invalid")


@dataclass(frozen=True, kw_only=True)
class RunMetrics:
    """What one invocation ended with, as the metrics file reports it.

    ``finished_at`` is Unix time. ``summary`` is run.json's content when the run got that
    far. ``night_throttled_s`` is the run date's time paused by rate refusals (the
    night's ledger keeps it; run.json's night block does not).
    """

    exit_code: int
    finished_at: float
    duration_s: float
    summary: RunSummary | None = None
    night_throttled_s: float | None = None


def _previous_success(path: Path) -> float | None:
    """The last success time of the file being replaced, if it has one."""
    try:
        text = read_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except ValueError:
        log.warning("the earlier metrics file %s cannot be parsed: starting it afresh", path)
    return None


def _registry(metrics: RunMetrics, last_success: float | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)

    def gauge(name: str, text: str, value: float) -> None:
        Gauge(name, text, registry=registry).set(value)

    gauge(
        "intersect_batch_last_run_timestamp_seconds",
        "When the last intersect-batch invocation ended (Unix time).",
        metrics.finished_at,
    )
    if last_success is not None:
        gauge(
            LAST_SUCCESS,
            "When the last intersect-batch invocation that exited 0 ended (Unix time).",
            last_success,
        )
    gauge(
        "intersect_batch_last_run_exit_code",
        "The exit status of the last invocation (0 ok, 1 attention, 2 usage, 3 locked, "
        "4 account, 130/143 interrupted).",
        metrics.exit_code,
    )
    gauge(
        "intersect_batch_last_run_duration_seconds",
        "How long the last invocation ran.",
        metrics.duration_s,
    )
    summary = metrics.summary
    if summary is None:
        return registry
    Info(
        "intersect_batch_last_run", "The last invocation's version and run date.", registry=registry
    ).info({"version": summary.version, "run_date": summary.run_date})
    jobs = Gauge(
        "intersect_batch_jobs",
        "How many of the run date's jobs have each status (invalid: a config that did not load).",
        ["status"],
        registry=registry,
    )
    for status in _STATUSES:
        jobs.labels(status).set(summary.night.jobs_by_status.get(status, 0))
    per_job = Gauge(
        "intersect_batch_job_status",
        "1 for the status each job of the run date has now, 0 for the other statuses.",
        ["job", "status"],
        registry=registry,
    )
    new = Gauge(
        "intersect_batch_job_new_items",
        "Pages a job found that its last complete night did not have.",
        ["job"],
        registry=registry,
    )
    lost = Gauge(
        "intersect_batch_job_lost_items",
        "Pages of a job's last complete night that it no longer found.",
        ["job"],
        registry=registry,
    )
    for line in summary.jobs:
        for status in _STATUSES:
            per_job.labels(line.job_id, status).set(1 if line.status == status else 0)
        if line.diff is not None and line.diff.skipped is None:
            new.labels(line.job_id).set(line.diff.new)
            lost.labels(line.job_id).set(line.diff.lost)
    night, invocation = summary.night, summary.invocation
    gauge(
        "intersect_batch_night_new_items",
        "Pages the run date's complete jobs found that their last complete night did not have.",
        night.new_items,
    )
    gauge(
        "intersect_batch_night_lost_items",
        "Pages of the jobs' last complete nights that the run date's complete jobs no longer "
        "found.",
        night.lost_items,
    )
    pairs: tuple[tuple[str, str, str, float | None, float | None], ...] = (
        ("items",
         "Items in the run date's folder: every complete job's result, all invocations.",
         "Items this invocation fetched from the API.",
         night.items, invocation.items),
        ("calls", "Calls the run date sent to the API, all invocations.",
         "Calls this invocation sent to the API.", night.calls, invocation.calls),
        ("retries", "Calls of the run date that repeated an earlier one, all invocations.",
         "Calls of this invocation that repeated an earlier one.",
         night.retries, invocation.retries),
        ("cost_usd", "What the run date's calls cost, in USD, as the API reported it.",
         "What this invocation's calls cost, in USD, as the API reported it.",
         night.cost_usd, invocation.cost_usd),
        ("throttled_seconds",
         "Seconds the run date paused because the API refused calls over its rate or "
         "concurrency limit.",
         "Seconds this invocation paused because the API refused calls over its rate or "
         "concurrency limit.",
         metrics.night_throttled_s, invocation.throttled_s),
    )  # fmt: skip
    for name, night_text, invocation_text, night_value, invocation_value in pairs:
        if night_value is not None:
            gauge(f"intersect_batch_night_{name}", night_text, night_value)
        if invocation_value is not None:
            gauge(f"intersect_batch_invocation_{name}", invocation_text, invocation_value)
    gauge(
        "intersect_batch_night_invocations",
        "How many times intersect-batch ran for this run date (re-runs, resumes).",
        night.invocations,
    )
    return registry


def write_metrics(path: Path, metrics: RunMetrics) -> None:
    """Replace ``path`` atomically with the run's figures in Prometheus text format.

    The last success time is carried over from the file being replaced when this
    invocation did not exit 0.
    """
    last_success = metrics.finished_at if metrics.exit_code == 0 else _previous_success(path)
    # The temporary file goes beside the target (same filesystem: the rename is atomic).
    write_to_textfile(os.fspath(path), _registry(metrics, last_success))
