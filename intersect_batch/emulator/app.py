"""The aiohttp application, the request side: routes, auth, reading the tasks, the
limits and throttling, the fault draw, and the call log. What an answer is made of is
``answers`` (and ``pages`` for an answer with a page); how it is written, ``sending``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from typing import Any

import msgspec
from aiohttp import web

from .answers import Answer, Answers, Call, user_data_answer
from .codes import STATUS_MESSAGES, http_status_for
from .faults import FaultDecider
from .filters import count_conditions as count_filter_conditions
from .limits import CredentialLimits
from .pages import PageAnswers
from .query import TaskError, parse_task
from .records import CallLog, CallRecord, Route, credential_id
from .resultset import ResultStore
from .sending import send
from .settings import EmulatorSettings
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
#: ``GET``: ``{"serving": N}``, the calls being answered now (not yet in the log).
SERVING_PATH = "/_emulator/serving"
USER_DATA_PATH = "/v3/appendix/user_data"
AISA_USER_DATA_PATH = "/apis/v1/dataforseo/appendix/user_data"
#: The balance ``user_data`` reports when the emulator's balance is unlimited.
UNLIMITED_BALANCE_USD = 1_000_000.0
_DECODER = msgspec.json.Decoder()


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
        self.answers = Answers(settings.seed, settings.faults, self.limits)
        self.pages = PageAnswers(settings, self.store, self.answers)
        self.closing = asyncio.Event()
        """Set when the server starts shutting down: streamed answers stop at once."""
        self._first_call: float | None = None
        self._basic = (settings.login, settings.password)
        #: How many times ``GET /v3/appendix/user_data`` was asked (free, not logged).
        self.user_data_calls = 0
        #: Calls being answered now (a call is counted until its record is in the log).
        self.serving = 0

    @property
    def balance_usd(self) -> float | None:
        """What is left of the balance (None: unlimited)."""
        return self.pages.balance_usd

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
        call = Call(route=route, t=self.clock(), started=time.perf_counter())
        self.user_data_calls += 1
        if not self._authenticate(request, call):
            return await self._write(request, self.answers.unauthorized(call))
        balance = UNLIMITED_BALANCE_USD if self.balance_usd is None else self.balance_usd
        login = self._basic[0] if route == "dataforseo" else None
        task_id = self.answers.new_task_id()
        per_minute = self.settings.rate_per_minute
        return await self._write(
            request, user_data_answer(task_id, call, login, balance, per_minute)
        )

    async def call_log(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.log.encode(), content_type="application/json")

    async def serving_now(self, request: web.Request) -> web.StreamResponse:
        """How many calls are being answered now: once a client is gone and this is 0,
        every call it made is in the log."""
        return web.json_response({"serving": self.serving})

    # -- one call ----------------------------------------------------------------------

    async def _serve(self, request: web.Request, route: Route) -> web.StreamResponse:
        call = Call(route=route, t=self.clock(), started=time.perf_counter())
        answer = Answer(500, b"")
        self.serving += 1
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
            self.serving -= 1

    async def _answer(self, request: web.Request, call: Call) -> Answer:
        if call.route == "other":
            return self.answers.whole_call_error(call, 40400)
        if not self._authenticate(request, call):
            return self.answers.unauthorized(call)
        assert call.credential is not None
        if self._first_call is None:
            self._first_call = call.t  # where a delayed throttling window is measured from
        body = await request.read()
        tasks = self._tasks(body, call)
        if isinstance(tasks, Answer):
            return tasks
        self._note_request(tasks[0], call)
        call.day, call.as_of = self.dates.of_call(request.headers)

        wait = self.limits.admit_rate(call.credential, call.t)
        throttled = self._throttle_left(call.t)
        if throttled is not None:
            call.fault = "throttle"
            return self.answers.limited(call, tasks, self.settings.faults.throttle_code, throttled)
        if wait is not None:
            return self.answers.limited(call, tasks, 40202, wait)
        if not self.limits.try_enter(call.credential):
            return self.answers.limited(call, tasks, 40209, 1.0)
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

    async def _in_slot(self, request: web.Request, call: Call, tasks: list[Any]) -> Answer:
        try:
            query = parse_task(tasks[0])
        except TaskError as exc:
            return self.answers.envelope(
                call, [self.answers.error_task(tasks[0], exc.code, exc.message)], tasks
            )
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
            return self.answers.server_error(call)
        forced = {"timeout": 50401, "internal_error": 50000, "task_failed": 40103}.get(
            draw.fault or "", draw.status_code
        )
        if forced is not None:
            if forced in (40202, 40209):
                return self.answers.limited(call, tasks, forced, 1.0)
            if http_status_for(forced) != 200:
                return self.answers.whole_call_error(call, forced)
            error = self.answers.error_task(
                query.data, forced, STATUS_MESSAGES.get(forced, "Error.")
            )
            return self.answers.envelope(call, [error], tasks)
        if draw.fault in ("echo_credentials", "long_message"):
            authorization = request.headers.get("Authorization", "")
            return self.answers.hostile_error(authorization, call, query, tasks, draw.fault)
        return self.pages.success(call, query, tasks, draw.fault)

    # -- request parsing -------------------------------------------------------------------

    def _authenticate(self, request: web.Request, call: Call) -> bool:
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

    def _tasks(self, body: bytes, call: Call) -> list[Any] | Answer:
        """The request's task objects, or the answer to a body that has none."""
        if not body.strip():
            return self.answers.whole_call_error(call, 40502)
        try:
            data = _DECODER.decode(body)
        except msgspec.DecodeError:
            return self.answers.whole_call_error(call, 40503)
        if call.route == "aisa" and isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            return self.answers.whole_call_error(call, 40503)
        if not data:
            return self.answers.whole_call_error(call, 40502)
        call.tasks_count = len(data)
        return data

    @staticmethod
    def _note_request(task: Any, call: Call) -> None:
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

    # -- the wire --------------------------------------------------------------------------

    async def _write(self, request: web.Request, answer: Answer) -> web.StreamResponse:
        return await send(
            request,
            answer,
            gzip=self.settings.gzip,
            faults=self.settings.faults,
            closing=self.closing,
        )


EMULATOR_KEY = web.AppKey("emulator", Emulator)


def build_app(settings: EmulatorSettings) -> web.Application:
    """The emulator as an aiohttp application (its state at ``app[EMULATOR_KEY]``)."""
    emulator = Emulator(settings)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    app.router.add_post(DATAFORSEO_PATH, emulator.dataforseo)
    app.router.add_post(AISA_PATH, emulator.aisa)
    app.router.add_get(LOG_PATH, emulator.call_log)
    app.router.add_get(SERVING_PATH, emulator.serving_now)
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
