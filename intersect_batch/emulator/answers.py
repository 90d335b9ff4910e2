"""What an answer is made of: the call being answered, the envelope and its tasks, and
every answer that carries no page (a whole call refused, the gateway's errors, 401, 5xx,
over a limit, the hostile errors, the account's ``user_data``).

Apart from the request side (``app``) so that routing, auth and limits read as one
story, and apart from the wire (``sending``): an answer here is a value, written later.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from .codes import STATUS_MESSAGES, http_status_for
from .hashing import digest_int
from .hostile import LONG_MESSAGE_MARK, LONG_MESSAGE_UNIT, credential_echo
from .limits import CredentialLimits
from .query import Query
from .records import Route
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
from .settings import FaultSettings
from .streaming import Padded

__all__ = ["Answer", "Answers", "Call", "Mode", "user_data_answer"]

Mode = Literal["normal", "truncate", "drop", "trickle", "padded", "bomb"]


@dataclass
class Call:
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
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    mode: Mode = "normal"
    padded: Padded | None = None
    """The streamed body of a "padded" answer (``body`` is then unused)."""
    chunked: bool = False


class Answers:
    """One emulator's answer maker: it numbers the tasks it answers (reproducibly, from
    the seed) and notes each answer's status code and cost on its call."""

    def __init__(self, seed: int, faults: FaultSettings, limits: CredentialLimits) -> None:
        self._seed = seed
        self._faults = faults
        self._limits = limits
        self._tasks_made = 0

    def new_task_id(self) -> str:
        """A UUID, reproducible from the seed and the number of tasks answered so far."""
        self._tasks_made += 1
        return str(uuid.UUID(int=digest_int(f"task {self._seed} {self._tasks_made}".encode())))

    def task(
        self,
        code: int,
        message: str,
        data: dict[str, Any] | msgspec.UnsetType,
        call: Call,
        *,
        cost: float = 0.0,
        result: list[Result] | None = None,
    ) -> Task:
        return Task(
            id=self.new_task_id(),
            status_code=code,
            status_message=message,
            time=call.elapsed(),
            cost=cost,
            result_count=len(result) if result else 0,
            path=PATH,
            data=data,
            result=result,
        )

    @staticmethod
    def error_task(task: Any, code: int, message: str) -> Task:
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

    def envelope(self, call: Call, first: list[Task], tasks: list[Any]) -> Answer:
        """The answer to a call whose first task is ``first[0]``; extra tasks get 40000."""
        out = [self._finish(t, call) for t in first]
        out.extend(
            self._finish(self.error_task(extra, 40000, STATUS_MESSAGES[40000]), call)
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
        return Answer(200, ENCODER.encode(envelope))

    def _finish(self, task: Task, call: Call) -> Task:
        """Give an error task (built without a call) its id and time."""
        if task.id:
            return task
        task.id = self.new_task_id()
        task.time = call.elapsed()
        return task

    @staticmethod
    def whole_call_error(
        call: Call, code: int, status: int | None = None, message: str | None = None
    ) -> Answer:
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
        return Answer(status or http_status_for(code), ENCODER.encode(envelope))

    def unauthorized(self, call: Call) -> Answer:
        call.status_code = 40100
        if call.route == "aisa":
            answer = _gateway_error(
                401, "authentication_error", "invalid_api_key", "Invalid or missing API key."
            )
            answer.headers["WWW-Authenticate"] = "Bearer"
            return answer
        answer = self.whole_call_error(call, 40100)
        answer.headers["WWW-Authenticate"] = 'Basic realm="DataForSEO API"'
        return answer

    def server_error(self, call: Call) -> Answer:
        if call.route == "aisa":
            call.status_code = 50000
            return _gateway_error(500, "api_error", "internal_error", "Upstream request failed.")
        return self.whole_call_error(call, 50000, status=500)

    def limited(self, call: Call, tasks: list[Any], code: int, wait: float) -> Answer:
        """Over a limit: a task-level 40202/40209 (DataForSEO), or HTTP 429 (AIsa)."""
        if call.route == "dataforseo":
            error = self.error_task(tasks[0], code, STATUS_MESSAGES[code])
            return self.envelope(call, [error], tasks)
        call.status_code = code
        assert call.credential is not None
        if code == 40202:
            message = "Rate limit exceeded: too many requests per minute."
            answer = _gateway_error(429, "rate_limit_error", "rate_limit_exceeded", message)
        else:
            message = "Too many concurrent requests."
            answer = _gateway_error(429, "rate_limit_error", "concurrency_limit_exceeded", message)
        answer.headers.update(
            {
                "Retry-After": str(max(1, math.ceil(wait))),
                "X-RateLimit-Limit": str(self._limits.per_minute),
                "X-RateLimit-Remaining": str(self._limits.remaining(call.credential)),
                "X-RateLimit-Reset": str(self._limits.reset_in(call.credential, call.t)),
            }
        )
        return answer

    def hostile_error(
        self, authorization: str, call: Call, query: Query, tasks: list[Any], fault: str
    ) -> Answer:
        """An error whose message echoes the credentials, or runs for megabytes."""
        f = self._faults
        code = f.hostile_error_code
        if fault == "echo_credentials":
            message = credential_echo(authorization)
        else:
            message = LONG_MESSAGE_MARK
        if code == 50000 or http_status_for(code) != 200:
            status = 500 if code == 50000 else None
            answer = self.whole_call_error(call, code, status=status, message=message)
        else:
            answer = self.envelope(call, [self.error_task(query.data, code, message)], tasks)
        if fault == "long_message":
            head, _, tail = answer.body.partition(LONG_MESSAGE_MARK.encode())
            answer.mode = "padded"
            answer.padded = Padded(head, LONG_MESSAGE_UNIT, f.long_message_size, tail)
        return answer


def _gateway_error(status: int, kind: str, code: str, message: str) -> Answer:
    """AIsa's own error body (not DataForSEO's envelope), with a fresh request id."""
    request_id = f"req_{uuid.uuid4().hex[:24]}"
    body = AisaError(
        error=AisaErrorBody(type=kind, code=code, message=message, request_id=request_id)
    )
    return Answer(status, ENCODER.encode(body))


def user_data_answer(
    task_id: str, call: Call, login: str | None, balance: float, per_minute: int
) -> Answer:
    """``user_data``'s envelope: the balance (``money``) and the per-minute limit."""
    result = {
        "login": login,
        "timezone": "UTC",
        "rates": {
            "limits": {"day": {}, "minute": {"total": per_minute}},
            "statistics": {"day": {}, "minute": {}},
        },
        "money": {"total": balance, "balance": balance, "limits": {}, "statistics": {}},
        "price": {},
    }
    task = {
        "id": task_id,
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
    return Answer(200, msgspec.json.encode(envelope))
