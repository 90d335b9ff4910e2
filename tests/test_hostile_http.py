"""Broken HTTP, end to end: the command line against a server that gets HTTP itself wrong.

One run of ``python -m intersect_batch run`` meets a loopback server (in this test's
process, :func:`tests.hostile_server.serve_raw`) that answers each job's first call in
its own wrong way, chosen by the job's first target: a Content-Length that lies either
way, HTTP/1.0 without one, a redirect to another host, header lines and a status line of
100 kB that quote the Authorization header, 100,000 headers, bytes that are not HTTP, an
HTML page, and 429s whose Retry-After is 10^9 s, negative or not a number. The run must
end in seconds, each job as the README's table of answers says, and nothing it writes
may hold the password in any form.

Another run meets answers within the size caps that hold ten million tiny values (items,
results, tasks, or one item's backlinks): memory must stay bounded through the crawl,
the diff and the report. Last, :func:`~intersect_batch.wire.page_items` is checked
directly (the read-ahead is :mod:`tests.test_client_unread`'s).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread
import msgspec
import pytest

from intersect_batch.exitcode import ExitCode
from intersect_batch.layout import RunFolder
from intersect_batch.wire import MAX_PAGE_ITEMS, Result, page_items
from tests.hostile_cli import CliRun, assert_nothing_leaked, command, run_cli, secret_forms
from tests.hostile_server import (
    MiB,
    RawAnswer,
    encode,
    envelope,
    raw_response,
    serve_raw,
)
from tests.support import RUN_DATE, write_jobs

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LOGIN = "ops@night.example"
PASSWORD = 'Pw/7"x+Q=&k\\9zR'
ENV = {"DATAFORSEO_LOGIN": LOGIN, "DATAFORSEO_PASSWORD": PASSWORD}

RETRY_AFTER = {
    "retry-huge.example": b"1000000000",
    "retry-negative.example": b"-5",
    "retry-nan.example": b"nan",
}
COMPLETE = {"ok", "http10", "retry-huge", "retry-negative", "retry-nan"}
FAILED = {
    "cl-long",
    "cl-short",
    "redirect",
    "long-header",
    "status-line",
    "many-headers",
    "garbage",
    "html",
}


def _page(target: str) -> bytes:
    items = [
        {"type": "x", "url_from": f"https://{target}/p{n}", "page_intersection": {"1": []}}
        for n in range(3)
    ]
    return encode(envelope(items=items, total_count=3))


def _answers(elsewhere: str) -> Callable[[str | None, bytes, int], RawAnswer]:
    """Each job's first call answered wrong, by its first target; every other call right."""

    def answer(target: str | None, authorization: bytes, before: int) -> RawAnswer:
        page = _page(target or "none")
        if target == "cl-long.example":  # 1000 bytes promised that never come
            return raw_response(page, length=len(page) + 1000), True
        if target == "cl-short.example":  # ten bytes left over for the next answer
            return raw_response(page, length=len(page) - 10), False
        if target == "http10.example":  # no length: the body ends when the connection does
            return raw_response(page, version=b"HTTP/1.0"), True
        if target == "redirect.example":
            location = f"{elsewhere}/backlinks/page_intersection/live".encode()
            return raw_response(b"", status=b"307 Temporary Redirect", headers={
                b"Location": location
            }), False  # fmt: skip
        if target == "long-header.example":
            return raw_response(page, headers={b"X-Echo": authorization + b"A" * 100_000}), True
        if target == "status-line.example":
            return raw_response(page, status=b"200 " + authorization + b"B" * 100_000), True
        if target == "many-headers.example":
            headers = {b"X-Echo-%d" % n: authorization for n in range(100_000)}
            return raw_response(page, headers=headers), True
        if target == "garbage.example":
            return b"\x00\x01this is no HTTP " + authorization + b"\r\n\r\n", True
        if target == "html.example":
            html = b"<html><body>Proxy error for " + authorization + b"</body></html>"
            return raw_response(html, headers={b"X-Proxy": b"squid"}), False
        if target in RETRY_AFTER and before == 0:
            headers = {b"Retry-After": RETRY_AFTER[target]}
            return raw_response(b"{}", status=b"429 Too Many Requests", headers=headers), False
        return raw_response(page), False

    return answer


def _never(target: str | None, authorization: bytes, before: int) -> RawAnswer:
    raise AssertionError(f"a redirect was followed to another host ({target})")


async def test_broken_http_ends_each_job_as_the_table_says_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    jobs = [
        {"id": name, "targets": [f"{name}.example", "b.example"], "page_size": 100}
        for name in sorted(COMPLETE | FAILED)
    ]
    configs, out, log = tmp_path / "configs", tmp_path / "night" / "out", tmp_path / "run.log"
    write_jobs(configs, "jobs.yaml", jobs)
    async with (
        serve_raw(_never) as (elsewhere, stranger),
        serve_raw(_answers(elsewhere)) as (base, seen),
    ):
        args = [
            "run", str(configs), "--out", str(out), "--run-date", RUN_DATE.isoformat(),
            "--base-url", base, "--attempts", "3", "--log-file", str(log),
        ]  # fmt: skip
        # Back-off in milliseconds, a pause of at most 1 s (60 s by default).
        argv = command(
            *args, overrides={"RetryPolicy": {"base": 0.01, "cap": 1.0, "slowdown": 0.2}}
        )
        run = await anyio.to_thread.run_sync(
            functools.partial(run_cli, argv, env=ENV, timeout=60, workdir=tmp_path)
        )
    assert run.returncode == ExitCode.ATTENTION, run.stderr[-3000:]
    assert_nothing_leaked(run, [out, log], secret_forms(LOGIN, PASSWORD))
    summary = json.loads(RunFolder(out, RUN_DATE).run_json.read_text())
    statuses = {line["job_id"]: line["status"] for line in summary["jobs"]}
    assert statuses == {**dict.fromkeys(COMPLETE, "complete"), **dict.fromkeys(FAILED, "failed")}
    reasons = {line["job_id"]: line["reason"] or "" for line in summary["jobs"]}
    assert "answer cut short" in reasons["cl-long"]
    assert "HTTP 307" in reasons["redirect"]
    assert "Got more than 8190 bytes" in reasons["long-header"]
    assert "Got more than 8190 bytes" in reasons["status-line"]
    assert "Too many headers" in reasons["many-headers"]
    assert "undecodable answer" in reasons["html"]
    for job_id in FAILED:
        assert len(reasons[job_id]) < 1000, job_id
    # A redirect is not followed, and is not asked again: the credentials stay home.
    assert stranger.requests == []
    assert seen.count("redirect.example") == 1
    # Each broken answer is asked again up to --attempts, then its job fails alone.
    for job_id in FAILED - {"redirect"}:
        assert seen.count(f"{job_id}.example") == 3, job_id
    # A Retry-After is obeyed up to the back-off's cap, and one that is no number is not.
    pauses = [
        float(match.group(1))
        for record in run.records()
        if (match := re.search(r"retrying in ([0-9.]+)s: HTTP 429", str(record["message"])))
    ]
    assert len(pauses) == 3 and max(pauses) <= 1.0, pauses
    for target in RETRY_AFTER:
        assert seen.count(target) == 2


# Ten million values in 30 MB, under the 64 MiB cap, gzipped to ~30 kB: decoded into
# one object each, any of these answers took about a gigabyte and 10 s of CPU.
MANY = 10_000_000
ONE_ITEM = b'{"page_intersection":{"1":[{"url_from":"https://one.example/"}]}}'


@functools.cache
def _bomb(kind: str) -> bytes:
    """A gzipped answer whose items, results, tasks or one item's backlinks are 10M values."""
    head = b'{"version":"0.1","status_code":20000,"status_message":"Ok.","tasks":['
    task = b'{"id":"t","status_code":20000,"status_message":"Ok.","cost":0.02,"result":['
    result = b'{"total_count":1,"items_count":1,"items":['
    if kind == "tiny-items":
        body = head + task + result + b"{}," * MANY + b"{}]}]}]}"
    elif kind == "many-results":
        body = head + task + result + ONE_ITEM + b"]}," + b"{}," * MANY + b"{}]}]}"
    elif kind == "many-tasks":
        tasks = b'{"status_code":1},' * (MANY // 6)
        body = head + task + result + ONE_ITEM + b"]}]}," + tasks + b"{}]}"
    else:  # one item of ten million backlinks, none with a url_from
        item = b'{"page_intersection":{"1":[' + b"{}," * MANY + b"{}]}}"
        body = head + task + result + item + b"]}]}]}"
    assert len(body) < 64 * MiB
    return gzip.compress(body, compresslevel=1)


async def test_answers_of_ten_million_values_cost_bounded_memory(tmp_path: Path) -> None:
    kinds = ["tiny-items", "many-results", "many-tasks", "key-bomb"]
    jobs = [{"id": kind, "targets": [f"{kind}.example"], "page_size": 100} for kind in kinds]
    configs, out = tmp_path / "configs", tmp_path / "out"
    write_jobs(configs, "jobs.yaml", jobs)

    def answer(target: str | None, authorization: bytes, before: int) -> RawAnswer:
        kind = (target or "").removesuffix(".example")
        if kind == "key-bomb" and before == 0:
            # The night before, an ordinary item: tonight's is new, so it is diffed.
            return raw_response(
                encode(envelope(items=[json.loads(ONE_ITEM)], total_count=1))
            ), False
        return raw_response(_bomb(kind), headers={b"Content-Encoding": b"gzip"}), False

    async with serve_raw(answer) as (base, seen):

        def night(date: str, *extra: str) -> CliRun:
            args = [
                "run", str(configs), "--out", str(out), "--run-date", date, "--base-url", base,
                "--attempts", "2", *extra,
            ]  # fmt: skip
            argv = command(*args, overrides={"RetryPolicy": {"base": 0.01, "cap": 0.1}})
            return run_cli(argv, env=ENV, timeout=40, workdir=tmp_path)

        before = await anyio.to_thread.run_sync(night, "2026-11-28", "--job", "key-bomb")
        run = await anyio.to_thread.run_sync(night, RUN_DATE.isoformat(), "--report")
    assert before.returncode == ExitCode.OK, before.stderr[-3000:]
    assert run.returncode == ExitCode.ATTENTION, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    summary = json.loads(RunFolder(out, RUN_DATE).run_json.read_text())
    lines = {line["job_id"]: line for line in summary["jobs"]}
    assert lines["tiny-items"]["status"] == "failed"
    assert "the page holds more than 1000 items" in lines["tiny-items"]["reason"]
    assert seen.count("tiny-items.example") == 2
    # Only the first task and the first result are read; the rest is skipped unread.
    for kind in ("many-results", "many-tasks"):
        assert lines[kind]["status"] == "complete" and lines[kind]["items"] == 1
    # A 30 MB item is written as it came, keyed, diffed and reported without being
    # decoded into 10M objects (the report counts it, and its diff line, as unreadable).
    bomb = lines["key-bomb"]
    assert bomb["status"] == "complete" and bomb["items"] == 1
    assert (bomb["diff"]["new"], bomb["diff"]["lost"]) == (1, 1)
    assert "2 lines could not be read" in RunFolder(out, RUN_DATE).report.read_text()
    # Two answers in memory at once, each inflated (30 MB) and split or written (x2-3),
    # then the 30 MB line read again by the diff and the report, plus the interpreter:
    # a few times the answer's size, where one decoded answer took a gigabyte.
    assert run.peak_mb < 400, run.peak_mb


@pytest.mark.parametrize(
    ("count", "expected"), [(0, 0), (1, 1), (MAX_PAGE_ITEMS, MAX_PAGE_ITEMS), (None, 0)]
)
def test_page_items_decodes_up_to_a_full_page(count: int | None, expected: int) -> None:
    raw = b"null" if count is None else encode([{"n": n} for n in range(count)])
    items = page_items(_result(raw).items)
    assert [json.loads(bytes(item))["n"] for item in items] == list(range(expected))


def test_page_items_refuses_more_than_a_page_without_decoding_the_rest() -> None:
    with pytest.raises(ValueError, match="more than 1000 items"):
        page_items(_result(b"[" + b"{}," * 5_000_000 + b"{}]").items)
    with pytest.raises(msgspec.DecodeError):
        _result(b'{"a": 1}')


def _result(items: bytes) -> Result:
    """A result whose items array is ``items``, decoded as an answer's is."""
    return msgspec.json.decode(b'{"total_count": 1, "items": ' + items + b"}", type=Result)
