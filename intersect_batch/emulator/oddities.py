"""Answers that are not quite the page asked for: a caching proxy, a page past its limit, odd text.

Knobs of their own (``EmulatorSettings.oddities``), apart from the fault draws: each is
on for every call while set, so a test knows exactly what the client meets.

- ``first_page_proxy``: a caching proxy in front of the API that keys its cache without
  the offset: every request is answered with the page at offset 0 of the same query
  (its echo, ``tasks[].data``, says offset 0, as the cached answer did).
- ``no_echo``: answers carry no ``tasks[].data`` (a proxy that strips it).
- ``page_items`` (0 = off): every page carries that many items from its offset on (at
  most 1000, at most what is left), whatever limit was asked; billed for what it carries;
  its echo says the limit asked.
- ``surrogate_at`` / ``bad_utf8_at``: the items at these positions of the result set
  (offset + index in the page) get, at the start of their first ``page_from_title``, a
  lone surrogate escape (the six characters ``\\ud800``) or two raw bytes that are not
  UTF-8 (``\\xff\\xfe``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BAD_UTF8",
    "LONE_SURROGATE",
    "AnswerOddities",
    "add_flags",
    "from_flags",
    "odd_text",
]

#: What ``surrogate_at`` puts into a title: a lone high surrogate, escaped (valid JSON text).
LONE_SURROGATE = b"\\ud800"
#: What ``bad_utf8_at`` puts into a title: bytes no UTF-8 text holds.
BAD_UTF8 = b"\xff\xfe"
_TITLE = b'"page_from_title":"'
_MAX_LIMIT = 1000


@dataclass(frozen=True, kw_only=True)
class AnswerOddities:
    """Answers that are not the page asked for; all off by default (see the module)."""

    first_page_proxy: bool = False
    no_echo: bool = False
    page_items: int = 0
    surrogate_at: frozenset[int] = field(default_factory=frozenset)
    bad_utf8_at: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not 0 <= self.page_items <= _MAX_LIMIT:
            raise ValueError(f"page_items must be in 0..{_MAX_LIMIT}, got {self.page_items}")
        object.__setattr__(self, "surrogate_at", frozenset(self.surrogate_at))
        object.__setattr__(self, "bad_utf8_at", frozenset(self.bad_utf8_at))
        if any(p < 0 for p in self.surrogate_at | self.bad_utf8_at):
            raise ValueError("positions must be >= 0")

    def proxied(self, task: Any) -> Any:
        """The task the API is asked for: offset 0 behind a first-page proxy."""
        if self.first_page_proxy and isinstance(task, dict):
            return {**task, "offset": 0}
        return task

    def page_limit(self, limit: int) -> int:
        """How many items a page carries for the ``limit`` asked."""
        return self.page_items or limit


def odd_text(oddities: AnswerOddities, offset: int, items: Iterable[bytes]) -> list[bytes]:
    """The page's encoded items, with odd text where ``oddities`` puts it."""
    out = list(items)
    if not (oddities.surrogate_at or oddities.bad_utf8_at):
        return out
    for index, item in enumerate(out):
        position = offset + index
        for positions, text in (
            (oddities.surrogate_at, LONE_SURROGATE),
            (oddities.bad_utf8_at, BAD_UTF8),
        ):
            if position in positions:
                at = item.find(_TITLE)
                if at >= 0:
                    at += len(_TITLE)
                    item = item[:at] + text + item[at:]
        out[index] = item
    return out


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The command line's flags for :class:`AnswerOddities`."""
    group = parser.add_argument_group("answers that are not the page asked for")
    group.add_argument(
        "--first-page-proxy",
        action="store_true",
        help="answer every offset with the page at offset 0 (its echo says offset 0)",
    )
    group.add_argument(
        "--no-echo", action="store_true", help="leave tasks[].data out of every answer"
    )
    group.add_argument(
        "--page-items",
        type=int,
        default=0,
        metavar="N",
        help="every page carries N items whatever its limit (0: off, at most 1000)",
    )
    for flag, what in (
        ("--surrogate-at", "a lone surrogate escape \\ud800"),
        ("--bad-utf8-at", "the raw bytes 0xFF 0xFE"),
    ):
        group.add_argument(
            flag,
            type=int,
            action="append",
            default=[],
            metavar="POS",
            help=f"the item at POS of the result set gets {what} in its title (repeatable)",
        )


def from_flags(args: argparse.Namespace) -> AnswerOddities:
    """The oddities the parsed command line asks for (ValueError on bad values)."""
    return AnswerOddities(
        first_page_proxy=args.first_page_proxy,
        no_echo=args.no_echo,
        page_items=args.page_items,
        surrogate_at=frozenset(args.surrogate_at),
        bad_utf8_at=frozenset(args.bad_utf8_at),
    )
