"""The shapes of a job config: the YAML as written, the normalized Job, the JSON Schema."""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

# The API's limits (docs/api.md): checked before any call.
MAX_TARGETS = 20
MAX_EXCLUDE_TARGETS = 10
MAX_FILTER_CONDITIONS = 8
MAX_ORDER_RULES = 3
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 1000
MAX_INTERNAL_LIST_LIMIT = 1000
MAX_TAG_LENGTH = 255
MAX_ID_LENGTH = 100

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
# The names a run folder gives each job, in the folder and in its .state/ folder. Two ids
# share a file only when one of these suffixes ends with another of the same folder
# ('.diff.jsonl' ends with '.jsonl': job 'x.diff' writes 'x.diff.jsonl', which is job
# 'x's diff), so the difference ('.diff') may not end an id. No id can reach the run's
# own files: run.json, report.html and metrics.prom end in no job suffix, and ids never
# start with '.' (.state/, the lock, the marker).
JOB_FILE_SUFFIXES = (".jsonl", ".manifest.json", ".diff.jsonl", ".opportunities.csv")
JOB_STATE_SUFFIXES = (".part", ".checkpoint.json", ".spool")
RESERVED_ID_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        {
            longer.removesuffix(shorter)
            for group in (JOB_FILE_SUFFIXES, JOB_STATE_SUFFIXES)
            for longer in group
            for shorter in group
            if longer != shorter and longer.endswith(shorter)
        }
    )
)
FILTER_OPERATORS = (
    "regex",
    "not_regex",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not_in",
    "like",
    "not_like",
    "ilike",
    "not_ilike",
    "match",
    "not_match",
)
FILTER_JOINERS = ("and", "or")
LIST_OPERATORS = ("in", "not_in")
UNPREFIXED_FIELDS = ("intersections_count",)
ORDER_DIRECTIONS = ("asc", "desc")

# Shown to editors through the JSON Schema only; the loader checks these itself so that
# its messages can say how to fix the value.
# A field without a target number ("rank") is accepted with a warning, as the API's
# reference page writes it so.
_FIELD_PATTERN = r"(?:[1-9][0-9]?\.)?[a-z_][a-z0-9_]*"
_TARGET_PATTERN = r"^(?:https?://[^\s/]+(?:/\S*)?|(?!www\.)[^\s/:?#*]+)$"
_ORDER_PATTERN = rf"^{_FIELD_PATTERN},(?:asc|desc)$"

BacklinksStatusType = Literal["all", "live", "lost"]
IntersectionMode = Literal["all", "partial"]
RankScale = Literal["one_hundred", "one_thousand"]
Refresh = Literal["full", "incremental"]
DEFAULT_FULL_EVERY_DAYS = 7
DEFAULT_OVERLAP_DAYS = 2
CHOICES: dict[str, tuple[str, ...]] = {
    "backlinks_status_type": get_args(BacklinksStatusType),
    "intersection_mode": get_args(IntersectionMode),
    "rank_scale": get_args(RankScale),
    "refresh": ("full", "incremental"),
}

JobId = Annotated[
    str,
    Meta(
        pattern=ID_PATTERN,
        max_length=MAX_ID_LENGTH,
        description=(
            "Unique across the config folder; names the output file <id>.jsonl. "
            "May not end in " + ", ".join(map(repr, RESERVED_ID_SUFFIXES)) + "."
        ),
        examples=["crm-link-gap"],
        extra_json_schema={
            "not": {
                "pattern": "(?:" + "|".join(map(re.escape, RESERVED_ID_SUFFIXES)) + ")$",
            }
        },
    ),
]
# No min_length here: the loader's own check says how to write an empty target.
Target = Annotated[
    str,
    Meta(
        description=(
            "A domain or subdomain without scheme and without 'www.' (example.com), "
            "or a page as an absolute URL (https://example.com/pricing)."
        ),
        extra_json_schema={"pattern": _TARGET_PATTERN, "minLength": 1},
    ),
]
ExcludeTarget = Annotated[
    str,
    Meta(
        description="A domain, subdomain or page URL to exclude; '*' is allowed in URLs.",
        extra_json_schema={"pattern": _TARGET_PATTERN, "minLength": 1},
    ),
]
TargetList = Annotated[
    list[Target],
    Meta(
        min_length=1,
        max_length=MAX_TARGETS,
        extra_json_schema={"uniqueItems": True},
    ),
]
TargetMap = Annotated[
    dict[str, Target],
    Meta(
        min_length=1,
        max_length=MAX_TARGETS,
        extra_json_schema={"propertyNames": {"pattern": "^[1-9][0-9]?$"}},
    ),
]
Targets = Annotated[
    TargetList | TargetMap,
    Meta(
        description=(
            f"1-{MAX_TARGETS} targets: a list, sent as {{'1': ..., 'N': ...}}, "
            "or a mapping with the keys 1..N."
        )
    ),
]
ExcludeTargets = Annotated[
    list[ExcludeTarget],
    Meta(
        max_length=MAX_EXCLUDE_TARGETS,
        description="Referring pages that also link to one of these are left out.",
        extra_json_schema={"uniqueItems": True},
    ),
]
Filters = Annotated[
    list[Any],
    Meta(
        description=(
            f"At most {MAX_FILTER_CONDITIONS} conditions [field, operator, value] joined by "
            "'and'/'or', nested lists allowed. Fields carry the target number: '1.rank'; "
            "'intersections_count' has no prefix."
        ),
        examples=[["1.dofollow", "=", True], [["1.rank", ">", 80], "and", ["2.rank", ">", 80]]],
        extra_json_schema={
            "anyOf": [
                {"$ref": "#/$defs/FilterCondition"},
                {"$ref": "#/$defs/FilterGroup"},
            ]
        },
    ),
]
OrderRule = Annotated[str, Meta(extra_json_schema={"pattern": _ORDER_PATTERN})]
OrderBy = Annotated[
    list[OrderRule],
    Meta(
        max_length=MAX_ORDER_RULES,
        description="At most 3 rules 'field,asc' or 'field,desc', e.g. '1.domain_from_rank,desc'.",
    ),
]
InternalListLimit = Annotated[int, Meta(ge=1, le=MAX_INTERNAL_LIST_LIMIT)]
Tag = Annotated[str, Meta(max_length=MAX_TAG_LENGTH)]
PageSize = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_PAGE_SIZE,
        description="Items per call (the API's 'limit'). Fewer means more, cheaper calls.",
    ),
]
MaxItems = Annotated[
    int,
    Meta(ge=1, description="Stop paging once this many items are fetched; null: all of them."),
]
RefreshMode = Annotated[
    Refresh,
    Meta(
        description=(
            "full: every night fetches every page. incremental: a night asks only for pages "
            "first seen since the last night (with an overlap) and merges them onto it; "
            "a full night still comes every full_every_days."
        )
    ),
]
FullEveryDays = Annotated[
    int,
    Meta(ge=1, le=366, description="With refresh: incremental, a full night at least this often."),
]
OverlapDays = Annotated[
    int,
    Meta(
        ge=0,
        le=366,
        description="With refresh: incremental, days the 'first seen since' cutoff goes back.",
    ),
]


class JobDefaults(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Values every job of this file starts from; a job's own fields win.

    Any job field except 'id'. Optional API fields left out (or null) are not sent,
    so the API's own default applies.
    """

    targets: Targets | None = None
    exclude_targets: ExcludeTargets | None = None
    backlinks_status_type: BacklinksStatusType | None = None
    filters: Filters | None = None
    order_by: OrderBy | None = None
    include_subdomains: bool | None = None
    include_indirect_links: bool | None = None
    exclude_internal_backlinks: bool | None = None
    intersection_mode: IntersectionMode | None = None
    rank_scale: RankScale | None = None
    internal_list_limit: InternalListLimit | None = None
    tag: Tag | None = None
    page_size: PageSize = DEFAULT_PAGE_SIZE
    max_items: MaxItems | None = None
    refresh: RefreshMode = "full"
    full_every_days: FullEveryDays = DEFAULT_FULL_EVERY_DAYS
    incremental_overlap_days: OverlapDays = DEFAULT_OVERLAP_DAYS


class JobConfig(JobDefaults, kw_only=True, forbid_unknown_fields=True):
    """One crawl: the referring pages that link to all (or some) of the targets."""

    id: JobId
    targets: Targets


class JobFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An intersect-batch job file: optional defaults and a list of jobs."""

    jobs: list[JobConfig]
    defaults: JobDefaults | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A validated job, ready to plan: targets keyed "1".."N", None = not sent."""

    id: str
    targets: dict[str, str]
    exclude_targets: list[str] | None = None
    backlinks_status_type: BacklinksStatusType | None = None
    filters: list[Any] | None = None
    order_by: list[str] | None = None
    include_subdomains: bool | None = None
    include_indirect_links: bool | None = None
    exclude_internal_backlinks: bool | None = None
    intersection_mode: IntersectionMode | None = None
    rank_scale: RankScale | None = None
    internal_list_limit: int | None = None
    tag: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    max_items: int | None = None
    refresh: Refresh = "full"
    full_every_days: int = DEFAULT_FULL_EVERY_DAYS
    incremental_overlap_days: int = DEFAULT_OVERLAP_DAYS

    def api_params(self) -> dict[str, Any]:
        """The task's fields except offset and limit: only those set, targets "1".."N"."""
        params: dict[str, Any] = {"targets": dict(self.targets)}
        for name in API_OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                params[name] = copy.deepcopy(value)
        return params


# In the order of the API's reference page.
API_OPTIONAL_FIELDS = (
    "exclude_targets",
    "backlinks_status_type",
    "filters",
    "order_by",
    "internal_list_limit",
    "include_subdomains",
    "include_indirect_links",
    "exclude_internal_backlinks",
    "intersection_mode",
    "rank_scale",
    "tag",
)
JOB_FIELDS: tuple[str, ...] = JobConfig.__struct_fields__

_FILTER_DEFS: dict[str, Any] = {
    "FilterCondition": {
        "title": "FilterCondition",
        "description": "[field, operator, value]; 'in'/'not_in' take a list of values.",
        "type": "array",
        "prefixItems": [
            {"type": "string", "pattern": f"^{_FIELD_PATTERN}$"},
            {"enum": list(FILTER_OPERATORS)},
            {},
        ],
        "minItems": 3,
        "maxItems": 3,
    },
    "FilterGroup": {
        "title": "FilterGroup",
        "description": "Conditions or groups joined by 'and' / 'or': [c1, 'and', c2, 'or', c3].",
        "type": "array",
        "minItems": 1,
        "items": {
            "anyOf": [
                {"$ref": "#/$defs/FilterCondition"},
                {"$ref": "#/$defs/FilterGroup"},
                {"enum": list(FILTER_JOINERS)},
            ]
        },
    },
}


def job_file_schema() -> dict[str, Any]:
    """The JSON Schema of a job file, for editors (yaml-language-server) and validators."""
    schema = msgspec.json.schema(JobFile)
    schema["$defs"].update(copy.deepcopy(_FILTER_DEFS))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "intersect-batch job file",
        **schema,
    }
