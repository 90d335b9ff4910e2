"""An offline emulator of DataForSEO's ``backlinks/page_intersection/live`` endpoint.

``running_emulator(EmulatorSettings(...))`` serves it in-process on a free loopback port;
``intersect-batch emulate`` (``cli.main``) serves it from the command line. It answers on
``POST /v3/backlinks/page_intersection/live`` (HTTP Basic, a JSON array of tasks) and
``POST /apis/v1/dataforseo/backlinks/page_intersection/live`` (Bearer, an object or an
array); ``GET /_emulator/log`` returns the call log, ``GET /_emulator/serving`` how many
calls are being answered and not yet logged. Its behaviour follows
``docs/api.md``; where the docs are silent or unconfirmed it chooses as follows.

CHOICES (the one place where the emulator's own decisions are written down)

================================  ===========================================================
Question                          Choice
================================  ===========================================================
No intersecting pages             20000 with total_count 0 and ``items: []`` (not 40102).
                                  One target set in ten not in ``sizes`` has 0 results.
Size of a target set              ``sizes[targets[first key]]`` if set, else a hash of (seed,
                                  targets in key order) over [size_min, size_max]. That is
                                  the DEFAULT query's total_count (status live, mode all).
Other segments of the graph       Per target set: N pages link to all targets (live), N/5
                                  (lost); with >= 2 targets, N/2 live + N/10 lost pages link
                                  to only some targets.
``backlinks_status_type``         live (default): live pages; lost: lost pages (is_lost
                                  true); all: both.
``intersection_mode``             all (default): pages linking to every target; partial:
                                  also pages linking to only some (unconfirmed reading).
                                  ``page_intersection`` holds only the targets a page links
                                  to; ``summary.intersections_count`` is how many.
``include_subdomains`` false      drops the 10% of pages whose links go to a subdomain of a
                                  domain target (blog.example.com).
``include_indirect_links`` false  drops pages with an indirect link (about 5%).
``exclude_targets``               each drops the ~15% of pages that also link to it; an
                                  exclude equal to a target drops every page.
``exclude_internal_backlinks``    validated and echoed; changes nothing.
Backlinks per target              exactly one per page and target.
Default order                     ``page_from_rank`` desc, then page id (stable, total).
``order_by`` / ``filters`` fields ``"<target number>.<backlink field>"`` or
                                  ``intersections_count``; an unprefixed or unknown field is
                                  40501. Nulls sort below every value. Array fields match
                                  when any element does. ``and`` binds tighter than ``or``.
                                  ``match`` = every word of the value appears (full-text).
Ranks                             ``rank``, ``page_from_rank``, ``domain_from_rank`` are made
                                  on 0-1000 and shown /10 (rounded) for ``one_hundred``;
                                  filters compare with the shown values.
Offset                            no maximum; past the end: empty items, right total_count.
Body shape                        DataForSEO route: an array only (an object is 40503);
                                  AIsa: an object or an array. ``[]``/empty body: 40502.
Extra tasks                       the first is served; each extra one is 40000 at cost 0.
Whole-call errors                 401 (40100), 402 (40210), 404 (40400), 500 (50000), 40502,
                                  40503: top-level status_code, ``tasks: []``.
Rate window                       every authenticated call counts, refused ones included;
                                  the window is 60 s of the handed-in clock.
Limit answers                     DataForSEO: task-level 40202 / 40209 in HTTP 200. AIsa:
                                  HTTP 429 gateway error with Retry-After (seconds until
                                  the oldest call leaves the window; 1 for concurrency) and
                                  X-RateLimit-Limit/-Remaining/-Reset.
Order of checks                   route, auth, body, rate window, throttle window,
                                  concurrency slot, task validation, fault draw (pins
                                  first), latency sleep, data, hole/item faults, balance.
Latency                           ``median * exp(spread * z)``, z a standard normal drawn
                                  from the same hash as the faults; slept holding the slot.
                                  Invalid tasks answer without latency.
Faults                            drawn per valid task from hash(seed, the task with
                                  defaults, incl. offset/limit, times seen before); the first
                                  that fires of drop_connection, http_500, truncated_body,
                                  timeout, internal_error, task_failed, then status_codes
                                  (ascending code), then no_results, empty_page,
                                  short_page, echo_credentials, long_message, gzip_bomb,
                                  huge_body, deep_nesting, trickle, non_object_items,
                                  pretty_items, multiline_items, huge_total (each knob has
                                  a hash of its own, so adding one moved no other draw);
                                  slow adds to any. A forced 40202/40209
                                  answers like the real limit; 401/402/404 codes as whole-
                                  call errors. Truncated and dropped answers are billed.
                                  A fault that cannot act on the page (a hole outside the
                                  total, junk items on a page of < 4) answers normally
                                  and logs no fault.
Pinned faults (``PinnedFault``,   answered before any draw, also at offset 0, by requests
``--fault-at``)                   at that offset (and first target). TIMES counts per
                                  request (task with defaults), like the draws: each job
                                  meets a pin afresh, retries use it up. Pins matching
                                  one request take turns in the order given. A status-
                                  code pin answers like ``status_codes``.
Holes (never drawn at offset 0;   no_results: task 40102 "No Search Results.", ``result:
only where offset < total_count)  null``, cost 0, HTTP 200, envelope 20000, tasks_error 1.
                                  empty_page: 20000, ``items: []``, ``items_count: 0``,
                                  the true total_count, cost 0.02. short_page: 20000, the
                                  first ``len(page) // 2`` items of the true page, the
                                  true total_count, billed for what it holds.
Sustained throttling              from ``throttle_after`` s after the first authenticated
                                  call, for ``throttle_for`` s of the handed-in clock,
                                  every call (valid or not) is refused like the real
                                  limit: DataForSEO 40202/40209 at task level in HTTP 200
                                  (extra tasks 40000); AIsa HTTP 429 with Retry-After =
                                  ceil(seconds left of the window). Cost 0; the call log
                                  says fault "throttle"; the call counts in the rate
                                  window.
echo_credentials                  ``hostile_error_code`` (40501: task level in HTTP 200;
                                  50000: whole call, HTTP 500; 401/402/404 codes: whole
                                  call with that status), status_message "Invalid Field:
                                  'targets'. Request refused for Authorization: <header
                                  verbatim>; credentials: <login:password, or the key>;
                                  encoded: <that, URL-encoded (quote, safe='')>." Cost 0.
long_message                      the same error, its status_message ``long_message_size``
                                  ASCII characters ("The request could not be processed
                                  in full. " repeated, cut to size); streamed with a
                                  Content-Length, never compressed.
gzip_bomb                         ``Content-Encoding: gzip`` (even without Accept-
                                  Encoding), Content-Length ~ size / 1000: one gzip member
                                  inflating to exactly ``gzip_bomb_size`` bytes (spaces,
                                  then the normal answer, so valid JSON; the answer alone
                                  if it is longer). Billed as the normal answer. A 1 MiB
                                  deflate block is made once and repeated; its CRC-32 is
                                  combined, never computed over the inflated bytes.
huge_body                         HTTP 200, no Content-Encoding, ``huge_body_size`` bytes:
                                  spaces, then the normal answer (valid JSON), in 64 KiB
                                  writes; Content-Length, or chunked without one when
                                  ``huge_body_chunked``. Billed as the normal answer.
deep_nesting                      the normal page; its first item ends with
                                  ``,"nested":`` + ``nesting_depth`` x ``[`` + as many
                                  ``]`` (an array nesting_depth deep). Not on an empty page.
trickle                           the normal answer, uncompressed, Content-Length set,
                                  ``trickle_bytes`` per write, ``trickle_pause`` s apart.
                                  Server shutdown closes it at once; a client that leaves
                                  ends it at the next write. Logged when it ends.
non_object_items                  items n//4, n//2, 3n//4 of an n-item page (n >= 4)
                                  become ``1``, ``"a"``, ``null``; items_count, total and
                                  cost unchanged.
pretty_items / multiline_items    each item re-encoded with a space after every ``:``
                                  and ``,`` on one line (``{"a": 1, "b": [1, 2]}``), or
                                  indented by 2 over many lines; the envelope stays
                                  compact; values unchanged.
huge_total                        total_count = ``huge_total_count`` (10**9); offset 0
                                  keeps its true items, any other offset answers ``items:
                                  []``, items_count 0. Billed per item sent.
Slot while streaming              the concurrency slot is freed once the answer is made,
                                  before its bytes go out (a trickle holds no slot).
Cost                              0.02 + 0.00003 x items, rounded to 8 decimals; errors 0.
                                  AIsa adds ``X-AISA-Price-USD`` (= the cost).
Balance                           checked when the page is known; a call the balance cannot
                                  cover gets HTTP 402 / 40210 and costs nothing.
Live data                         per call an epoch advances; a page is absent while
                                  ``frac(hash(page) + epoch * live_data) < 0.1``, so about
                                  2 x live_data of the pages flip per call.
Call log ``status_code``          the first task's code, else the envelope's; AIsa gateway
                                  errors log the equivalent API code (40100, 40202, ...).
Call log ``credential``           the login sent (even a wrong one), or "key:" + 8 hex of
                                  the sha256 of the key sent; never a password or a key.
Gzip                              level 1, when the client sends ``Accept-Encoding: gzip``.
Oddities (``AnswerOddities``)     on for every call while set, after the fault draw: a
                                  first-page proxy answers the query at offset 0 (the log
                                  keeps the offset asked); ``no_echo`` leaves ``data`` out
                                  of successful tasks; ``page_items`` pages ignore the
                                  limit (the echo keeps it) and are billed per item sent;
                                  odd text goes into the first ``page_from_title`` of the
                                  item (none when every title is null).
================================  ===========================================================
"""

from __future__ import annotations

from .app import build_app
from .cli import main
from .oddities import AnswerOddities
from .records import CallRecord
from .server import RunningEmulator, running_emulator
from .settings import EmulatorSettings, FaultSettings, PinnedFault

__all__ = [
    "AnswerOddities",
    "CallRecord",
    "EmulatorSettings",
    "FaultSettings",
    "PinnedFault",
    "RunningEmulator",
    "build_app",
    "main",
    "running_emulator",
]
