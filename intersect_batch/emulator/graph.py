"""The synthetic link graph: which pages link to a target set, and what their backlinks say.

A target set's candidate referring pages are numbered ``0..U-1`` (page ids) and laid out in
segments: pages linking to every target (live, then lost) and, for two or more targets,
pages linking to only some of them (live, then lost). Within a segment ``page_from_rank``
never rises with the id, so the default order ``page_from_rank desc, id asc`` is the id
order of each segment and the default query needs no sorting at all. Every value of an
item is drawn from a hash of ``(seed, target set, page id)``: nothing is stored.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import TYPE_CHECKING

from .hashing import Bits, digest_int, text_hash
from .schema import Backlink, IndirectLink, Item, Summary
from .words import (
    ANCHORS,
    COUNTRIES,
    LANGUAGES,
    PLATFORMS,
    SEMANTIC,
    SUBDOMAINS,
    TITLE_WORDS,
    TLDS,
    WORDS,
)

if TYPE_CHECKING:
    from .timeline import Timeline

__all__ = ["Segment", "Universe", "default_size"]

_EPOCH_START = 1_546_300_800  # 2019-01-01 00:00:00 UTC
_EPOCH_END = 1_748_736_000  # 2025-06-01 00:00:00 UTC: the graph's "now", fixed
_ITEM_TYPES = (
    ("anchor", 800),
    ("image", 80),
    ("link", 40),
    ("canonical", 20),
    ("redirect", 20),
    ("alternate", 20),
    ("meta", 20),
)
_SPAN = _EPOCH_END - _EPOCH_START - 86_400
_ITEM_TYPE_TABLE = tuple(name for name, weight in _ITEM_TYPES for _ in range(weight))
_EXTRA_ATTRIBUTES = ("ugc", "sponsored", "noopener")
_URL_TO_STATUS: tuple[int | None, ...] = (
    (200,) * 85 + (301,) * 5 + (302,) * 3 + (404,) * 4 + (None,) * 3
)
# Formatting a date is a table look-up: "YYYY-MM-DD" per day, "HH:MM" per minute.
_DAYS = tuple(
    time.strftime("%Y-%m-%d", time.gmtime(_EPOCH_START + 86_400 * n))
    for n in range((_EPOCH_END - _EPOCH_START) // 86_400 + 1)
)
_MINUTES = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(1440))
_SECONDS = tuple(f"{s:02d}" for s in range(60))


def _date(seconds: int) -> str:
    """``seconds`` since the epoch (within the graph's span) as "2019-11-15 12:57:46 +00:00"."""
    day, rest = divmod(seconds - _EPOCH_START, 86_400)
    return f"{_DAYS[day]} {_MINUTES[rest // 60]}:{_SECONDS[rest % 60]} +00:00"


def default_size(seed: int, targets: Sequence[str], size_min: int, size_max: int) -> int:
    """The default query's result count for a target set not named in ``sizes``.

    One target set in ten has no intersecting pages at all (0); the others spread over
    ``[size_min, size_max]``.
    """
    h = text_hash("size", seed, tuple(targets))
    if h % 10 == 0:
        return 0
    return size_min + (h // 10) % (size_max - size_min + 1)


DOMAIN_POOL = 4096
"""Referring domains per seed, shared by every target set: a bounded, reusable pool."""
_DOMAIN_POOLS: dict[int, dict[int, _Domain]] = {}


def _domain_pool(seed: int) -> dict[int, _Domain]:
    if seed not in _DOMAIN_POOLS and len(_DOMAIN_POOLS) >= 8:
        _DOMAIN_POOLS.clear()
    return _DOMAIN_POOLS.setdefault(seed, {})


@dataclass(frozen=True, slots=True)
class Segment:
    start: int
    length: int
    lost: bool
    partial: bool


@dataclass(frozen=True, slots=True)
class _Domain:
    name: str
    tld: str
    rank: int
    country: str | None
    language: str | None
    platforms: tuple[str, ...]
    ip: str


class Universe:
    """The candidate referring pages of one target set (``keys`` and ``targets`` in order)."""

    def __init__(self, seed: int, keys: Sequence[str], targets: Sequence[str], size: int):
        self.seed = seed
        self.keys = tuple(keys)
        self.targets = tuple(targets)
        self.size = size
        self.thash = text_hash("targets", seed, self.keys, self.targets)
        self._prefix = self.thash.to_bytes(8, "little") + (seed & (2**64 - 1)).to_bytes(8, "little")
        n = len(self.targets)
        lengths = [
            (size, False, False),
            (size // 5, True, False),
            (size // 2 if n >= 2 else 0, False, True),
            (size // 10 if n >= 2 else 0, True, True),
        ]
        segments: list[Segment] = []
        start = 0
        for length, lost, partial in lengths:
            segments.append(Segment(start, length, lost, partial))
            start += length
        self.segments = tuple(segments)
        self.total = start
        self._starts = [s.start for s in segments]
        self._domains = max(16, min(DOMAIN_POOL, self.total // 6))
        self._domain_cache = _domain_pool(seed)
        self._is_url = tuple("://" in t for t in self.targets)
        #: When set, pages that appear on a later day are first seen on that day.
        self.timeline: Timeline | None = None

    # -- cheap page-level facts (used to select pages without building them) -------------

    def segment_of(self, pid: int) -> Segment:
        return self.segments[bisect.bisect_right(self._starts, pid) - 1]

    def page_rank(self, pid: int, segment: Segment | None = None) -> int:
        """``page_from_rank`` on the 0-1000 scale; never rises with the id in a segment."""
        seg = segment or self.segment_of(pid)
        x = (pid - seg.start) / seg.length
        return int(1000 * (1.0 - x) ** 2)

    def mask(self, pid: int, segment: Segment | None = None) -> int:
        """Which targets (bits in key order) the page links to."""
        seg = segment or self.segment_of(pid)
        full = (1 << len(self.targets)) - 1
        if not seg.partial:
            return full
        return 1 + text_hash("mask", self.thash, pid) % (full - 1)

    def via_subdomain(self, pid: int) -> bool:
        """The page links to subdomains of the domain targets (dropped if subdomains are off)."""
        if all(self._is_url):
            return False
        return (
            blake2b(self._prefix + pid.to_bytes(4, "little") + b"s", digest_size=1).digest()[0] < 26
        )

    def links_to(self, pid: int, exclude_hash: int) -> bool:
        """Whether the page also links to an excluded target (15% of pages, per exclude)."""
        key = self._prefix + pid.to_bytes(4, "little") + exclude_hash.to_bytes(8, "little")
        return blake2b(key, digest_size=1).digest()[0] < 38

    # -- the full item ---------------------------------------------------------------------

    def _domain(self, di: int) -> _Domain:
        cached = self._domain_cache.get(di)
        if cached is not None:
            return cached
        seed_bytes = (self.seed & (2**64 - 1)).to_bytes(8, "little")
        b = Bits(digest_int(seed_bytes + b"d" + di.to_bytes(4, "little"), 32))
        nw = len(WORDS)
        name = WORDS[di % nw] + WORDS[(di // nw) % nw]
        if di >= nw * nw:
            name += str(di // (nw * nw))
        tld = TLDS[b.take(len(TLDS))]
        platforms = tuple(sorted({PLATFORMS[b.take(len(PLATFORMS))] for _ in range(1 + b.take(3))}))
        ip = f"{1 + b.take(223)}.{b.take(256)}.{b.take(256)}.{1 + b.take(254)}"
        domain = _Domain(
            name=f"{name}.{tld}",
            tld=tld,
            rank=b.take(1001),
            country=COUNTRIES[b.take(len(COUNTRIES))],
            language=LANGUAGES[b.take(len(LANGUAGES))],
            platforms=platforms,
            ip=ip,
        )
        self._domain_cache[di] = domain  # at most DOMAIN_POOL entries per seed
        return domain

    def item(self, pid: int, scale100: bool, list_limit: int) -> Item:
        """The page ``pid`` with one backlink per target it links to."""
        seg = self.segment_of(pid)
        pid_bytes = pid.to_bytes(4, "little")
        # One 64-byte digest per page and per link; each byte (or byte run) is one draw.
        p = blake2b(self._prefix + pid_bytes, digest_size=32).digest()
        dom = self._domain(int.from_bytes(p[0:4], "little") % self._domains)
        host = ("www." if p[4] < 77 else "") + dom.name
        https = p[5] < 218
        url_from = (
            f"{'https' if https else 'http'}://{host}/{WORDS[p[6] & 63]}/"
            f"{WORDS[p[7] & 63]}-{WORDS[p[8] & 63]}-{pid}"
        )
        page_rank = self.page_rank(pid, seg)
        title = (
            f"{WORDS[p[9] & 63].title()} {TITLE_WORDS[p[10] & 15]} – {TITLE_WORDS[p[11] & 15]}"
            if p[12] < 243
            else None
        )
        ext_links = 1 + int.from_bytes(p[13:15], "little") % 300
        int_links = 1 + int.from_bytes(p[15:17], "little") % 500
        page_size = 2_000 + int.from_bytes(p[17:21], "little") % 400_000
        encoding = "utf-8" if p[21] < 243 else "iso-8859-1"
        via_sub = self.via_subdomain(pid)
        sub = SUBDOMAINS[p[22] & 3] if via_sub else ""
        platforms = list(dom.platforms[:list_limit])
        scale = 10 if scale100 else 1
        half = scale // 2
        page_from_rank = (page_rank + half) // scale
        domain_from_rank = (dom.rank + half) // scale
        is_lost = seg.lost

        mask = self.mask(pid, seg)
        links: dict[str, list[Backlink]] = {}
        for i, key in enumerate(self.keys):
            if not mask >> i & 1:
                continue
            d = blake2b(self._prefix + pid_bytes + bytes((i,)), digest_size=48).digest()
            target = self.targets[i]
            if self._is_url[i]:
                url_to = target
                domain_to = target.split("://", 1)[1].split("/", 1)[0]
            else:
                domain_to = sub + target if via_sub else target
                url_to = f"https://{domain_to}/{'' if d[0] < 100 else WORDS[d[1] & 63]}"
            item_type = _ITEM_TYPE_TABLE[int.from_bytes(d[2:4], "little") % 1000]
            dofollow = d[4] < 192
            attributes: list[str] | None = None
            if not dofollow:
                attributes = ["nofollow", _EXTRA_ATTRIBUTES[d[5] % 3]][: 1 + (d[6] & 1)]
                attributes = attributes[:list_limit]
            texty = item_type in ("anchor", "image")
            url_to_status = _URL_TO_STATUS[d[7] % 100]
            first = _EPOCH_START + int.from_bytes(d[8:12], "little") % _SPAN
            prev = first + int.from_bytes(d[12:16], "little") % (_EPOCH_END - first)
            last = prev + int.from_bytes(d[16:20], "little") % (_EPOCH_END - prev + 1)
            indirect = d[20] < 13
            links[key] = [
                Backlink(
                    type="backlinks_page_intersection",
                    domain_from=host,
                    url_from=url_from,
                    url_from_https=https,
                    domain_to=domain_to,
                    url_to=url_to,
                    url_to_https=url_to.startswith("https://"),
                    tld_from=dom.tld,
                    is_new=not is_lost and d[21] < 13,
                    is_lost=is_lost,
                    backlink_spam_score=d[22] * d[23] // 651,
                    rank=(page_rank * (20 + d[24] % 81) // 100 + half) // scale,
                    page_from_rank=page_from_rank,
                    domain_from_rank=domain_from_rank,
                    domain_from_platform_type=platforms,
                    domain_from_is_ip=False,
                    domain_from_ip=dom.ip,
                    domain_from_country=dom.country,
                    page_from_external_links=ext_links,
                    page_from_internal_links=int_links,
                    page_from_size=page_size,
                    page_from_encoding=encoding,
                    page_from_language=dom.language,
                    page_from_title=title,
                    page_from_status_code=200,
                    first_seen=_date(first),
                    prev_seen=_date(prev),
                    last_seen=_date(last),
                    item_type=item_type,
                    attributes=attributes,
                    dofollow=dofollow,
                    original=d[25] < 179,
                    alt=f"{WORDS[d[26] & 63]} {WORDS[d[27] & 63]}"
                    if item_type == "image"
                    else None,
                    anchor=ANCHORS[d[28] % len(ANCHORS)] if item_type == "anchor" else None,
                    text_pre=f"{WORDS[d[29] & 63]} {WORDS[d[30] & 63]}" if texty else None,
                    text_post=f"{WORDS[d[31] & 63]} {WORDS[d[32] & 63]}" if texty else None,
                    semantic_location=SEMANTIC[d[33] % len(SEMANTIC)],
                    links_count=1 + d[34] % 3,
                    group_count=1 + d[35] % 40,
                    is_broken=url_to_status is not None and url_to_status >= 400,
                    url_to_status_code=url_to_status,
                    url_to_spam_score=None if url_to_status is None else d[36] % 60,
                    url_to_redirect_target=(
                        f"https://{domain_to}/{WORDS[d[37] & 63]}"
                        if url_to_status in (301, 302)
                        else None
                    ),
                    is_indirect_link=indirect,
                    indirect_link_path=(
                        [
                            IndirectLink(
                                type="redirect" if d[38] < 128 else "canonical",
                                status_code=301,
                                url=f"https://{domain_to}/old-{WORDS[d[39] & 63]}",
                            )
                        ]
                        if indirect
                        else None
                    ),
                )
            ]
        if self.timeline is not None:
            self.timeline.restamp(self.thash, pid, links)
        return Item(page_intersection=links, summary=Summary(intersections_count=len(links)))
