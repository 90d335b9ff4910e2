"""One call in, one classified outcome out, in a network step and a CPU step.

:func:`send_task` POSTs one page_intersection task and returns the :class:`Answer` as
received (status, a few headers, the still-compressed body), read under a whole-call
deadline and a size cap. :func:`read_answer` is the CPU step, meant for a worker thread:
it inflates under a cap, decodes, judges the answer at every level and returns a
:class:`FetchedPage` of compact lines. :func:`fetch_page` does both. Every failure is an
:class:`~intersect_batch.errors.ApiError` whose outside text is scrubbed of the
credentials and capped. Nothing here retries or sleeps: that is the dispatcher's decision.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import msgspec
from aiohttp.http import SERVER_SOFTWARE

from intersect_batch._version import __version__
from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    TransientApiError,
    UnreachableApiError,
)
from intersect_batch.providers import Credentials, Provider
from intersect_batch.scrub import Scrubber
from intersect_batch.settings import AnswerCaps, Timeouts
from intersect_batch.status import NO_RESULTS, RUN_FATAL_ADVICE, classify
from intersect_batch.wire import (
    Envelope,
    Task,
    aisa_error_decoder,
    envelope_decoder,
    page_items,
)

__all__ = [
    "USER_AGENT",
    "Answer",
    "FetchedPage",
    "fetch_page",
    "read_answer",
    "send_task",
    "split_items",
]

#: Sent on every call: who is calling, then aiohttp's own default.
USER_AGENT = f"intersect-batch/{__version__} {SERVER_SOFTWARE}"

#: The answer headers read, by their lower-case names.
KEPT_HEADERS = ("content-encoding", "content-type", "retry-after", "x-aisa-price-usd")

# Inflate in steps, so that a bomb stops at the cap and not when it is done.
_INFLATE_STEP = 8 * 2**20
# A pretty-printer puts a space after the first key's colon, well inside these bytes;
# the API's compact items have none there ({"page_intersection":{"1":[{"type":"...).
_HEAD_BYTES = 48
_OPEN_BRACE = ord("{")


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange as received: nothing decoded, nothing judged."""

    http_status: int
    #: The headers of :data:`KEPT_HEADERS` that came, by their lower-case names.
    headers: Mapping[str, str]
    #: The body as received, still compressed (see ``headers["content-encoding"]``).
    body: bytes


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


# -- the network step ---------------------------------------------------------------------


async def send_task(
    session: aiohttp.ClientSession,
    provider: Provider,
    credentials: Credentials,
    task: dict[str, Any],
    *,
    timeouts: Timeouts,
    caps: AnswerCaps,
    reserve: Callable[[], Awaitable[None]] | None = None,
) -> Answer:
    """POST one task and return the answer as received, body still compressed.

    Raises :class:`~intersect_batch.errors.UnreachableApiError` when the host cannot be
    reached (refused, DNS, no route, connect timeout), a
    :class:`~intersect_batch.errors.TransientApiError` for any other network failure or
    timeout (a silence longer than ``timeouts.read``, a call longer than
    ``timeouts.deadline``), and a :class:`~intersect_batch.errors.JobFatalApiError` when
    the body is larger than ``caps.max_body_bytes`` (reading stops there).

    ``reserve`` is awaited once the body passes ``caps.read_ahead_bytes``, before more of
    it is read (the crawler takes a place in memory then; the wait counts toward the
    deadline).
    """
    scrubber = credentials.scrubber()
    headers = {
        "Authorization": credentials.authorization(),
        "Content-Type": "application/json",
        "Accept-Encoding": "gzip, deflate",
        "User-Agent": USER_AGENT,
    }
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
    )
    try:
        with anyio.fail_after(timeouts.deadline):
            async with session.post(
                provider.endpoint,
                data=provider.body(task),
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                # Inflated later, in a worker thread and under a cap: aiohttp would
                # inflate on the event loop, without a limit.
                auto_decompress=False,
            ) as response:
                kept = {
                    name: response.headers[name]
                    for name in KEPT_HEADERS
                    if name in response.headers
                }
                body = await _read_capped(response, caps, reserve)
                return Answer(response.status, kept, body)
    except aiohttp.ConnectionTimeoutError:
        raise UnreachableApiError(
            f"cannot reach the API: no connection within {timeouts.connect:g} s"
        ) from None
    except aiohttp.SocketTimeoutError:
        raise TransientApiError(
            f"no answer in time: nothing received for {timeouts.read:g} s",
            maybe_billed=True,
        ) from None
    except aiohttp.ClientConnectorError as exc:
        reason = scrubber.excerpt(str(exc.os_error), caps.max_message_chars)
        raise UnreachableApiError(
            f"cannot reach the API at {exc.host}:{exc.port}: {reason}"
        ) from None
    except TimeoutError:
        raise TransientApiError(
            f"no complete answer within the {timeouts.deadline:g} s deadline",
            maybe_billed=True,
        ) from None
    except aiohttp.ClientPayloadError as exc:
        reason = scrubber.excerpt(str(exc), caps.max_message_chars)
        raise TransientApiError(f"answer cut short: {reason}", maybe_billed=True) from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = scrubber.excerpt(str(exc), caps.max_message_chars)
        raise TransientApiError(
            f"network error: {type(exc).__name__}: {reason}", maybe_billed=True
        ) from None


async def _read_capped(
    response: aiohttp.ClientResponse,
    caps: AnswerCaps,
    reserve: Callable[[], Awaitable[None]] | None,
) -> bytes:
    """The body, read as it comes; past ``caps.max_body_bytes``, JobFatalApiError, no more read.

    Past ``caps.read_ahead_bytes`` (or at once, when the answer declares more), ``reserve``
    is awaited before reading on: meanwhile the socket is not read, so the server waits.
    """
    cap = caps.max_body_bytes
    declared = response.content_length
    if declared is not None and declared > cap:
        raise _over_cap(
            f"the answer declares {declared:,} bytes, over the cap of {cap:,}",
            "max_body_bytes",
            response.status,
        )
    ahead = caps.read_ahead_bytes
    if reserve is not None and declared is not None and declared > ahead:
        await reserve()
        reserve = None
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.readany():
        size += len(chunk)
        if size > cap:
            raise _over_cap(
                f"the answer passed {cap:,} bytes, the cap: reading stopped there",
                "max_body_bytes",
                response.status,
            )
        chunks.append(chunk)
        if reserve is not None and size > ahead:
            await reserve()
            reserve = None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _over_cap(what: str, setting: str, http_status: int) -> JobFatalApiError:
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


# -- the CPU step -------------------------------------------------------------------------


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
        raise _without_envelope(answer, body, exc, caps, scrubber) from None
    return _judge(answer, envelope, body, caps, scrubber)


async def fetch_page(
    session: aiohttp.ClientSession,
    provider: Provider,
    credentials: Credentials,
    task: dict[str, Any],
    *,
    timeouts: Timeouts,
    caps: AnswerCaps,
    scrubber: Scrubber,
) -> FetchedPage:
    """Send one task and return its page, read in a worker thread; raise the error otherwise."""
    answer = await send_task(session, provider, credentials, task, timeouts=timeouts, caps=caps)
    return await anyio.to_thread.run_sync(
        functools.partial(read_answer, answer, caps=caps, scrubber=scrubber)
    )


def _inflate(answer: Answer, caps: AnswerCaps) -> bytes:
    """The body as the server encoded it before compressing, at most the inflated cap."""
    body = answer.body
    cap = caps.max_inflated_bytes
    encoding = answer.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > cap:
            raise _over_cap(
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
            raise _over_cap(
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
    answer: Answer, envelope: Envelope, body: bytes, caps: AnswerCaps, scrubber: Scrubber
) -> FetchedPage:
    """The page of a decoded envelope, or the error its status codes call for."""
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
    task_id = None if task.id is None else scrubber.excerpt(task.id, caps.max_message_chars)
    result = task.result.result if task.result is not None else None
    if task.status_code == NO_RESULTS or result is None:
        return FetchedPage(total_count=None, items_count=0, lines=[], cost=cost, task_id=task_id)
    # Tabs and line breaks never appear raw inside JSON strings: if the body has none,
    # no item spans lines (one memchr over the body instead of one per item).
    broken = b"\n" in body or b"\r" in body or b"\t" in body
    try:
        lines = split_items(page_items(result.items), may_span_lines=broken)
    except (ValueError, msgspec.DecodeError, RecursionError) as exc:
        raise TransientApiError(
            f"bad answer: {scrubber.excerpt(str(exc), caps.max_message_chars)}",
            http_status=status,
            status_code=task.status_code,
            cost=cost,
        ) from None
    return FetchedPage(
        total_count=result.total_count,
        items_count=len(lines),
        lines=lines,
        cost=cost,
        task_id=task_id,
    )


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
