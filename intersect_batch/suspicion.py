"""Whether an answer answers the question asked: the echo, pages of old items, duplicates.

Pure functions, told what was sent and what came back:

- :func:`echo_mismatch`: the envelope's ``tasks[].data`` echoes the request (DataForSEO
  fills in its defaults; the AIsa gateway passes it through). A field the request
  carried that comes back with another value says the answer is to another question
  (a caching proxy that answers every offset with page 0): a bad answer, never a page.
- :func:`only_seen`: without an echo, a page inside the total made only of items the
  job already holds is the same suspicion.
- :func:`duplicate_share`: a job whose dropped duplicates pass :data:`DUPLICATE_SHARE`
  of its total_count and a page's worth is not complete: pages shifted by far more than
  live data shifts them (a page boundary moves a few items, not a tenth of a job).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

__all__ = [
    "DUPLICATE_SHARE",
    "ECHO_FIELDS_SKIPPED",
    "duplicate_share",
    "echo_mismatch",
    "only_seen",
]

#: Duplicates past this share of total_count (and past one page) fail the job.
DUPLICATE_SHARE = 0.10

#: Fields of the echo that are not the request's (the API adds them).
ECHO_FIELDS_SKIPPED = frozenset({"api", "function", "se", "se_type"})


def _same(sent: Any, echoed: Any) -> bool:
    """Whether the echoed value is the one sent, as JSON values.

    Strings compare without case and surrounding blanks (an API may normalize a host
    name); numbers by value (100 and 100.0), but never a boolean as a number.
    """
    if isinstance(sent, bool) or isinstance(echoed, bool):
        return isinstance(sent, bool) and isinstance(echoed, bool) and sent == echoed
    if isinstance(sent, int | float):
        return isinstance(echoed, int | float) and sent == echoed
    if isinstance(sent, str):
        return isinstance(echoed, str) and sent.strip().casefold() == echoed.strip().casefold()
    if isinstance(sent, Mapping):
        return (
            isinstance(echoed, Mapping)
            and set(sent) == set(echoed)
            and all(_same(value, echoed[key]) for key, value in sent.items())
        )
    if isinstance(sent, list | tuple):
        return (
            isinstance(echoed, list)
            and len(sent) == len(echoed)
            and all(_same(a, b) for a, b in zip(sent, echoed, strict=True))
        )
    return sent is None and echoed is None


def echo_mismatch(sent: Mapping[str, Any], echo: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The first field the request carried that the echo gives another value, and that value.

    Fields the echo leaves out, and fields it adds (the defaults the API fills in), are
    no mismatch: only a value that contradicts what was sent is. ``offset`` and
    ``limit`` are compared first, as the likeliest to differ.
    """
    order = sorted(sent, key=lambda name: (name not in ("offset", "limit"), name))
    for name in order:
        if name in ECHO_FIELDS_SKIPPED or name not in echo:
            continue
        if sent[name] is None:
            continue  # a field sent as null is a field not sent
        if not _same(sent[name], echo[name]):
            return name, echo[name]
    return None


def only_seen(lines: Sequence[bytes], key: Callable[[bytes], int], seen: Container[int]) -> bool:
    """Whether a page holds items and every one is already among the job's ``seen`` keys."""
    return bool(lines) and all(key(line) in seen for line in lines)


def duplicate_share(duplicates: int, total: int | None, page_size: int) -> str | None:
    """Why a job's dropped duplicates are too many to call it complete, or None.

    Too many: more than :data:`DUPLICATE_SHARE` of ``total`` (the query's total_count)
    and more than ``page_size``. A job without a total (no result at all) has none.
    """
    if total is None or duplicates <= page_size or duplicates <= DUPLICATE_SHARE * total:
        return None
    share = duplicates / total if total else 1.0
    return (
        f"{duplicates} duplicate items dropped, {share:.0%} of total_count {total}: pages "
        f"came back holding items of other pages (over {DUPLICATE_SHARE:.0%} and over a "
        "page's worth), so the result would miss items; run it again with --fresh"
    )
