"""Write a run folder's report: ``report.html`` and one opportunities CSV per job."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from intersect_batch.durable import atomic_write, shown
from intersect_batch.errors import UsageError
from intersect_batch.layout import REPORT_HTML, RUN_JSON, job_ids_in, opportunities_name
from intersect_batch.report.data import DomainStats, JobReport, collect_run
from intersect_batch.report.page import render_page

__all__ = ["OPPORTUNITY_COLUMNS", "opportunities_csv", "write_report"]

OPPORTUNITY_COLUMNS = (
    "domain",
    "hosts",
    "domain_from_rank",
    "pages",
    "targets_linked",
    "targets",
    "example_url_from",
    "first_seen_by_api",
    "new_since",
)

# A spreadsheet runs a cell that starts with one of these as a formula; items are untrusted.
#: Jobs that get a section of their own in report.html (the others a row in its table):
#: a folder of thousands of jobs makes a page a person can read, in memory a row a job.
SECTIONS = 200
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str | None) -> str:
    if not text:
        return ""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _rank(rank: float | None) -> str:
    if rank is None:
        return ""
    return str(int(rank)) if rank.is_integer() else str(rank)


def opportunities_csv(job: JobReport) -> bytes:
    """One row per referring domain, the best first (see ``DomainStats.order``).

    ``domain`` is the registrable domain (``www.x.org`` and ``x.org`` are one row);
    ``hosts`` the host names its pages were found on; ``first_seen_by_api`` the earliest
    ``first_seen`` the API reports for its links; ``new_since`` the previous run's date
    when the domain did not link then, empty otherwise.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(OPPORTUNITY_COLUMNS)
    for d in sorted(job.domains.values(), key=DomainStats.order):
        linked = job.linked_targets(d)
        writer.writerow(
            (
                _cell(d.domain),
                _cell(" ".join(d.hosts)),
                _rank(d.rank),
                d.pages,
                d.targets_linked,
                _cell(" ".join(linked)),
                _cell(d.example_url),
                _cell(d.first_seen),
                _cell(d.new_since),
            )
        )
    return buffer.getvalue().encode()


def write_report(run_dir: Path, *, history: int = 14, top: int = 25) -> Path:
    """Write ``run_dir/report.html`` and ``run_dir/<job_id>.opportunities.csv``; the HTML path.

    Works from the run folder's files alone (manifests, JSONL files, diff files, run.json
    and those of up to ``history - 1`` earlier run folders beside it). Each job's items are
    streamed once. Both kinds of file are replaced atomically. A CSV is written for every
    job whose items file is there (a complete job), even an empty one.

    Raises :class:`~intersect_batch.errors.UsageError` when ``run_dir`` is not a run folder
    (no ``*.manifest.json`` and no ``run.json``) or is removed while the report is made
    (``--keep-days`` of a run), ``OSError`` when a file cannot be written.
    """
    if not (run_dir / RUN_JSON).is_file() and not job_ids_in(run_dir):
        raise UsageError(f"{shown(run_dir)}: not a run folder (no run.json, no *.manifest.json)")

    def write_csv(job: JobReport) -> None:
        csv_path = run_dir / opportunities_name(job.job_id)
        if job.has_items:
            # Made again from the job's files by the next report: replaced atomically,
            # not fsync'd (a folder of thousands of jobs would wait on as many syncs).
            atomic_write(csv_path, opportunities_csv(job), sync_dir=False, sync=False)
        elif job.items_left_out:
            # A CSV left by an earlier report would pass for the items of tonight.
            csv_path.unlink(missing_ok=True)

    try:
        # Each job's CSV as its aggregates are done; sections for a bounded number of jobs.
        report = collect_run(run_dir, history=history, on_job=write_csv, detailed=SECTIONS)
        if not run_dir.is_dir():
            raise FileNotFoundError(2, "No such file or directory", str(run_dir))
        path = run_dir / REPORT_HTML
        atomic_write(path, render_page(report, top=top).encode())
    except FileNotFoundError:
        if run_dir.is_dir():
            raise
        raise UsageError(
            f"{shown(run_dir)} was removed while its report was being made (--keep-days of "
            "a run?): no report written"
        ) from None
    return path
