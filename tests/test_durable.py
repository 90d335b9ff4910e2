"""Blocking work off the event loop: in_thread's worker threads."""

from __future__ import annotations

import os
import signal
import threading

import anyio

from intersect_batch.durable import in_thread


def _thread_name() -> str:
    return threading.current_thread().name


def test_a_forked_child_runs_its_blocking_work_on_threads_of_its_own() -> None:
    # The parent's workers exist, busy or idle; a child made by fork has none of them.
    assert anyio.run(in_thread, _thread_name).startswith("intersect-batch")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        signal.alarm(10)
        try:
            named = anyio.run(in_thread, _thread_name)
            os._exit(0 if named.startswith("intersect-batch") else 2)
        except BaseException:
            os._exit(3)
    # The child's alarm bounds the wait: a child whose work never runs is ended by it.
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
