"""What each failure means for the run: the one table of status codes.

Every answer is judged at three levels (HTTP status, the envelope's status_code, the
task's status_code) by :func:`classify`, which returns ``None`` for a usable answer or the
error class to raise.
"""

from __future__ import annotations

from intersect_batch.errors import (
    ApiError,
    JobFatalApiError,
    RunFatalApiError,
    ThrottledApiError,
    TransientApiError,
)

__all__ = [
    "NO_RESULTS",
    "OK",
    "RUN_FATAL_ADVICE",
    "SLOWDOWN_CODES",
    "classify",
    "classify_code",
    "classify_http",
]

OK = 20000
#: "No Search Results": an empty page, not an error.
NO_RESULTS = 40102
#: "Not Found" for the path itself: every call of the run goes to the same wrong URL.
WRONG_PATH = 40400
#: "Not implemented": asking again gets the same answer.
NOT_IMPLEMENTED = 50100

#: The account is over a limit it was told about: the whole run slows down.
SLOWDOWN_CODES = frozenset({40202, 40209})
#: Worth retrying with back-off.
TRANSIENT_CODES = frozenset({40103, 50000, 50301, 50303, 50304, 50401, 50402})
#: The account cannot go on: stop the whole run.
RUN_FATAL_CODES = frozenset({40100, 40104, 40200, 40201, 40203, 40204, 40207, 40210, WRONG_PATH})

#: What the user must do after a run-fatal answer.
RUN_FATAL_ADVICE: dict[int, str] = {
    40100: "check the API login and password (or the API key) in the environment",
    40104: "verify the account in the provider's dashboard",
    40200: "add funds or a payment method to the account",
    40201: "the account is suspended: contact the provider",
    40203: "the daily cost limit is reached: it resets at midnight UTC, or raise it "
    "in the dashboard",
    40204: "this API needs a subscription: enable it in the dashboard",
    40207: "whitelist this machine's IP address in the dashboard",
    40210: "add funds to the account, then re-run: finished pages are not paid again",
    WRONG_PATH: "check --base-url: the API does not know this path",
}


def classify_code(code: int) -> type[ApiError] | None:
    """The error class for one API status code, ``None`` when it is usable."""
    if code in (OK, NO_RESULTS):
        return None
    if code in SLOWDOWN_CODES:
        return ThrottledApiError
    if code in TRANSIENT_CODES:
        return TransientApiError
    if code in RUN_FATAL_CODES:
        return RunFatalApiError
    if code == NOT_IMPLEMENTED:
        return JobFatalApiError
    if 50000 <= code < 60000:
        return TransientApiError
    # Other 404xx codes (not found) are about what this job asked for, like 40501.
    return JobFatalApiError


def classify_http(status: int) -> type[ApiError] | None:
    """The error class for an HTTP status whose body says nothing more.

    A 404 without an envelope is a wrong base URL: every call of the run would get it.
    """
    if status == 200:
        return None
    if status in (401, 402, 403, 404):
        return RunFatalApiError
    if status == 429:
        return ThrottledApiError
    if status >= 500 or status == 408:
        return TransientApiError
    return JobFatalApiError


def classify(
    http_status: int, envelope_code: int | None, task_code: int | None
) -> type[ApiError] | None:
    """The error class for one answer, judged at all three levels, most specific first.

    ``envelope_code`` and ``task_code`` are ``None`` when the body did not carry them.
    """
    if http_status == 429:
        return ThrottledApiError
    for code in (envelope_code, task_code):
        if code is not None and code != OK:
            return classify_code(code)
    if envelope_code is None and task_code is None:
        return classify_http(http_status) or JobFatalApiError
    return classify_http(http_status)
