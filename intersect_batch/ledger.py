"""The night's ledger: what every invocation of a run date spent and called, in one file.

``--budget-usd`` is a cap per night, not per invocation: a run started again the same
day (after a crash, a Ctrl-C, a failed job) starts from what the earlier ones spent. The
ledger (``.ledger.json`` in the run folder) keeps that sum, and the night's calls and
retries, however jobs were restarted (``--fresh``, changed parameters, damaged state).

A capped run *books* money in the ledger before it reserves it for calls (a chunk at a
time): if the process dies with calls in flight, the next invocation counts the booked
amount as spent, so even kill -9 cannot make a night overrun its cap. A run that ends
normally writes what it really spent and releases the rest.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec

from intersect_batch.durable import atomic_write, read_file

__all__ = [
    "BOOKING_SHARE",
    "ImplausibleLedger",
    "Ledger",
    "find_ledger",
    "next_booking",
    "read_ledger",
    "write_ledger",
]


class Ledger(msgspec.Struct, frozen=True, kw_only=True):
    """A run date's totals over all its invocations."""

    #: What the night spent, as the budget counts it: reported costs, plus the worst case
    #: of calls whose answer was lost after the server may have billed them.
    spent_usd: float = 0.0
    #: What the API reported, summed.
    cost_usd: float = 0.0
    calls: int = 0
    retries: int = 0
    #: Seconds the API kept the night's invocations paused (rate and concurrency refusals).
    throttled_s: float = 0.0
    invocations: int = 0
    #: Money set aside by a capped invocation still running (or killed): counts as spent.
    booked_usd: float = 0.0

    @property
    def committed_usd(self) -> float:
        """What the next invocation must count as spent: the larger of spent and booked."""
        return max(self.spent_usd, self.booked_usd)


#: A capped invocation books this share of the cap at a time: one ledger write per chunk
#: of spending, and a night killed with money booked under-spends by one chunk at most.
BOOKING_SHARE = 0.05


def next_booking(cap: float | None, committed: float, booked: float) -> float | None:
    """What to book before a call brings the invocation's spend to ``committed``.

    ``None`` when nothing needs booking: no cap, or what is booked covers it. Otherwise
    the new amount to write in the ledger, a chunk ahead of ``committed``, never past
    the cap.
    """
    if cap is None or committed <= booked:
        return None
    return min(cap, committed + cap * BOOKING_SHARE)


_decoder = msgspec.json.Decoder(Ledger)
_encoder = msgspec.json.Encoder()


class ImplausibleLedger(msgspec.DecodeError):
    """A ledger that decodes but holds figures no night can have (negative, not finite).

    A ``DecodeError``: to every reader, a ledger that cannot be trusted is one that does
    not decode.
    """


def read_ledger(path: Path) -> Ledger:
    """The ledger at ``path``; an empty one when there is none (see :func:`find_ledger`)."""
    return find_ledger(path) or Ledger()


def find_ledger(path: Path) -> Ledger | None:
    """The ledger at ``path``; None when there is none.

    A ledger that cannot be read raises ``OSError`` or ``msgspec.DecodeError``, one whose
    figures are negative or not finite :class:`ImplausibleLedger`: a night whose spend is
    unknown must not be treated as a night that spent nothing.
    """
    try:
        data = read_file(path)
    except FileNotFoundError:
        return None
    ledger = _decoder.decode(data)
    if not _plausible(ledger):
        raise ImplausibleLedger("it holds a negative or infinite figure")
    return ledger


def _plausible(ledger: Ledger) -> bool:
    figures = (ledger.spent_usd, ledger.cost_usd, ledger.booked_usd, ledger.throttled_s)
    counts = (ledger.calls, ledger.retries, ledger.invocations)
    return all(math.isfinite(x) and x >= 0 for x in figures) and min(counts) >= 0


def write_ledger(path: Path, ledger: Ledger) -> None:
    """Replace the ledger atomically and durably; a figure no night can have is refused."""
    if not _plausible(ledger):
        raise ValueError(f"not a ledger a night can have: {ledger}")
    atomic_write(path, _encoder.encode(ledger))
