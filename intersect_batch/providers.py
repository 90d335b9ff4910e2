"""Where the API lives and how to talk to it: base URL, auth header, body shape.

The three providers differ only in these; everything else (envelope, status codes,
pagination) is the same wire format.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

from intersect_batch.errors import UsageError
from intersect_batch.scrub import Scrubber

__all__ = ["ENDPOINT_PATH", "PROVIDERS", "Credentials", "Provider", "resolve_provider"]

#: The endpoint under each provider's base URL.
ENDPOINT_PATH = "/backlinks/page_intersection/live"

_encoder = msgspec.json.Encoder()


class Credentials:
    """A provider's secret, kept out of every repr, log line and error message.

    ``secrets`` are the texts a server might echo back (the password, the key,
    ``login:password``, the login); :meth:`scrubber` hides every form of them.
    """

    __slots__ = ("_header", "_scrubber", "_secrets", "identity")

    def __init__(self, *, header: str, identity: str, secrets: tuple[str, ...] = ()) -> None:
        self._header = header
        # Without them, the header itself: hidden whole, with its scheme.
        self._secrets = secrets or (header,)
        self._scrubber: Scrubber | None = None
        #: A name for the account in messages to its owner (the login, or "api key").
        self.identity = identity

    def authorization(self) -> str:
        """The value of the Authorization header."""
        return self._header

    def scrubber(self) -> Scrubber:
        """A :class:`~intersect_batch.scrub.Scrubber` of these credentials (built once)."""
        if self._scrubber is None:
            self._scrubber = Scrubber(self._secrets)
        return self._scrubber

    def __repr__(self) -> str:
        return f"Credentials(identity={self.identity!r})"

    __str__ = __repr__


@dataclass(frozen=True, kw_only=True)
class Provider:
    """One way to reach the endpoint."""

    name: str
    base_url: str
    auth: Literal["basic", "bearer"]

    def with_base_url(self, base_url: str | None) -> Provider:
        """The same provider reached at another base URL (an emulator, a proxy)."""
        if base_url is None:
            return self
        return Provider(name=self.name, base_url=base_url, auth=self.auth)

    @property
    def endpoint(self) -> str:
        """The full URL of page_intersection/live."""
        return self.base_url.rstrip("/") + ENDPOINT_PATH

    def credentials(self, environ: Mapping[str, str]) -> Credentials:
        """Read the credentials from the environment; a UsageError names what is missing."""
        if self.auth == "bearer":
            key = environ.get("AISA_API_KEY", "")
            _check_secret("AISA_API_KEY", key)
            if not key:
                raise UsageError(
                    f"provider {self.name!r} needs an API key: set AISA_API_KEY "
                    "(for cron, in an env file readable only by you)"
                )
            return Credentials(header=f"Bearer {key}", identity="api key", secrets=(key,))
        login = environ.get("DATAFORSEO_LOGIN", "")
        password = environ.get("DATAFORSEO_PASSWORD", "")
        _check_secret("DATAFORSEO_LOGIN", login)
        _check_secret("DATAFORSEO_PASSWORD", password)
        missing = [
            name
            for name, value in (("DATAFORSEO_LOGIN", login), ("DATAFORSEO_PASSWORD", password))
            if not value
        ]
        if missing:
            raise UsageError(
                f"provider {self.name!r} needs API credentials: set {' and '.join(missing)} "
                "(the API password from the dashboard, not the account password)"
            )
        pair = f"{login}:{password}"
        token = base64.b64encode(pair.encode()).decode("ascii")
        return Credentials(header=f"Basic {token}", identity=login, secrets=(pair, password, login))

    def body(self, task: dict[str, Any]) -> bytes:
        """The request body for one task: a one-element JSON array on every provider."""
        return _encoder.encode([task])


PROVIDERS: dict[str, Provider] = {
    "dataforseo": Provider(
        name="dataforseo", base_url="https://api.dataforseo.com/v3", auth="basic"
    ),
    "sandbox": Provider(name="sandbox", base_url="https://sandbox.dataforseo.com/v3", auth="basic"),
    "aisa": Provider(
        name="aisa", base_url="https://api.aisa.one/apis/v1/dataforseo", auth="bearer"
    ),
}


def _check_secret(name: str, value: str) -> None:
    """A UsageError naming ``name`` when its value cannot go into a header; never its value.

    A carriage return is what an env file saved with Windows line endings leaves at the
    end of every value; other control characters (a tab, a NUL) are typing accidents.
    Sent, they would split the HTTP header, which the HTTP library refuses anyway.
    """
    if value.isprintable():
        return
    if value.endswith("\r") and value[:-1].isprintable():
        raise UsageError(
            f"{name} ends in a carriage return (\\r): the env file it comes from was saved "
            "with Windows line endings; convert it (dos2unix FILE, or sed -i 's/\\r$//' FILE) "
            "and run again"
        )
    raise UsageError(
        f"{name} holds a control character (a tab, a line break or another invisible "
        "one); set it again without it"
    )


def resolve_provider(name: str, base_url: str | None = None) -> Provider:
    """The named provider, optionally at another base URL."""
    try:
        provider = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise UsageError(f"unknown provider {name!r}; choose one of {known}") from None
    if base_url is not None:
        _check_base_url(base_url)
    return provider.with_base_url(base_url)


def _check_base_url(base_url: str) -> None:
    """A UsageError unless ``base_url`` is a plain http(s) URL: scheme, host, port, path.

    Credentials come from the environment only. A URL holding some (``user:pass@``), a
    query or a fragment is refused without being echoed: it may hold a secret.
    """
    try:
        parts = urlsplit(base_url)
        port = parts.port  # a port that is not a number raises here
    except ValueError:
        raise UsageError("--base-url is not a valid URL (check its host and port)") from None
    if "@" in base_url:
        raise UsageError(
            "--base-url must not hold credentials (user:password@): set them in the "
            "environment (DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD, or AISA_API_KEY)"
        )
    if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise UsageError("--base-url must not have a query (?...) or a fragment (#...)")
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"--base-url must start with http:// or https://, got {base_url!r}")
    if not parts.hostname or any(char.isspace() for char in base_url) or port == 0:
        raise UsageError(f"--base-url needs a host (and a port above 0), got {base_url!r}")
