"""The job config loader, as a user sees it: jobs that load, and errors that say where."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

import intersect_batch.config as config_module
import intersect_batch.config._parse as parse_module
from intersect_batch.config import Job, LoadResult, job_file_schema, load_jobs
from intersect_batch.config._parse import PurePythonParser

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SCHEMA_FILE = CONFIGS / "intersect-batch.schema.json"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_one(tmp_path: Path, text: str, name: str = "jobs.yaml") -> tuple[LoadResult, Path]:
    path = write(tmp_path, name, text)
    return load_jobs(tmp_path), path


def messages(result: LoadResult) -> list[str]:
    return [str(error) for error in result.errors]


def ids(result: LoadResult) -> list[str]:
    return [entry.job.id for entry in result.jobs]


# --- valid folders -----------------------------------------------------------------------


def test_valid_folder_loads_jobs_in_file_order_with_defaults_merged(tmp_path: Path) -> None:
    write(
        tmp_path,
        "b-second.yml",
        """
        jobs:
          - id: email-gap
            targets: [mailchimp.com, klaviyo.com]
        """,
    )
    first = write(
        tmp_path,
        "a-first.yaml",
        """
        # comment
        defaults:
          exclude_targets: [pipedrive.com]
          page_size: 500
          rank_scale: one_hundred
        jobs:
          - id: crm-link-gap
            targets: [hubspot.com, salesforce.com, "https://zoho.com/crm/"]
          - id: crm-override
            targets: [hubspot.com]
            page_size: 100
            exclude_targets: null
            max_items: 250
        """,
    )
    write(tmp_path, ".hidden.yaml", "not: [valid")  # editor backups are not job files
    write(tmp_path, "notes.txt", "jobs: nope")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "deeper.yaml", "jobs: nope")  # not recursive

    result = load_jobs(tmp_path)

    assert result.errors == []
    assert result.files == [first, tmp_path / "b-second.yml"]
    assert ids(result) == ["crm-link-gap", "crm-override", "email-gap"]
    gap, override, email = result.jobs
    assert (gap.file, gap.line) == (first, 7)
    assert (override.file, override.line) == (first, 9)
    assert email.line == 2
    assert gap.job.targets == {
        "1": "hubspot.com",
        "2": "salesforce.com",
        "3": "https://zoho.com/crm/",
    }
    assert gap.job.exclude_targets == ["pipedrive.com"]
    assert (gap.job.page_size, gap.job.max_items, gap.job.rank_scale) == (500, None, "one_hundred")
    # The job's own values win over the defaults, null included.
    assert override.job.page_size == 100
    assert override.job.exclude_targets is None
    assert override.job.max_items == 250
    assert override.job.rank_scale == "one_hundred"
    # No defaults: the crawler's own.
    assert (email.job.page_size, email.job.max_items, email.job.rank_scale) == (1000, None, None)


def test_mapping_form_targets_are_accepted_and_ordered(tmp_path: Path) -> None:
    result, _ = load_one(
        tmp_path,
        """
        jobs:
          - id: int-keys
            targets:
              2: salesforce.com
              1: hubspot.com
          - id: str-keys
            targets: {"1": "https://www.hubspot.com/sales", "2": zoho.com}
        """,
    )
    assert result.errors == []
    first, second = (entry.job for entry in result.jobs)
    assert list(first.targets.items()) == [("1", "hubspot.com"), ("2", "salesforce.com")]
    assert second.targets == {"1": "https://www.hubspot.com/sales", "2": "zoho.com"}


def test_a_single_file_can_be_given_instead_of_a_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "one.yaml", "jobs: [{id: one, targets: [a.com]}]\n")
    result = load_jobs(path)
    assert (ids(result), result.files, result.errors) == (["one"], [path], [])


def test_api_params_of_a_full_job(tmp_path: Path) -> None:
    result, _ = load_one(
        tmp_path,
        """
        jobs:
          - id: full
            targets: [hubspot.com, "https://www.salesforce.com/crm/"]
            exclude_targets: [pipedrive.com, "https://zoho.com/blog/*"]
            backlinks_status_type: all
            filters: [["1.dofollow", "=", "true"], "and", ["intersections_count", ">", 1]]
            order_by: ["1.domain_from_rank,desc", "intersections_count,asc"]
            include_subdomains: false
            include_indirect_links: true
            exclude_internal_backlinks: false
            intersection_mode: partial
            rank_scale: one_thousand
            internal_list_limit: 50
            tag: nightly
            page_size: 250
            max_items: 900
        """,
    )
    assert result.errors == []
    job = result.jobs[0].job
    params = job.api_params()
    assert params == {
        "targets": {"1": "hubspot.com", "2": "https://www.salesforce.com/crm/"},
        "exclude_targets": ["pipedrive.com", "https://zoho.com/blog/*"],
        "backlinks_status_type": "all",
        "filters": [["1.dofollow", "=", "true"], "and", ["intersections_count", ">", 1]],
        "order_by": ["1.domain_from_rank,desc", "intersections_count,asc"],
        "internal_list_limit": 50,
        "include_subdomains": False,
        "include_indirect_links": True,
        "exclude_internal_backlinks": False,
        "intersection_mode": "partial",
        "rank_scale": "one_thousand",
        "tag": "nightly",
    }
    # It encodes as the API wants it.
    assert msgspec.json.decode(msgspec.json.encode(params)) == params
    # What the crawler owns is not a task field; the params are a copy.
    assert "limit" not in params and "offset" not in params and "page_size" not in params
    params["filters"].clear()
    assert job.filters and len(job.filters) == 3


def test_api_params_leave_out_what_is_not_set() -> None:
    job = Job(id="bare", targets={"1": "a.com"})
    assert job.api_params() == {"targets": {"1": "a.com"}}


# --- file-level problems -------------------------------------------------------------------


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = load_jobs(missing)
    assert messages(result) == [f"{missing}: no such folder; give the folder of job files"]
    assert (result.jobs, result.files) == ([], [])


@pytest.mark.parametrize("extra", [None, "README.md"])
def test_folder_without_yaml_files_is_an_error(tmp_path: Path, extra: str | None) -> None:
    if extra:
        write(tmp_path, extra, "# jobs\n")
    result = load_jobs(tmp_path)
    assert messages(result) == [
        f"{tmp_path}: no job files here: expected *.yaml or *.yml files with a 'jobs:' list"
    ]


@pytest.mark.parametrize(
    ("parser", "problem"),
    [
        # libyaml's words (the default parser) and PyYAML's own (without libyaml).
        (None, "did not find expected ',' or ']'"),
        (PurePythonParser, "expected ',' or ']', but got ':'"),
    ],
)
def test_yaml_syntax_error_names_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parser: type | None, problem: str
) -> None:
    if parser is not None:
        monkeypatch.setattr(parse_module, "DEFAULT_PARSER", parser)
    result, path = load_one(
        tmp_path,
        """
        jobs:
          - id: a
            targets: [a.com, b.com
          - id: b
        """,
    )
    assert messages(result) == [
        f"{path}:4: YAML syntax error: {problem} "
        "(while parsing a flow sequence at line 3); no job of this file was loaded"
    ]
    assert result.jobs == []


def test_invalid_file_does_not_stop_a_valid_one(tmp_path: Path) -> None:
    broken = write(tmp_path, "a-broken.yaml", "jobs:\n  - id: x\n    targets: [a.com\n")
    write(tmp_path, "b-good.yaml", "jobs:\n  - id: good\n    targets: [hubspot.com]\n")
    write(
        tmp_path,
        "c-bad-defaults.yaml",
        "defaults: {page_size: 0}\njobs: [{id: y, targets: [a.com]}]\n",
    )
    result = load_jobs(tmp_path)
    assert ids(result) == ["good"]
    assert len(result.errors) == 2
    assert str(result.errors[0]).startswith(f"{broken}:4: YAML syntax error: ")
    assert str(result.errors[1]) == (
        f"{tmp_path / 'c-bad-defaults.yaml'}:1: defaults.page_size: Expected `int` >= 1, got 0; "
        "no job of this file was loaded"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    result, path = load_one(
        tmp_path,
        """
        job:
          - id: a
            targets: [a.com]
        """,
    )
    assert messages(result) == [
        f"{path}:1: job: unknown field 'job'; did you mean 'jobs'? the top level holds 'jobs:' "
        "and optionally 'defaults:'; no job of this file was loaded"
    ]


def test_job_field_at_top_level_says_where_it_belongs(tmp_path: Path) -> None:
    result, path = load_one(tmp_path, "page_size: 10\njobs: []\n")
    assert messages(result) == [
        f"{path}:1: page_size: unknown field 'page_size'; job fields go under 'jobs:' "
        "(or 'defaults:'); no job of this file was loaded"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty; expected a 'jobs:' list"),
        (
            "- id: a\n",
            "expected a mapping with 'jobs:' (and optionally 'defaults:') at the top, "
            "got a list; no job of this file was loaded",
        ),
        ("defaults: {}\n", "required field is missing; no job of this file was loaded"),
    ],
)
def test_bad_top_level(tmp_path: Path, text: str, expected: str) -> None:
    result, path = load_one(tmp_path, text)
    assert [(e.file, e.message) for e in result.errors] == [(str(path), expected)]


def test_unknown_key_in_defaults_drops_the_file(tmp_path: Path) -> None:
    result, path = load_one(
        tmp_path,
        """
        defaults:
          page_size: 100
          rank_scal: one_hundred
        jobs:
          - id: a
            targets: [a.com]
        """,
    )
    assert messages(result) == [
        f"{path}:3: defaults.rank_scal: unknown field 'rank_scal'; did you mean 'rank_scale'?; "
        "no job of this file was loaded"
    ]
    assert result.jobs == []


def test_id_in_defaults(tmp_path: Path) -> None:
    result, path = load_one(tmp_path, "defaults:\n  id: x\njobs: []\n")
    assert messages(result) == [
        f"{path}:2: defaults.id: unknown field 'id'; each job needs its own id; "
        "no job of this file was loaded"
    ]


# --- job-level problems ------------------------------------------------------------------

GOOD_JOB = """
  - id: good
    targets: [hubspot.com]
"""


def load_job(tmp_path: Path, job: str) -> tuple[LoadResult, Path]:
    """A file with the given job first (its `- id:` on line 2) and a valid job after it."""
    text = "jobs:\n" + textwrap.indent(textwrap.dedent(job).strip("\n"), "  ") + GOOD_JOB
    path = write(tmp_path, "jobs.yaml", text)
    result = load_jobs(tmp_path)
    assert ids(result) == ["good"], "one bad job must not hide the file's other jobs"
    return result, path


def job_errors(tmp_path: Path, job: str) -> list[str]:
    result, path = load_job(tmp_path, job)
    prefix = f"{path}:"
    assert all(message.startswith(prefix) for message in messages(result))
    return [message.removeprefix(prefix) for message in messages(result)]


def test_load_job_helper_writes_the_job_first(tmp_path: Path) -> None:
    result, path = load_job(tmp_path, "- id: x\n  targets: [a.com]\n  page_size: 0\n")
    assert path.read_text().splitlines()[:2] == ["jobs:", "  - id: x"]
    assert [error.line for error in result.errors] == [4]


def test_unknown_key_in_a_job(tmp_path: Path) -> None:
    assert job_errors(
        tmp_path,
        """
        - id: crm
          targets: [a.com]
          page_sise: 10
        """,
    ) == ["4: job 'crm': page_sise: unknown field 'page_sise'; did you mean 'page_size'?"]


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("limit", "the API's limit per call is 'page_size'"),
        ("offset", "offsets are chosen by the crawler; to stop early use 'max_items'"),
    ],
)
def test_unknown_api_paging_keys_point_to_the_crawl_fields(
    tmp_path: Path, key: str, hint: str
) -> None:
    assert job_errors(tmp_path, f"- id: crm\n  targets: [a.com]\n  {key}: 10\n") == [
        f"4: job 'crm': {key}: unknown field {key!r}; {hint}"
    ]


def test_missing_targets(tmp_path: Path) -> None:
    assert job_errors(tmp_path, "- id: crm\n  tag: x\n") == [
        "2: job 'crm': targets: required field is missing"
    ]


def test_a_job_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert job_errors(tmp_path, "- crm-link-gap\n") == [
        "2: jobs[0]: expected a job (a mapping with 'id' and 'targets'), got a string"
    ]


def test_more_than_20_targets(tmp_path: Path) -> None:
    targets = ", ".join(f"site{n}.com" for n in range(21))
    assert job_errors(tmp_path, f"- id: big\n  targets: [{targets}]\n") == [
        "3: job 'big': targets: Expected `array` of length <= 20, got 21"
    ]


def test_20_targets_are_fine(tmp_path: Path) -> None:
    targets = ", ".join(f"site{n}.com" for n in range(20))
    result, _ = load_one(tmp_path, f"jobs:\n  - id: big\n    targets: [{targets}]\n")
    assert result.errors == []
    assert list(result.jobs[0].job.targets)[-1] == "20"


def test_more_than_10_exclude_targets(tmp_path: Path) -> None:
    excludes = "\n".join(f"    - site{n}.com" for n in range(11))
    assert job_errors(
        tmp_path, f"- id: ex\n  targets: [a.com]\n  exclude_targets:\n{excludes}\n"
    ) == ["4: job 'ex': exclude_targets: Expected `array` of length <= 10, got 11"]


def test_targets_as_a_bare_string(tmp_path: Path) -> None:
    assert job_errors(tmp_path, "- id: one\n  targets: hubspot.com\n") == [
        "3: job 'one': targets: Expected `object | array`, got `str`; "
        "write a list, like: targets: [example.com, example.org]"
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "www.hubspot.com",
            "'www.hubspot.com': write domains without 'www.' and without '/': 'hubspot.com'",
        ),
        (
            "hubspot.com/",
            "'hubspot.com/': write domains without 'www.' and without '/': 'hubspot.com'",
        ),
        (
            "hubspot.com/blog",
            "'hubspot.com/blog' is a page without a scheme; write its full URL, "
            "e.g. 'https://hubspot.com/blog' (or just the domain 'hubspot.com')",
        ),
        (
            "ftp://hubspot.com/x",
            "'ftp://hubspot.com/x': only http:// and https:// URLs are accepted; "
            "for a whole domain write it without a scheme: 'hubspot.com'",
        ),
        (
            "https:/hubspot.com/x",
            "'https:/hubspot.com/x' is not a valid URL; write a page as 'https://example.com/page'",
        ),
        (
            "https:///x",
            "'https:///x' has no valid host; write a page as 'https://example.com/page'",
        ),
        (
            "https://hubspot.com/blog/*",
            "'https://hubspot.com/blog/*': '*' is only allowed in exclude_targets",
        ),
        ("hub spot.com", "'hub spot.com' contains spaces; remove them"),
        (
            "hubspot",
            "'hubspot' is not a valid domain; write a domain like 'example.com' "
            "or a page URL like 'https://example.com/pricing'",
        ),
        (
            "",
            "empty target; write a domain like 'example.com' "
            "or a page URL like 'https://example.com/pricing'",
        ),
    ],
)
def test_target_spelling_mistakes_say_how_to_write_it(
    tmp_path: Path, target: str, message: str
) -> None:
    assert job_errors(
        tmp_path, f"- id: spell\n  targets:\n    - zoho.com\n    - {json.dumps(target)}\n"
    ) == [f"5: job 'spell': targets[1]: {message}"]


@pytest.mark.parametrize(
    "target",
    [
        "hubspot.com",
        "blog.hubspot.com",
        "www2.hubspot.com",
        "https://www.hubspot.com/",
        "http://hubspot.com/pricing?plan=pro",
        "https://hubspot.com",
        "xn--bcher-kva.de",
    ],
)
def test_well_written_targets_load(tmp_path: Path, target: str) -> None:
    result, _ = load_one(tmp_path, f"jobs:\n  - id: ok\n    targets: [{json.dumps(target)}]\n")
    assert result.errors == []


def test_duplicate_targets_and_excludes(tmp_path: Path) -> None:
    assert job_errors(
        tmp_path,
        """
        - id: dup
          targets: [hubspot.com, HubSpot.com]
          exclude_targets: [zoho.com, zoho.com, hubspot.com]
        """,
    ) == [
        "3: job 'dup': targets[1]: 'HubSpot.com' is listed twice (also targets[0])",
        "4: job 'dup': exclude_targets[1]: 'zoho.com' is listed twice (also exclude_targets[0])",
        "4: job 'dup': exclude_targets[2]: 'hubspot.com' is also a target (targets[0]); "
        "no page could link to it and not link to it",
    ]


def test_mapping_targets_need_contiguous_numbers(tmp_path: Path) -> None:
    assert job_errors(tmp_path, "- id: gap\n  targets:\n    1: a.com\n    3: b.com\n") == [
        "3: job 'gap': targets: keys must run 1..2 with no gaps; 2 is missing (keys: 1, 3)"
    ]
    assert job_errors(tmp_path, "- id: key\n  targets:\n    1: a.com\n    first: b.com\n") == [
        "5: job 'key': targets.first: key 'first' is not a target number; use 1..N"
    ]
    assert job_errors(tmp_path, "- id: val\n  targets:\n    1: a.com\n    2: 5\n") == [
        "5: job 'val': targets.2: Expected `str`, got `int`"
    ]


def test_more_than_8_filter_conditions(tmp_path: Path) -> None:
    # Nested conditions count too: 5 flat + 4 in a group.
    flat = ", ".join(['["1.rank", ">", 1]', '"or"'] * 4) + ', ["1.rank", ">", 1]'
    group = ", ".join(['["2.rank", ">", 1]', '"or"'] * 3) + ', ["2.rank", ">", 1]'
    nested = f'[{flat}, "and", [{group}]]'
    errors = job_errors(tmp_path, f"- id: many\n  targets: [a.com, b.com]\n  filters: {nested}\n")
    assert errors == ["4: job 'many': filters: has 9 conditions; the API allows at most 8"]


def test_8_filter_conditions_are_fine(tmp_path: Path) -> None:
    flat = ", ".join(['["1.rank", ">", 1]', '"or"'] * 7) + ', ["1.rank", ">", 1]'
    result, _ = load_one(
        tmp_path, f"jobs:\n  - id: ok\n    targets: [a.com]\n    filters: [{flat}]\n"
    )
    assert result.errors == []


def test_filter_mistakes_name_the_element(tmp_path: Path) -> None:
    result, path = load_job(
        tmp_path,
        """
        - id: filt
          targets: [hubspot.com, zoho.com]
          filters:
            - ["1.rank", "==", 80]
            - AND
            - [["2.rank", "~", 1], "or", ["3.rank", ">", 1]]
            - and
            - ["rank", "in", 5]
            - or
        """,
    )
    assert [m.removeprefix(f"{path}:") for m in messages(result)] == [
        "5: job 'filt': filters[0][1]: unknown operator '=='; use '='",
        "6: job 'filt': filters[1]: expected 'and' or 'or' between conditions, got 'AND'; "
        "write it in lower case",
        "7: job 'filt': filters[2][0][1]: unknown operator '~'; use one of: regex, not_regex, "
        "=, <>, <, <=, >, >=, in, not_in, like, not_like, ilike, not_ilike, match, not_match",
        "7: job 'filt': filters[2][2][0]: '3.rank' refers to target 3, but this job has "
        "2 targets (1..2)",
        "9: job 'filt': filters[4][2]: 'in' takes a list of values, like ['a', 'b']",
        "4: job 'filt': filters: ends with 'or': a condition must follow it",
    ]
    # A field without a target number is the API's own spelling: a warning, not an error.
    assert [str(w).removeprefix(f"{path}:") for w in result.warnings] == [
        "9: job 'filt': filters[4][0]: 'rank' has no target number: the API may apply it to "
        "target 1 or reject the task with 40501 (which costs nothing); write '1.rank' to say "
        "which target it is about"
    ]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ('["1.rank", ">"]', "filters: a condition is [field, operator, value], got 2 elements"),
        (
            '[["1.rank", ">", 1], "xor", ["1.rank", "<", 9]]',
            "filters[1]: expected 'and' or 'or' between conditions, got 'xor'",
        ),
        (
            '[["1.rank", ">", 1], "and", "and"]',
            "filters[2]: expected a condition, got a second joiner 'and'",
        ),
        ('["1.rank", "=", [1, 2]]', "filters[2]: '=' takes one value, not a list"),
        (
            '["1.first_seen", ">", 2024-01-31 00:00:00 +00:00]',
            "filters[2]: a date must be quoted in YAML: '2024-01-31 00:00:00 +00:00'",
        ),
        (
            '["2.rank", ">", 1]',
            "filters[0]: '2.rank' refers to target 2, but this job has 1 target (1..1)",
        ),
        (
            '[["1.Rank", ">", 1]]',
            "filters[0][0]: '1.Rank' is not a field name; write it like '1.rank'",
        ),
    ],
)
def test_one_filter_mistake(tmp_path: Path, filters: str, message: str) -> None:
    assert job_errors(tmp_path, f"- id: f\n  targets: [a.com]\n  filters: {filters}\n") == [
        f"4: job 'f': {message}"
    ]


def test_more_than_3_order_rules(tmp_path: Path) -> None:
    rules = (
        '["1.rank,desc", "1.page_from_rank,desc", "intersections_count,desc", "1.first_seen,asc"]'
    )
    assert job_errors(tmp_path, f"- id: o\n  targets: [a.com]\n  order_by: {rules}\n") == [
        "4: job 'o': order_by: Expected `array` of length <= 3, got 4"
    ]


def test_order_rule_mistakes(tmp_path: Path) -> None:
    assert job_errors(
        tmp_path,
        """
        - id: o
          targets: [a.com, b.com]
          order_by:
            - 1.rank,descending
            - 1.rank
            - 3.rank,asc
        """,
    ) == [
        "5: job 'o': order_by[0]: '1.rank,descending': the direction must be 'asc' or 'desc' "
        "(written 'field,desc', no spaces), got 'descending'",
        "6: job 'o': order_by[1]: '1.rank' needs a direction: '1.rank,asc' or '1.rank,desc'",
        "7: job 'o': order_by[2]: '3.rank' refers to target 3, but this job has 2 targets (1..2)",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("page_size", "0", "Expected `int` >= 1, got 0"),
        ("page_size", "1001", "Expected `int` <= 1000, got 1001"),
        ("page_size", "ten", "Expected `int`, got `str`"),
        ("max_items", "0", "Expected `int` >= 1, got 0"),
        ("internal_list_limit", "1001", "Expected `int` <= 1000, got 1001"),
        ("tag", "x" * 256, "Expected `str` of length <= 255, got 256 characters"),
        ("intersection_mode", "any", "Invalid enum value 'any'; use one of: 'all', 'partial'"),
        ("include_subdomains", "maybe", "Expected `bool | null`, got `str`"),
    ],
)
def test_field_limits(tmp_path: Path, field: str, value: str, message: str) -> None:
    assert job_errors(tmp_path, f"- id: lim\n  targets: [a.com]\n  {field}: {value}\n") == [
        f"4: job 'lim': {field}: {message}"
    ]


def test_field_limits_at_their_edges_are_fine(tmp_path: Path) -> None:
    result, _ = load_one(
        tmp_path,
        "jobs:\n  - {id: a, targets: [a.com], page_size: 1, max_items: 1}\n"
        "  - {id: b, targets: [a.com], page_size: 1000, internal_list_limit: 1000}\n",
    )
    assert result.errors == []
    assert [(e.job.page_size, e.job.max_items) for e in result.jobs] == [(1, 1), (1000, None)]


@pytest.mark.parametrize("job_id", ["CRM", "-crm", "crm gap", "crm/gap", "x" * 101, "élan"])
def test_bad_id_pattern(tmp_path: Path, job_id: str) -> None:
    (error,) = job_errors(tmp_path, f"- id: {json.dumps(job_id)}\n  targets: [a.com]\n")
    if len(job_id) > 100:
        assert (
            error == f"2: job {job_id!r}: id: Expected `str` of length <= 100, got 101 characters"
        )
    else:
        assert error == (
            f"2: job {job_id!r}: id: {job_id!r} is not a valid id: use lower-case letters, "
            "digits, '.', '_' and '-', starting with a letter or digit (^[a-z0-9][a-z0-9._-]*$)"
        )


@pytest.mark.parametrize("job_id", ["crm", "0day", "crm.v2_b-c", "x" * 100])
def test_good_ids(tmp_path: Path, job_id: str) -> None:
    result, _ = load_one(tmp_path, f"jobs:\n  - id: {job_id}\n    targets: [a.com]\n")
    assert (ids(result), result.errors) == ([job_id], [])


def test_duplicate_id_across_files_names_both_places_and_neither_runs(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "a.yaml",
        "jobs:\n  - id: other\n    targets: [a.com]\n  - id: crm\n    targets: [a.com]\n",
    )
    second = write(tmp_path, "b.yaml", "# second\njobs:\n  - id: crm\n    targets: [b.com]\n")
    result = load_jobs(tmp_path)
    assert ids(result) == ["other"]
    assert messages(result) == [
        f"{second}:3: job 'crm': id: the id is used 2 times ({first}:4 and {second}:3); ids "
        "name the output files, so each must be unique across the folder: none of these jobs "
        "will run"
    ]


def test_error_from_a_default_points_at_the_defaults(tmp_path: Path) -> None:
    result, path = load_one(
        tmp_path,
        """
        defaults:
          order_by: ["3.rank,desc"]
        jobs:
          - id: three
            targets: [a.com, b.com, c.com]
          - id: two
            targets: [a.com, b.com]
        """,
    )
    assert ids(result) == ["three"]
    assert messages(result) == [
        f"{path}:2: job 'two': defaults.order_by[0]: '3.rank' refers to target 3, "
        "but this job has 2 targets (1..2)"
    ]


def test_every_problem_of_a_job_is_reported(tmp_path: Path) -> None:
    errors = job_errors(
        tmp_path,
        """
        - id: many
          targets: [www.a.com, b.com/x]
          exclude_targets: ["c.com/*"]
        """,
    )
    assert [error.split(": ")[2] for error in errors] == [
        "targets[0]",
        "targets[1]",
        "exclude_targets[0]",
    ]


# --- the public door and the schema --------------------------------------------------------


def test_public_names() -> None:
    # The order is ruff's (RUF022): constants, classes, functions.
    assert set(config_module.__all__) == {
        "ConfigLimits",
        "ConfigWarning",
        "Job",
        "JobEntry",
        "LoadResult",
        "RESERVED_ID_SUFFIXES",
        "job_file_schema",
        "load_jobs",
    }
    assert len(config_module.__all__) == len(set(config_module.__all__))


def test_committed_schema_is_the_generated_one() -> None:
    committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == job_file_schema(), (
        "configs/intersect-batch.schema.json is stale; regenerate it with: .venv/bin/python -c "
        "'import json; from intersect_batch.config import job_file_schema as s; "
        "print(json.dumps(s(), indent=2))' > configs/intersect-batch.schema.json"
    )


def test_schema_shows_the_limits() -> None:
    defs = job_file_schema()["$defs"]
    job = defs["JobConfig"]
    assert job["additionalProperties"] is False
    assert set(job["required"]) == {"id", "targets"}
    props = job["properties"]
    assert props["id"]["pattern"] == "^[a-z0-9][a-z0-9._-]*$"
    assert props["id"]["maxLength"] == 100
    assert [
        branch["maxItems" if branch["type"] == "array" else "maxProperties"]
        for branch in props["targets"]["anyOf"]
    ] == [20, 20]
    assert props["exclude_targets"]["anyOf"][0]["maxItems"] == 10
    assert props["order_by"]["anyOf"][0]["maxItems"] == 3
    assert props["page_size"] == {
        **props["page_size"],
        "minimum": 1,
        "maximum": 1000,
        "default": 1000,
    }
    assert props["max_items"]["anyOf"][0]["minimum"] == 1
    assert props["tag"]["anyOf"][0]["maxLength"] == 255
    assert defs["FilterCondition"]["prefixItems"][1]["enum"][:3] == ["regex", "not_regex", "="]
    assert "id" not in defs["JobDefaults"]["properties"]
    assert defs["JobFile"]["additionalProperties"] is False


def example_files() -> list[Path]:
    return sorted(CONFIGS.glob("*.yaml"))


def test_examples_carry_the_modeline_and_say_what_they_are_for() -> None:
    assert len(example_files()) >= 2
    for path in example_files():
        first, second, third = path.read_text(encoding="utf-8").splitlines()[:3]
        assert first == "# yaml-language-server: $schema=./intersect-batch.schema.json", path
        assert second.startswith("#") and third.startswith("# ") and len(third) > 20, path


def test_examples_load_without_errors() -> None:
    result = load_jobs(CONFIGS)
    assert messages(result) == []
    jobs = {entry.job.id: entry.job for entry in result.jobs}
    gap = jobs["crm-link-gap"]
    assert len(gap.targets) >= 2 and gap.exclude_targets
    assert any(job.page_size < 1000 for job in jobs.values())
    assert any(job.filters and job.order_by for job in jobs.values())
    assert any(job.max_items is not None for job in jobs.values())


# A small JSON Schema checker for the keywords job_file_schema() uses: the `jsonschema`
# package is not a dependency of this project.
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "boolean": bool,
    "null": type(None),
}


def schema_problems(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Why ``value`` does not match ``schema`` (empty: it matches)."""
    if "$ref" in schema:
        return schema_problems(value, defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema and all(schema_problems(value, s, defs) for s in schema["anyOf"]):
        return [f"{value!r} matches none of anyOf"]
    kind = schema.get("type")
    is_bool_as_int = kind == "integer" and isinstance(value, bool)
    if (kind is not None and not isinstance(value, JSON_TYPES[kind])) or is_bool_as_int:
        return [f"{value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{value!r} not in {schema['enum']}"]
    if isinstance(value, str):
        return string_problems(value, schema)
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = schema.get("minimum", value), schema.get("maximum", value)
        return [] if low <= value <= high else [f"{value} is out of range"]
    if isinstance(value, list):
        return array_problems(value, schema, defs)
    if isinstance(value, dict):
        return object_problems({str(k): v for k, v in value.items()}, schema, defs)
    return []


def string_problems(value: str, schema: dict[str, Any]) -> list[str]:
    problems = []
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{value!r} does not match {schema['pattern']}")
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        problems.append(f"{value!r} has a bad length")
    return problems


def array_problems(value: list[Any], schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    problems = []
    if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
        problems.append(f"{len(value)} items is a bad count")
    if schema.get("uniqueItems") and len({json.dumps(item) for item in value}) != len(value):
        problems.append("duplicate items")
    prefix = schema.get("prefixItems", [])
    for index, item in enumerate(value):
        item_schema = prefix[index] if index < len(prefix) else schema.get("items", {})
        problems += schema_problems(item, item_schema, defs)
    return problems


def object_problems(
    value: dict[str, Any], schema: dict[str, Any], defs: dict[str, Any]
) -> list[str]:
    problems = [f"missing {key}" for key in schema.get("required", []) if key not in value]
    if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", len(value)):
        problems.append(f"{len(value)} properties is a bad count")
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        problems += schema_problems(key, schema.get("propertyNames", {}), defs)
        if key in properties:
            problems += schema_problems(item, properties[key], defs)
        elif extra is False:
            problems.append(f"unknown property {key}")
        elif isinstance(extra, dict):
            problems += schema_problems(item, extra, defs)
    return problems


def test_examples_validate_against_the_schema() -> None:
    schema = job_file_schema()
    for path in example_files():
        document = msgspec.yaml.decode(path.read_bytes())
        assert schema_problems(document, schema, schema["$defs"]) == [], path


@pytest.mark.parametrize(
    "document",
    [
        {"jobs": [{"id": "x", "targets": ["a.com"], "limit": 5}]},
        {"jobs": [{"id": "X", "targets": ["a.com"]}]},
        {"jobs": [{"id": "x", "targets": [f"s{n}.com" for n in range(21)]}]},
        {"jobs": [{"id": "x", "targets": ["www.a.com"]}]},
        {"jobs": [{"id": "x", "targets": ["a.com"], "page_size": 1001}]},
        {"jobs": [{"id": "x", "targets": ["a.com"], "filters": ["1.rank", "==", 1]}]},
        {"jobs": [{"id": "x", "targets": ["a.com"], "order_by": ["rank,down"]}]},
        {"jobs": [{"id": "x", "targets": {"one": "a.com"}}]},
        {"defaults": {"id": "x"}, "jobs": []},
        {"jobs": [{"targets": ["a.com"]}]},
    ],
)
def test_schema_rejects_what_the_loader_rejects(tmp_path: Path, document: dict[str, Any]) -> None:
    schema = job_file_schema()
    assert schema_problems(document, schema, schema["$defs"]) != []
    write(tmp_path, "doc.yaml", json.dumps(document))
    assert load_jobs(tmp_path).errors != []
