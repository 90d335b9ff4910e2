"""Before spending: the account's balance and limits, from the free ``appendix/user_data``.

:func:`fetch_account` asks ``GET <base>/appendix/user_data`` (free on DataForSEO) and
reads ``money.balance`` and ``rates.limits.minute.total`` from the first task's result;
:func:`account_notes` says, in words a person can act on, when the balance does not
cover the night's estimate or ``--rate-per-minute`` / ``--concurrency`` exceed what the
account allows. The answer is outside text: its size is capped, its figures checked
(a balance that is not a finite number >= 0 is no balance), and any error text scrubbed
of the credentials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import aiohttp
import msgspec

from intersect_batch.errors import IntersectBatchError
from intersect_batch.providers import Credentials, Provider
from intersect_batch.settings import Limits, Timeouts

__all__ = [
    "DATAFORSEO_SIMULTANEOUS",
    "USER_DATA_PATH",
    "Account",
    "AccountCheckError",
    "account_notes",
    "fetch_account",
]

#: The account endpoint under a provider's base URL.
USER_DATA_PATH = "/appendix/user_data"
#: Simultaneous requests a DataForSEO account may have (documented; user_data omits it).
DATAFORSEO_SIMULTANEOUS = 30
#: An answer larger than this is not the account's data.
MAX_USER_DATA_BYTES = 1 << 20


class AccountCheckError(IntersectBatchError):
    """The account's balance could not be read (a message safe to show)."""


class _Minute(msgspec.Struct):
    total: int | None = None


class _Limits(msgspec.Struct):
    minute: _Minute | None = None


class _Rates(msgspec.Struct):
    limits: _Limits | None = None


class _Money(msgspec.Struct):
    balance: float | None = None


class _UserData(msgspec.Struct):
    money: _Money | None = None
    rates: _Rates | None = None


class _Task(msgspec.Struct):
    status_code: int | None = None
    status_message: str | None = None
    result: list[_UserData] | None = None


class _Envelope(msgspec.Struct):
    status_code: int | None = None
    status_message: str | None = None
    tasks: list[_Task] | None = None


_decoder = msgspec.json.Decoder(_Envelope)


@dataclass(frozen=True, kw_only=True)
class Account:
    """What the account says of itself (``None``: the answer did not say)."""

    balance_usd: float | None
    rate_per_minute: int | None


def _account(body: bytes) -> Account:
    try:
        envelope = _decoder.decode(body)
    except msgspec.DecodeError:
        raise AccountCheckError("the answer is not the API's envelope") from None
    task = envelope.tasks[0] if envelope.tasks else None
    if envelope.status_code != 20000 or task is None or task.status_code != 20000:
        code = task.status_code if task is not None else envelope.status_code
        raise AccountCheckError(f"the API answered status {code}")
    data = task.result[0] if task.result else None
    if data is None:
        raise AccountCheckError("the answer holds no account data")
    balance = data.money.balance if data.money is not None else None
    if balance is not None and not (math.isfinite(balance) and balance >= 0):
        balance = None
    limits = data.rates.limits if data.rates is not None else None
    minute = limits.minute.total if limits is not None and limits.minute is not None else None
    return Account(balance_usd=balance, rate_per_minute=minute if minute and minute > 0 else None)


async def fetch_account(
    provider: Provider, credentials: Credentials, *, timeouts: Timeouts
) -> Account:
    """The account's balance and per-minute limit. Raises AccountCheckError (its message
    scrubbed of the credentials) when they cannot be read."""
    url = provider.base_url.rstrip("/") + USER_DATA_PATH
    timeout = aiohttp.ClientTimeout(
        total=timeouts.deadline, connect=timeouts.connect, sock_read=timeouts.read
    )
    scrub = credentials.scrubber()
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers={"Authorization": credentials.authorization()}) as reply,
        ):
            status = reply.status
            body = b""
            while len(body) <= MAX_USER_DATA_BYTES:
                chunk = await reply.content.read(MAX_USER_DATA_BYTES + 1 - len(body))
                if not chunk:
                    break
                body += chunk
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = scrub.excerpt(str(exc) or type(exc).__name__, 200)
        raise AccountCheckError(f"{url} could not be reached: {reason}") from None
    if len(body) > MAX_USER_DATA_BYTES:
        raise AccountCheckError(f"{url} answered more than {MAX_USER_DATA_BYTES} bytes")
    if status != 200:
        raise AccountCheckError(f"{url} answered HTTP {status}")
    return _account(body)


def account_notes(
    account: Account, *, estimate_usd: float | None, limits: Limits, provider: str
) -> tuple[list[str], bool]:
    """What a person should know before the night, and whether the balance falls short.

    ``estimate_usd``: what the night still needs (the dry run's figure without a probe).
    """
    notes: list[str] = []
    short = False
    balance = account.balance_usd
    if balance is not None and estimate_usd is not None and balance + 1e-9 < estimate_usd:
        short = True
        notes.append(
            f"the account's balance ({balance:.4f} USD) does not cover the night's estimate "
            f"({estimate_usd:.4f} USD): the run would stop when the money runs out; add "
            "funds, or lower --budget-usd"
        )
    allowed = account.rate_per_minute
    if allowed is not None and limits.rate_per_minute > allowed:
        notes.append(
            f"--rate-per-minute {limits.rate_per_minute} is more than the account allows "
            f"({allowed} a minute): the API would refuse the excess; use --rate-per-minute "
            f"{allowed}"
        )
    if provider in ("dataforseo", "sandbox") and limits.concurrency > DATAFORSEO_SIMULTANEOUS:
        notes.append(
            f"--concurrency {limits.concurrency} is more than DataForSEO allows "
            f"({DATAFORSEO_SIMULTANEOUS} at once per account): the API would refuse the "
            f"excess; use --concurrency {DATAFORSEO_SIMULTANEOUS}"
        )
    return notes, short
