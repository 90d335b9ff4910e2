"""The open-file limit (``ulimit -n``) and the concurrency it allows."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import resource

from intersect_batch.settings import RunSettings

__all__ = ["OPEN_FILES_SPARE", "fit_open_files"]

log = logging.getLogger("intersect_batch")

#: Open files a run needs besides one connection per call in flight: the writers' files,
#: the logs, the loop, spare connections.
OPEN_FILES_SPARE = 64


def fit_open_files(settings: RunSettings) -> RunSettings:
    """Settings whose concurrency the process's open-file limit (``ulimit -n``) allows.

    Each call in flight holds a connection, and the writers, logs and the loop need a
    few dozen more: the soft limit is raised as far as the hard one allows, and when
    that is not enough the concurrency is lowered, with a warning that says why.
    """
    needed = settings.limits.concurrency + OPEN_FILES_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return settings
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft >= needed:
        return settings
    fitted = max(1, soft - OPEN_FILES_SPARE)
    log.warning(
        "--concurrency %d needs about %d open files and ulimit -n allows %d: using %d "
        "(raise the limit with ulimit -n)",
        settings.limits.concurrency,
        needed,
        soft,
        fitted,
    )
    limits = dataclasses.replace(settings.limits, concurrency=fitted)
    return dataclasses.replace(settings, limits=limits)
