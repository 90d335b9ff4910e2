"""Base URLs that could carry a secret are refused; credentials know how to hide themselves."""

from __future__ import annotations

import base64

import pytest

from intersect_batch.errors import UsageError
from intersect_batch.providers import resolve_provider


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("https://ops:hunter2-secret@api.dataforseo.com/v3", "must not hold credentials"),
        ("https://hunter2-secret@api.dataforseo.com/v3", "must not hold credentials"),
        ("https://:hunter2-secret@api.dataforseo.com/v3", "must not hold credentials"),
        ("https://api.dataforseo.com/v3?key=hunter2-secret", "must not have a query"),
        ("https://api.dataforseo.com/v3#hunter2-secret", "must not have a query"),
        ("https://api.dataforseo.com/v3?", "must not have a query"),
        ("https://api.dataforseo.com:hunter2-secret/v3", "not a valid URL"),
        ("https://api.dataforseo.com:99999/v3", "not a valid URL"),
    ],
)
def test_a_base_url_that_could_carry_a_secret_is_refused_without_echo(
    base_url: str, says: str
) -> None:
    with pytest.raises(UsageError, match=says) as refused:
        resolve_provider("dataforseo", base_url)
    assert "hunter2-secret" not in str(refused.value)


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("ftp://api.dataforseo.com/v3", "must start with http:// or https://"),
        ("api.dataforseo.com/v3", "must start with http:// or https://"),
        ("http:///v3", "needs a host"),
        ("http://127.0.0.1:0/v3", "needs a host"),
    ],
)
def test_a_base_url_that_cannot_work_is_refused(base_url: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        resolve_provider("dataforseo", base_url)


def test_a_plain_base_url_is_taken() -> None:
    provider = resolve_provider("aisa", "http://127.0.0.1:8080/apis/v1/dataforseo/")
    assert provider.endpoint == (
        "http://127.0.0.1:8080/apis/v1/dataforseo/backlinks/page_intersection/live"
    )


def test_credentials_scrub_what_they_send() -> None:
    provider = resolve_provider("dataforseo")
    credentials = provider.credentials(
        {"DATAFORSEO_LOGIN": "ops@shop.example", "DATAFORSEO_PASSWORD": "0f3c9a77d1e2b4c8"}
    )
    scrubber = credentials.scrubber()
    assert scrubber is credentials.scrubber()  # built once
    header = credentials.authorization()
    assert scrubber.clean(f"echo: {header}") == "echo: Basic ***"
    assert scrubber.clean("pw 0f3c9a77d1e2b4c8, login ops@shop.example") == "pw ***, login ***"
    assert "0f3c9a77d1e2b4c8" not in repr(credentials)

    key = resolve_provider("aisa").credentials({"AISA_API_KEY": "sk-4f2a9b1c7e"}).scrubber()
    b64 = base64.b64encode(b"sk-4f2a9b1c7e").decode()
    assert key.clean(f"Bearer sk-4f2a9b1c7e {b64}") == "Bearer *** ***"
