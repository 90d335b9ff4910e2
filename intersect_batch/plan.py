"""Which pages a job needs: pure arithmetic, shared by the crawl and the dry run."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from intersect_batch.settings import CALL_PRICE_USD, ITEM_PRICE_USD

__all__ = ["expected_cost", "fingerprint", "items_wanted", "page_count", "page_limit"]


def items_wanted(total_count: int, max_items: int | None) -> int:
    """How many items a job will fetch from a query of ``total_count`` results."""
    return total_count if max_items is None else min(total_count, max_items)


def page_count(total_count: int, page_size: int, max_items: int | None) -> int:
    """Calls a job needs: one per page, and at least one to learn the count."""
    wanted = items_wanted(total_count, max_items)
    return max(1, -(-wanted // page_size))


def page_limit(page: int, page_size: int, max_items: int | None) -> int:
    """The ``limit`` of a page's call: the page size, less where max_items ends first."""
    if max_items is None:
        return page_size
    return max(1, min(page_size, max_items - page * page_size))


def expected_cost(total_count: int, page_size: int, max_items: int | None) -> float:
    """What fetching a job costs at the documented price."""
    calls = page_count(total_count, page_size, max_items)
    return calls * CALL_PRICE_USD + items_wanted(total_count, max_items) * ITEM_PRICE_USD


def fingerprint(params: dict[str, Any], page_size: int, max_items: int | None) -> str:
    """A stable digest of what decides a job's result: its request and its paging.

    Progress made under one fingerprint is never mixed with pages of another.
    """
    canonical = msgspec.json.encode(
        {"params": params, "page_size": page_size, "max_items": max_items}, order="sorted"
    )
    return hashlib.sha256(canonical).hexdigest()[:32]
