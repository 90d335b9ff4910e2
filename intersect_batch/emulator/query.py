"""One task of a request, validated like the real API into a normalized ``Query``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from .filters import FilterError, Predicate, SortKey, compile_filters, compile_order
from .filters import count_conditions as count_filter_conditions

__all__ = ["DEFAULTS", "KNOWN_FIELDS", "Query", "TaskError", "parse_task"]

MAX_TARGETS = 20
MAX_EXCLUDES = 10
MAX_FILTERS = 8
MAX_ORDER_RULES = 3
MAX_LIMIT = 1000
MAX_TAG = 255

# Every optional field and its default: what ``data`` echoes when the request left it out.
DEFAULTS: dict[str, Any] = {
    "offset": 0,
    "limit": 100,
    "internal_list_limit": 10,
    "include_subdomains": True,
    "include_indirect_links": True,
    "exclude_internal_backlinks": True,
    "intersection_mode": "all",
    "rank_scale": "one_thousand",
    "backlinks_status_type": "live",
}
_CHOICES = {
    "intersection_mode": ("all", "partial"),
    "rank_scale": ("one_hundred", "one_thousand"),
    "backlinks_status_type": ("all", "live", "lost"),
}
KNOWN_FIELDS = frozenset(
    {"targets", "exclude_targets", "filters", "order_by", "tag", *DEFAULTS},
)


class TaskError(Exception):
    """A task the API refuses: its status code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


def _invalid(name: str, why: str) -> TaskError:
    return TaskError(40501, f"Invalid Field: '{name}'. {why}")


@dataclass(frozen=True, kw_only=True)
class Query:
    """A valid task, defaults filled in."""

    keys: tuple[str, ...]
    targets: tuple[str, ...]
    exclude_targets: tuple[str, ...]
    offset: int
    limit: int
    internal_list_limit: int
    include_subdomains: bool
    include_indirect_links: bool
    intersection_mode: str
    rank_scale: str
    backlinks_status_type: str
    tag: str | None
    predicate: Predicate | None = field(compare=False)
    order: tuple[tuple[SortKey, bool], ...] = field(compare=False)
    data: dict[str, Any] = field(compare=False)
    selection_key: bytes
    """What the selected page ids depend on: everything but offset, limit and tag."""
    request_key: bytes
    """The whole query (no credentials): the fault draws hash it."""

    @property
    def targets_dict(self) -> dict[str, str]:
        return dict(zip(self.keys, self.targets, strict=True))

    @property
    def scale100(self) -> bool:
        return self.rank_scale == "one_hundred"


def _int(task: dict[str, Any], name: str, low: int, high: int | None) -> int:
    value = task.get(name, DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, "Expected an integer.")
    if value < low or (high is not None and value > high):
        top = "" if high is None else f" and at most {high}"
        raise _invalid(name, f"Must be at least {low}{top}.")
    return value


def _bool(task: dict[str, Any], name: str) -> bool:
    value = task.get(name, DEFAULTS[name])
    if not isinstance(value, bool):
        raise _invalid(name, "Expected true or false.")
    return value


def _choice(task: dict[str, Any], name: str) -> str:
    value = task.get(name, DEFAULTS[name])
    if value not in _CHOICES[name]:
        raise _invalid(name, f"Possible values: {', '.join(_CHOICES[name])}.")
    return str(value)


def _targets(task: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    raw = task.get("targets")
    if raw is None:
        raise _invalid("targets", "The field is required.")
    if not isinstance(raw, dict) or not raw:
        raise _invalid("targets", "Expected an object keyed '1'..'20'.")
    if len(raw) > MAX_TARGETS:
        raise _invalid("targets", f"At most {MAX_TARGETS} targets.")
    pairs: list[tuple[int, str]] = []
    for key, value in raw.items():
        if not (key.isdigit() and str(int(key)) == key and 1 <= int(key) <= MAX_TARGETS):
            raise _invalid("targets", f"Keys are '1'..'{MAX_TARGETS}', got {key!r}.")
        if not isinstance(value, str) or not value.strip():
            raise _invalid("targets", f"Target {key!r} must be a non-empty string.")
        pairs.append((int(key), value.strip()))
    pairs.sort()
    return tuple(str(k) for k, _ in pairs), tuple(v for _, v in pairs)


def parse_task(task: Any) -> Query:
    """The ``Query`` of one task object; raises ``TaskError`` with the API's code."""
    if not isinstance(task, dict):
        raise TaskError(40503, "Invalid POST Data. A task must be a JSON object.")
    unknown = sorted(set(task) - KNOWN_FIELDS)
    if unknown:
        names = ", ".join(f"'{n}'" for n in unknown)
        raise TaskError(40506, f"Unknown Fields in POST Data: {names}.")
    # A field sent as null is a field not sent (the official clients send every unset
    # field that way).
    task = {key: value for key, value in task.items() if value is not None}
    keys, targets = _targets(task)

    excludes_raw = task.get("exclude_targets", [])
    if not isinstance(excludes_raw, list) or not all(
        isinstance(e, str) and e.strip() for e in excludes_raw
    ):
        raise _invalid("exclude_targets", "Expected an array of non-empty strings.")
    if len(excludes_raw) > MAX_EXCLUDES:
        raise _invalid("exclude_targets", f"At most {MAX_EXCLUDES} targets can be excluded.")
    excludes = tuple(e.strip() for e in excludes_raw)

    offset = _int(task, "offset", 0, None)
    limit = _int(task, "limit", 1, MAX_LIMIT)
    list_limit = _int(task, "internal_list_limit", 1, MAX_LIMIT)
    flags = {
        name: _bool(task, name)
        for name in ("include_subdomains", "include_indirect_links", "exclude_internal_backlinks")
    }
    choices = {name: _choice(task, name) for name in _CHOICES}

    tag = task.get("tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > MAX_TAG):
        raise _invalid("tag", f"Expected a string of at most {MAX_TAG} characters.")

    filters = task.get("filters")
    predicate: Predicate | None = None
    if filters is not None:
        if not isinstance(filters, list):
            raise _invalid("filters", "Expected an array.")
        n = count_filter_conditions(filters)
        if n > MAX_FILTERS:
            raise _invalid("filters", f"At most {MAX_FILTERS} filters, got {n}.")
        if filters:
            try:
                predicate = compile_filters(filters, keys)
            except FilterError as exc:
                raise _invalid("filters", f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None

    order_raw = task.get("order_by")
    order: list[tuple[SortKey, bool]] = []
    if order_raw is not None:
        if not isinstance(order_raw, list):
            raise _invalid("order_by", "Expected an array.")
        if len(order_raw) > MAX_ORDER_RULES:
            raise _invalid("order_by", f"At most {MAX_ORDER_RULES} sorting rules.")
        try:
            order = compile_order(order_raw, keys)
        except FilterError as exc:
            raise _invalid("order_by", f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None

    data: dict[str, Any] = {"api": "backlinks", "function": "page_intersection"}
    data["targets"] = task["targets"]
    for name in ("exclude_targets", "filters", "order_by"):
        if name in task:
            data[name] = task[name]
    data.update(offset=offset, limit=limit, internal_list_limit=list_limit, **flags, **choices)
    if tag is not None:
        data["tag"] = tag
    selection = {k: v for k, v in data.items() if k not in ("offset", "limit", "tag")}
    selection["targets"] = dict(zip(keys, targets, strict=True))
    return Query(
        keys=keys,
        targets=targets,
        exclude_targets=excludes,
        offset=offset,
        limit=limit,
        internal_list_limit=list_limit,
        include_subdomains=flags["include_subdomains"],
        include_indirect_links=flags["include_indirect_links"],
        intersection_mode=choices["intersection_mode"],
        rank_scale=choices["rank_scale"],
        backlinks_status_type=choices["backlinks_status_type"],
        tag=tag,
        predicate=predicate,
        order=tuple(order),
        data=data,
        selection_key=msgspec.json.encode(selection, order="sorted"),
        request_key=msgspec.json.encode(data, order="sorted"),
    )
