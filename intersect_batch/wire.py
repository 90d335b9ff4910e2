"""The API's envelope as typed Structs; items stay raw bytes; the dedup key of an item.

Only what the crawler reads is typed (status codes, cost, total_count). Each item is a
``msgspec.Raw`` slice of the response, written to disk as the API sent it, so a field
the API adds tomorrow is never lost. :func:`item_key` names the referring page an item
describes, from its bytes, for de-duplication within a job and diffs between runs.

Decoding never costs more than a bounded number of objects, whatever the answer holds:
only the first task and the first result are decoded (the rest of those arrays is skipped
unread), and a page's items are decoded into at most ``MAX_PAGE_ITEMS + 1`` slots by
:func:`page_items`. An answer within the size caps could otherwise hold twenty million
``{}`` (60 MB, gzipped to 60 kB), and one Python object each is 1-2 GB.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import msgspec

__all__ = [
    "MAX_PAGE_ITEMS",
    "AisaError",
    "Envelope",
    "FirstResult",
    "FirstTask",
    "ItemKey",
    "Result",
    "Task",
    "aisa_error_decoder",
    "envelope_decoder",
    "item_key",
    "item_key_decoder",
    "item_url",
    "mask_lone_surrogates",
    "page_items",
]

#: The most items one answer may hold: the API's ``limit`` is at most 1000.
MAX_PAGE_ITEMS = 1000


# An array_like Struct decodes an array's first elements into its fields and skips the
# rest unread: one slot more than a page may hold tells a longer array apart. The
# items are decoded in the same pass as the envelope, each a raw slice of the body.
if TYPE_CHECKING:
    PageSlots = msgspec.Struct
else:
    PageSlots = msgspec.defstruct(
        "PageSlots",
        [
            (f"i{n}", msgspec.Raw | msgspec.UnsetType, msgspec.UNSET)
            for n in range(MAX_PAGE_ITEMS + 1)
        ],
        array_like=True,
    )


class Result(msgspec.Struct):
    """One result of a task: the query's full count and one page of items."""

    total_count: int | None = None
    items_count: int | None = None
    #: The first items of the array, raw: see :func:`page_items`.
    items: PageSlots | None = None


class FirstResult(msgspec.Struct, array_like=True):
    """A task's result array, of which only the first result is decoded."""

    result: Result | None = None


class Task(msgspec.Struct):
    """One task of the envelope, with its own status and cost."""

    status_code: int
    status_message: str = ""
    id: str | None = None
    cost: float | None = None
    #: The request as the API understood it (``data``), raw: see
    #: :func:`intersect_batch.suspicion.echo_mismatch`. Kept raw so that an echo of any
    #: shape never keeps the envelope from decoding; empty when the answer has none.
    data: msgspec.Raw = msgspec.Raw()
    result: FirstResult | None = None


class FirstTask(msgspec.Struct, array_like=True):
    """The envelope's task array, of which only the first task is decoded."""

    task: Task | None = None


class Envelope(msgspec.Struct):
    """The response body of every DataForSEO call."""

    status_code: int
    status_message: str = ""
    cost: float | None = None
    tasks_count: int | None = None
    tasks_error: int | None = None
    tasks: FirstTask | None = None

    @property
    def first_task(self) -> Task | None:
        """The first task, the only one the crawler sends; None when there is none."""
        return self.tasks.task if self.tasks is not None else None


class AisaErrorBody(msgspec.Struct):
    """The AIsa gateway's own error, before the upstream envelope is reached."""

    message: str = ""
    type: str | None = None
    code: str | int | None = None
    request_id: str | None = None


class AisaError(msgspec.Struct):
    """``{"error": {...}}`` as the AIsa gateway answers its own failures."""

    error: AisaErrorBody


class _KeyBacklink(msgspec.Struct):
    url_from: str | None = None


class ItemKey(msgspec.Struct):
    """The part of an item that identifies the referring page."""

    page_intersection: dict[str, list[_KeyBacklink]] | None = None

    def url_from(self) -> str | None:
        """The referring page's URL: the first url_from, in the order the API sent them."""
        for backlinks in (self.page_intersection or {}).values():
            for backlink in backlinks:
                if backlink.url_from:
                    return backlink.url_from
        return None


envelope_decoder = msgspec.json.Decoder(Envelope)
aisa_error_decoder = msgspec.json.Decoder(AisaError)
item_key_decoder = msgspec.json.Decoder(ItemKey)


def page_items(slots: PageSlots | None) -> list[msgspec.Raw]:
    """A result's items, each still raw; [] for ``null``.

    Raises ValueError when the array held more than :data:`MAX_PAGE_ITEMS` items (the
    rest of it was skipped, not decoded).
    """
    if slots is None:
        return []
    values = msgspec.structs.astuple(slots)
    if values[-1] is not msgspec.UNSET:
        raise ValueError(f"the page holds more than {MAX_PAGE_ITEMS} items, the most a page can")
    try:
        end = values.index(msgspec.UNSET)
    except ValueError:
        end = len(values)
    return list(values[:end])


_URL_FROM = b'"url_from":"'
#: An item larger than this whose url_from the byte search misses is keyed by its text:
#: decoding it could mean millions of objects (real items are 1-70 kB).
_KEY_DECODE_LIMIT = 2**20


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def item_url(line: bytes) -> str | None:
    """The referring page's URL an item names (its first url_from), or None.

    The common case is a byte search; a value with escapes, or an item laid out
    otherwise, is decoded, unless the item is over 1 MiB: decoding one of those could
    mean millions of objects (real items are 1-70 kB), so it is named by nothing.
    """
    start = line.find(_URL_FROM)
    if start >= 0:
        start += len(_URL_FROM)
        end = line.find(b'"', start)
        if end > start and b"\\" not in line[start:end]:
            return line[start:end].decode("utf-8", "replace")
    if len(line) > _KEY_DECODE_LIMIT:
        return None
    try:
        return item_key_decoder.decode(line).url_from()
    except (msgspec.DecodeError, RecursionError):
        return None


def item_key(line: bytes) -> int:
    """A stable 64-bit key of the referring page an item describes: its first url_from.

    The common case is found by a byte search (the dedup key is on the hot path); a
    value with escapes, or an item laid out otherwise, is decoded, with the same result,
    unless it is over 1 MiB. Items with no url_from are keyed by their whole text.
    """
    start = line.find(_URL_FROM)
    if start >= 0:
        start += len(_URL_FROM)
        end = line.find(b'"', start)
        if end > start and b"\\" not in line[start:end]:
            return _digest(line[start:end])
    if len(line) > _KEY_DECODE_LIMIT:
        return _digest(line)
    try:
        url = item_key_decoder.decode(line).url_from()
    except (msgspec.DecodeError, RecursionError):
        url = None
    return _digest(url.encode() if url is not None else line)


# A JSON escape: ``\\uXXXX`` with its hex digits, or a backslash and any one character
# (so that an escaped backslash is consumed whole and ``\\\\ud800`` is not read as an escape).
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)
#: What a lone surrogate escape is replaced by: U+FFFD, the same six bytes long.
REPLACEMENT_ESCAPE = b"\\ufffd"


def mask_lone_surrogates(body: bytes) -> tuple[bytes, list[int]] | None:
    """``body`` with every lone UTF-16 surrogate escape replaced by ``\\ufffd``, and where.

    ``"\\ud800"`` without its low half (or a low half alone) is valid JSON text, but no
    character: strict decoders (msgspec, yyjson and so DuckDB, serde) refuse the whole
    document. The replacement has the same length, so every other byte stays where it
    was; the offsets returned are where each replaced escape starts. None when the body
    holds no lone surrogate escape. A scan over the whole body: call it only once the
    fast decode has failed.
    """
    if b"\\u" not in body and b"\\U" not in body:
        return None
    escapes = [
        (match.start(), int(match.group(1), 16))
        for match in _ESCAPE.finditer(body)
        if match.group(1) is not None and 0xD800 <= int(match.group(1), 16) <= 0xDFFF
    ]
    lone: list[int] = []
    index = 0
    while index < len(escapes):
        start, unit = escapes[index]
        if unit <= 0xDBFF and index + 1 < len(escapes):
            after, low = escapes[index + 1]
            if after == start + 6 and low >= 0xDC00:
                index += 2  # a high and a low half side by side: one character
                continue
        lone.append(start)
        index += 1
    if not lone:
        return None
    masked = bytearray(body)
    for start in lone:
        masked[start : start + 6] = REPLACEMENT_ESCAPE
    return bytes(masked), lone
