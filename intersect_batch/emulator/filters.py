"""``filters`` and ``order_by``: parsed once per query into predicates and sort keys.

A field is ``"<target number>.<backlink field>"`` (the backlink the page has to that
target; ``null`` when the page does not link to it) or ``intersections_count``. On array
fields (``attributes``, ``domain_from_platform_type``) a positive operator holds when any
element matches and its ``not_`` form when none does. A comparison with ``null`` is false
(``<>`` and the ``not_`` forms: true), except ``= null`` / ``<> null``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .schema import Backlink, Item

__all__ = [
    "FIELD_KINDS",
    "OPERATORS",
    "FilterError",
    "Predicate",
    "SortKey",
    "compile_filters",
    "compile_order",
    "count_conditions",
]

Predicate = Callable[[Item], bool]
SortKey = Callable[[Item], Any]

OPERATORS = frozenset(
    {
        "regex", "not_regex", "=", "<>", "<", "<=", ">", ">=", "in", "not_in",
        "like", "not_like", "ilike", "not_ilike", "match", "not_match",
    }
)  # fmt: skip
_NEGATIVE = {"<>": "=", "not_in": "in", "not_regex": "regex", "not_like": "like"}
_NEGATIVE |= {"not_ilike": "ilike", "not_match": "match"}

# The kind of every backlink field: what a filter value is coerced to.
FIELD_KINDS: dict[str, str] = {
    name: kind
    for kind, names in {
        "str": (
            "type domain_from url_from domain_to url_to tld_from domain_from_ip "
            "domain_from_country page_from_encoding page_from_language page_from_title "
            "first_seen prev_seen last_seen item_type alt anchor text_pre text_post "
            "semantic_location url_to_redirect_target"
        ),
        "int": (
            "backlink_spam_score rank page_from_rank domain_from_rank page_from_external_links "
            "page_from_internal_links page_from_size page_from_status_code links_count "
            "group_count url_to_status_code url_to_spam_score"
        ),
        "bool": (
            "url_from_https url_to_https is_new is_lost domain_from_is_ip dofollow original "
            "is_broken is_indirect_link"
        ),
        "list": "domain_from_platform_type attributes",
    }.items()
    for name in names.split()
}
assert set(FIELD_KINDS) | {"indirect_link_path"} == set(Backlink.__struct_fields__)


class FilterError(ValueError):
    """A filter or order_by rule the API would refuse; the message says which and why."""


def _getter(field: str, keys: Sequence[str]) -> tuple[Callable[[Item], Any], str]:
    """A function reading ``field`` from an item, and the field's kind."""
    if field == "intersections_count":
        return (lambda item: item.summary.intersections_count), "int"
    key, dot, name = field.partition(".")
    if not dot or key not in keys:
        raise FilterError(f"'{field}' must start with a target number of 'targets' ({field!r})")
    kind = FIELD_KINDS.get(name)
    if kind is None:
        raise FilterError(f"unknown field {field!r}")

    def get(item: Item) -> Any:
        links = item.page_intersection.get(key)
        return getattr(links[0], name) if links else None

    return get, kind


def _coerce(value: Any, kind: str, field: str) -> Any:
    if value is None:
        return None
    if kind == "int" and not isinstance(value, bool):
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                pass
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif kind in ("str", "list") and isinstance(value, str | int | float):
        return str(value)
    raise FilterError(f"value {value!r} does not suit field {field!r}")


def _like(pattern: str, flags: int) -> re.Pattern[str]:
    """SQL LIKE: ``%`` any run of characters, ``_`` one character."""
    special = {"%": ".*", "_": "."}
    regex = "".join(special.get(c) or re.escape(c) for c in pattern)
    return re.compile(regex, flags | re.DOTALL)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _positive_test(op: str, value: Any, field: str) -> Callable[[Any], bool]:
    """A test of one (non-null, scalar) field value against the condition."""
    if op == "=":
        return lambda v: bool(v == value)
    if op in ("<", "<=", ">", ">="):
        if value is None or isinstance(value, bool):
            raise FilterError(f"operator {op!r} needs a number or a string for {field!r}")
        cmp: dict[str, Callable[[Any], bool]] = {
            "<": lambda v: bool(v < value),
            "<=": lambda v: bool(v <= value),
            ">": lambda v: bool(v > value),
            ">=": lambda v: bool(v >= value),
        }
        return cmp[op]
    if op == "in":
        allowed = set(value)
        return lambda v: v in allowed
    if not isinstance(value, str):
        raise FilterError(f"operator {op!r} needs a string for {field!r}")
    if op == "regex":
        try:
            rx = re.compile(value)
        except re.error as exc:
            raise FilterError(f"invalid regex {value!r}: {exc}") from None
        return lambda v: rx.search(str(v)) is not None
    if op in ("like", "ilike"):
        pat = _like(value, re.IGNORECASE if op == "ilike" else 0)
        return lambda v: pat.fullmatch(str(v)) is not None
    wanted = _words(value)  # "match": full-text, every word of the value appears
    return lambda v: wanted <= _words(str(v))


def _condition(cond: list[Any], keys: Sequence[str]) -> Predicate:
    field, op, raw = cond
    if not isinstance(field, str) or not isinstance(op, str):
        raise FilterError(f"a condition is [field, operator, value], got {cond!r}")
    if op not in OPERATORS:
        raise FilterError(f"unknown operator {op!r}")
    get, kind = _getter(field, keys)
    base = _NEGATIVE.get(op, op)
    if base == "in":
        if not isinstance(raw, list):
            raise FilterError(f"operator {op!r} needs an array for {field!r}")
        value: Any = [_coerce(v, kind, field) for v in raw]
    elif kind == "str" and op in ("<", "<=", ">", ">=") and not isinstance(raw, str):
        raise FilterError(f"value {raw!r} does not suit field {field!r}")
    else:
        value = _coerce(raw, kind, field)
    test = _positive_test(base, value, field)
    is_list = kind == "list"
    null_result = value is None if base == "=" else False

    def positive(item: Item) -> bool:
        v = get(item)
        if v is None:
            return null_result
        if is_list:
            return any(test(e) for e in v)
        return test(v)

    if base == op:
        return positive
    return lambda item: not positive(item)


def _is_condition(node: list[Any]) -> bool:
    return len(node) == 3 and isinstance(node[0], str) and node[0] not in ("and", "or")


def count_conditions(node: Any) -> int:
    """How many ``[field, operator, value]`` conditions the (nested) filter holds."""
    if not isinstance(node, list):
        return 0
    if _is_condition(node):
        return 1
    return sum(count_conditions(n) for n in node)


def compile_filters(node: Any, keys: Sequence[str]) -> Predicate:
    """The predicate of a ``filters`` value; raises ``FilterError`` on what the API refuses."""
    if not isinstance(node, list) or not node:
        raise FilterError("a filter is a non-empty array")
    if _is_condition(node):
        return _condition(node, keys)
    operands: list[Predicate] = []
    joins: list[str] = []
    for i, part in enumerate(node):
        if i % 2:
            if part not in ("and", "or"):
                raise FilterError(f"conditions are joined by 'and' or 'or', got {part!r}")
            joins.append(part)
        else:
            operands.append(compile_filters(part, keys))
    if len(operands) != len(joins) + 1:
        raise FilterError("a filter cannot end with 'and' or 'or'")
    # "and" binds tighter than "or": split into or-groups of and-chains.
    groups: list[list[Predicate]] = [[operands[0]]]
    for join, operand in zip(joins, operands[1:], strict=True):
        if join == "and":
            groups[-1].append(operand)
        else:
            groups.append([operand])
    frozen = [tuple(g) for g in groups]
    return lambda item: any(all(p(item) for p in group) for group in frozen)


_ZERO = {"int": 0, "bool": False, "str": "", "list": ()}


def compile_order(rules: Sequence[Any], keys: Sequence[str]) -> list[tuple[SortKey, bool]]:
    """``(key, descending)`` per ``order_by`` rule; ``null`` sorts below every value."""
    compiled: list[tuple[SortKey, bool]] = []
    for rule in rules:
        if not isinstance(rule, str) or rule.count(",") != 1:
            raise FilterError(f"a rule is 'field,asc' or 'field,desc', got {rule!r}")
        field, direction = (s.strip() for s in rule.split(","))
        if direction not in ("asc", "desc"):
            raise FilterError(f"a rule is 'field,asc' or 'field,desc', got {rule!r}")
        get, kind = _getter(field, keys)
        zero = _ZERO[kind]

        def key(item: Item, get: Callable[[Item], Any] = get, zero: Any = zero) -> Any:
            v = get(item)
            if v is None:
                return (0, zero)
            return (1, tuple(v) if isinstance(v, list) else v)

        compiled.append((key, direction == "desc"))
    return compiled
