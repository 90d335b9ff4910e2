"""An offline emulator of DataForSEO's ``backlinks/page_intersection/live`` endpoint.

``running_emulator(EmulatorSettings(...))`` serves it in-process on a free loopback port;
``intersect-batch emulate`` (``cli.main``) serves it from the command line. It answers on
``POST /v3/backlinks/page_intersection/live`` (HTTP Basic, a JSON array of tasks) and
``POST /apis/v1/dataforseo/backlinks/page_intersection/live`` (Bearer, an object or an
array); ``GET /_emulator/log`` returns the call log. Its behaviour follows
``shared/api/FACTS.md``; where the docs are silent or unconfirmed it chooses as follows.

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
Order of checks                   route, auth, body, rate window, concurrency slot, task
                                  validation, fault draw, latency sleep, data, balance.
Latency                           ``median * exp(spread * z)``, z a standard normal drawn
                                  from the same hash as the faults; slept holding the slot.
                                  Invalid tasks answer without latency.
Faults                            drawn per valid task from hash(seed, the task with
                                  defaults, incl. offset/limit, times seen before); the first
                                  that fires of drop_connection, http_500, truncated_body,
                                  timeout, internal_error, task_failed, then status_codes
                                  (ascending code); slow adds to any. A forced 40202/40209
                                  answers like the real limit; 401/402/404 codes as whole-
                                  call errors. Truncated and dropped answers are billed.
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
================================  ===========================================================
"""

from __future__ import annotations

from .app import build_app
from .cli import main
from .records import CallRecord
from .server import RunningEmulator, running_emulator
from .settings import EmulatorSettings, FaultSettings

__all__ = [
    "CallRecord",
    "EmulatorSettings",
    "FaultSettings",
    "RunningEmulator",
    "build_app",
    "main",
    "running_emulator",
]
