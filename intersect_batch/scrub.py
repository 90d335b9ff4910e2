"""Outside text made safe to keep: secrets replaced, length capped, one line.

A server may echo what it was sent, the Authorization header included, in an error
message, a quoted body or an exception string. :class:`Scrubber` replaces every form of a
secret a server or a library is likely to produce (raw, base64, URL-encoded, JSON-escaped)
with ``***``; :meth:`Scrubber.excerpt` also caps the text and marks the cut, so a 5 MB
status message never reaches a log. :class:`ScrubbingFilter` applies the same to log
records, as a last line of defence.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_CHARS", "Scrubber", "ScrubbingFilter", "cap_text"]

#: What stands in for a secret.
MASK = "***"
#: Shorter forms are not replaced alone: they cannot be told apart from ordinary words,
#: and replacing every "ab" would make the text unreadable. Real API passwords and keys
#: are far longer.
MIN_SECRET_CHARS = 4

# C0 and C1 controls, DEL: a message must not forge a log line or steer a terminal.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _encodings(secret: str) -> set[str]:
    """The forms of one text a server or a library may write: raw, URL, JSON."""
    forms = {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms.update((escaped, escaped.replace("/", "\\/")))
    return forms


def _forms(secret: str) -> set[str]:
    """Every form of ``secret`` to replace: itself and its base64, each encoded as above."""
    raw = secret.encode()
    coded = {
        base64.b64encode(raw).decode("ascii"),
        base64.urlsafe_b64encode(raw).decode("ascii"),
    }
    coded |= {text.rstrip("=") for text in coded}
    forms: set[str] = set()
    for text in {secret, *coded}:
        forms |= _encodings(text)
    return forms


def cap_text(text: str, max_chars: int, *, total: int | None = None, unit: str = "chars") -> str:
    """``text`` cut to ``max_chars``, the cut marked with how long the whole was."""
    whole = len(text) if total is None else total
    if len(text) <= max_chars and whole <= len(text):
        return text
    return f"{text[:max_chars]}... [cut: {whole:,} {unit} in all]"


class Scrubber:
    """Replaces every known form of some secrets with ``***`` in outside text.

    ``secrets`` are the texts to hide, e.g. the password, the API key, ``login:password``.
    Each is matched raw, in base64 (standard and URL-safe, with and without padding),
    URL-encoded (``quote``, ``quote_plus``) and JSON-escaped (``\\u`` escapes, ``\\/``),
    ignoring case (a hex escape may come in either case; hiding a bit more is harmless).
    """

    __slots__ = ("_pattern", "longest")

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= _forms(secret)
        kept = sorted((form for form in forms if len(form) >= MIN_SECRET_CHARS), key=len)
        # Longest first, so that a form containing a shorter one is replaced whole.
        kept.reverse()
        self._pattern = re.compile("|".join(map(re.escape, kept)), re.IGNORECASE) if kept else None
        #: The longest form replaced, in characters: how far a secret can reach past a cut.
        self.longest = len(kept[0]) if kept else 0

    def clean(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def excerpt(self, text: str | bytes, max_chars: int) -> str:
        """Outside text as it may go into an error: scrubbed, on one line, capped.

        Only the head of a long text is looked at; when it is cut, its last characters are
        dropped after scrubbing, as they may hold the start of a secret cut in two. The
        head is twice ``max_chars`` long (plus the longest secret), so that the secrets
        it holds, once shrunk to ``***``, still leave ``max_chars`` to show.
        """
        reach = self.longest
        if isinstance(text, bytes | bytearray | memoryview):
            total, unit = len(text), "bytes"
            # A character is 4 bytes at most.
            head_bytes = 4 * (2 * max_chars + reach)
            head = bytes(text[:head_bytes]).decode("utf-8", errors="replace")
            was_cut = total > head_bytes
        else:
            total, unit = len(text), "chars"
            head_chars = 2 * max_chars + reach
            head = text[:head_chars]
            was_cut = len(text) > head_chars
        head = self.clean(head)
        if was_cut and reach:
            head = head[: max(0, len(head) - (reach - 1))]
        head = _CONTROLS.sub(" ", head)
        if was_cut:
            return f"{head[:max_chars]}... [cut: {total:,} {unit} in all]"
        return cap_text(head, max_chars)


_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class _ScrubbedException(Exception):
    """Stands in for an exception whose text may hold a secret, keeping its chain."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


_STAND_INS: dict[type[BaseException], type[_ScrubbedException]] = {}


def _stand_in(kind: type[BaseException]) -> type[_ScrubbedException]:
    """A class printed under ``kind``'s name, so the log still says what was raised."""
    if kind not in _STAND_INS:
        _STAND_INS[kind] = type(
            kind.__name__,
            (_ScrubbedException,),
            {"__module__": kind.__module__, "__qualname__": kind.__qualname__},
        )
    return _STAND_INS[kind]


class ScrubbingFilter(logging.Filter):
    """A logging filter that scrubs a record's message, string extras and exception.

    Install it on a handler (``handler.addFilter(ScrubbingFilter(credentials.scrubber()))``):
    whatever a record carries, no form of a secret reaches the output. The message is
    formatted once and its arguments dropped; extras that are strings (also inside lists,
    tuples and dicts) are scrubbed; an exception's text, and each one it was raised from,
    is replaced by a scrubbed copy, its traceback kept.
    """

    def __init__(self, scrubber: Scrubber, name: str = "") -> None:
        super().__init__(name)
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        clean = self.scrubber.clean
        record.msg = clean(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD:
                record.__dict__[key] = self._value(value)
        if record.exc_info and record.exc_info[1] is not None:
            kind, error, trace = record.exc_info
            record.exc_info = (kind, self._exception(error, set()), trace)
        if record.exc_text:
            record.exc_text = clean(record.exc_text)
        if record.stack_info:
            record.stack_info = clean(record.stack_info)
        return True

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrubber.clean(value)
        if isinstance(value, list | tuple):
            return type(value)(self._value(item) for item in value)
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        return value

    def _exception(self, error: BaseException, seen: set[int]) -> BaseException:
        """A copy of ``error`` whose text (and its causes' texts) is scrubbed."""
        seen.add(id(error))
        try:
            text = str(error)
        except Exception:  # a broken __str__ must not break logging
            text = "<exception text unavailable>"
        notes = getattr(error, "__notes__", None)
        if isinstance(notes, list):
            text = "\n".join([text, *map(str, notes)])
        copy = _stand_in(type(error))(self.scrubber.clean(text))
        copy.__traceback__ = error.__traceback__
        copy.__suppress_context__ = error.__suppress_context__
        if error.__cause__ is not None and id(error.__cause__) not in seen:
            copy.__cause__ = self._exception(error.__cause__, seen)
        if error.__context__ is not None and id(error.__context__) not in seen:
            copy.__context__ = self._exception(error.__context__, seen)
        return copy
