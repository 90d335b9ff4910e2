"""The aiohttp application: routes, auth, limits, faults, the envelope and the call log."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import time
import uuid
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import msgspec
from aiohttp import web

from .codes import STATUS_MESSAGES, call_cost, http_status_for
from .faults import FaultDecider
from .filters import count_conditions as count_filter_conditions
from .gzipbomb import gzip_bomb
from .hashing import digest_int
from .hostile import LONG_MESSAGE_MARK, LONG_MESSAGE_UNIT, applies, credential_echo, mangle_page
from .limits import CredentialLimits
from .oddities import odd_text
from .query import Query, TaskError, parse_task
from .records import CallLog, CallRecord, Route, credential_id
from .resultset import ResultStore
from .schema import (
    API_VERSION,
    ENCODER,
    PATH,
    AisaError,
    AisaErrorBody,
    Envelope,
    Result,
    Task,
)
from .settings import COST_CLAIMS, EmulatorSettings
from .streaming import Padded, write_padded, write_pieces, write_trickle
from .timeline import AS_OF_PATH, AsOf

__all__ = [
    "AISA_PATH",
    "AISA_USER_DATA_PATH",
    "DATAFORSEO_PATH",
    "EMULATOR_KEY",
    "LOG_PATH",
    "UNLIMITED_BALANCE_USD",
    "USER_DATA_PATH",
    "Emulator",
    "build_app",
]

DATAFORSEO_PATH = "/v3/backlinks/page_intersection/live"
AISA_PATH = "/apis/v1/dataforseo/backlinks/page_intersection/live"
LOG_PATH = "/_emulator/log"
USER_DATA_PATH = "/v3/appendix/user_data"
AISA_USER_DATA_PATH = "/apis/v1/dataforseo/appendix/user_data"
#: The balance ``user_data`` reports when the emulator's balance is unlimited.
UNLIMITED_BALANCE_USD = 1_000_000.0
_GZIP_IN_THREAD = 64 * 1024
_DECODER = msgspec.json.Decoder()

Mode = Literal["normal", "truncate", "drop", "trickle", "padded", "bomb"]


@dataclass
class _Call:
    """What the call log will say about the call being served."""

    route: Route
    t: float
    started: float
    credential: str | None = None
    offset: int | None = None
    limit: int | None = None
    targets: dict[str, str] | None = None
    tag: str | None = None
    status_code: int = 20000
    cost: float = 0.0
    items: int = 0
    fault: str | None = None
    tasks_count: int = 0
    total_count: int | None = None
    conditions: int | None = None
    as_of: str | None = None
    day: int | None = None

    def elapsed(self) -> str:
        return f"{time.perf_counter() - self.started:.4f} sec."


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    mode: Mode = "normal"
    padded: Padded | None = None
    """The streamed body of a "padded" answer (``body`` is then unused)."""
    chunked: bool = False


class Emulator:
    """One emulator's state: its data, limits, fault draws, balance and call log."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.clock = settings.clock
        self.store = ResultStore(
            seed=settings.seed,
            sizes=settings.sizes,
            size_min=settings.size_min,
            size_max=settings.size_max,
            item_cache_size=settings.item_cache_size,
            query_cache_size=settings.query_cache_size,
            timeline=settings.timeline,
        )
        self.dates = AsOf(settings.timeline)
        self.limits = CredentialLimits(
            per_minute=settings.rate_per_minute,
            max_concurrent=settings.max_concurrent,
            clock=settings.clock,
        )
        self.faults = FaultDecider(settings)
        self.log = CallLog(settings.log_file)
        self.balance_usd = settings.balance_usd
        self.epoch = 0
        self.closing = asyncio.Event()
        """Set when the server starts shutting down: streamed answers stop at once."""
        self._first_call: float | None = None
        self._tasks_made = 0
        self._basic = (settings.login, settings.password)
        #: How many times ``GET /v3/appendix/user_data`` was asked (free, not logged).
        self.user_data_calls = 0

    # -- routes ------------------------------------------------------------------------

    async def dataforseo(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "dataforseo")

    async def aisa(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "aisa")

    async def other(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "other")

    async def user_data(self, request: web.Request) -> web.StreamResponse:
        """``GET /v3/appendix/user_data``: free; the account's balance (``money``) and its
        per-minute limit (``rates``), in the API's envelope. Not in the call log (it is
        no task); counted in ``user_data_calls``."""
        route: Route = "aisa" if request.path == AISA_USER_DATA_PATH else "dataforseo"
        call = _Call(route=route, t=self.clock(), started=time.perf_counter())
        self.user_data_calls += 1
        if not self._authenticate(request, call):
            return await self._write(request, self._unauthorized(call))
        balance = UNLIMITED_BALANCE_USD if self.balance_usd is None else self.balance_usd
        per_minute = self.settings.rate_per_minute
        result = {
            "login": self._basic[0] if route == "dataforseo" else None,
            "timezone": "UTC",
            "rates": {
                "limits": {"day": {}, "minute": {"total": per_minute}},
                "statistics": {"day": {}, "minute": {}},
            },
            "money": {"total": balance, "balance": balance, "limits": {}, "statistics": {}},
            "price": {},
        }
        task = {
            "id": self._new_task_id(),
            "status_code": 20000,
            "status_message": STATUS_MESSAGES[20000],
            "time": call.elapsed(),
            "cost": 0,
            "result_count": 1,
            "path": ["v3", "appendix", "user_data"],
            "data": {"api": "appendix", "function": "user_data"},
            "result": [result],
        }
        envelope = {
            "version": API_VERSION,
            "status_code": 20000,
            "status_message": STATUS_MESSAGES[20000],
            "time": call.elapsed(),
            "cost": 0,
            "tasks_count": 1,
            "tasks_error": 0,
            "tasks": [task],
        }
        return await self._write(request, _Answer(200, msgspec.json.encode(envelope)))

    async def call_log(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.log.encode(), content_type="application/json")

    # -- one call ----------------------------------------------------------------------

    async def _serve(self, request: web.Request, route: Route) -> web.StreamResponse:
        call = _Call(route=route, t=self.clock(), started=time.perf_counter())
        answer = _Answer(500, b"")
        try:
            answer = await self._answer(request, call)
            return await self._write(request, answer)
        finally:
            self.log.append(
                CallRecord(
                    t=call.t,
                    route=call.route,
                    credential=call.credential,
                    offset=call.offset,
                    limit=call.limit,
                    targets=call.targets,
                    tag=call.tag,
                    http_status=answer.status,
                    status_code=call.status_code,
                    cost=call.cost,
                    items=call.items,
                    latency=round(time.perf_counter() - call.started, 6),
                    fault=call.fault,
                    tasks_count=call.tasks_count,
                    total_count=call.total_count,
                    conditions=call.conditions,
                    as_of=call.as_of,
                )
            )

    async def _answer(self, request: web.Request, call: _Call) -> _Answer:
        if call.route == "other":
            return self._whole_call_error(call, 40400)
        if not self._authenticate(request, call):
            return self._unauthorized(call)
        assert call.credential is not None
        if self._first_call is None:
            self._first_call = call.t  # where a delayed throttling window is measured from
        body = await request.read()
        tasks = self._tasks(body, call)
        if isinstance(tasks, _Answer):
            return tasks
        self._note_request(tasks[0], call)
        call.day, call.as_of = self.dates.of_call(request.headers)

        wait = self.limits.admit_rate(call.credential, call.t)
        throttled = self._throttle_left(call.t)
        if throttled is not None:
            call.fault = "throttle"
            return self._limited(call, tasks, self.settings.faults.throttle_code, throttled)
        if wait is not None:
            return self._limited(call, tasks, 40202, wait)
        if not self.limits.try_enter(call.credential):
            return self._limited(call, tasks, 40209, 1.0)
        try:
            return await self._in_slot(request, call, tasks)
        finally:
            self.limits.leave(call.credential)

    def _throttle_left(self, now: float) -> float | None:
        """Seconds left of the sustained-throttling window, if ``now`` is inside it."""
        f = self.settings.faults
        if f.throttle_for <= 0 or self._first_call is None:
            return None
        start = self._first_call + f.throttle_after
        end = start + f.throttle_for
        return end - now if start <= now < end else None

    async def _in_slot(self, request: web.Request, call: _Call, tasks: list[Any]) -> _Answer:
        try:
            query = parse_task(tasks[0])
        except TaskError as exc:
            return self._envelope(call, [self._error_task(tasks[0], exc.code, exc.message)], tasks)
        call.offset, call.limit, call.targets = query.offset, query.limit, query.targets_dict
        call.tag = query.tag
        odd = self.settings.oddities
        if odd.first_page_proxy:
            # The log keeps the offset asked; the answer is the one for offset 0.
            query = parse_task(odd.proxied(tasks[0]))
        draw = self.faults.draw(query)
        call.fault = draw.fault
        if draw.delay > 0:
            await asyncio.sleep(draw.delay)
        if draw.fault == "http_500":
            return self._server_error(call)
        forced = {"timeout": 50401, "internal_error": 50000, "task_failed": 40103}.get(
            draw.fault or "", draw.status_code
        )
        if forced is not None:
            if forced in (40202, 40209):
                return self._limited(call, tasks, forced, 1.0)
            if http_status_for(forced) != 200:
                return self._whole_call_error(call, forced)
            error = self._error_task(query.data, forced, STATUS_MESSAGES.get(forced, "Error."))
            return self._envelope(call, [error], tasks)
        if draw.fault in ("echo_credentials", "long_message"):
            return self._hostile_error(request, call, query, tasks, draw.fault)
        return self._success(call, query, tasks, draw.fault)

    def _success(self, call: _Call, query: Query, tasks: list[Any], fault: str | None) -> _Answer:
        churn = self.settings.live_data
        epoch: int | None = None
        if churn > 0:
            epoch = self.epoch
            self.epoch += 1
        ids = self.store.select(query, epoch, churn, call.day)
        odd = self.settings.oddities
        carried = odd.page_limit(query.limit)
        page_query = query if carried == query.limit else replace(query, limit=carried)
        items = odd_text(odd, query.offset, self.store.page(page_query, ids))
        total = len(ids)
        if not applies(fault, query.offset, total, len(items)):
            fault = call.fault = None
        if fault == "no_results":
            error = self._error_task(query.data, 40102, STATUS_MESSAGES[40102])
            return self._envelope(call, [error], tasks)
        items, total = mangle_page(fault, self.settings.faults, query.offset, items, total)
        cost = call_cost(len(items))
        if self.balance_usd is not None:
            if self.balance_usd < cost - 1e-12:
                return self._whole_call_error(call, 40210)
            self.balance_usd = round(self.balance_usd - cost, 8)
        call.items, call.total_count = len(items), total
        task = self._task(
            20000,
            STATUS_MESSAGES[20000],
            msgspec.UNSET if odd.no_echo else query.data,
            call,
            cost=cost,
            result=[
                Result(
                    targets=query.targets_dict,
                    total_count=total,
                    items_count=len(items),
                    items=[msgspec.Raw(b) for b in items],
                )
            ],
        )
        answer = self._envelope(call, [task], tasks)
        if call.route == "aisa":
            answer.headers["X-AISA-Price-USD"] = f"{cost:.8f}".rstrip("0").rstrip(".")
        self._claim(answer)
        if fault == "truncated_body":
            answer.mode = "truncate"
        elif fault == "drop_connection":
            answer.mode = "drop"
        elif fault == "trickle":
            answer.mode = "trickle"
        elif fault == "gzip_bomb":
            answer.mode = "bomb"
        elif fault == "huge_body":
            size = self.settings.faults.huge_body_size
            padding = max(0, size - len(answer.body))
            answer.mode, answer.padded = "padded", Padded(b"", b" ", padding, answer.body)
            answer.chunked = self.settings.faults.huge_body_chunked
        return answer

    def _claim(self, answer: _Answer) -> None:
        """Make a successful answer claim another cost than it billed (``cost_claim``)."""
        f = self.settings.faults
        if f.aisa_price_header is not None:
            answer.headers["X-AISA-Price-USD"] = f.aisa_price_header
        if f.cost_claim is None:
            return
        claim = COST_CLAIMS[f.cost_claim]
        data = _DECODER.decode(answer.body)
        for part in (data, *data["tasks"]):
            if claim is None:
                part.pop("cost", None)
            else:
                part["cost"] = claim
        answer.body = msgspec.json.encode(data)
        if "X-AISA-Price-USD" in answer.headers and f.aisa_price_header is None:
            if claim is None:
                del answer.headers["X-AISA-Price-USD"]
            else:
                answer.headers["X-AISA-Price-USD"] = repr(claim)

    def _hostile_error(
        self, request: web.Request, call: _Call, query: Query, tasks: list[Any], fault: str
    ) -> _Answer:
        """An error whose message echoes the credentials, or runs for megabytes."""
        f = self.settings.faults
        code = f.hostile_error_code
        if fault == "echo_credentials":
            message = credential_echo(request.headers.get("Authorization", ""))
        else:
            message = LONG_MESSAGE_MARK
        if code == 50000 or http_status_for(code) != 200:
            status = 500 if code == 50000 else None
            answer = self._whole_call_error(call, code, status=status, message=message)
        else:
            answer = self._envelope(call, [self._error_task(query.data, code, message)], tasks)
        if fault == "long_message":
            head, _, tail = answer.body.partition(LONG_MESSAGE_MARK.encode())
            answer.mode = "padded"
            answer.padded = Padded(head, LONG_MESSAGE_UNIT, f.long_message_size, tail)
        return answer

    # -- request parsing -------------------------------------------------------------------

    def _authenticate(self, request: web.Request, call: _Call) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if call.route == "aisa":
            if scheme.lower() != "bearer" or not value.strip():
                return False
            key = value.strip()
            call.credential = credential_id(api_key=key)
            return hmac.compare_digest(key.encode(), self.settings.api_key.encode())
        if scheme.lower() != "basic":
            return False
        try:
            login, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        call.credential = credential_id(login=login)
        ok_login = hmac.compare_digest(login.encode(), self._basic[0].encode())
        ok_password = hmac.compare_digest(password.encode(), self._basic[1].encode())
        return bool(sep) and ok_login and ok_password

    def _tasks(self, body: bytes, call: _Call) -> list[Any] | _Answer:
        """The request's task objects, or the answer to a body that has none."""
        if not body.strip():
            return self._whole_call_error(call, 40502)
        try:
            data = _DECODER.decode(body)
        except msgspec.DecodeError:
            return self._whole_call_error(call, 40503)
        if call.route == "aisa" and isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            return self._whole_call_error(call, 40503)
        if not data:
            return self._whole_call_error(call, 40502)
        call.tasks_count = len(data)
        return data

    @staticmethod
    def _note_request(task: Any, call: _Call) -> None:
        """Best-effort paging fields for the log, before the task is validated."""
        if not isinstance(task, dict):
            return
        offset, limit, targets, tag = (task.get(k) for k in ("offset", "limit", "targets", "tag"))
        call.offset = offset if isinstance(offset, int) and not isinstance(offset, bool) else None
        call.limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        if isinstance(targets, dict) and all(isinstance(v, str) for v in targets.values()):
            call.targets = targets
        call.tag = tag if isinstance(tag, str) else None
        if isinstance(task.get("filters"), list):
            call.conditions = count_filter_conditions(task["filters"])

    # -- answers ---------------------------------------------------------------------------

    def _task(
        self,
        code: int,
        message: str,
        data: dict[str, Any] | msgspec.UnsetType,
        call: _Call,
        *,
        cost: float = 0.0,
        result: list[Result] | None = None,
    ) -> Task:
        return Task(
            id=self._new_task_id(),
            status_code=code,
            status_message=message,
            time=call.elapsed(),
            cost=cost,
            result_count=len(result) if result else 0,
            path=PATH,
            data=data,
            result=result,
        )

    def _new_task_id(self) -> str:
        """A UUID, reproducible from the seed and the number of tasks answered so far."""
        self._tasks_made += 1
        return str(
            uuid.UUID(int=digest_int(f"task {self.settings.seed} {self._tasks_made}".encode()))
        )

    def _error_task(self, task: Any, code: int, message: str) -> Task:
        data: dict[str, Any] = {"api": "backlinks", "function": "page_intersection"}
        if isinstance(task, dict):
            data.update((k, v) for k, v in task.items() if k not in data)
        return Task(
            id="",
            status_code=code,
            status_message=message,
            time="0 sec.",
            cost=0.0,
            result_count=0,
            path=PATH,
            data=data,
            result=None,
        )

    def _envelope(self, call: _Call, first: list[Task], tasks: list[Any]) -> _Answer:
        """The answer to a call whose first task is ``first[0]``; extra tasks get 40000."""
        out = [self._finish(t, call) for t in first]
        out.extend(
            self._finish(self._error_task(extra, 40000, STATUS_MESSAGES[40000]), call)
            for extra in tasks[1:]
        )
        cost = round(sum(t.cost for t in out), 8)
        call.status_code = out[0].status_code
        call.cost = cost
        envelope = Envelope(
            version=API_VERSION,
            status_code=20000,
            status_message=STATUS_MESSAGES[20000],
            time=call.elapsed(),
            cost=cost,
            tasks_count=len(out),
            tasks_error=sum(1 for t in out if t.status_code != 20000),
            tasks=out,
        )
        return _Answer(200, ENCODER.encode(envelope))

    def _finish(self, task: Task, call: _Call) -> Task:
        """Give an error task (built without a call) its id and time."""
        if task.id:
            return task
        task.id = self._new_task_id()
        task.time = call.elapsed()
        return task

    def _whole_call_error(
        self, call: _Call, code: int, status: int | None = None, message: str | None = None
    ) -> _Answer:
        """An envelope with no tasks: auth, money, path, body and server errors."""
        call.status_code = code
        envelope = Envelope(
            version=API_VERSION,
            status_code=code,
            status_message=STATUS_MESSAGES.get(code, "Error.") if message is None else message,
            time=call.elapsed(),
            cost=0.0,
            tasks_count=0,
            tasks_error=0,
            tasks=[],
        )
        return _Answer(status or http_status_for(code), ENCODER.encode(envelope))

    def _gateway_error(self, status: int, kind: str, code: str, message: str) -> _Answer:
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        body = AisaError(
            error=AisaErrorBody(type=kind, code=code, message=message, request_id=request_id)
        )
        return _Answer(status, ENCODER.encode(body))

    def _unauthorized(self, call: _Call) -> _Answer:
        call.status_code = 40100
        if call.route == "aisa":
            answer = self._gateway_error(
                401, "authentication_error", "invalid_api_key", "Invalid or missing API key."
            )
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
        answer = self._whole_call_error(call, 40100)
        answer.headers["WWW-Authenticate"] = 'Basic realm="DataForSEO API"'
        return answer

    def _server_error(self, call: _Call) -> _Answer:
        if call.route == "aisa":
            call.status_code = 50000
            return self._gateway_error(
                500, "api_error", "internal_error", "Upstream request failed."
            )
        return self._whole_call_error(call, 50000, status=500)

    def _limited(self, call: _Call, tasks: list[Any], code: int, wait: float) -> _Answer:
        """Over a limit: a task-level 40202/40209 (DataForSEO), or HTTP 429 (AIsa)."""
        if call.route == "dataforseo":
            error = self._error_task(tasks[0], code, STATUS_MESSAGES[code])
            return self._envelope(call, [error], tasks)
        call.status_code = code
        assert call.credential is not None
        if code == 40202:
            message = "Rate limit exceeded: too many requests per minute."
            answer = self._gateway_error(429, "rate_limit_error", "rate_limit_exceeded", message)
        else:
            message = "Too many concurrent requests."
            answer = self._gateway_error(
                429, "rate_limit_error", "concurrency_limit_exceeded", message
            )
        answer.headers.update(
            {
                "Retry-After": str(max(1, math.ceil(wait))),
                "X-RateLimit-Limit": str(self.limits.per_minute),
                "X-RateLimit-Remaining": str(self.limits.remaining(call.credential)),
                "X-RateLimit-Reset": str(self.limits.reset_in(call.credential, call.t)),
            }
        )
        return answer

    # -- the wire --------------------------------------------------------------------------

    async def _write(self, request: web.Request, answer: _Answer) -> web.StreamResponse:
        headers = {"Content-Type": "application/json; charset=utf-8", **answer.headers}
        if answer.mode == "truncate":
            # Half the body, framed as complete: the HTTP exchange succeeds, the JSON does not.
            return web.Response(
                status=answer.status, body=answer.body[: len(answer.body) // 2], headers=headers
            )
        if answer.mode == "drop":
            response = web.StreamResponse(status=answer.status, headers=headers)
            response.content_length = len(answer.body)
            await response.prepare(request)
            await response.write(answer.body[: len(answer.body) // 2])
            if request.transport is not None:
                request.transport.close()
            return response
        if answer.mode in ("trickle", "padded", "bomb"):
            return await self._stream(request, answer, headers)
        body = answer.body
        if self.settings.gzip and "gzip" in request.headers.get("Accept-Encoding", "").lower():
            body = await _gzip(body)
            headers["Content-Encoding"] = "gzip"
        return web.Response(status=answer.status, body=body, headers=headers)

    async def _stream(
        self, request: web.Request, answer: _Answer, headers: dict[str, str]
    ) -> web.StreamResponse:
        """Send a hostile answer piece by piece, never compressed by the usual path."""
        f = self.settings.faults
        response = web.StreamResponse(status=answer.status, headers=headers)
        if answer.mode == "trickle":
            await write_trickle(
                request,
                response,
                answer.body,
                self.closing,
                size=f.trickle_bytes,
                pause=f.trickle_pause,
            )
        elif answer.mode == "bomb":
            bomb = await asyncio.to_thread(gzip_bomb, f.gzip_bomb_size, answer.body)
            response.headers["Content-Encoding"] = "gzip"
            response.content_length = len(bomb)
            await response.prepare(request)
            await write_pieces(request, response, bomb.pieces(), self.closing)
        else:
            assert answer.padded is not None
            await write_padded(
                request, response, answer.padded, self.closing, chunked=answer.chunked
            )
        return response


async def _gzip(body: bytes) -> bytes:
    """Gzip at level 1: large bodies in a thread (zlib releases the GIL)."""

    def compress() -> bytes:
        packer = zlib.compressobj(1, zlib.DEFLATED, 31)
        return packer.compress(body) + packer.flush()

    if len(body) > _GZIP_IN_THREAD:
        return await asyncio.to_thread(compress)
    return compress()


EMULATOR_KEY = web.AppKey("emulator", Emulator)


def build_app(settings: EmulatorSettings) -> web.Application:
    """The emulator as an aiohttp application (its state at ``app[EMULATOR_KEY]``)."""
    emulator = Emulator(settings)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    app.router.add_post(DATAFORSEO_PATH, emulator.dataforseo)
    app.router.add_post(AISA_PATH, emulator.aisa)
    app.router.add_get(LOG_PATH, emulator.call_log)
    app.router.add_get(USER_DATA_PATH, emulator.user_data)
    app.router.add_get(AISA_USER_DATA_PATH, emulator.user_data)
    app.router.add_route("*", AS_OF_PATH, emulator.dates.handle)
    app.router.add_route("*", "/{tail:.*}", emulator.other)

    async def stop_streams(app: web.Application) -> None:
        emulator.closing.set()

    async def close_log(app: web.Application) -> None:
        emulator.log.close()

    app.on_shutdown.append(stop_streams)
    app.on_cleanup.append(close_log)
    return app
