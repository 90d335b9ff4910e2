"""Config rules a user meets: the API's own spellings (warnings), ids whose output files
would collide, and a sort rule written with a space instead of a comma."""

from __future__ import annotations

import os
import random
import re
import textwrap
from pathlib import Path

import pytest

from intersect_batch import cli
from intersect_batch.config import RESERVED_ID_SUFFIXES, ConfigWarning, LoadResult, load_jobs
from intersect_batch.errors import ConfigError

UNNUMBERED = (
    "has no target number: the API may apply it to target 1 or reject the task with 40501 "
    "(which costs nothing); write '1.rank' to say which target it is about"
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def ids(result: LoadResult) -> list[str]:
    return [entry.job.id for entry in result.jobs]


# --- 5. fields without a target number: the API's own examples --------------------------


def test_sort_and_filter_fields_without_a_number_load_with_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        jobs:
          - id: api-example
            targets: [hubspot.com, zoho.com]
            order_by: ["rank,desc", "intersections_count,desc"]
            filters: [["rank", ">", 10], "and", ["intersections_count", ">", 1]]
        """,
    )
    result = load_jobs(tmp_path)
    assert (ids(result), result.errors) == (["api-example"], [])
    assert result.jobs[0].job.api_params()["order_by"] == ["rank,desc", "intersections_count,desc"]
    assert [warning.describe() for warning in result.warnings] == [
        f"{path}:5: job 'api-example': filters[0][0]: 'rank' {UNNUMBERED}",
        f"{path}:4: job 'api-example': order_by[0]: 'rank' {UNNUMBERED}",
    ]


def test_a_warning_from_the_defaults_is_given_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """
        defaults:
          order_by: ["rank,desc"]
        jobs:
          - {id: one, targets: [a.com]}
          - {id: two, targets: [b.com]}
          - {id: own, targets: [c.com], order_by: ["rank,asc"]}
        """,
    )
    result = load_jobs(tmp_path)
    assert (ids(result), result.errors) == (["one", "two", "own"], [])
    assert [str(warning) for warning in result.warnings] == [
        f"{path}:2: defaults.order_by[0]: 'rank' {UNNUMBERED}",
        f"{path}:6: job 'own': order_by[0]: 'rank' {UNNUMBERED}",
    ]


def test_numbered_fields_and_intersections_count_need_no_warning(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        jobs:
          - id: clean
            targets: [a.com]
            order_by: ["1.rank,desc", "intersections_count,asc"]
            filters: ["intersections_count", ">", 1]
        """,
    )
    result = load_jobs(tmp_path)
    assert (ids(result), result.errors, result.warnings) == (["clean"], [], [])


def test_a_warning_reads_like_an_error() -> None:
    warning = ConfigWarning(
        message="m", file="configs/a.yaml", line=7, job="crm-link-gap", field="order_by[0]"
    )
    error = ConfigError("m", file="configs/a.yaml", line=7, job="crm-link-gap", field="order_by[0]")
    assert warning.describe() == error.describe()
    assert str(warning) == "configs/a.yaml:7: job 'crm-link-gap': order_by[0]: m"
    assert ConfigWarning(message="m", file="a.yaml").describe() == "a.yaml: m"


def test_validate_prints_warnings_and_keeps_its_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path, "a.yaml", "jobs:\n  - {id: w, targets: [a.com], order_by: ['rank,desc']}\n"
    )
    assert cli.main(["validate", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == f"warning: {path}:2: job 'w': order_by[0]: 'rank' {UNNUMBERED}\n"
    assert captured.out == "1 valid job(s) in 1 file(s), 0 error(s), 1 warning(s)\n"
    write(tmp_path, "b.yaml", "jobs:\n  - {id: bad, targets: [a.com], page_size: 0}\n")
    assert cli.main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["error", "warning"]


# --- 6. ids whose output files would collide ---------------------------------------------


def run_folder_names(job_id: str) -> list[str]:
    """Every name the run folder gives a job (see README, 'Output')."""
    return [
        f"{job_id}.jsonl",
        f"{job_id}.manifest.json",
        f"{job_id}.diff.jsonl",
        f"{job_id}.opportunities.csv",
        f".state/{job_id}.part",
        f".state/{job_id}.checkpoint.json",
        f".state/{job_id}.spool",
    ]


RUN_FILES = ("run.json", "report.html", "metrics.prom", ".state")
PIECES = (".diff", ".jsonl", ".json", ".manifest", ".part", ".spool", ".checkpoint", ".csv")
TRICKY = [
    "x",
    "x.diff",
    "x.diff.diff",
    "x.jsonl",
    "x.jsonl.diff",
    "x.manifest",
    "x.manifest.json",
    "x.part",
    "x.spool",
    "x.checkpoint",
    "x.opportunities",
    "x.opportunities.csv",
    "x-diff",
    "x.diffs",
    "diff",
    "run",
    "report",
    "metrics",
    "run.json",
    "report.html",
    "metrics.prom",
    "state",
    "a..b",
    "a.",
    "0",
]


def candidate_ids(rng: random.Random, count: int) -> list[str]:
    found = dict.fromkeys(TRICKY)
    while len(found) < count:
        stem = rng.choice("abx0") + "".join(rng.choices("ab.-_", k=rng.randrange(4)))
        found.setdefault(stem + "".join(rng.choices(PIECES, k=rng.randrange(3))))
    return list(found)


def collisions(job_ids: list[str]) -> list[tuple[str, str, str]]:
    """(name, one id, another id) for each name two different jobs would write."""
    owner: dict[str, str] = dict.fromkeys(RUN_FILES, "the run")
    return [
        (name, owner[name], job_id)
        for job_id in job_ids
        for name in run_folder_names(job_id)
        if owner.setdefault(name, job_id) != job_id
    ]


def test_no_two_valid_ids_share_an_output_name(tmp_path: Path) -> None:
    seed = int(os.environ.get("CONFIG_TEST_SEED", "20261130"))
    rng = random.Random(seed)
    candidates = candidate_ids(rng, 3000)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*", job_id) for job_id in candidates)
    # The generator does meet the problem: without a rule, names would collide.
    assert ("x.diff.jsonl", "x", "x.diff") in collisions(candidates)
    rows = "".join(f"  - {{id: '{job_id}', targets: [a.com]}}\n" for job_id in candidates)
    write(tmp_path, "a.yaml", "jobs:\n" + rows)

    result = load_jobs(tmp_path)

    accepted = ids(result)
    assert collisions(accepted) == [], f"seed {seed}"
    refused = {error.job for error in result.errors}
    assert refused == {job_id for job_id in candidates if job_id.endswith(RESERVED_ID_SUFFIXES)}
    assert refused | set(accepted) == set(candidates), f"seed {seed}"
    assert {"run", "report", "metrics", "x.jsonl", "x-diff", "x.diffs"} <= set(accepted)


def test_the_reserved_suffix_and_why() -> None:
    assert RESERVED_ID_SUFFIXES == (".diff",)


def test_an_id_ending_in_diff_says_why_and_what_to_write(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "jobs:\n  - {id: gap.diff, targets: [a.com]}\n")
    assert [str(error) for error in load_jobs(tmp_path).errors] == [
        f"{path}:2: job 'gap.diff': id: an id may not end in '.diff': the run folder writes "
        "the changes of a job 'gap' to 'gap.diff.jsonl', the same name as this job's "
        "results; choose another id, like 'gap-diff'"
    ]


# --- 7. a sort rule with a space or a colon for the comma ------------------------------


@pytest.mark.parametrize(
    ("rule", "fixed"),
    [
        ("1.rank desc", "1.rank,desc"),
        ("1.rank:desc", "1.rank,desc"),
        ("1.rank, desc", "1.rank,desc"),
        ("1.rank ,DESC", "1.rank,desc"),
        ("1.rank,Asc", "1.rank,asc"),
        ("intersections_count  asc", "intersections_count,asc"),
    ],
)
def test_a_sort_rule_badly_joined_gets_the_right_spelling(
    tmp_path: Path, rule: str, fixed: str
) -> None:
    write(tmp_path, "a.yaml", f"jobs:\n  - id: o\n    targets: [a.com]\n    order_by: ['{rule}']\n")
    (error,) = load_jobs(tmp_path).errors
    assert error.message == (
        f"{rule!r}: write it {fixed!r} (the field, a comma, then 'asc' or 'desc' in lower "
        "case, no spaces)"
    )
