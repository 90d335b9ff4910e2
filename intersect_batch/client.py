"""One call sent and its answer received: the network step of a call.

:func:`open_task` POSTs one page_intersection task and reads its answer up to
``caps.read_ahead_bytes`` of body, under a whole-call deadline and a size cap: an
:class:`UnreadAnswer` (status, a few headers, the still-compressed body so far), whose
:meth:`~UnreadAnswer.answer` reads the rest under what is left of the deadline and whose
:meth:`~UnreadAnswer.read` also decodes it. :func:`send_task` does the network step
whole; the CPU step that reads what came back is :func:`intersect_batch.answer.read_answer`,
run in a worker thread. :func:`fetch_page` does both. Every failure is an
:class:`~intersect_batch.errors.ApiError` whose outside text is scrubbed of the
credentials and capped. Nothing here retries or sleeps: that is the dispatcher's decision.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import anyio.to_thread
from aiohttp.http import SERVER_SOFTWARE

from intersect_batch._version import __version__
from intersect_batch.answer import KEPT_HEADERS, Answer, FetchedPage, over_cap, read_answer
from intersect_batch.durable import in_thread
from intersect_batch.errors import TransientApiError, UnreachableApiError
from intersect_batch.providers import Credentials, Provider
from intersect_batch.scrub import Scrubber
from intersect_batch.settings import AnswerCaps, Timeouts

__all__ = [
    "USER_AGENT",
    "UnreadAnswer",
    "fetch_page",
    "open_task",
    "send_task",
]

#: Sent on every call: who is calling, then aiohttp's own default.
USER_AGENT = f"intersect-batch/{__version__} {SERVER_SOFTWARE}"


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
    #: The headers of :data:`~intersect_batch.answer.KEPT_HEADERS` that came, by their
    #: lower-case names.
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
            raise over_cap(
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
            raise over_cap(
                f"the answer passed {cap:,} bytes, the cap: reading stopped there",
                "max_body_bytes",
                response.status,
            )
        chunks.append(chunk)
        if ahead is not None and size > ahead:
            break
    return size
