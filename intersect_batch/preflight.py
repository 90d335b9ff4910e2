"""Before the night: the account's balance and limits, checked against the night's estimate.

One call to the free ``appendix/user_data`` (:mod:`intersect_batch.account`) and a dry
run without probes (:mod:`intersect_batch.estimate`) for the estimate. It never holds the
night up: it takes :data:`ACCOUNT_CHECK_SECONDS` at most, and a failed check is a note,
unless ``--require-balance`` asks to stop instead.
"""

from __future__ import annotations

import contextlib
import logging

from intersect_batch.account import AccountCheckError, account_notes, fetch_account
from intersect_batch.command import RunCommand
from intersect_batch.errors import IntersectBatchError, UsageError
from intersect_batch.estimate import dry_run
from intersect_batch.settings import Timeouts

__all__ = ["ACCOUNT_CHECK_SECONDS", "check_account"]

log = logging.getLogger("intersect_batch")

#: The longest the account check may take: it must never hold up the night.
ACCOUNT_CHECK_SECONDS = 10.0


async def check_account(command: RunCommand, *, require_balance: bool) -> list[str]:
    """The warnings about the account before the night, each logged once.

    With ``require_balance``, a balance that does not cover the night's estimate, or
    cannot be read, raises :class:`AccountCheckError` and nothing is sent.
    """
    provider, settings = command.provider, command.settings
    try:
        credentials = provider.credentials(command.environ)
    except UsageError:
        return []  # the run says what is wrong, the way it always does
    timeouts = Timeouts(
        connect=min(settings.timeouts.connect, ACCOUNT_CHECK_SECONDS),
        read=ACCOUNT_CHECK_SECONDS,
        deadline=ACCOUNT_CHECK_SECONDS,
    )
    try:
        account = await fetch_account(provider, credentials, timeouts=timeouts)
    except AccountCheckError as exc:
        if require_balance:
            raise AccountCheckError(
                f"--require-balance: the account's balance could not be read: {exc}"
            ) from None
        log.info("the account's balance was not checked: %s", exc)
        return []
    estimate = None
    with contextlib.suppress(IntersectBatchError):
        planned = await dry_run(
            command.config_dir,
            provider=provider,
            environ=command.environ,
            settings=settings,
            ids=command.options.job_ids,
            patterns=command.options.patterns,
            probe=False,
        )
        result = planned.result
        estimate = result.cost_usd if result.cost_usd is not None else result.cost_min_usd
        if estimate is not None and settings.budget_usd is not None:
            estimate = min(estimate, settings.budget_usd)
    notes, short = account_notes(
        account, estimate_usd=estimate, limits=settings.limits, provider=provider.name
    )
    log.info(
        "account checked",
        extra={
            "balance_usd": account.balance_usd,
            "rate_per_minute": account.rate_per_minute,
            "estimate_usd": estimate,
        },
    )
    if short and require_balance:
        raise AccountCheckError(f"{notes[0]} (--require-balance: nothing was sent)")
    for note in notes:
        log.warning("%s", note)
    return notes
