"""A page's raw items as the lines a job's file holds: one compact JSON object a line.

The items come from the answer's decoder as raw slices of its body
(:func:`intersect_batch.wire.page_items`); here each becomes one line, re-encoded only
where the server spaced it out, and made valid UTF-8. Pure functions of bytes, apart
from the answer's judging (:mod:`intersect_batch.answer`) because they are the step
that runs once an item, where the CPU step spends its time: their costs are given below.
"""

from __future__ import annotations

import bisect

import msgspec

__all__ = ["items_at", "repair_utf8", "split_items"]

# A pretty-printer puts a space after the first key's colon, well inside these bytes;
# the API's compact items have none there ({"page_intersection":{"1":[{"type":"...).
_HEAD_BYTES = 48
_OPEN_BRACE = ord("{")


def items_at(body: bytes, items: list[msgspec.Raw], positions: list[int]) -> set[int]:
    """The indexes of the items that span any of ``positions`` in ``body`` (a slow path).

    Each item is a slice of ``body``, in order: it is found from where the last ended.
    """
    touched: set[int] = set()
    cursor = 0
    for index, raw in enumerate(items):
        data = bytes(raw)
        start = body.find(data, cursor)
        if start < 0:
            continue
        end = start + len(data)
        first = bisect.bisect_left(positions, start)
        if first < len(positions) and positions[first] < end:
            touched.add(index)
        cursor = end
    return touched


def repair_utf8(lines: list[bytes]) -> set[int]:
    """Make every line valid UTF-8 in place; the indexes of those that were not.

    Each invalid sequence becomes U+FFFD. JSON's structure is ASCII and the decoder
    never swallows an ASCII byte into an invalid sequence, so a repaired line is the same
    JSON object with other text. The check is one strict decode per line, the cheapest
    exact one the standard library has (msgspec does not look inside the raw items): on
    2.5 kB items with text beyond ASCII about 1 us an item, on an ASCII line a fraction
    of that; the caller skips it for a body that is ASCII throughout.
    """
    repaired: set[int] = set()
    for index, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            lines[index] = line.decode("utf-8", "replace").encode("utf-8")
            repaired.add(index)
    return repaired


def split_items(items: list[msgspec.Raw], *, may_span_lines: bool = True) -> list[bytes]:
    """Each raw item as one compact line, re-encoded only where the server spaced it out.

    Raises ValueError naming the first item that is not a JSON object. An item is
    re-encoded (``msgspec.json.format``, which keeps every value byte for byte) when its
    first bytes hold a space, as every pretty-printer puts one after the first key's
    colon, or when it holds a tab or a line break (looked for only when the body has
    one: ``may_span_lines``). On 2.5 kB items, formatting every one costs 4-5 us an item;
    these checks about 0.2 us. An item compact in its first bytes and spaced further on
    is kept as sent: one valid JSON object on one line all the same.
    """
    lines = []
    for index, raw in enumerate(items):
        line = bytes(raw)
        if line[0] != _OPEN_BRACE:
            raise ValueError(f"item {index} is not a JSON object: {line[:60]!r}")
        if line.find(b" ", 0, _HEAD_BYTES) >= 0 or (
            may_span_lines and (b"\n" in line or b"\r" in line or b"\t" in line)
        ):
            line = msgspec.json.format(line, indent=-1)
        lines.append(line)
    return lines
