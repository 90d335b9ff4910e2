"""One call in, one classified outcome out.

:func:`fetch_page` sends one page_intersection task and returns a :class:`FetchedPage`,
or raises a :class:`~intersect_batch.errors.TransientApiError`,
:class:`~intersect_batch.errors.JobFatalApiError` or
:class:`~intersect_batch.errors.RunFatalApiError`. Nothing here retries or sleeps: that
is the dispatcher's decision.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    TransientApiError,
    UnreachableApiError,
)
from intersect_batch.providers import Credentials, Provider
from intersect_batch.settings import Timeouts
from intersect_batch.status import NO_RESULTS, RUN_FATAL_ADVICE, classify
from intersect_batch.wire import (
    Envelope,
    aisa_error_decoder,
    envelope_decoder,
)

__all__ = ["FetchedPage", "client_timeout", "fetch_page", "split_items"]

_NEWLINE = b"\n"


@dataclass(frozen=True, slots=True)
class FetchedPage:
    """One page as the API answered it, items ready to be written."""

    #: None when the answer carries no result (40102 "no search results", result null).
    total_count: int | None
    #: Each item's compact JSON, one per line, in the API's order.
    lines: list[bytes]
    #: The cost the API reported for the call, in USD.
    cost: float
    task_id: str | None


def client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for one live call: a short connect, a read above the 120 s cap."""
    return aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect, sock_read=timeouts.read)


def split_items(items: list[msgspec.Raw]) -> list[bytes]:
    """Each raw item as one compact line; re-encoded only if the server pretty-printed it."""
    lines = []
    for raw in items:
        line = bytes(raw)
        if _NEWLINE in line or b"\r" in line:
            line = msgspec.json.format(line, indent=-1)
        lines.append(line)
    return lines


def _header_number(headers: Any, name: str) -> float | None:
    """A header's value as a number, or None when it is missing or not a number."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _error(
    error_class: type[ApiError],
    http_status: int,
    code: int | None,
    message: str,
    retry_after: float | None,
) -> ApiError:
    if code in RUN_FATAL_ADVICE:
        message = f"{message} ({RUN_FATAL_ADVICE[code]})"
    return error_class(
        message or f"HTTP {http_status}",
        http_status=http_status,
        status_code=code,
        retry_after=retry_after,
    )


def parse_answer(http_status: int, body: bytes, headers: Any) -> FetchedPage:
    """Judge one answer at every level; the page, or the classified error raised."""
    retry_after = _header_number(headers, "Retry-After")
    if retry_after is not None:
        retry_after = max(0.0, retry_after)
    try:
        envelope: Envelope | None = envelope_decoder.decode(body)
    except msgspec.DecodeError as exc:
        envelope = None
        decode_error = str(exc)
    if envelope is None:
        try:
            gateway = aisa_error_decoder.decode(body).error
        except msgspec.DecodeError:
            gateway = None
        if gateway is not None:
            error_class = classify(http_status, None, None) or JobFatalApiError
            raise _error(error_class, http_status, None, gateway.message, retry_after)
        if http_status == 200:
            # A 200 whose body does not decode was cut short or garbled on the way.
            raise TransientApiError(
                f"undecodable answer ({decode_error})", http_status=http_status, maybe_billed=True
            )
        error_class = classify(http_status, None, None) or JobFatalApiError
        raise _error(error_class, http_status, None, f"HTTP {http_status}", retry_after)

    task = envelope.tasks[0] if envelope.tasks else None
    task_code = task.status_code if task is not None else None
    verdict = classify(http_status, envelope.status_code, task_code)
    if verdict is not None:
        if envelope.status_code != 20000 or task is None:
            code, message = envelope.status_code, envelope.status_message
        else:
            code, message = task.status_code, task.status_message
        raise _error(verdict, http_status, code, message, retry_after)
    if task is None:
        raise JobFatalApiError(
            "the answer holds no task", http_status=http_status, status_code=envelope.status_code
        )
    cost = _header_number(headers, "X-AISA-Price-USD")
    if cost is None:
        cost = task.cost if task.cost is not None else (envelope.cost or 0.0)
    if task.status_code == NO_RESULTS or not task.result:
        return FetchedPage(total_count=None, lines=[], cost=cost, task_id=task.id)
    result = task.result[0]
    lines = split_items(result.items or [])
    total = result.total_count if result.total_count is not None else len(lines)
    return FetchedPage(total_count=total, lines=lines, cost=cost, task_id=task.id)


async def fetch_page(
    session: aiohttp.ClientSession,
    provider: Provider,
    credentials: Credentials,
    task: dict[str, Any],
    timeouts: Timeouts,
    before_body: Callable[[], Awaitable[object]] | None = None,
) -> FetchedPage:
    """Send one task and return its page; raise the classified error otherwise.

    ``before_body`` is awaited once the answer's headers are in and before its body is
    read: a caller can bound how many answers are held in memory at once, the others
    waiting in their sockets.
    """
    headers = {
        "Authorization": credentials.authorization(),
        "Content-Type": "application/json",
        "Accept-Encoding": "gzip, deflate",
    }
    try:
        async with session.post(
            provider.endpoint,
            data=provider.body(task),
            headers=headers,
            timeout=client_timeout(timeouts),
            allow_redirects=False,
            # Decompressed here, after the gate: aiohttp would inflate every answer into
            # its buffers as it arrives, whether or not it is being read.
            auto_decompress=False,
        ) as response:
            if before_body is not None:
                await before_body()
            body = await response.read()
            status = response.status
            answer_headers = response.headers
    except TimeoutError as exc:
        raise TransientApiError(
            f"no answer in time ({type(exc).__name__})", maybe_billed=True
        ) from None
    except aiohttp.ClientPayloadError as exc:
        raise TransientApiError(f"answer cut short: {exc}", maybe_billed=True) from None
    except aiohttp.ClientConnectorError as exc:
        raise UnreachableApiError(f"cannot connect: {type(exc).__name__}") from None
    except aiohttp.ClientError as exc:
        raise TransientApiError(
            f"network error: {type(exc).__name__}: {exc}", maybe_billed=True
        ) from None
    encoding = answer_headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("gzip", "deflate"):
        body = _inflate(body)
    return parse_answer(status, body, answer_headers)


def _inflate(body: bytes) -> bytes:
    """A gzip or deflate body, inflated; a cut-short one is a transient failure."""
    try:
        # 32 + 15: a gzip or a zlib header, whichever the server sent.
        return zlib.decompress(body, wbits=47)
    except zlib.error:
        pass
    try:
        return zlib.decompress(body, wbits=-15)  # raw deflate, as some servers send
    except zlib.error as exc:
        raise TransientApiError(f"answer cut short: cannot inflate it ({exc})") from None
