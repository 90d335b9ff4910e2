"""The choice between a full and an incremental night, and the incremental requests, exact."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from intersect_batch.config import Job, load_jobs
from intersect_batch.incremental import (
    NightRecord,
    count_conditions,
    cutoff_text,
    decide,
    parent_of,
    request_filters,
    request_id,
)
from tests.support import write_jobs

TONIGHT = dt.date(2026, 12, 5)
PRINT = "f" * 32


def _job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "id": "gap",
        "targets": {"1": "a.example", "2": "b.example"},
        "refresh": "incremental",
    }
    values.update(fields)
    return Job(**values)


def _night(day: int, mode: str = "full", **fields: Any) -> NightRecord:
    values: dict[str, Any] = {
        "date": dt.date(2026, 12, day),
        "status": "complete",
        "fingerprint": PRINT,
        "mode": mode,
    }
    values.update(fields)
    return NightRecord(**values)


def test_conditions_are_counted_as_leaves_whatever_the_nesting() -> None:
    assert count_conditions(None) == 0
    assert count_conditions([]) == 0
    assert count_conditions(["1.rank", ">", 5]) == 1
    assert count_conditions([["1.rank", ">", 5], "and", ["2.rank", ">", 5]]) == 2
    nested = [
        ["1.rank", ">", 5],
        "or",
        [["2.dofollow", "=", True], "and", ["intersections_count", ">=", 2]],
    ]
    assert count_conditions(nested) == 3
    # 'in' holds a list of values: still one condition.
    assert count_conditions(["1.tld_from", "in", ["com", "org", "net"]]) == 1


def test_the_cutoff_is_the_last_nights_date_less_the_overlap_as_the_api_writes_dates() -> None:
    assert cutoff_text(dt.date(2026, 12, 4), 2) == "2026-12-02 00:00:00 +00:00"
    assert cutoff_text(dt.date(2026, 3, 1), 1) == "2026-02-28 00:00:00 +00:00"
    assert cutoff_text(dt.date(2026, 12, 4), 0) == "2026-12-04 00:00:00 +00:00"


def test_one_target_is_one_condition_and_several_are_or_ed() -> None:
    cut = "2026-12-02 00:00:00 +00:00"
    assert request_filters(["1"], cut, None, 8) == (["1.first_seen", ">", cut],)
    assert request_filters(["1", "2", "3"], cut, None, 8) == (
        [
            ["1.first_seen", ">", cut],
            "or",
            ["2.first_seen", ">", cut],
            "or",
            ["3.first_seen", ">", cut],
        ],
    )


def test_the_jobs_own_filters_are_and_ed_and_the_targets_split_over_requests() -> None:
    cut = "2026-12-02 00:00:00 +00:00"
    own = [["1.dofollow", "=", True], "and", ["2.rank", ">", 10]]
    requests = request_filters([str(n) for n in range(1, 21)], cut, own, 6)
    assert len(requests) == 4
    assert [count_conditions(r) for r in requests] == [8, 8, 8, 4]
    assert requests[3] == [
        [["19.first_seen", ">", cut], "or", ["20.first_seen", ">", cut]],
        "and",
        own,
    ]
    numbers = [c[0].split(".")[0] for r in requests for c in r[0][::2]]
    assert numbers == [str(n) for n in range(1, 21)]


def test_request_ids_cannot_be_a_configs_id_and_name_their_job() -> None:
    assert request_id("crm-gap", 2) == "crm-gap+new-2"
    assert parent_of("crm-gap+new-2") == "crm-gap"
    assert parent_of("crm-gap") is None
    assert parent_of("+new-1") is None
    assert parent_of("a+new-x") is None


def test_a_night_after_a_complete_full_one_is_incremental_with_its_cutoff() -> None:
    decision = decide(_job(), TONIGHT, [_night(4)], PRINT)
    cut = "2026-12-02 00:00:00 +00:00"
    assert decision.mode == "incremental"
    assert decision.why == f"new since {cut}"
    assert (decision.carried_from, decision.rests_on) == (dt.date(2026, 12, 4),) * 2
    assert decision.cutoff == cut
    assert decision.next_full == dt.date(2026, 12, 11)
    assert decision.requests == ([["1.first_seen", ">", cut], "or", ["2.first_seen", ">", cut]],)


def test_an_incremental_night_rests_on_the_full_night_under_the_last_one() -> None:
    history = [
        _night(4, "incremental", rests_on=dt.date(2026, 11, 30)),
        NightRecord(date=dt.date(2026, 11, 30), status="complete", fingerprint=PRINT, mode="full"),
    ]
    decision = decide(_job(incremental_overlap_days=1), TONIGHT, history, PRINT)
    assert decision.mode == "incremental"
    assert decision.rests_on == dt.date(2026, 11, 30)
    assert decision.carried_from == dt.date(2026, 12, 4)
    assert decision.cutoff == "2026-12-03 00:00:00 +00:00"
    assert decision.next_full == dt.date(2026, 12, 7)


@pytest.mark.parametrize(
    ("job", "history", "force", "why"),
    [
        (_job(refresh="full"), [_night(4)], False, "refresh: full"),
        (_job(), [_night(4)], True, "--full"),
        (_job(), [], False, "first night"),
        (
            _job(),
            [_night(4, status="partial"), _night(3)],
            False,
            "the last night, 2026-12-04, is not complete",
        ),
        (
            _job(),
            [_night(4, fingerprint="0" * 32)],
            False,
            "the query changed since 2026-12-04",
        ),
        (
            _job(full_every_days=3),
            [_night(4, "incremental", rests_on=dt.date(2026, 12, 2)), _night(2)],
            False,
            "last full night 2026-12-02, 3 days ago",
        ),
        (
            _job(max_items=500),
            [_night(4)],
            False,
            "incremental cannot apply: max_items caps the set, new pages cannot join it",
        ),
        (
            _job(filters=[["1.rank", ">", n] if n % 2 == 0 else "and" for n in range(15)]),
            [_night(4)],
            False,
            "incremental cannot apply: its filters hold 8 of the 8 conditions a request may "
            "have, leaving none for 'first_seen'",
        ),
    ],
)
def test_each_reason_for_a_full_night(
    job: Job, history: list[NightRecord], force: bool, why: str
) -> None:
    decision = decide(job, TONIGHT, history, PRINT, force_full=force)
    assert (decision.mode, decision.why) == ("full", why)
    assert decision.requests == ()
    assert decision.next_full == TONIGHT + dt.timedelta(days=job.full_every_days)


def test_seven_conditions_of_its_own_leave_one_target_per_request() -> None:
    own = [["1.rank", ">", n] if n % 2 == 0 else "and" for n in range(13)]
    assert count_conditions(own) == 7
    decision = decide(_job(filters=own), TONIGHT, [_night(4)], PRINT)
    assert decision.mode == "incremental"
    assert [count_conditions(r) for r in decision.requests] == [8, 8]


def test_the_settings_load_from_defaults_and_jobs_and_are_checked(tmp_path: Path) -> None:
    write_jobs(
        tmp_path,
        "a.yaml",
        [
            {"id": "one", "targets": ["a.example"]},
            {"id": "two", "targets": ["a.example"], "refresh": "full"},
        ],
        defaults={"refresh": "incremental", "full_every_days": 3, "incremental_overlap_days": 0},
    )
    write_jobs(tmp_path, "b.yaml", [{"id": "three", "targets": ["b.example"]}])
    write_jobs(
        tmp_path,
        "c.yaml",
        [
            {"id": "bad", "targets": ["c.example"], "refresh": "sometimes"},
            {"id": "worse", "targets": ["c.example"], "full_every_days": 0},
        ],
    )
    loaded = load_jobs(tmp_path)
    jobs = {entry.job.id: entry.job for entry in loaded.jobs}
    assert sorted(jobs) == ["one", "three", "two"]
    assert (jobs["one"].refresh, jobs["one"].full_every_days) == ("incremental", 3)
    assert jobs["one"].incremental_overlap_days == 0
    assert jobs["two"].refresh == "full"
    assert (jobs["three"].refresh, jobs["three"].full_every_days) == ("full", 7)
    assert jobs["three"].incremental_overlap_days == 2
    messages = sorted(error.describe() for error in loaded.errors)
    assert len(messages) == 2
    assert "job 'bad'" in messages[0] and "refresh" in messages[0]
    assert "'full', 'incremental'" in messages[0]
    assert "job 'worse'" in messages[1] and "full_every_days" in messages[1]
    assert ">= 1" in messages[1]
