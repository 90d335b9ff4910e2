"""The run's last line, and the ``run finished`` record that closes every log.

One line, because it is what cron mails and what a person reads first: the run date's
state, this invocation's work, why it stopped, what needs attention, where the results
are. Control characters in it are escaped, whatever a folder name or a server holds.
"""

from __future__ import annotations

import signal
from typing import Any

from intersect_batch.errors import printable
from intersect_batch.layout import RunFolder
from intersect_batch.manifest import RunSummary

__all__ = ["closing_line", "finished_record", "interrupted_line", "not_started_text"]


#: How many jobs the last line names before "and N more".
ATTENTION_NAMED = 3
#: How much of a job's reason the last line quotes (the summary table and run.json have it
#: whole).
REASON_CHARS = 100
#: How much of the run's stop reason it quotes: one reason, so room for its whole cause
#: ("the API at URL could not be reached: cannot reach HOST:PORT: [Errno -2] Name or
#: service not known").
STOP_CHARS = 180


def not_started_text(n: int) -> str:
    """``18,211 jobs not started``: the one line a stop gives the jobs it never reached."""
    return f"{n:,} job not started" if n == 1 else f"{n:,} jobs not started"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _cut(text: str, limit: int = REASON_CHARS) -> str:
    """``text`` in ``limit`` characters at most, cut between words and ending its cut in "…".

    The cause (what follows the last ": ", e.g. "Name or service not known") is what a
    person acts on: a long sentence loses its middle, never its cause.
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head, colon, cause = text.rpartition(": ")
    if colon and head and len(cause) <= limit * 2 // 3:
        room = limit - len(cause) - len(colon) - 1
        # Whole clauses first ("could not be reached…: cause"), else whole words.
        clauses = head[: room + 1]
        if ": " in clauses and clauses.rindex(": ") >= room // 2:
            return clauses[: clauses.rindex(": ")] + "\u2026" + colon + cause
        return _words(head, room) + "\u2026" + colon + cause
    return _words(text, limit - 1) + "\u2026"


def _words(text: str, room: int) -> str:
    """The start of ``text`` in ``room`` characters at most, ending at a word's end."""
    if len(text) <= room:
        return text
    cut = text[: room + 1]
    cut = cut[: cut.rindex(" ")] if " " in cut else cut[:room]
    return cut.rstrip(" ,;:")


def _attention(summary: RunSummary) -> list[str]:
    """The jobs that need attention, the worst first, each with why in a few words."""
    order = {"invalid": 0, "failed": 1, "partial": 2}
    jobs = sorted(
        (job for job in summary.jobs if job.status != "complete"),
        key=lambda job: (order.get(job.status, 3), job.job_id),
    )
    named = []
    for job in jobs:
        # A job stopped by the run's own stop (a signal, the budget) says nothing new.
        if job.reason and job.reason != summary.stop_reason:
            reason = job.reason
            if (
                job.status == "invalid"
                and job.config_file
                and job.reason.startswith(job.config_file)
            ):
                # "file:line: job 'id': field: message": the id is already named.
                reason = job.reason.replace(f"job {job.job_id!r}: ", "", 1)
            named.append(f"{job.job_id} {job.status} ({_cut(reason)})")
        else:
            named.append(f"{job.job_id} {job.status}")
    return named


def _named(items: list[str]) -> str:
    shown = ", ".join(items[:ATTENTION_NAMED])
    more = len(items) - ATTENTION_NAMED
    return f"{shown} and {more} more" if more > 0 else shown


def closing_line(summary: RunSummary, folder: RunFolder, report: bool) -> str:
    """The last line: the run date's state, this invocation's work, what needs attention.

    One line, because it is what cron mails and what a person reads first. Both totals
    are labelled: "night" is every invocation of the run date, "this invocation" is the
    command that just ran.
    """
    night, invocation = summary.night, summary.invocation
    counts = ", ".join(f"{n} {status}" for status, n in night.jobs_by_status.items())
    # New and lost pages only when some job was compared with an earlier night.
    compared = any(j.diff is not None and j.diff.skipped is None for j in summary.jobs)
    changes = f"{night.new_items} new, {night.lost_items} lost" if compared else "no diff"
    night_part = (
        f"night {summary.run_date}: {counts}; {night.items} items ({changes}), "
        f"{_count(night.calls, 'call')}, "
        f"{night.cost_usd:.4f} USD over {_count(night.invocations, 'invocation')}"
    )
    skipped = sum(1 for job in summary.jobs if job.reason == "already complete")
    if invocation.jobs_run:
        done = _count(invocation.jobs_run, "job") + " run"
        if skipped:
            done += f" ({skipped} already complete)"
    else:
        done = "nothing to run" + (f" ({skipped} already complete)" if skipped else "")
    invocation_part = (
        f"this invocation: {done}, {invocation.items} items, "
        f"{_count(invocation.calls, 'call')}, {invocation.cost_usd:.4f} USD "
        f"in {invocation.duration_s:.1f} s"
    )
    parts = [night_part, invocation_part]
    differ = _items_differ(summary)
    if differ:
        parts.append(differ)
    if summary.stop_reason:
        parts.append(f"stopped: {_cut(summary.stop_reason, STOP_CHARS)}")
    if summary.not_started:
        parts.append(not_started_text(len(summary.not_started)))
    parts += _lost_notes(summary)
    attention = _attention(summary)
    if attention:
        label = "needs attention" if summary.needs_attention else "not run now, needs attention"
        parts.append(f"{label}: {_named(attention)}")
    extra = f", report: {folder.report}" if report else ""
    parts.append(f"results in {folder.path}/ (summary: {folder.run_json}{extra})")
    head = "attention" if summary.needs_attention else "ok"
    # A folder name (or a server's message) may hold a newline or an escape sequence.
    return printable(f"{head}: " + "; ".join(parts))


def _items_differ(summary: RunSummary) -> str | None:
    """Why the night's items are not this invocation's, when they are not."""
    night, invocation = summary.night, summary.invocation
    if night.items == invocation.items:
        return None
    reasons = []
    if night.duplicates_dropped:
        reasons.append(_count(night.duplicates_dropped, "duplicate") + " dropped")
    if night.items_waiting:
        reasons.append(f"{night.items_waiting} waiting in the spool for earlier pages")
    if night.invocations > 1:
        reasons.append("the rest from earlier invocations")
    if not reasons:
        return None
    return f"items: {night.items} in the night, {invocation.items} fetched now: " + ", ".join(
        reasons
    )


def _lost_notes(summary: RunSummary) -> list[str]:
    """For the night's incremental jobs: when lost pages are next checked."""
    by_date: dict[str, list[str]] = {}
    for job in summary.jobs:
        note = job.refresh
        if job.status == "complete" and note is not None and note.mode == "incremental":
            by_date.setdefault(note.next_full or "", []).append(job.job_id)
    return [
        f"lost: checked on full nights, next on {date} ({_named(jobs)})"
        for date, jobs in sorted(by_date.items())
    ]


def interrupted_line(folder: RunFolder, signum: int, *, recorded: bool) -> str:
    """The last line of a run a signal stopped outside the crawl."""
    name = signal.Signals(signum).name
    if recorded:
        where = f"results in {folder.path}/ (summary: {folder.run_json})"
    else:
        where = "run.json was not written"
    return printable(
        f"attention: {name}: progress is saved; run the same command to continue; {where}"
    )


def finished_record(exit_code: int, summary: RunSummary | None, line: str | None) -> dict[str, Any]:
    """The fields of the ``run finished`` record: the status, the totals, the last line."""
    extra: dict[str, Any] = {"exit_code": int(exit_code)}
    if summary is not None:
        night, invocation = summary.night, summary.invocation
        extra["run_date"] = summary.run_date
        extra["night"] = {
            "jobs_by_status": night.jobs_by_status,
            "items": night.items,
            "new_items": night.new_items,
            "lost_items": night.lost_items,
            "calls": night.calls,
            "cost_usd": night.cost_usd,
            "invocations": night.invocations,
        }
        extra["invocation"] = {
            "items": invocation.items,
            "calls": invocation.calls,
            "cost_usd": invocation.cost_usd,
            "duration_s": invocation.duration_s,
        }
    if line is not None:
        extra["line"] = line
    return extra
