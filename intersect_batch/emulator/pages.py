"""The answer that carries a page: the result set's items, the balance they are billed
to, and the faults and oddities that bend a successful answer (holes, odd text, a false
cost claim, the wire modes a fault asks for).

Apart from ``answers`` (the envelope and the answers that carry no page) because this is
where the emulator's data and money meet: the result store, the live data's epochs and
the balance are held here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec

from .answers import Answer, Answers, Call
from .codes import STATUS_MESSAGES, call_cost
from .hostile import applies, mangle_page
from .oddities import odd_text
from .query import Query
from .resultset import ResultStore
from .schema import Result
from .settings import COST_CLAIMS, EmulatorSettings
from .streaming import Padded

__all__ = ["PageAnswers"]

_DECODER = msgspec.json.Decoder()


class PageAnswers:
    """Answers a valid query with its page, billed to the balance (None: unlimited)."""

    def __init__(self, settings: EmulatorSettings, store: ResultStore, answers: Answers) -> None:
        self.settings = settings
        self.store = store
        self.answers = answers
        self.balance_usd = settings.balance_usd
        self.epoch = 0

    def success(self, call: Call, query: Query, tasks: list[Any], fault: str | None) -> Answer:
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
            error = self.answers.error_task(query.data, 40102, STATUS_MESSAGES[40102])
            return self.answers.envelope(call, [error], tasks)
        items, total = mangle_page(fault, self.settings.faults, query.offset, items, total)
        cost = call_cost(len(items))
        if self.balance_usd is not None:
            if self.balance_usd < cost - 1e-12:
                return self.answers.whole_call_error(call, 40210)
            self.balance_usd = round(self.balance_usd - cost, 8)
        call.items, call.total_count = len(items), total
        task = self.answers.task(
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
        answer = self.answers.envelope(call, [task], tasks)
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

    def _claim(self, answer: Answer) -> None:
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
