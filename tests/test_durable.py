"""Blocking work off the event loop, and files opened only when they are regular files."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import threading
from pathlib import Path

import anyio
import pytest

from intersect_batch.durable import (
    MAX_LINE_BYTES,
    LineTooLong,
    NotRegularFile,
    in_thread,
    jsonl_lines,
    open_nofollow,
    read_file,
)
from intersect_batch.settings import AnswerCaps


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


# -- only regular files are opened ------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "flags",
    [
        os.O_RDONLY,
        os.O_RDWR,
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        os.O_RDWR | os.O_CREAT,
    ],
    ids=["read", "read-write", "write", "append"],
)
def test_a_fifo_is_refused_at_once_naming_it_with_its_controls_escaped(
    tmp_path: Path, flags: int
) -> None:
    fifo = tmp_path / "run\n\x1b[31m.json"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile) as raised:
        open_nofollow(fifo, flags)
    shown_path = f"{tmp_path}/run\\n\\x1b[31m.json"
    assert str(raised.value) == f"{shown_path} is a FIFO, not a regular file"
    assert raised.value.strerror == str(raised.value)


def test_a_folder_or_a_socket_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(NotRegularFile, match=r"is a folder, not a regular file$"):
        read_file(tmp_path)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(NotRegularFile, match=r"/s is a socket, not a regular file$"):
            read_file(tmp_path / "s")
    finally:
        sock.close()


def test_a_regular_file_opens_blocking_as_before(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND) as handle:
        flags = fcntl.fcntl(handle.fileno(), fcntl.F_GETFL)
        assert not flags & os.O_NONBLOCK and flags & os.O_APPEND
        handle.write(b"one\n")
    with open_nofollow(path, os.O_RDWR) as handle:
        assert not fcntl.fcntl(handle.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
    assert read_file(path) == b"one\n"


# -- a line-length cap on JSONL files ---------------------------------------------------------


def test_a_line_of_the_cap_is_read_and_one_byte_more_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"a" * 8 + b"\n\r\n" + b"b" * 3 + b"\n" + b"c" * 8)
    assert list(jsonl_lines(path, max_line=8)) == [b"a" * 8, b"b" * 3, b"c" * 8]
    path.write_bytes(b"a\n" + b"b" * 9 + b"\n")
    lines = jsonl_lines(path, max_line=8)
    assert next(lines) == b"a"
    with pytest.raises(LineTooLong) as raised:
        next(lines)
    assert str(raised.value) == (
        f"{path}: line 2 is longer than 8 bytes (the longest line a run writes): "
        "the file is damaged"
    )


def test_the_cap_is_the_largest_answer_a_run_accepts() -> None:
    caps = AnswerCaps()
    assert MAX_LINE_BYTES == caps.max_inflated_bytes == caps.max_body_bytes


def test_a_json_file_past_the_cap_is_damage_read_no_further(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(b"{" + b" " * 6 + b"}")
    assert read_file(path, max_bytes=8) == b"{      }"
    path.write_bytes(b"{" + b" " * 7 + b"}")
    with pytest.raises(LineTooLong) as raised:
        read_file(path, max_bytes=8)
    assert str(raised.value) == (
        f"{path} is larger than 8 bytes (the largest file of its kind a run writes): "
        "the file is damaged"
    )
