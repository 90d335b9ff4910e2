"""Checks msgspec cannot express: target spelling, filter grammar, order rules, ids.

Each check returns problems as (field path, message); the loader adds file, job and line.
Values are quoted through ``excerpt``: capped and escaped, whatever the file holds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._excerpt import excerpt
from ._model import (
    FILTER_JOINERS,
    FILTER_OPERATORS,
    LIST_OPERATORS,
    MAX_FILTER_CONDITIONS,
    ORDER_DIRECTIONS,
    RESERVED_ID_SUFFIXES,
    UNPREFIXED_FIELDS,
    JobConfig,
)

FieldPath = tuple[str | int, ...]
Problem = tuple[FieldPath, str]

# Lengths are checked on the punycode form (see _host_rule), so that the message names them.
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_HOST_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")
_FIELD_RE = re.compile(r"^(?:([0-9]+)\.)?([a-z_][a-z0-9_]*)$")
_SPACE = re.compile(r"\s")
_HOST_END = re.compile(r"[/?#]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HOW = "write a domain like 'example.com' or a page URL like 'https://example.com/pricing'"
_OPERATOR_HINTS = {"==": "=", "!=": "<>", "eq": "=", "ne": "<>", "not in": "not_in"}
# "1.rank desc", "1.rank:desc", "1.rank , DESC": a field and a direction, badly joined.
_ORDER_MISTAKE = re.compile(
    r"\s*((?:[0-9]+\.)?[a-z_][a-z0-9_]*)\s*(?:[,:]\s*|\s+)((?i:asc|desc))\s*"
)


def check_job(cfg: JobConfig) -> tuple[dict[str, str], list[Problem], list[Problem]]:
    """The targets keyed "1".."N", every problem of the job (none: it can run), and warnings.

    A warning is about something that runs but may not do what was meant.
    """
    problems: list[Problem] = []
    warnings: list[Problem] = []
    problems += _check_id(cfg.id)
    targets, paths = _normalize_targets(cfg.targets, problems)
    numbers = set(targets) or None  # None: the targets are unusable, skip number checks
    if cfg.exclude_targets:
        labels: dict[str, str] = {}
        for path, value in zip(paths, targets.values(), strict=True):
            labels.setdefault(_canonical(value), format_path(path))
        problems += _check_excludes(cfg.exclude_targets, labels)
    if cfg.filters is not None:
        problems += _check_filters(cfg.filters, numbers, warnings)
    if cfg.order_by is not None:
        problems += _check_order_by(cfg.order_by, numbers, warnings)
    return targets, problems, warnings


def _check_id(job_id: str) -> list[Problem]:
    for suffix in RESERVED_ID_SUFFIXES:
        if job_id.endswith(suffix):
            stem = job_id.removesuffix(suffix)
            return [
                (
                    ("id",),
                    f"an id may not end in {suffix!r}: the run folder writes the changes of "
                    f"a job {stem!r} to '{stem}{suffix}.jsonl', the same name as this job's "
                    f"results; choose another id, like {excerpt(stem + suffix.replace('.', '-'))}",
                )
            ]
    return []


def target_problem(value: str, *, wildcard: bool = False) -> str | None:
    """Why a target is not spelled the way the API wants it, or None."""
    if not value.strip():
        return f"empty target; {_HOW}"
    if _SPACE.search(value):
        return f"{excerpt(value)} contains spaces; remove them"
    if "://" in value:
        return _url_problem(value, wildcard=wildcard)
    if value.lower().startswith(("http:", "https:", "//")):
        return f"{excerpt(value)} is not a valid URL; write a page as 'https://example.com/page'"
    host = _HOST_END.split(value, maxsplit=1)[0]
    rest = value[len(host) :]
    if rest not in ("", "/"):
        return (
            f"{excerpt(value)} is a page without a scheme; write its full URL, "
            f"e.g. {excerpt('https://' + value)} (or just the domain {excerpt(host)})"
        )
    if host.lower().startswith("www.") or rest:
        fixed = host[4:] if host.lower().startswith("www.") else host
        return f"{excerpt(value)}: write domains without 'www.' and without '/': {excerpt(fixed)}"
    if "*" in host:
        return (
            f"{excerpt(value)}: '*' is only allowed in page URLs, like 'https://example.com/blog/*'"
        )
    if not _HOST_RE.match(host):
        return f"{excerpt(value)} is not a valid domain; {_HOW}"
    return _host_rule(value, host)


#: DNS's limits (RFC 1035), on the name as it travels: its ASCII (punycode) form.
MAX_HOST_CHARS = 253
MAX_LABEL_CHARS = 63


def ascii_host(host: str) -> str | None:
    """The host in the ASCII form DNS carries (``bücher.de`` -> ``xn--bcher-kva.de``).

    Lower case, each label encoded by IDNA (Python's codec, which also folds case and
    normalizes), so that every spelling of one name gives one text. None when a label
    cannot be encoded (empty, or over 63 characters once encoded).
    """
    labels = []
    for part in host.split("."):
        if part.isascii():
            labels.append(part.lower())
            continue
        try:
            labels.append(part.encode("idna").decode("ascii"))
        except UnicodeError:
            return None
    return ".".join(labels)


def _host_rule(value: str, host: str) -> str | None:
    """Which of DNS's length rules ``host`` breaks, or None."""
    encoded = ascii_host(host)
    if encoded is None or any(len(label) > MAX_LABEL_CHARS for label in encoded.split(".")):
        return (
            f"{excerpt(value)}: a part of a host name between dots is at most "
            f"{MAX_LABEL_CHARS} characters (in its punycode form)"
        )
    if len(encoded) > MAX_HOST_CHARS:
        return (
            f"{excerpt(value)}: a host name is at most {MAX_HOST_CHARS} characters "
            f"(in its punycode form), this one has {len(encoded)}"
        )
    return None


def _url_problem(value: str, *, wildcard: bool) -> str | None:
    scheme, _, rest = value.partition("://")
    host = _HOST_END.split(rest, maxsplit=1)[0]
    if scheme.lower() not in ("http", "https"):
        return (
            f"{excerpt(value)}: only http:// and https:// URLs are accepted; "
            f"for a whole domain write it without a scheme: {excerpt(host)}"
        )
    name, colon, port = host.partition(":")
    if "*" in host or not _HOST_RE.match(name):
        return f"{excerpt(value)} has no valid host; write a page as 'https://example.com/page'"
    if colon and not (port.isascii() and port.isdigit() and 0 < int(port) <= MAX_PORT):
        return f"{excerpt(value)}: a port is a number from 1 to {MAX_PORT}"
    if "*" in value and not wildcard:
        return f"{excerpt(value)}: '*' is only allowed in exclude_targets"
    return _host_rule(value, name)


MAX_PORT = 65535


def _canonical(value: str) -> str:
    """Compare targets as the API would: host and scheme are not case-sensitive.

    A host is compared in its ASCII (punycode) form, so ``bücher.de`` and
    ``xn--bcher-kva.de`` are one target, written twice.
    """
    if "://" not in value:
        return ascii_host(value) or value.lower()
    scheme, _, rest = value.partition("://")
    host, sep, tail = rest.partition("/")
    name, colon, port = host.partition(":")
    return f"{scheme.lower()}://{ascii_host(name) or name.lower()}{colon}{port}{sep}{tail}"


def _normalize_targets(
    targets: Sequence[str] | Mapping[str, str], problems: list[Problem]
) -> tuple[dict[str, str], list[FieldPath]]:
    """The targets keyed "1".."N" and where each was written; ({}, []) if the keys are bad."""
    if isinstance(targets, Mapping):
        bad = [key for key in targets if not re.fullmatch(r"[1-9][0-9]*", key)]
        if bad:
            problems.append(
                (("targets", bad[0]), f"key {excerpt(bad[0])} is not a target number; use 1..N")
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
                (path, f"{excerpt(value)} is listed twice (also {format_path(first_seen[key])})")
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
                (
                    path,
                    f"{excerpt(value)} is listed twice (also exclude_targets[{first_seen[key]}])",
                )
            )
        elif key in target_labels:
            problems.append(
                (
                    path,
                    f"{excerpt(value)} is also a target ({target_labels[key]}); "
                    "no page could link to it and not link to it",
                )
            )
        else:
            first_seen[key] = index
    return problems


def _check_field_name(
    name: Any, numbers: set[str] | None, path: FieldPath, warnings: list[Problem]
) -> list[Problem]:
    if not isinstance(name, str):
        return [(path, f"a field name must be a string like '1.rank', got {excerpt(name)}")]
    match = _FIELD_RE.match(name)
    if match is None:
        return [(path, f"{excerpt(name)} is not a field name; write it like '1.rank'")]
    number, field = match.groups()
    if number is None:
        if field not in UNPREFIXED_FIELDS:
            # The API's reference page writes its examples this way ("rank,desc") without
            # saying which target such a field is about.
            warnings.append(
                (
                    path,
                    f"{excerpt(name)} has no target number: the API may apply it to target 1 "
                    "or reject the task with 40501 (which costs nothing); "
                    f"write '1.{field}' to say which target it is about",
                )
            )
        return []
    if numbers is not None and number not in numbers:
        return [
            (
                path,
                f"{excerpt(name)} refers to target {number}, but this job has "
                f"{len(numbers)} target{'s' if len(numbers) != 1 else ''} (1..{len(numbers)})",
            )
        ]
    return []


def _is_condition(node: list[Any]) -> bool:
    return bool(node) and isinstance(node[0], str) and node[0] not in FILTER_JOINERS


def _check_filters(
    filters: list[Any], numbers: set[str] | None, warnings: list[Problem]
) -> list[Problem]:
    problems: list[Problem] = []
    count = _walk_filter(filters, ("filters",), numbers, problems, warnings)
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
    node: list[Any],
    path: FieldPath,
    numbers: set[str] | None,
    problems: list[Problem],
    warnings: list[Problem],
) -> int:
    """Checks a condition or a group; returns how many conditions it holds."""
    if _is_condition(node):
        problems.extend(_check_condition(node, path, numbers, warnings))
        return 1
    if not node and len(path) > 1:
        problems.append((path, "an empty group; remove it or add a condition"))
        return 0
    count = 0
    for index, item in enumerate(node):
        item_path = (*path, index)
        if index % 2 == 1:
            if item not in FILTER_JOINERS:
                hint = (
                    "; write it in lower case"
                    if isinstance(item, str) and item.lower() in FILTER_JOINERS
                    else ""
                )
                problems.append(
                    (
                        item_path,
                        f"expected 'and' or 'or' between conditions, got {excerpt(item)}{hint}",
                    )
                )
            continue
        if isinstance(item, list):
            count += _walk_filter(item, item_path, numbers, problems, warnings)
        elif item in FILTER_JOINERS:
            problems.append(
                (item_path, f"expected a condition, got a second joiner {excerpt(item)}")
            )
        else:
            problems.append(
                (item_path, f"expected a condition [field, operator, value], got {excerpt(item)}")
            )
    if node and len(node) % 2 == 0 and isinstance(node[-1], str):
        problems.append((path, f"ends with {excerpt(node[-1])}: a condition must follow it"))
    return count


def _check_condition(
    node: list[Any], path: FieldPath, numbers: set[str] | None, warnings: list[Problem]
) -> list[Problem]:
    if len(node) != 3:
        return [(path, f"a condition is [field, operator, value], got {len(node)} elements")]
    name, operator, value = node
    problems = _check_field_name(name, numbers, (*path, 0), warnings)
    if operator not in FILTER_OPERATORS:
        hint = _OPERATOR_HINTS.get(operator.lower()) if isinstance(operator, str) else None
        advice = f"use {hint!r}" if hint else f"use one of: {', '.join(FILTER_OPERATORS)}"
        problems.append(((*path, 1), f"unknown operator {excerpt(operator)}; {advice}"))
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


def _check_order_by(
    rules: Sequence[str], numbers: set[str] | None, warnings: list[Problem]
) -> list[Problem]:
    problems: list[Problem] = []
    for index, rule in enumerate(rules):
        path: FieldPath = ("order_by", index)
        field, comma, direction = rule.partition(",")
        if comma and direction in ORDER_DIRECTIONS:
            problems += _check_field_name(field, numbers, path, warnings)
            continue
        likely = _ORDER_MISTAKE.fullmatch(rule)
        if likely is not None:
            # A space or a colon for the comma, spaces, upper case: the intent is clear.
            fixed = f"{likely.group(1)},{likely.group(2).lower()}"
            problems.append(
                (
                    path,
                    f"{excerpt(rule)}: write it {fixed!r} (the field, a comma, then 'asc' or "
                    "'desc' in lower case, no spaces)",
                )
            )
        elif not comma:
            problems.append(
                (
                    path,
                    f"{excerpt(rule)} needs a direction: "
                    f"{excerpt(rule + ',asc')} or {excerpt(rule + ',desc')}",
                )
            )
        else:
            problems.append(
                (
                    path,
                    f"{excerpt(rule)}: the direction must be 'asc' or 'desc' "
                    f"(written 'field,desc', no spaces), got {excerpt(direction)}",
                )
            )
    return problems


def format_path(path: FieldPath) -> str:
    """``filters[0][1]``, ``targets.2``: the way a user finds a value in the YAML.

    A key that is not a plain name (it came from the file: spaces, control characters,
    a thousand characters) is shown quoted and capped: ``['a\\nb']``.
    """
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif not _PLAIN_KEY.fullmatch(segment):
            text += f"[{excerpt(segment)}]"
        else:
            text += f".{segment}" if text else segment
    return text
