"""The API's envelope as typed Structs; items stay raw bytes; the dedup key of an item.

Only what the crawler reads is typed (status codes, cost, total_count). Each item is a
``msgspec.Raw`` slice of the response, written to disk as the API sent it, so a field
the API adds tomorrow is never lost. :func:`item_key` names the referring page an item
describes, from its bytes, for de-duplication within a job and diffs between runs.
"""

from __future__ import annotations

import hashlib

import msgspec

__all__ = [
    "AisaError",
    "Envelope",
    "ItemKey",
    "Result",
    "Task",
    "aisa_error_decoder",
    "envelope_decoder",
    "item_key",
    "item_key_decoder",
]


class Result(msgspec.Struct):
    """One result of a task: the query's full count and one page of items."""

    total_count: int | None = None
    items_count: int | None = None
    items: list[msgspec.Raw] | None = None


class Task(msgspec.Struct):
    """One task of the envelope, with its own status and cost."""

    status_code: int
    status_message: str = ""
    id: str | None = None
    cost: float | None = None
    result: list[Result] | None = None


class Envelope(msgspec.Struct):
    """The response body of every DataForSEO call."""

    status_code: int
    status_message: str = ""
    cost: float | None = None
    tasks_count: int | None = None
    tasks_error: int | None = None
    tasks: list[Task] | None = None


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


_URL_FROM = b'"url_from":"'


def _digest(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def item_key(line: bytes) -> int:
    """A stable 64-bit key of the referring page an item describes: its first url_from.

    The common case is found by a byte search (the dedup key is on the hot path); a
    value with escapes, or an item laid out otherwise, is decoded, with the same result.
    Items with no url_from are keyed by their whole text.
    """
    start = line.find(_URL_FROM)
    if start >= 0:
        start += len(_URL_FROM)
        end = line.find(b'"', start)
        if end > start and b"\\" not in line[start:end]:
            return _digest(line[start:end])
    try:
        url = item_key_decoder.decode(line).url_from()
    except (msgspec.DecodeError, RecursionError):
        url = None
    return _digest(url.encode() if url is not None else line)
