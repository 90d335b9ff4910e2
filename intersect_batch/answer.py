"""An answer as received, and the page read out of it: the CPU step of a call.

:class:`Answer` is one HTTP exchange as the network step (:mod:`intersect_batch.client`)
received it, its body still compressed. :func:`read_answer` is blocking CPU work, meant
for a worker thread: it inflates the body under a cap, decodes it, judges it at every
level (the HTTP status, the envelope's and the task's status codes, the echo of the
request, the page's size) and returns a :class:`FetchedPage` of compact lines
(:mod:`intersect_batch.itemlines`), or raises the
:class:`~intersect_batch.errors.ApiError` the answer calls for, its outside text
scrubbed of the credentials and capped. It is apart from the network step because it
touches no socket and no event loop: it is a function of an answer's bytes, tested and
measured (bench/cpu.py) from them alone. Nothing here retries: that is the dispatcher's
decision.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from intersect_batch.errors import ApiError, JobFatalApiError, TransientApiError
from intersect_batch.itemlines import items_at, repair_utf8, split_items
from intersect_batch.scrub import Scrubber
from intersect_batch.settings import AnswerCaps
from intersect_batch.status import NO_RESULTS, RUN_FATAL_ADVICE, classify
from intersect_batch.suspicion import echo_mismatch
from intersect_batch.wire import (
    MAX_PAGE_ITEMS,
    Envelope,
    Task,
    aisa_error_decoder,
    envelope_decoder,
    mask_lone_surrogates,
    page_items,
)

__all__ = [
    "KEPT_HEADERS",
    "Answer",
    "BadAnswerError",
    "FetchedPage",
    "over_cap",
    "read_answer",
]

#: The answer headers kept (by the network step) and read, by their lower-case names.
KEPT_HEADERS = ("content-encoding", "content-type", "retry-after", "x-aisa-price-usd")

# Inflate in steps, so that a bomb stops at the cap and not when it is done.
_INFLATE_STEP = 8 * 2**20


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange as received: nothing decoded, nothing judged."""

    http_status: int
    #: The headers of :data:`KEPT_HEADERS` that came, by their lower-case names.
    headers: Mapping[str, str]
    #: The body as received, still compressed (see ``headers["content-encoding"]``).
    body: bytes
    #: The task that was sent, to hold the answer's echo against; None: not checked.
    asked: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """One page as the API answered it, items ready to be written."""

    #: The query's full count; ``None`` when the answer carries no result (40102 "no
    #: search results", a null result): the caller decides whether that is a hole.
    total_count: int | None
    #: How many items the API returned in this answer (``len(lines)``).
    items_count: int
    #: Each item's compact JSON object, one per line, in the API's order.
    lines: list[bytes]
    #: The cost the answer claims for the call, in USD (X-AISA-Price-USD when sent);
    #: None when it says none that is a finite amount >= 0. The night's money books the
    #: larger of this claim and the provider's price list (intersect_batch.money).
    cost: float | None
    task_id: str | None
    #: Items whose text had to be repaired to be written as valid UTF-8 JSON: invalid
    #: UTF-8 bytes (each became U+FFFD) or a lone surrogate escape (became ``\\ufffd``).
    items_repaired: int = 0
    #: Whether the answer echoed the request's offset and the echo matched what was sent.
    #: Without an echo, a page of items the job already holds is suspect (the caller's
    #: call: see :func:`intersect_batch.suspicion.only_seen`).
    echoed: bool = False


class BadAnswerError(TransientApiError):
    """An answer that decodes but is not the page asked for: retried, then the job fails.

    An echo of another request, more items than the limit asked, an item that is not a
    JSON object, more than a page can hold. ``items`` is how many items the answer
    carried (``MAX_PAGE_ITEMS + 1`` when it held more than a page can: the rest was never
    decoded) and ``cost`` what it said it cost, so that it can be booked by what came back.
    """

    def __init__(self, message: str, *, items: int = 0, **context: Any) -> None:
        self.items = items
        super().__init__(message, **context)


def read_answer(answer: Answer, *, caps: AnswerCaps, scrubber: Scrubber) -> FetchedPage:
    """The page an answer holds, or the classified ApiError raised.

    Blocking CPU work (inflate, decode, compact): call it in a worker thread. The body is
    inflated in steps up to ``caps.max_inflated_bytes`` (past it: JobFatalApiError); an
    answer that does not decode, deep nesting included, is a TransientApiError
    ("undecodable answer"), as is an item that is not a JSON object. The HTTP status,
    the envelope's and the task's status codes are judged by
    :func:`~intersect_batch.status.classify`; every outside text that goes into an error
    is scrubbed by ``scrubber`` and capped at ``caps.max_message_chars``.
    """
    body = _inflate(answer, caps)
    try:
        envelope = envelope_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        # The slow path, only for a body the fast decode refused: a lone surrogate
        # escape ("\\ud800") in some text is valid JSON that msgspec will not decode.
        masked = mask_lone_surrogates(body) if isinstance(exc, msgspec.DecodeError) else None
        if masked is None:
            raise _without_envelope(answer, body, exc, caps, scrubber) from None
        body, where = masked
        try:
            envelope = envelope_decoder.decode(body)
        except (msgspec.DecodeError, RecursionError):
            raise _without_envelope(answer, body, exc, caps, scrubber) from None
        return _judge(answer, envelope, body, caps, scrubber, masked_at=where)
    return _judge(answer, envelope, body, caps, scrubber)


def _inflate(answer: Answer, caps: AnswerCaps) -> bytes:
    """The body as the server encoded it before compressing, at most the inflated cap."""
    body = answer.body
    cap = caps.max_inflated_bytes
    encoding = answer.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > cap:
            raise over_cap(
                f"the answer holds {len(body):,} bytes, over the cap of {cap:,}",
                "max_inflated_bytes",
                answer.http_status,
            )
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        # Only gzip and deflate were asked for; any other is not ours to read.
        raise TransientApiError(
            f"undecodable answer: an encoding that was not asked for ({encoding[:40]!r})",
            http_status=answer.http_status,
            maybe_billed=_may_have_run(answer.http_status),
        )
    try:
        return _inflate_capped(body, cap, answer.http_status)
    except zlib.error as exc:
        raise TransientApiError(
            f"answer cut short: cannot inflate it ({str(exc)[:200]})",
            http_status=answer.http_status,
            maybe_billed=_may_have_run(answer.http_status),
        ) from None


def _wbits(data: bytes) -> int:
    """zlib's window bits for what ``data`` starts with: gzip, zlib, or raw deflate."""
    if data[:2] == b"\x1f\x8b":
        return 31
    if len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0:
        return 15
    return -15  # "deflate" without its zlib header, as some servers send it


def _inflate_capped(body: bytes, cap: int, http_status: int) -> bytes:
    """``body`` inflated step by step; past ``cap`` bytes, JobFatalApiError at once."""
    chunks: list[bytes] = []
    size = 0
    inflater = zlib.decompressobj(_wbits(body))
    data = body
    while True:
        # Never more than cap + 1 bytes in all: memory stays within the cap.
        chunk = inflater.decompress(data, min(_INFLATE_STEP, cap - size + 1))
        size += len(chunk)
        if size > cap:
            raise over_cap(
                f"the answer ({len(body):,} bytes compressed) inflates past {cap:,} bytes, "
                "the cap: inflating stopped there",
                "max_inflated_bytes",
                http_status,
            )
        if chunk:
            chunks.append(chunk)
        data = inflater.unconsumed_tail
        if inflater.eof:
            rest = inflater.unused_data
            if rest[:2] != b"\x1f\x8b":
                break  # bytes after the stream are not part of it
            inflater = zlib.decompressobj(31)  # a gzip body may hold several members
            data = rest
        elif not data and not chunk:
            raise TransientApiError(
                "answer cut short: the compressed body stops before its end",
                http_status=http_status,
                maybe_billed=_may_have_run(http_status),
            )
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def _without_envelope(
    answer: Answer,
    body: bytes,
    exc: Exception,
    caps: AnswerCaps,
    scrubber: Scrubber,
) -> ApiError:
    """The error for an answer that is no envelope: a gateway's error, or garbage."""
    status = answer.http_status
    limit = caps.max_message_chars
    retry_after = _retry_after(answer.headers)
    try:
        gateway = aisa_error_decoder.decode(body).error
    except (msgspec.DecodeError, RecursionError):
        gateway = None
    if gateway is not None:
        error_class = classify(status, None, None) or JobFatalApiError
        message = scrubber.excerpt(gateway.message, limit) or f"HTTP {status}"
        return error_class(
            message,
            http_status=status,
            retry_after=retry_after,
            maybe_billed=_may_have_run(status) and status != 200,
        )
    if status == 200:
        # A 200 whose body does not decode was cut short or garbled on the way.
        reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
        return TransientApiError(
            f"undecodable answer ({scrubber.excerpt(reason, limit)})",
            http_status=status,
            maybe_billed=True,
        )
    error_class = classify(status, None, None) or JobFatalApiError
    quoted = scrubber.excerpt(body, limit)
    return error_class(
        f"HTTP {status}: {quoted}" if quoted.strip() else f"HTTP {status}",
        http_status=status,
        retry_after=retry_after,
        maybe_billed=_may_have_run(status),
    )


def _judge(
    answer: Answer,
    envelope: Envelope,
    body: bytes,
    caps: AnswerCaps,
    scrubber: Scrubber,
    *,
    masked_at: list[int] | None = None,
) -> FetchedPage:
    """The page of a decoded envelope, or the error its status codes call for.

    ``masked_at``: where lone surrogate escapes were replaced in ``body`` (the items
    holding one count as repaired).
    """
    status = answer.http_status
    task: Task | None = envelope.first_task
    task_code = task.status_code if task is not None else None
    cost = _reported_cost(answer.headers, envelope, task)
    verdict = classify(status, envelope.status_code, task_code)
    if verdict is not None:
        if envelope.status_code != 20000 or task is None:
            code, message = envelope.status_code, envelope.status_message
        else:
            code, message = task.status_code, task.status_message
        text = scrubber.excerpt(message, caps.max_message_chars) or f"HTTP {status}"
        if code in RUN_FATAL_ADVICE:
            text = f"{text} ({RUN_FATAL_ADVICE[code]})"
        raise verdict(
            text,
            http_status=status,
            status_code=code,
            retry_after=_retry_after(answer.headers),
            cost=cost,
        )
    if task is None:
        raise JobFatalApiError(
            "the answer holds no task",
            http_status=status,
            status_code=envelope.status_code,
            cost=cost,
        )

    def bad(reason: str, items: int) -> BadAnswerError:
        return BadAnswerError(
            f"bad answer: {scrubber.excerpt(reason, caps.max_message_chars)}",
            items=items,
            http_status=status,
            status_code=task.status_code,
            cost=cost,
        )

    task_id = None if task.id is None else scrubber.excerpt(task.id, caps.max_message_chars)
    result = task.result.result if task.result is not None else None
    try:
        items = page_items(result.items if result is not None else None)
    except ValueError as exc:
        raise bad(str(exc), MAX_PAGE_ITEMS + 1) from None
    echoed = False
    if answer.asked is not None:
        echoed = _check_echo(answer.asked, task.data, len(items), bad, scrubber)
        limit = answer.asked.get("limit")
        if isinstance(limit, int) and len(items) > limit:
            raise bad(
                f"the page holds {len(items)} items, more than the limit of {limit} asked",
                len(items),
            )
    if task.status_code == NO_RESULTS or result is None:
        return FetchedPage(
            total_count=None, items_count=0, lines=[], cost=cost, task_id=task_id, echoed=echoed
        )
    # Tabs and line breaks never appear raw inside JSON strings: if the body has none,
    # no item spans lines (one memchr over the body instead of one per item).
    broken = b"\n" in body or b"\r" in body or b"\t" in body
    try:
        lines = split_items(items, may_span_lines=broken)
    except (ValueError, msgspec.DecodeError, RecursionError) as exc:
        raise bad(str(exc), len(items)) from None
    repaired: set[int] = set()
    if masked_at:
        repaired = items_at(body, items, masked_at)
    # Only text beyond ASCII can be invalid UTF-8 (isascii is one fast pass, no copy).
    if not body.isascii():
        repaired |= repair_utf8(lines)
    return FetchedPage(
        total_count=result.total_count,
        items_count=len(lines),
        lines=lines,
        cost=cost,
        task_id=task_id,
        items_repaired=len(repaired),
        echoed=echoed,
    )


#: The most bytes of an echo decoded: what this crawler sends is a few kB at most.
_MAX_ECHO_BYTES = 64 * 1024
#: How much of an echoed or a sent value a message quotes.
_QUOTED_CHARS = 120


def _check_echo(
    asked: Mapping[str, Any],
    data: msgspec.Raw,
    items: int,
    bad: Callable[[str, int], BadAnswerError],
    scrubber: Scrubber,
) -> bool:
    """Whether the answer echoed the offset asked; raises when its echo contradicts the request."""
    raw = bytes(data)
    if raw in (b"", b"null"):
        return False
    if len(raw) > _MAX_ECHO_BYTES:
        raise bad(f"its echo of the request (tasks[].data) is {len(raw):,} bytes long", items)
    try:
        echo = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise bad("its echo of the request (tasks[].data) does not decode", items) from None
    if not isinstance(echo, dict):
        raise bad("its echo of the request (tasks[].data) is not an object", items)
    mismatch = echo_mismatch(asked, echo)
    if mismatch is not None:
        name, value = mismatch

        def quoted(v: Any) -> str:
            text = msgspec.json.encode(v).decode("utf-8", "replace")
            return scrubber.excerpt(text, _QUOTED_CHARS)

        raise bad(
            f"an answer to another request: the request asked {name} {quoted(asked[name])}, "
            f"the answer's echo (tasks[].data) says {name} {quoted(value)}",
            items,
        )
    return "offset" in echo


def _number(value: str | None) -> float | None:
    """A header's value as a finite number, or None when it is missing or is not one."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    seconds = _number(headers.get("retry-after"))
    return None if seconds is None else max(0.0, seconds)


def _usd(value: float | None) -> float | None:
    """A reported cost, or None when it is missing, negative or not a finite number."""
    if value is None or not math.isfinite(value) or value < 0:
        return None
    return value


def _reported_cost(
    headers: Mapping[str, str], envelope: Envelope, task: Task | None
) -> float | None:
    """What the answer says the call cost: the gateway's price, the task's, the envelope's."""
    for value in (
        _number(headers.get("x-aisa-price-usd")),
        None if task is None else task.cost,
        envelope.cost,
    ):
        usd = _usd(value)
        if usd is not None:
            return usd
    return None


def over_cap(what: str, setting: str, http_status: int) -> JobFatalApiError:
    """The error for a body past one of the caps, received or inflated: the job fails."""
    return JobFatalApiError(
        f"{what} (AnswerCaps.{setting}; raise it only for a job whose items are "
        "known to be that large)",
        http_status=http_status,
        maybe_billed=_may_have_run(http_status),
    )


def _may_have_run(http_status: int) -> bool:
    """Whether the API may have served (and billed) a call answered without an envelope.

    A 200 carries a result; a 5xx may come from a gateway the call went through. A 4xx
    refusal (auth, limits, a bad request) comes before the work.
    """
    return http_status == 200 or http_status >= 500
