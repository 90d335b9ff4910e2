"""The status table at its edges: which level of an answer decides, and the ends of a class."""

from __future__ import annotations

import pytest

from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    RunFatalApiError,
    ThrottledApiError,
    TransientApiError,
)
from intersect_batch.status import classify, classify_code, classify_http


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        # Any code of the 5xxxx class is the server's trouble, the unlisted ones too...
        (50001, TransientApiError),
        (59999, TransientApiError),
        # ...and a code outside it that no list names is about what the job asked.
        (49999, JobFatalApiError),
        (60000, JobFatalApiError),
        (50100, JobFatalApiError),
    ],
)
def test_the_server_error_class_ends_where_it_ends(code: int, expected: type[ApiError]) -> None:
    assert classify_code(code) is expected
    assert classify(200, 20000, code) is expected


def test_an_http_429_throttles_whatever_the_body_says() -> None:
    assert classify(429, 20000, 40501) is ThrottledApiError
    assert classify(429, 40210, None) is ThrottledApiError
    assert classify_http(429) is ThrottledApiError


def test_an_envelope_without_a_task_is_judged_by_its_http_status() -> None:
    # The envelope is there: the HTTP status decides; the caller then finds no task.
    assert classify(200, 20000, None) is None
    assert classify(500, 20000, None) is TransientApiError
    assert classify(401, 20000, None) is RunFatalApiError


def test_a_body_without_any_status_code_is_never_usable() -> None:
    assert classify(200, None, None) is JobFatalApiError
    assert classify_http(200) is None
