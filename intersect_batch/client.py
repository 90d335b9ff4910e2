"""One call in, one classified outcome out, in a network step and a CPU step.

:func:`open_task` POSTs one page_intersection task and reads its answer up to
``caps.read_ahead_bytes`` of body, under a whole-call deadline and a size cap: an
:class:`UnreadAnswer` (status, a few headers, the still-compressed body so far), whose
:meth:`~UnreadAnswer.answer` reads the rest under what is left of the deadline and whose
:meth:`~UnreadAnswer.read` also decodes it. :func:`send_task` does the network step
whole. :func:`read_answer` is the CPU step, meant for a worker thread: it inflates under
a cap, decodes, judges the answer at every level and returns a :class:`FetchedPage` of
compact lines. :func:`fetch_page` does both. Every failure is an
:class:`~intersect_batch.errors.ApiError` whose outside text is scrubbed of the
credentials and capped. Nothing here retries or sleeps: that is the dispatcher's decision.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import math
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
import msgspec
from aiohttp.http import SERVER_SOFTWARE

from intersect_batch._version import __version__
from intersect_batch.durable import in_thread
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
    "USER_AGENT",
    "Answer",
    "BadAnswerError",
    "FetchedPage",
    "UnreadAnswer",
    "fetch_page",
    "open_task",
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


# -- the network step ---------------------------------------------------------------------


@dataclass(eq=False)
class UnreadAnswer:
    """An answer whose headers are in and whose body is read up to the read-ahead.

    A body of at most ``caps.read_ahead_bytes`` is held whole (its connection already
    back in the pool). A larger one (declared so, or passing that size while read) holds
    its open response, not read on: the server waits until :meth:`answer` or :meth:`read`
    reads the rest, under what was left of the call's deadline when reading paused. The
    time in between is the caller's own (waiting for a place in memory), not the API's
    slowness: it does not count toward the deadline, so a page already paid for is not
    dropped and paid again because the writer was busy. :meth:`discard` drops it, closing
    a connection still open; it does nothing once the answer was read.
    """

    http_status: int
    #: The headers of :data:`KEPT_HEADERS` that came, by their lower-case names.
    headers: Mapping[str, str]
    asked: Mapping[str, Any]
    _chunks: list[bytes]
    _size: int
    #: The response still to be read on; None once the body is whole or dropped.
    _response: aiohttp.ClientResponse | None
    #: The call's deadline, on the loop's clock.
    _deadline: float
    _timeouts: Timeouts
    _caps: AnswerCaps
    _scrubber: Scrubber
    #: Seconds of the deadline left when reading paused (set by the read-ahead).
    _left: float = 0.0

    @property
    def received(self) -> int:
        """The body's bytes read so far."""
        return self._size

    @property
    def pending(self) -> bool:
        """Whether the rest of the body waits on an open connection, not yet read."""
        return self._response is not None

    async def answer(self) -> Answer:
        """The whole answer as received: the rest of its body read, under the same caps,
        the same read timeout and what was left of the call's deadline when it paused."""
        response = self._response
        if response is not None:
            try:
                with _network_errors(self._timeouts, self._caps, self._scrubber):
                    with anyio.fail_after(max(0.0, self._left)):
                        self._size = await _read_on(
                            response, self._caps, self._chunks, self._size, ahead=None
                        )
            except BaseException:
                self.discard()
                raise
            # Read to its end: the connection goes back to the pool.
            self._response = None
            response.release()
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return Answer(self.http_status, self.headers, body, asked=self.asked)

    async def _read_ahead(self) -> None:
        """Read the body up to the read-ahead; a body read whole frees its connection."""
        response = self._response
        assert response is not None
        cap = self._caps.max_body_bytes
        declared = response.content_length
        if declared is not None and declared > cap:
            raise _over_cap(
                f"the answer declares {declared:,} bytes, over the cap of {cap:,}",
                "max_body_bytes",
                response.status,
            )
        ahead = self._caps.read_ahead_bytes
        if declared is None or declared <= ahead:
            self._size = await _read_on(response, self._caps, self._chunks, 0, ahead=ahead)
        if response.content.at_eof():
            self._response = None
            response.release()
        self._left = self._deadline - anyio.current_time()

    async def read(self) -> FetchedPage:
        """The page: the rest of the body read (see :meth:`answer`), then decoded in a
        worker thread (:func:`read_answer`); raises the ApiError either step finds."""
        answer = await self.answer()
        self._chunks = []
        return await in_thread(
            functools.partial(read_answer, caps=self._caps, scrubber=self._scrubber), answer
        )

    def discard(self) -> None:
        """Drop the answer: a connection still open is closed, not read to its end."""
        response, self._response = self._response, None
        if response is not None:
            response.close()


async def open_task(
    session: aiohttp.ClientSession,
    provider: Provider,
    credentials: Credentials,
    task: dict[str, Any],
    *,
    timeouts: Timeouts,
    caps: AnswerCaps,
) -> UnreadAnswer:
    """POST one task and read its answer up to ``caps.read_ahead_bytes`` of body.

    Raises :class:`~intersect_batch.errors.UnreachableApiError` when the host cannot be
    reached (refused, DNS, no route, connect timeout), a
    :class:`~intersect_batch.errors.TransientApiError` for any other network failure or
    timeout (a silence longer than ``timeouts.read``, a call longer than
    ``timeouts.deadline``), and a :class:`~intersect_batch.errors.JobFatalApiError` when
    the body is larger than ``caps.max_body_bytes`` (reading stops there). Reading the
    rest (:meth:`UnreadAnswer.answer`) raises the same.
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
    deadline = anyio.current_time() + timeouts.deadline
    with _network_errors(timeouts, caps, scrubber), anyio.fail_after(timeouts.deadline):
        response = await session.post(
            provider.endpoint,
            data=provider.body(task),
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            # Inflated later, in a worker thread and under a cap: aiohttp would
            # inflate on the event loop, without a limit.
            auto_decompress=False,
        )
        kept = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
        unread = UnreadAnswer(
            response.status, kept, task, [], 0, response, deadline, timeouts, caps, scrubber
        )
        try:
            await unread._read_ahead()
        except BaseException:
            unread.discard()
            raise
    return unread


async def send_task(
    session: aiohttp.ClientSession,
    provider: Provider,
    credentials: Credentials,
    task: dict[str, Any],
    *,
    timeouts: Timeouts,
    caps: AnswerCaps,
) -> Answer:
    """POST one task and return the answer as received, body still compressed (the whole
    of :func:`open_task`, errors included, and the rest of its body read at once)."""
    unread = await open_task(session, provider, credentials, task, timeouts=timeouts, caps=caps)
    try:
        return await unread.answer()
    finally:
        unread.discard()


@contextlib.contextmanager
def _network_errors(timeouts: Timeouts, caps: AnswerCaps, scrubber: Scrubber) -> Iterator[None]:
    """Each network failure of a call as the ApiError a person can act on, scrubbed."""
    try:
        yield
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


async def _read_on(
    response: aiohttp.ClientResponse,
    caps: AnswerCaps,
    chunks: list[bytes],
    size: int,
    *,
    ahead: int | None,
) -> int:
    """Read the body on into ``chunks`` as it comes; the size read so far is returned.

    Past ``caps.max_body_bytes``, JobFatalApiError and no more is read. With ``ahead``,
    reading stops once the body passes that many bytes: the socket is not read meanwhile,
    so the server waits.
    """
    cap = caps.max_body_bytes
    while chunk := await response.content.readany():
        size += len(chunk)
        if size > cap:
            raise _over_cap(
                f"the answer passed {cap:,} bytes, the cap: reading stopped there",
                "max_body_bytes",
                response.status,
            )
        chunks.append(chunk)
        if ahead is not None and size > ahead:
            break
    return size


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
        repaired = _items_at(body, items, masked_at)
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


def _items_at(body: bytes, items: list[msgspec.Raw], positions: list[int]) -> set[int]:
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
