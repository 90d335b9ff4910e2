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

from pathlib import Path

import msgspec

from intersect_batch.durable import atomic_write, read_file

__all__ = ["BOOKING_SHARE", "Ledger", "next_booking", "read_ledger", "write_ledger"]


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


def read_ledger(path: Path) -> Ledger:
    """The ledger at ``path``; an empty one when there is none.

    A ledger that cannot be read raises ``OSError`` or ``msgspec.DecodeError``: a night
    whose spend is unknown must not be treated as a night that spent nothing.
    """
    try:
        data = read_file(path)
    except FileNotFoundError:
        return Ledger()
    return _decoder.decode(data)


def write_ledger(path: Path, ledger: Ledger) -> None:
    """Replace the ledger atomically and durably."""
    atomic_write(path, _encoder.encode(ledger))
