"""Checks msgspec cannot express: target spelling, filter grammar, order rules.

Each check returns problems as (field path, message); the loader adds file, job and line.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._model import (
    FILTER_JOINERS,
    FILTER_OPERATORS,
    LIST_OPERATORS,
    MAX_FILTER_CONDITIONS,
    ORDER_DIRECTIONS,
    UNPREFIXED_FIELDS,
    JobConfig,
)

FieldPath = tuple[str | int, ...]
Problem = tuple[FieldPath, str]

_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")
_FIELD_RE = re.compile(r"^(?:([0-9]+)\.)?([a-z_][a-z0-9_]*)$")
_HOW = "write a domain like 'example.com' or a page URL like 'https://example.com/pricing'"
_OPERATOR_HINTS = {"==": "=", "!=": "<>", "eq": "=", "ne": "<>", "not in": "not_in"}


def check_job(cfg: JobConfig) -> tuple[dict[str, str], list[Problem]]:
    """The targets keyed "1".."N", and every problem of the job (none: it can run)."""
    problems: list[Problem] = []
    targets, paths = _normalize_targets(cfg.targets, problems)
    numbers = set(targets) or None  # None: the targets are unusable, skip number checks
    labels: dict[str, str] = {}
    for path, value in zip(paths, targets.values(), strict=True):
        labels.setdefault(_canonical(value), format_path(path))
    if cfg.exclude_targets is not None:
        problems += _check_excludes(cfg.exclude_targets, labels)
    if cfg.filters is not None:
        problems += _check_filters(cfg.filters, numbers)
    if cfg.order_by is not None:
        problems += _check_order_by(cfg.order_by, numbers)
    return targets, problems


def target_problem(value: str, *, wildcard: bool = False) -> str | None:
    """Why a target is not spelled the way the API wants it, or None."""
    if not value.strip():
        return f"empty target; {_HOW}"
    if value != value.strip() or any(char.isspace() for char in value):
        return f"{value!r} contains spaces; remove them"
    if "://" in value:
        return _url_problem(value, wildcard=wildcard)
    if value.lower().startswith(("http:", "https:", "//")):
        return f"{value!r} is not a valid URL; write a page as 'https://example.com/page'"
    host = re.split(r"[/?#]", value, maxsplit=1)[0]
    rest = value[len(host) :]
    if rest not in ("", "/"):
        return (
            f"{value!r} is a page without a scheme; write its full URL, e.g. 'https://{value}' "
            f"(or just the domain {host!r})"
        )
    if host.lower().startswith("www.") or rest:
        fixed = host[4:] if host.lower().startswith("www.") else host
        return f"{value!r}: write domains without 'www.' and without '/': {fixed!r}"
    if "*" in host:
        return f"{value!r}: '*' is only allowed in page URLs, like 'https://example.com/blog/*'"
    if not _HOST_RE.match(host):
        return f"{value!r} is not a valid domain; {_HOW}"
    return None


def _url_problem(value: str, *, wildcard: bool) -> str | None:
    scheme, _, rest = value.partition("://")
    host = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if scheme.lower() not in ("http", "https"):
        return (
            f"{value!r}: only http:// and https:// URLs are accepted; "
            f"for a whole domain write it without a scheme: {host!r}"
        )
    if "*" in host or not _HOST_RE.match(host.rsplit(":", 1)[0] if ":" in host else host):
        return f"{value!r} has no valid host; write a page as 'https://example.com/page'"
    if "*" in value and not wildcard:
        return f"{value!r}: '*' is only allowed in exclude_targets"
    return None


def _canonical(value: str) -> str:
    """Compare targets as the API would: host and scheme are not case-sensitive."""
    if "://" not in value:
        return value.lower()
    scheme, _, rest = value.partition("://")
    host, sep, tail = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{sep}{tail}"


def _normalize_targets(
    targets: Sequence[str] | Mapping[str, str], problems: list[Problem]
) -> tuple[dict[str, str], list[FieldPath]]:
    """The targets keyed "1".."N" and where each was written; ({}, []) if the keys are bad."""
    if isinstance(targets, Mapping):
        bad = [key for key in targets if not re.fullmatch(r"[1-9][0-9]*", key)]
        if bad:
            problems.append(
                (("targets", bad[0]), f"key {bad[0]!r} is not a target number; use 1..N")
            )
            return {}, []
        numbers = sorted(int(key) for key in targets)
        missing = sorted(set(range(1, len(numbers) + 1)) - set(numbers))
        if missing:
            problems.append(
                (
                    ("targets",),
                    f"keys must run 1..{len(numbers)} with no gaps; "
                    f"{missing[0]} is missing (keys: {', '.join(map(str, numbers))})",
                )
            )
            return {}, []
        ordered = {str(number): targets[str(number)] for number in numbers}
        paths: list[FieldPath] = [("targets", key) for key in ordered]
    else:
        ordered = {str(index): value for index, value in enumerate(targets, start=1)}
        paths = [("targets", index) for index in range(len(targets))]
    first_seen: dict[str, FieldPath] = {}
    for path, value in zip(paths, ordered.values(), strict=True):
        problem = target_problem(value)
        if problem is not None:
            problems.append((path, problem))
            continue
        key = _canonical(value)
        if key in first_seen:
            problems.append(
                (path, f"{value!r} is listed twice (also {format_path(first_seen[key])})")
            )
        else:
            first_seen[key] = path
    return ordered, paths


def _check_excludes(excludes: Sequence[str], target_labels: dict[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for index, value in enumerate(excludes):
        path: FieldPath = ("exclude_targets", index)
        problem = target_problem(value, wildcard=True)
        key = _canonical(value)
        if problem is not None:
            problems.append((path, problem))
        elif key in first_seen:
            problems.append(
                (path, f"{value!r} is listed twice (also exclude_targets[{first_seen[key]}])")
            )
        elif key in target_labels:
            problems.append(
                (
                    path,
                    f"{value!r} is also a target ({target_labels[key]}); "
                    "no page could link to it and not link to it",
                )
            )
        else:
            first_seen[key] = index
    return problems


def _check_field_name(name: Any, numbers: set[str] | None, path: FieldPath) -> list[Problem]:
    if not isinstance(name, str):
        return [(path, f"a field name must be a string like '1.rank', got {name!r}")]
    match = _FIELD_RE.match(name)
    if match is None:
        return [(path, f"{name!r} is not a field name; write it like '1.rank'")]
    number, field = match.groups()
    if number is None:
        if field in UNPREFIXED_FIELDS:
            return []
        return [(path, f"{name!r} needs the number of the target it is about, e.g. '1.{field}'")]
    if numbers is not None and number not in numbers:
        return [
            (
                path,
                f"{name!r} refers to target {number}, but this job has "
                f"{len(numbers)} target{'s' if len(numbers) != 1 else ''} (1..{len(numbers)})",
            )
        ]
    return []


def _is_condition(node: list[Any]) -> bool:
    return bool(node) and isinstance(node[0], str) and node[0] not in FILTER_JOINERS


def _check_filters(filters: list[Any], numbers: set[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    count = _walk_filter(filters, ("filters",), numbers, problems)
    if count > MAX_FILTER_CONDITIONS:
        problems.insert(
            0,
            (
                ("filters",),
                f"has {count} conditions; the API allows at most {MAX_FILTER_CONDITIONS}",
            ),
        )
    return problems


def _walk_filter(
    node: list[Any], path: FieldPath, numbers: set[str] | None, problems: list[Problem]
) -> int:
    """Checks a condition or a group; returns how many conditions it holds."""
    if _is_condition(node):
        problems.extend(_check_condition(node, path, numbers))
        return 1
    if not node and len(path) > 1:
        problems.append((path, "an empty group; remove it or add a condition"))
        return 0
    count = 0
    for index, item in enumerate(node):
        item_path = (*path, index)
        if index % 2 == 1:
            if item not in FILTER_JOINERS:
                hint = "; write it in lower case" if str(item).lower() in FILTER_JOINERS else ""
                problems.append(
                    (item_path, f"expected 'and' or 'or' between conditions, got {item!r}{hint}")
                )
            continue
        if isinstance(item, list):
            count += _walk_filter(item, item_path, numbers, problems)
        elif item in FILTER_JOINERS:
            problems.append((item_path, f"expected a condition, got a second joiner {item!r}"))
        else:
            problems.append(
                (item_path, f"expected a condition [field, operator, value], got {item!r}")
            )
    if node and len(node) % 2 == 0 and isinstance(node[-1], str):
        problems.append((path, f"ends with {node[-1]!r}: a condition must follow it"))
    return count


def _check_condition(node: list[Any], path: FieldPath, numbers: set[str] | None) -> list[Problem]:
    if len(node) != 3:
        return [(path, f"a condition is [field, operator, value], got {len(node)} elements")]
    name, operator, value = node
    problems = _check_field_name(name, numbers, (*path, 0))
    if operator not in FILTER_OPERATORS:
        hint = _OPERATOR_HINTS.get(str(operator).lower())
        advice = f"use {hint!r}" if hint else f"use one of: {', '.join(FILTER_OPERATORS)}"
        problems.append(((*path, 1), f"unknown operator {operator!r}; {advice}"))
        return problems
    values = value if isinstance(value, list) else [value]
    if operator in LIST_OPERATORS and not isinstance(value, list):
        problems.append(((*path, 2), f"{operator!r} takes a list of values, like ['a', 'b']"))
    elif operator not in LIST_OPERATORS and isinstance(value, list):
        problems.append(((*path, 2), f"{operator!r} takes one value, not a list"))
    elif any(isinstance(item, dt.date) for item in values):
        problems.append(((*path, 2), "a date must be quoted in YAML: '2024-01-31 00:00:00 +00:00'"))
    elif any(isinstance(item, dict | list) for item in values):
        problems.append(((*path, 2), "a value must be a string, a number, true/false or null"))
    return problems


def _check_order_by(rules: Sequence[str], numbers: set[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    for index, rule in enumerate(rules):
        path: FieldPath = ("order_by", index)
        field, comma, direction = rule.partition(",")
        if not comma:
            problems.append((path, f"{rule!r} needs a direction: '{rule},asc' or '{rule},desc'"))
            continue
        if direction not in ORDER_DIRECTIONS:
            problems.append(
                (
                    path,
                    f"{rule!r}: the direction must be 'asc' or 'desc' "
                    f"(written 'field,desc', no spaces), got {direction!r}",
                )
            )
            continue
        problems += _check_field_name(field, numbers, path)
    return problems


def format_path(path: FieldPath) -> str:
    """``filters[0][1]``, ``targets.2``: the way a user finds a value in the YAML."""
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else segment
    return text
