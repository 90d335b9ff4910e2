"""What hostile answers hold: mangled items, and status messages no client should repeat."""

from __future__ import annotations

import base64
import binascii
import contextlib
from urllib.parse import quote

import msgspec

from .settings import HOLE_NAMES, FaultSettings

__all__ = [
    "LONG_MESSAGE_MARK",
    "LONG_MESSAGE_UNIT",
    "applies",
    "credential_echo",
    "mangle_page",
    "nested",
    "pretty",
    "with_non_objects",
]

LONG_MESSAGE_MARK = "<<long status message>>"
"""Put where the long message goes, then swapped for the streamed text."""
LONG_MESSAGE_UNIT = b"The request could not be processed in full. "
"""The long message is this text repeated (plain ASCII: nothing to escape in JSON)."""

_JUNK = (b"1", b'"a"', b"null")

# Faults that change only how a page's items look, and the items each needs to act on.
_ITEMS_NEEDED = {
    "deep_nesting": 1,
    "non_object_items": 4,
    "pretty_items": 1,
    "multiline_items": 1,
}


def applies(fault: str | None, offset: int, total: int, items: int) -> bool:
    """Whether ``fault`` can act on this page (a hole needs an offset inside the total)."""
    if fault in HOLE_NAMES:
        return offset < total
    return items >= _ITEMS_NEEDED.get(fault or "", 0)


def mangle_page(
    fault: str | None, faults: FaultSettings, offset: int, items: list[bytes], total: int
) -> tuple[list[bytes], int]:
    """The page's encoded items and its total_count, as ``fault`` changes them."""
    if fault == "empty_page":
        return [], total
    if fault == "short_page":
        return items[: len(items) // 2], total
    if fault == "huge_total":
        return (items if offset == 0 else []), faults.huge_total_count
    if fault == "deep_nesting":
        return [nested(items[0], faults.nesting_depth), *items[1:]], total
    if fault == "non_object_items":
        return with_non_objects(items) or items, total
    if fault in ("pretty_items", "multiline_items"):
        return pretty(items, multiline=fault == "multiline_items"), total
    return items, total


def credential_echo(authorization: str) -> str:
    """An error message quoting ``authorization`` verbatim, decoded, and URL-encoded."""
    scheme, _, value = authorization.partition(" ")
    secret = value.strip()
    if scheme.lower() == "basic":
        with contextlib.suppress(binascii.Error):  # not base64: quote it as it came
            secret = base64.b64decode(secret, validate=True).decode("utf-8", "replace")
    return (
        "Invalid Field: 'targets'. Request refused for Authorization: "
        f"{authorization}; credentials: {secret}; encoded: {quote(secret, safe='')}."
    )


def nested(item: bytes, depth: int) -> bytes:
    """``item`` (an encoded object) with a field ``"nested"`` of ``depth`` arrays in arrays."""
    return b"".join((item[:-1], b',"nested":', b"[" * depth, b"]" * depth, b"}"))


def with_non_objects(items: list[bytes]) -> list[bytes] | None:
    """``items`` with those at n//4, n//2, 3n//4 replaced by 1, "a", null (None if n < 4)."""
    n = len(items)
    if n < 4:
        return None
    out = list(items)
    for k, junk in enumerate(_JUNK, start=1):
        out[k * n // 4] = junk
    return out


def pretty(items: list[bytes], *, multiline: bool) -> list[bytes]:
    """Each item re-encoded with spaces after ``:`` and ``,`` (one line), or indented."""
    return [msgspec.json.format(item, indent=2 if multiline else 0) for item in items]
