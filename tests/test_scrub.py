"""Outside text is scrubbed of every form of a secret, capped, and kept on one line."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest

from intersect_batch.logs import JsonFormatter, TextFormatter
from intersect_batch.scrub import MASK, Scrubber, ScrubbingFilter, cap_text

LOGIN = "ops@shop.example"
PASSWORD = 'p@ss/w+rd:é&x y"q\\9'
PAIR = f"{LOGIN}:{PASSWORD}"
SCRUBBER = Scrubber([PAIR, PASSWORD, LOGIN])


def _forms(secret: str) -> list[str]:
    b64 = base64.b64encode(secret.encode()).decode()
    return [
        secret,
        b64,
        b64.rstrip("="),
        base64.urlsafe_b64encode(secret.encode()).decode(),
        quote(secret),
        quote(secret, safe=""),
        quote(secret, safe="").lower(),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        json.dumps(secret)[1:-1].upper(),
        json.dumps(b64)[1:-1].replace("/", "\\/"),
    ]


@pytest.mark.parametrize("secret", [PAIR, PASSWORD, LOGIN])
def test_every_form_of_a_secret_is_replaced(secret: str) -> None:
    for form in _forms(secret):
        text = f"server said <{form}> twice: {form}."
        assert SCRUBBER.clean(text) == f"server said <{MASK}> twice: {MASK}.", form


def test_the_authorization_header_is_replaced_whole() -> None:
    token = base64.b64encode(PAIR.encode()).decode()
    assert SCRUBBER.clean(f"Authorization: Basic {token}") == f"Authorization: Basic {MASK}"
    key = Scrubber(["sk-live/4f2a+9b1c"])
    assert key.clean("got 'Bearer sk-live/4f2a+9b1c'") == f"got 'Bearer {MASK}'"
    assert key.clean("got Bearer%20sk-live%2F4f2a%2B9b1c") == f"got Bearer%20{MASK}"


def test_text_without_secrets_is_left_alone() -> None:
    text = "Invalid Field: 'order_by' (ops, shop, example: 40501)"
    assert SCRUBBER.clean(text) == text
    assert Scrubber([]).clean(text) == text


def test_secrets_too_short_to_tell_from_words_are_hidden_only_with_the_rest() -> None:
    scrubber = Scrubber(["ab:cd", "cd", "ab"])
    assert scrubber.clean("cab, abcd, ab:cd") == f"cab, abcd, {MASK}"
    assert scrubber.clean(base64.b64encode(b"ab:cd").decode()) == MASK


def test_cap_text_marks_the_cut() -> None:
    assert cap_text("abc", 5) == "abc"
    assert cap_text("abcdefgh", 5) == "abcde... [cut: 8 chars in all]"


def test_an_excerpt_is_capped_scrubbed_and_on_one_line() -> None:
    text = "line one\nline\x1b[31m two\r\n\x00" + PASSWORD + "z" * 5000
    excerpt = SCRUBBER.excerpt(text, 40)
    assert excerpt.startswith("line one line [31m two ***zzz")
    assert excerpt.endswith(f"... [cut: {len(text):,} chars in all]")
    assert "\n" not in excerpt and "\x1b" not in excerpt


def test_an_excerpt_of_bytes_survives_bad_utf8() -> None:
    excerpt = SCRUBBER.excerpt(b"\xff\xfe<html>" + PASSWORD.encode() + b"</html>", 200)
    assert excerpt == f"\ufffd\ufffd<html>{MASK}</html>"
    assert SCRUBBER.excerpt(b"x" * 10_000_000, 10) == "xxxxxxxxxx... [cut: 10,000,000 bytes in all]"


@pytest.mark.parametrize("max_chars", [10, 17, 30, 31, 32, 45])
@pytest.mark.parametrize("repeats", [0, 1, 50])
def test_a_secret_cut_in_two_leaks_no_piece(max_chars: int, repeats: int) -> None:
    # Whole secrets first (they shrink to ***), then one that the cut may split.
    text = f"{PASSWORD} " * repeats + "x" * max_chars + PASSWORD + "y" * 10_000
    for data in (text, text.encode()):
        excerpt = SCRUBBER.excerpt(data, max_chars)
        for size in range(4, len(PASSWORD) + 1):
            for start in range(len(PASSWORD) - size + 1):
                assert PASSWORD[start : start + size] not in excerpt, (excerpt, size)


# -- the logging filter -------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    logger = logging.getLogger("test_scrub")
    logger.propagate = False
    json_out, text_out = io.StringIO(), io.StringIO()
    handlers = []
    for stream, formatter in ((json_out, JsonFormatter()), (text_out, TextFormatter())):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(ScrubbingFilter(SCRUBBER))
        logger.addHandler(handler)
        handlers.append(handler)
    try:
        yield logger, json_out, text_out
    finally:
        for handler in handlers:
            logger.removeHandler(handler)


def _assert_clean(output: str) -> None:
    assert MASK in output
    for secret in (PAIR, PASSWORD, LOGIN):
        for form in _forms(secret):
            assert form not in output, form


def test_the_filter_scrubs_message_args_and_extras(
    logged: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    logger, json_out, text_out = logged
    token = base64.b64encode(PAIR.encode()).decode()
    logger.warning(
        "call failed for %s with %r",
        LOGIN,
        {"auth": f"Basic {token}"},
        extra={
            "job": "crm",
            "offset": 3000,
            "url": f"https://x.example/?p={quote(PASSWORD, safe='')}",
            "headers": {"Authorization": f"Basic {token}"},
            "tried": [PASSWORD, ("nested", PASSWORD)],
        },
    )
    for output in (json_out.getvalue(), text_out.getvalue()):
        _assert_clean(output)
        assert "call failed for ***" in output and "crm" in output and "3000" in output
    entry = json.loads(json_out.getvalue())
    assert entry["headers"] == {"Authorization": "Basic ***"}
    assert entry["tried"] == ["***", ["nested", "***"]]


def test_the_filter_scrubs_an_exception_and_its_causes(
    logged: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    logger, json_out, text_out = logged
    try:
        try:
            raise ConnectionError(f"peer sent back {PASSWORD}")
        except ConnectionError as inner:
            raise RuntimeError(f"giving up on {LOGIN}") from inner
    except RuntimeError:
        logger.exception("crawl failed")
    for output in (json_out.getvalue(), text_out.getvalue()):
        _assert_clean(output)
        # What was raised, and where, is still there.
        assert "RuntimeError: giving up on ***" in output
        assert "ConnectionError: peer sent back ***" in output
        assert "test_the_filter_scrubs_an_exception_and_its_causes" in output
