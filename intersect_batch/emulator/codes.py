"""Status codes: the API's message for each, and the HTTP status it travels with."""

from __future__ import annotations

__all__ = ["COST_PER_CALL", "COST_PER_ITEM", "STATUS_MESSAGES", "call_cost", "http_status_for"]

COST_PER_CALL = 0.02
COST_PER_ITEM = 0.00003

STATUS_MESSAGES: dict[int, str] = {
    20000: "Ok.",
    40000: "You can set only one task at a time.",
    40100: "You are not authorized to access this resource.",
    40102: "No Search Results.",
    40103: "Task execution failed. Please resubmit the task.",
    40104: "Please verify your account before using the API.",
    40200: "Payment Required.",
    40201: "Your account has been suspended.",
    40202: "The rate-limit per minute has been exceeded.",
    40203: "The cost limit you set has been reached.",
    40204: "Access denied. Subscription required.",
    40205: "The limit of duplicate tasks per hour has been exceeded.",
    40206: "The limit of duplicate tasks per day has been exceeded.",
    40207: "Access denied. Your IP is not whitelisted.",
    40209: "Too many simultaneous requests.",
    40210: "Insufficient funds.",
    40400: "Not Found.",
    40501: "Invalid Field.",
    40502: "POST Data Is Empty.",
    40503: "Invalid POST Data.",
    40506: "Unknown Fields in POST Data.",
    50000: "Internal Error.",
    50301: "Third party service is unavailable.",
    50303: "Update in progress.",
    50304: "Temporarily unavailable.",
    50401: "Timeout exceeded.",
    50402: "Timeout exceeded.",
}

_HTTP_STATUS = {40100: 401, 40104: 401, 40200: 402, 40201: 402, 40210: 402}


def http_status_for(code: int) -> int:
    """The HTTP status a whole-call answer with ``code`` comes in (DataForSEO: 200 mostly)."""
    if code in _HTTP_STATUS:
        return _HTTP_STATUS[code]
    if 40400 <= code < 40500:
        return 404
    return 200


def call_cost(items: int) -> float:
    """USD for one successful call returning ``items`` items."""
    return round(COST_PER_CALL + COST_PER_ITEM * items, 8)
