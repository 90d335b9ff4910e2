"""The one way a config message quotes what a file holds: short, escaped, never raw.

The rule: a message quotes a file's text only once the file has parsed as YAML with a
mapping at its top (the shape of a job file). Before that (a file that cannot be read,
is binary, is not UTF-8, is not YAML, is too big, too deep, or uses aliases), messages
say what is wrong and where, never what the file holds, so a config path that points
at some other file (a symlink to a system file) cannot leak it. A quote is Python's
``repr`` of the value (control and invisible characters escaped), cut to
``EXCERPT_CHARS`` characters with a trailing ``…``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["EXCERPT_CHARS", "excerpt", "label", "plain"]

# Long enough for a page URL or a full job id (100 characters) to be recognized.
EXCERPT_CHARS = 120


def label(value: str) -> str:
    """``value`` cut to EXCERPT_CHARS characters (``…`` marks the cut), not yet quoted."""
    if len(value) <= EXCERPT_CHARS:
        return value
    return value[: EXCERPT_CHARS - 1] + "…"


def excerpt(value: Any) -> str:
    """A value as a message quotes it: ``'hubspot.com'``, ``5``, ``'abc…'`` (capped, escaped)."""
    if isinstance(value, str):
        return repr(label(value))
    if isinstance(value, bool | int | float) or value is None:
        text = repr(value)
        return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
    # Lists and mappings: their repr, escaped as a whole, then cut.
    return label(repr(value))


def plain(text: str, limit: int = 200) -> str:
    """A parser's own message, fit to print: file text it quotes is left out.

    PyYAML's messages quote a token (``':'``, ``'<block end>'``) or, in a few, text of
    the file (an undefined tag handle); a quote longer than two characters that is not
    a token's name becomes ``'…'``. Control characters are escaped, the length capped.
    """
    text = _QUOTED.sub(_keep_token, text)
    cleaned = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_TOKEN_NAME = re.compile(r"<[a-z ]+>")


def _keep_token(match: re.Match[str]) -> str:
    quoted = match.group()
    inner = quoted[1:-1]
    if len(inner) <= 2 or _TOKEN_NAME.fullmatch(inner):
        return quoted
    return "'…'"
