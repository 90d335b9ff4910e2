"""Run a coroutine on a loop whose clock is virtual (looptime): sleeps take no real time.

Blocking work must go through the loop's executor (``intersect_batch.durable.in_thread``)
so the virtual clock stands still while it runs; then the figures a test asserts are
exact, whatever the machine is doing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import looptime

T = TypeVar("T")


def run_virtual(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """``anyio.run(function, *args)`` on a looptime loop starting at 0.0."""
    return anyio.run(
        function,
        *args,
        backend="asyncio",
        backend_options={"loop_factory": lambda: looptime.new_event_loop(start=0.0)},
    )
