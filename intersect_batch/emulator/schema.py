"""The wire format the emulator answers with, as msgspec Structs (encoders built once)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "API_VERSION",
    "ENCODER",
    "PATH",
    "AisaError",
    "AisaErrorBody",
    "Backlink",
    "Envelope",
    "IndirectLink",
    "Item",
    "Result",
    "Summary",
    "Task",
]

API_VERSION = "0.1.20240801"
PATH = ["v3", "backlinks", "page_intersection", "live"]
ENCODER = msgspec.json.Encoder()


# Items hold no cycles: gc=False spares the cyclic collector thousands of objects a page.
class IndirectLink(msgspec.Struct, gc=False):
    """One hop of ``indirect_link_path``."""

    type: str
    status_code: int
    url: str


class Backlink(msgspec.Struct, gc=False):
    """One backlink from a referring page to one target: every field of the reference page."""

    type: str
    domain_from: str
    url_from: str
    url_from_https: bool
    domain_to: str
    url_to: str
    url_to_https: bool
    tld_from: str
    is_new: bool
    is_lost: bool
    backlink_spam_score: int
    rank: int
    page_from_rank: int
    domain_from_rank: int
    domain_from_platform_type: list[str] | None
    domain_from_is_ip: bool
    domain_from_ip: str
    domain_from_country: str | None
    page_from_external_links: int
    page_from_internal_links: int
    page_from_size: int
    page_from_encoding: str
    page_from_language: str | None
    page_from_title: str | None
    page_from_status_code: int
    first_seen: str
    prev_seen: str | None
    last_seen: str
    item_type: str
    attributes: list[str] | None
    dofollow: bool
    original: bool
    alt: str | None
    anchor: str | None
    text_pre: str | None
    text_post: str | None
    semantic_location: str | None
    links_count: int
    group_count: int
    is_broken: bool
    url_to_status_code: int | None
    url_to_spam_score: int | None
    url_to_redirect_target: str | None
    is_indirect_link: bool
    indirect_link_path: list[IndirectLink] | None


class Summary(msgspec.Struct, gc=False):
    intersections_count: int


class Item(msgspec.Struct, gc=False):
    """One referring page: its backlinks per target number, and the summary beside them."""

    page_intersection: dict[str, list[Backlink]]
    summary: Summary


class Result(msgspec.Struct):
    targets: dict[str, str]
    total_count: int
    items_count: int
    items: list[msgspec.Raw]


class Task(msgspec.Struct):
    id: str
    status_code: int
    status_message: str
    time: str
    cost: float
    result_count: int
    path: list[str]
    #: The request with its defaults; UNSET leaves the field out (a proxy that strips it).
    data: dict[str, Any] | msgspec.UnsetType
    result: list[Result] | None


class Envelope(msgspec.Struct):
    version: str
    status_code: int
    status_message: str
    time: str
    cost: float
    tasks_count: int
    tasks_error: int
    tasks: list[Task]


class AisaErrorBody(msgspec.Struct):
    type: str
    code: str
    message: str
    request_id: str


class AisaError(msgspec.Struct):
    """The AIsa gateway's own error envelope (401, 429, 500 ...)."""

    error: AisaErrorBody
