"""What a run folder's night came to, in one word, from its run.json alone.

=============  ===========================================================================
``complete``   every job of the run folder is complete
``attention``  every job finished, some failed or had an invalid config
``partial``    some job stopped before it finished (budget, a signal, a cap, the account)
``unreached``  not one answer: no job complete or failed, nothing fetched, nothing spent
               (the API could not be reached, refused the account, or was never called)
``unfinished`` no readable run.json: a run that crashed, was killed -9, or is running
=============  ===========================================================================

Only a ``complete`` night is drawn like one; the others are marked. A night where not one
job completed has no diff to tell (it compared nothing), so it says "no diff".
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from intersect_batch.report.runfiles import RunView

__all__ = ["CONDITION_LABELS", "Condition", "jobs_by_status", "night_condition"]

Condition = Literal["complete", "attention", "partial", "unreached", "unfinished"]

#: How a person reads each condition (the report's marks, the status table).
CONDITION_LABELS: dict[str, str] = {
    "complete": "complete",
    "attention": "needs attention",
    "partial": "partial",
    "unreached": "no answer from the API",
    "unfinished": "unfinished (no run.json)",
}


def jobs_by_status(run: RunView) -> dict[str, int]:
    """The run date's jobs by status: the night's block, else counted from the job lines."""
    if run.night is not None and run.night.jobs_by_status is not None:
        return dict(run.night.jobs_by_status)
    if run.jobs:
        return dict(Counter(line.status for line in run.jobs if line.status))
    return dict(run.jobs_by_status or {})


def night_condition(run: RunView | None) -> Condition:
    """The night's condition (see the table above)."""
    if run is None:
        return "unfinished"
    counts = jobs_by_status(run)
    complete, failed = counts.get("complete", 0), counts.get("failed", 0)
    spent = run.date_cost() or 0.0
    if complete == 0 and failed == 0 and not run.date_items() and spent == 0:
        return "unreached"
    if counts.get("partial", 0):
        return "partial"
    if failed or counts.get("invalid", 0):
        return "attention"
    return "complete"
