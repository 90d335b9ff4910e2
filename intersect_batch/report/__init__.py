"""The morning report of a run folder: one static HTML page and a CSV of opportunities."""

from __future__ import annotations

from intersect_batch.report.build import OPPORTUNITY_COLUMNS, opportunities_csv, write_report
from intersect_batch.report.data import collect_run

__all__ = ["OPPORTUNITY_COLUMNS", "collect_run", "opportunities_csv", "write_report"]
