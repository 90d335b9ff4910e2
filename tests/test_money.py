"""The night's money, one owner: what each outcome of a call books, and what the ledger keeps.

The crawl runs in virtual time against scripted answers (no server); the figures are
exact. The CLI-level cases (claims an emulator makes, a ledger damaged between two
invocations) are in ``test_once_money.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from intersect_batch.answer import FetchedPage
from intersect_batch.checkpoint import Checkpoint, Counters
from intersect_batch.errors import (
    JobFatalApiError,
    TransientApiError,
    UnreachableApiError,
)
from intersect_batch.layout import RunFolder
from intersect_batch.ledger import Ledger, read_ledger, write_ledger
from intersect_batch.manifest import build_manifest, write_json
from intersect_batch.money import IMPLAUSIBLE_FACTOR, NightMoney, Reservation, Settled
from intersect_batch.night import night_ledger, night_records
from intersect_batch.pacing import PRICE_LISTS, price, price_list
from intersect_batch.settings import RetryPolicy
from tests.scripted import DATE, ScriptedApi, fail, job, run_crawl, settings
from tests.virtual_time import run_virtual

LIST = PRICE_LISTS["dataforseo"]


def _crawl(api: ScriptedApi, jobs: list[Any], run_settings: Any, **kw: Any) -> Any:
    return run_virtual(lambda: run_crawl(api, jobs, run_settings, **kw))


def _ledger(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RunFolder(out, DATE).ledger.read_text())
    return data


def _claiming(cost: float | None, items: int = 10) -> Any:
    async def step(api: ScriptedApi, call: Any) -> FetchedPage:
        page = api.page(call)
        return FetchedPage(
            total_count=page.total_count,
            items_count=items,
            lines=page.lines[:items],
            cost=cost,
            task_id=None,
        )

    return step


# -- counted once, by outcome ----------------------------------------------------------------


def test_a_call_that_never_reached_the_api_is_not_counted(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 20})
    down = UnreachableApiError("cannot connect")
    api.script("a", 0, fail(down, 0.0), fail(down, 0.0))
    policy = RetryPolicy(attempts=3, base=1.0, cap=1.0, unreachable_after=60.0)
    done = _crawl(api, [job("a")], settings(tmp_path, retry=policy))
    assert done.final("a").status == "complete"
    assert len(api.sent) == 4  # two unreachable, then the two pages
    assert done.result.calls == 2
    assert done.final("a").counters.calls == 2
    assert _ledger(tmp_path)["calls"] == 2
    assert done.result.cost_usd == pytest.approx(2 * price(1, 10))


def test_an_error_answer_books_the_cost_it_reports(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10})
    api.script("a", 0, fail(JobFatalApiError("bad request", status_code=40501, cost=0.5)))
    done = _crawl(api, [job("a")], settings(tmp_path))
    assert done.final("a").status == "failed"
    assert done.result.calls == 1
    assert done.result.cost_usd == 0.5
    assert done.result.spent_usd == 0.5
    assert done.final("a").counters.cost_usd == 0.5
    assert _ledger(tmp_path)["spent_usd"] == 0.5


def test_an_answer_lost_after_billing_counts_its_worst_case_but_no_cost(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10})
    api.script("a", 0, fail(TransientApiError("cut short", maybe_billed=True)))
    policy = RetryPolicy(attempts=1, base=1.0, cap=1.0)
    done = _crawl(api, [job("a")], settings(tmp_path, retry=policy))
    assert done.result.calls == 1
    assert done.result.cost_usd == 0
    assert done.result.spent_usd == pytest.approx(price(1, 10))


def test_the_final_ledger_releases_the_money_booked_ahead(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 30})
    done = _crawl(api, [job("a")], settings(tmp_path, budget_usd=10.0))
    assert done.final("a").status == "complete"
    ledger = _ledger(tmp_path)
    assert ledger["booked_usd"] == 0
    assert ledger["spent_usd"] == pytest.approx(api.billed) == pytest.approx(3 * price(1, 10))
    assert ledger["invocations"] == 1


# -- what an answer claims ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "warning"),
    [(None, "did not say what it cost"), (0.0, "below the price list")],
    ids=["missing", "zero"],
)
def test_a_claim_below_the_price_list_is_booked_at_the_list_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, claim: float | None, warning: str
) -> None:
    api = ScriptedApi({"a": 30})
    for offset in (0, 10, 20):
        api.script("a", offset, _claiming(claim))
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = _crawl(api, [job("a")], settings(tmp_path))
    assert done.result.cost_usd == pytest.approx(3 * price(1, 10))
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if warning in r.message)
    ) == 1
    assert sum(warning in r.message for r in caplog.records) == 1


def test_an_answer_with_no_result_is_listed_at_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def no_result(api: ScriptedApi, call: Any) -> FetchedPage:
        # 40102 "No Search Results." at offset 0: the API bills no result.
        return FetchedPage(total_count=None, items_count=0, lines=[], cost=0.0, task_id=None)

    api = ScriptedApi({"a": 0})
    api.script("a", 0, no_result)
    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        done = _crawl(api, [job("a")], settings(tmp_path))
    assert done.final("a").status == "complete"
    assert done.result.calls == 1 and done.result.cost_usd == 0
    assert caplog.messages == []


def test_the_sandbox_books_what_its_answers_claim_its_list_being_free(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 10})
    api.script("a", 0, _claiming(None))

    async def main() -> Any:
        from intersect_batch.crawl import crawl

        folder = RunFolder(tmp_path, DATE)
        folder.path.mkdir(parents=True)
        return await crawl(
            [job("a")], fetch=api, folder=folder, settings=settings(tmp_path),
            prices=price_list("sandbox"),
        )  # fmt: skip

    result = run_virtual(main)
    assert result.cost_usd == 0 and result.calls == 1


def test_an_implausible_claim_stops_the_spending_naming_the_job_and_offset(
    tmp_path: Path,
) -> None:
    api = ScriptedApi({"a": 1000}, latency=1.0)
    api.script("a", 0, _claiming(1e300))
    done = _crawl(api, [job("a")], settings(tmp_path))
    stop = done.result.stop
    assert stop is not None and stop.kind == "budget"
    assert stop.reason == (
        "budget: an answer claimed more than 100 times the documented price of its call "
        "(2.03000 USD; job a, offset 0); no more calls are sent: compare the account's bill "
        "with the night's ledger"
    )
    assert len(api.sent) == 1
    assert done.result.cost_usd == pytest.approx(100 * price(1, 10))
    assert _ledger(tmp_path)["spent_usd"] == pytest.approx(100 * price(1, 10))


def test_a_page_carrying_more_than_its_limit_raises_the_worst_case_after_it() -> None:
    async def main() -> tuple[Reservation | None, Reservation | None]:
        money = NightMoney(RunFolder(Path("/nonexistent"), DATE), cap=None, ledger=Ledger(),
                           prices=LIST)  # fmt: skip
        first = await money.reserve(100)
        assert first is not None
        booked = money.answered(first, price(1, 1000), 1000, where="job a, offset 0")
        assert booked == Settled(price(1, 1000), called=True)
        return first, await money.reserve(100)

    first, second = run_virtual(main)
    assert first is not None and first.amount == pytest.approx(price(1, 100))
    assert second is not None and second.amount == pytest.approx(price(1, 1000))


def test_a_booking_the_disk_refuses_halts_the_spending(tmp_path: Path) -> None:
    async def main() -> NightMoney:
        folder = RunFolder(tmp_path / "missing" / "deeper", DATE)
        (tmp_path / "missing").write_text("a file where a folder should be")
        money = NightMoney(folder, cap=1.0, ledger=Ledger(), prices=LIST)
        assert await money.reserve(100) is None
        return money

    money = run_virtual(main)
    assert money.halt is not None and money.halt.startswith("budget: the night's spend cannot")
    assert money.refusal(100) == money.halt
    assert money.in_flight == 0 and money.budget.reserved == 0


def test_a_refusal_says_what_the_next_call_could_cost() -> None:
    async def main() -> str:
        money = NightMoney(RunFolder(Path("/nonexistent"), DATE), cap=0.03,
                           ledger=Ledger(spent_usd=0.02), prices=LIST)  # fmt: skip
        assert await money.reserve(100) is None
        return money.refusal(100)

    assert run_virtual(main) == (
        "budget: the next call could cost 0.02300 USD and 0.02000 of 0.03 USD are spent tonight"
    )


def test_each_outcome_books_what_it_should_and_the_ledger_says_so() -> None:
    base = Ledger(spent_usd=1.0, cost_usd=0.9, calls=7, retries=2, throttled_s=3.5,
                  invocations=1)  # fmt: skip

    async def main() -> NightMoney:
        money = NightMoney(RunFolder(Path("/nonexistent"), DATE), cap=None, ledger=base,
                           prices=LIST)  # fmt: skip
        never, lost, answered = [await money.reserve(100) for _ in range(3)]
        assert never is not None and lost is not None and answered is not None
        assert money.in_flight == 3
        assert money.unsent(never) == Settled(0.0, called=False)
        assert money.budget.spent == 1.0
        assert money.lost(lost) == Settled(0.0, called=True)
        assert money.budget.spent == pytest.approx(1.0 + price(1, 100))
        claim = price(1, 50) + 0.001
        assert money.answered(answered, claim, 50, where="w") == Settled(claim, called=True)
        assert money.in_flight == 0
        return money

    money = run_virtual(main)
    spent = round(1.0 + price(1, 100) + price(1, 50) + 0.001, 8)
    assert money.calls == 2 and money.spent_usd == pytest.approx(spent - 1.0)
    # A money without the crawl's figures (the dry run's) keeps the night's as they were.
    assert money.ledger() == Ledger(spent_usd=spent, cost_usd=round(0.9 + price(1, 50) + 0.001, 8),
                                    calls=9, retries=2, throttled_s=3.5, invocations=2)  # fmt: skip


def test_an_oddity_is_told_in_words_a_person_can_act_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        money = NightMoney(RunFolder(Path("/nonexistent"), DATE), cap=None, ledger=Ledger(),
                           prices=LIST)  # fmt: skip
        for claim in (None, None, 0.001, 0.0):
            reservation = await money.reserve(10)
            assert reservation is not None
            money.answered(reservation, claim, 10, where="job a, offset 10")

    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        run_virtual(main)
    assert caplog.messages == [
        "an answer did not say what it cost, or said it in a form that is no amount of money "
        "(job a, offset 10): booked at the price list, 0.02030 USD; the night's spend counts "
        "the larger of claim and list",
        "an answer claimed 0.00100 USD, below the price list's 0.02030 USD for its 10 items "
        "(job a, offset 10): booked at the list; the night's spend counts the larger of claim "
        "and list",
    ]


# -- the night's ledger, rebuilt ---------------------------------------------------------------


def _checkpoint(folder: RunFolder, job_id: str, calls: int, retries: int, cost: float) -> None:
    folder.state.mkdir(parents=True, exist_ok=True)
    counters = Counters(calls=calls, retries=retries, cost_usd=cost)
    checkpoint = Checkpoint(fingerprint="f", started_at="t", counters=counters)
    folder.checkpoint(job_id).write_bytes(msgspec.json.encode(checkpoint))


def _night(tmp_path: Path) -> RunFolder:
    """A night whose jobs' records say 1.5203 USD, 11 calls and 3 retries.

    a: its manifest (2 calls, 0.0406 USD) and a checkpoint that says more (9, 3, 1.0 USD);
    b: a manifest only (1 call, 0.0203 USD); c: a checkpoint only (1 call, 0.5 USD);
    d and e: checkpoints whose cost no night can have (counted as nothing).
    """
    api = ScriptedApi({"a": 20, "b": 10})
    done = _crawl(api, [job("a"), job("b")], settings(tmp_path))
    folder: RunFolder = done.folder
    for final in done.result.jobs:
        manifest = build_manifest(final, config_file="jobs.yaml", config_line=1,
                                  drift_threshold=0.05, diff=None)  # fmt: skip
        write_json(folder.manifest(final.job.job_id), manifest)
    _checkpoint(folder, "a", 9, 3, 1.0)
    _checkpoint(folder, "c", 1, 0, 0.5)
    _checkpoint(folder, "d", 0, 0, -5.0)
    _checkpoint(folder, "e", 0, 0, float("inf"))
    return folder


def test_the_nights_records_take_the_larger_of_each_jobs_manifest_and_checkpoint(
    tmp_path: Path,
) -> None:
    assert night_records(_night(tmp_path)) == Counters(calls=11, retries=3, cost_usd=1.5203)


def test_a_missing_ledger_is_rebuilt_from_the_manifests_and_checkpoints(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _night(tmp_path)
    folder.ledger.unlink()
    with caplog.at_level(logging.INFO, logger="intersect_batch"):
        ledger = night_ledger(folder)
    assert ledger == Ledger(spent_usd=1.5203, cost_usd=1.5203, calls=11, retries=3)
    assert caplog.messages == [
        "the night's ledger is missing: counting 1.52030 USD from the night's manifests and "
        "checkpoints"
    ]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"spent_usd": -1.0, "calls": 3}', "it holds a negative or infinite figure"),
        ('{"spent_usd": 1e999}', "Number out of range - at `$.spent_usd`"),
        ('{"spent_usd": 0.1, "cost', "Input data was truncated"),
    ],
    ids=["negative", "infinite", "garbled"],
)
def test_an_unreadable_or_implausible_ledger_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, why: str
) -> None:
    folder = _night(tmp_path)
    folder.ledger.write_text(text)
    with caplog.at_level(logging.INFO, logger="intersect_batch"):
        ledger = night_ledger(folder)
    assert ledger == Ledger(spent_usd=1.5203, cost_usd=1.5203, calls=11, retries=3)
    assert caplog.messages == [
        f"the night's ledger cannot be read ({why}): counting 1.52030 USD from the night's "
        "manifests and checkpoints"
    ]


def test_a_ledger_behind_its_records_is_lifted_to_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _night(tmp_path)
    behind = Ledger(spent_usd=0.1, cost_usd=0.2, calls=20, retries=1, booked_usd=0.3,
                    throttled_s=4.0, invocations=2)  # fmt: skip
    write_ledger(folder.ledger, behind)
    with caplog.at_level(logging.INFO, logger="intersect_batch"):
        ledger = night_ledger(folder)
    assert ledger == Ledger(spent_usd=1.5203, cost_usd=1.5203, calls=20, retries=3,
                            booked_usd=0.3, throttled_s=4.0, invocations=2)  # fmt: skip
    assert caplog.messages == [
        "the night's ledger says 0.30000 USD were spent, its jobs' records 1.52030 USD: "
        "counting the larger"
    ]


def test_a_ledger_a_little_behind_its_records_takes_each_larger_figure(tmp_path: Path) -> None:
    folder = _night(tmp_path)
    # 1.5 USD against the records' 1.5203; 10 calls and 5 retries against 11 and 3.
    write_ledger(folder.ledger, Ledger(spent_usd=1.5, cost_usd=1.6, calls=10, retries=5,
                                       invocations=3))  # fmt: skip
    assert night_ledger(folder) == Ledger(spent_usd=1.5203, cost_usd=1.6, calls=11, retries=5,
                                          invocations=3)  # fmt: skip


def test_a_ledger_at_or_above_its_records_is_read_as_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _night(tmp_path)
    for ledger in (
        Ledger(spent_usd=1.5203, cost_usd=1.5, calls=11, invocations=1),
        Ledger(spent_usd=0.5, booked_usd=1.6, invocations=2),
    ):
        write_ledger(folder.ledger, ledger)
        with caplog.at_level(logging.INFO, logger="intersect_batch"):
            assert night_ledger(folder) == ledger
    assert caplog.messages == []


def test_a_night_with_no_record_starts_from_nothing_and_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="intersect_batch"):
        assert night_ledger(RunFolder(tmp_path, DATE)) == Ledger()
    assert caplog.messages == []


def test_a_ledger_no_night_can_have_is_never_written(tmp_path: Path) -> None:
    for figure in (float("inf"), float("nan"), -0.01):
        with pytest.raises(ValueError, match="not a ledger a night can have"):
            write_ledger(tmp_path / "ledger.json", Ledger(spent_usd=figure))
    with pytest.raises(ValueError, match="not a ledger a night can have"):
        write_ledger(tmp_path / "ledger.json", Ledger(calls=-1))
    assert not (tmp_path / "ledger.json").exists()
    assert read_ledger(tmp_path / "ledger.json") == Ledger()


def test_each_provider_has_its_price_list() -> None:
    assert price_list("dataforseo") == price_list("aisa") == price_list("nobody knows")
    assert price_list("aisa").of(1000) == pytest.approx(0.05)
    assert price_list("sandbox").of(1000) == 0


def test_an_error_answer_claiming_an_implausible_cost_stops_the_spending(tmp_path: Path) -> None:
    api = ScriptedApi({"a": 1000}, latency=1.0)
    api.script("a", 0, fail(JobFatalApiError("bad", status_code=40501, cost=1e300)))
    done = _crawl(api, [job("a")], settings(tmp_path))
    stop = done.result.stop
    assert stop is not None and stop.kind == "budget" and "job a, offset 0" in stop.reason
    assert done.result.cost_usd == pytest.approx(100 * price(1, 10))


# -- the words and figures a person reads -----------------------------------------------------


def _money(folder: RunFolder, **kw: Any) -> NightMoney:
    values: dict[str, Any] = {"cap": None, "ledger": Ledger(), "prices": LIST}
    values.update(kw)
    return NightMoney(folder, **values)


def test_two_implausible_claims_keep_the_first_reason_and_each_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Two jobs' probes are out at once; a's claim comes at 1 s, b's at 1.5 s.
    api = ScriptedApi({"a": 1000, "b": 1000}, latency=1.0)
    api.script("a", 0, _claiming(1e300))
    api.script("b", 0, _late_claim(1.5, 7e12))
    with caplog.at_level(logging.ERROR, logger="intersect_batch"):
        done = _crawl(api, [job("a"), job("b")], settings(tmp_path))
    stop = done.result.stop
    assert stop is not None and "(2.03000 USD; job a, offset 0)" in stop.reason
    assert caplog.messages == [
        "an answer claimed 1e+300 USD (job a, offset 0): implausible",
        "an answer claimed 7e+12 USD (job b, offset 0): implausible",
    ]
    assert len(api.sent) == 2
    assert done.result.cost_usd == round(2 * 100 * price(1, 10), 8)


def _late_claim(after: float, cost: float) -> Any:
    async def step(api: ScriptedApi, call: Any) -> FetchedPage:
        await anyio.sleep(after)
        page = api.page(call)
        return FetchedPage(page.total_count, page.items_count, page.lines, cost, None)

    return step


def test_the_ceiling_of_a_page_carrying_more_than_its_limit_is_of_its_items() -> None:
    async def main() -> tuple[Settled, str | None]:
        money = _money(RunFolder(Path("/nonexistent"), DATE))
        reservation = await money.reserve(10)
        assert reservation is not None
        return money.answered(reservation, 1e300, 1000, where="job a, offset 0"), money.halt

    settled, halt = run_virtual(main)
    # 100 times the documented price of 1000 items: 100 * (0.02 + 1000 * 0.00003).
    assert settled == Settled(100 * price(1, 1000), called=True)
    assert halt is not None and "(5.00000 USD; job a, offset 0)" in halt


def test_a_short_page_teaches_the_price_of_the_items_it_carried() -> None:
    async def main() -> Reservation | None:
        money = _money(RunFolder(Path("/nonexistent"), DATE), cap=100.0)
        money.booked = 100.0  # nothing to book: no ledger written
        reservation = await money.reserve(10)
        assert reservation is not None
        # 5 items, billed at twice their list price: the next call's worst case doubles.
        money.answered(reservation, 2 * price(1, 5), 5, where="job a, offset 0")
        return await money.reserve(10)

    after = run_virtual(main)
    assert after is not None and after.amount == pytest.approx(2 * price(1, 10))


def test_a_dry_run_refusal_names_a_probe() -> None:
    async def main() -> str:
        money = _money(RunFolder(Path("/nonexistent"), DATE), cap=0.03, what="a probe",
                       ledger=Ledger(spent_usd=0.02))  # fmt: skip
        assert await money.reserve(100) is None
        return money.refusal(100)

    assert run_virtual(main) == (
        "budget: a probe could cost 0.02300 USD and 0.02000 of 0.03 USD are spent tonight"
    )


def test_the_ledger_rounds_money_to_eight_places_and_seconds_to_three() -> None:
    base = Ledger(spent_usd=0.1, cost_usd=0.1, calls=1, retries=1, throttled_s=0.5,
                  invocations=2)  # fmt: skip

    async def main() -> Ledger:
        money = _money(RunFolder(Path("/nonexistent"), DATE), ledger=base,
                       activity=lambda: (3, 1.23456789))  # fmt: skip
        reservation = await money.reserve(10)
        assert reservation is not None
        money.answered(reservation, 0.123456789123, 10, where="job a, offset 0")
        return money.ledger()

    assert run_virtual(main) == Ledger(
        spent_usd=0.22345679,
        cost_usd=0.22345679,
        calls=2,
        retries=4,
        throttled_s=1.735,
        invocations=3,
    )


def test_the_run_folder_is_marked_by_the_first_ledger_write_only(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, DATE)

    async def main() -> tuple[str | None, str | None]:
        money = _money(folder)
        first = await money.save()
        assert folder.marker.is_file() and money.written
        folder.marker.unlink()
        return first, await money.save(final=True)

    assert run_virtual(main) == (None, None)
    assert not folder.marker.exists()
    assert read_ledger(folder.ledger) == Ledger(invocations=1)


def test_a_ledger_that_cannot_be_written_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "blocked").write_text("a file where the run's folder should be")
    folder = RunFolder(tmp_path / "blocked", DATE)

    async def main() -> tuple[str | None, bool]:
        money = _money(folder)
        return await money.save(), money.written

    with caplog.at_level(logging.ERROR, logger="intersect_batch"):
        assert run_virtual(main) == ("Not a directory", False)
    assert caplog.messages == ["cannot write the night's ledger: Not a directory"]


def test_an_error_answers_cost_teaches_the_price_of_a_call_with_no_item() -> None:
    async def main() -> Reservation | None:
        money = _money(RunFolder(Path("/nonexistent"), DATE), cap=100.0)
        money.booked = 100.0  # nothing to book: no ledger written
        reservation = await money.reserve(10)
        assert reservation is not None
        refused = JobFatalApiError("bad", status_code=40501, cost=0.5)
        assert money.failed(reservation, refused, where="job a, offset 0") == Settled(0.5, True)
        return await money.reserve(10)

    # 0.5 USD for a call of no item: 25 times its documented 0.02 USD.
    after = run_virtual(main)
    assert after is not None and after.amount == pytest.approx(25 * price(1, 10))


def test_a_claim_at_the_ceiling_itself_is_booked_and_spends_on() -> None:
    ceiling = IMPLAUSIBLE_FACTOR * price(1, 10)

    async def main() -> tuple[Settled, str | None]:
        money = _money(RunFolder(Path("/nonexistent"), DATE))
        reservation = await money.reserve(10)
        assert reservation is not None
        return money.answered(reservation, ceiling, 10, where="job a, offset 0"), money.halt

    assert run_virtual(main) == (Settled(ceiling, called=True), None)


def test_a_jobs_manifest_counts_when_it_says_more_than_its_checkpoint(tmp_path: Path) -> None:
    # b's manifest: 2 calls (one refused, free), 1 retry; a stale checkpoint says less.
    api = ScriptedApi({"b": 10})
    api.script("b", 0, fail(TransientApiError("server busy", retry_after=1.0)))
    done = _crawl(api, [job("b")], settings(tmp_path))
    [final] = done.result.jobs
    manifest = build_manifest(final, config_file="jobs.yaml", config_line=1,
                              drift_threshold=0.05, diff=None)  # fmt: skip
    write_json(done.folder.manifest("b"), manifest)
    _checkpoint(done.folder, "b", 1, 0, 0.0)
    assert night_records(done.folder) == Counters(calls=2, retries=1, cost_usd=0.0203)


def test_a_ledger_within_a_billionth_of_its_records_is_read_as_it_is(tmp_path: Path) -> None:
    folder = _night(tmp_path)
    # 1.520299999 + 1e-9 is 1.5203, the records' figure, to the last bit: not behind.
    within = Ledger(spent_usd=1.520299999, cost_usd=1.5, calls=11, retries=3, invocations=1)
    write_ledger(folder.ledger, within)
    assert night_ledger(folder) == within


def test_the_nights_records_round_a_claims_cost_to_eight_places(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path, DATE)
    _checkpoint(folder, "a", 1, 0, 0.0212345678)
    assert night_records(folder) == Counters(calls=1, retries=0, cost_usd=0.02123457)


def test_money_booked_ahead_is_written_to_eight_places(tmp_path: Path) -> None:
    async def main() -> Ledger:
        money = _money(RunFolder(tmp_path, DATE), cap=10.0,
                       ledger=Ledger(spent_usd=0.123456789))  # fmt: skip
        assert await money.reserve(10) is not None
        return read_ledger(money.folder.ledger)

    # What was spent, the call's worst case and a chunk of 5 % of the cap.
    assert run_virtual(main).booked_usd == 0.64375679


def test_a_claim_below_the_list_by_the_tolerance_itself_is_booked_as_claimed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claim = LIST.of(10) - 1e-9

    async def main() -> Settled:
        money = _money(RunFolder(Path("/nonexistent"), DATE))
        reservation = await money.reserve(10)
        assert reservation is not None
        return money.answered(reservation, claim, 10, where="job a, offset 0")

    with caplog.at_level(logging.WARNING, logger="intersect_batch"):
        assert run_virtual(main) == Settled(claim, called=True)
    assert caplog.messages == []
