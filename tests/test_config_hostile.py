"""The config loader against hostile and odd files: a clean error naming the file, never a
traceback, a hang or a leak of what the file holds; the folder's other jobs still load."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import intersect_batch.config._parse as parse_module
from intersect_batch.config import ConfigLimits, LoadResult, load_jobs
from intersect_batch.config._parse import PurePythonParser

REPO = Path(__file__).resolve().parent.parent
GOOD = "jobs:\n  - id: fine\n    targets: [hubspot.com]\n"
DROPPED = "no job of this file was loaded"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def messages(result: LoadResult) -> list[str]:
    return [str(error) for error in result.errors]


def ids(result: LoadResult) -> list[str]:
    return [entry.job.id for entry in result.jobs]


def with_good_file(folder: Path) -> None:
    """A valid file named to load after the hostile one ('z' sorts last)."""
    write(folder, "z-good.yaml", GOOD)


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test that takes it runs with libyaml's parser and with PyYAML's own."""
    if request.param == "pure-python":
        monkeypatch.setattr(parse_module, "DEFAULT_PARSER", PurePythonParser)
    else:
        assert parse_module.DEFAULT_PARSER is not PurePythonParser, "libyaml is missing"
    return str(request.param)


PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2
LOAD_SCRIPT = """
import json, resource, sys
from pathlib import Path
from intersect_batch.config import load_jobs
result = load_jobs(Path(sys.argv[1]))
print(json.dumps({
    "jobs": [entry.job.id for entry in result.jobs],
    "errors": [str(error) for error in result.errors],
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def load_in_subprocess(folder: Path, *, as_owner: bool = False) -> dict[str, Any]:
    """load_jobs in a child process capped at 2 GB of address space and 30 s.

    ``as_owner``: file permissions apply to the child even when it runs as root.
    """

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
        if as_owner and os.geteuid() == 0:
            # Root reads any file through two capabilities; dropped from the bounding
            # set, the executed child keeps neither.
            libc = ctypes.CDLL(None, use_errno=True)
            for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
                if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    done = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=limit,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


# --- 1. aliases: the "billion laughs" ---------------------------------------------------


def billion_laughs() -> str:
    """Nine levels of nine aliases: 387 million strings once expanded."""
    levels = ['&l0 ["1.rank", ">", 1]'] + [
        f"&l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]" for level in range(1, 9)
    ]
    return "jobs:\n  - id: laughs\n    targets: [a.com]\n    filters:\n" + "".join(
        f"      - {level}\n" for level in levels
    )


def test_an_alias_bomb_is_refused_quickly_and_the_other_files_load(tmp_path: Path) -> None:
    bomb = write(tmp_path, "a-bomb.yaml", billion_laughs())
    with_good_file(tmp_path)
    loaded = load_in_subprocess(tmp_path)
    assert loaded["jobs"] == ["fine"]
    assert loaded["errors"] == [
        f"{bomb}:5: YAML anchors and aliases ('&name', '*name') are not accepted in job "
        f"files; put values shared by several jobs under 'defaults:'; {DROPPED}"
    ]
    # A Python interpreter with the package imported takes about 40 MB.
    assert loaded["peak_mb"] < 150


@pytest.mark.parametrize(
    "text",
    [
        # An anchor alone, an alias to a scalar, a merge key: all refused the same way.
        "jobs:\n  - id: a\n    targets: &t [a.com]\n",
        "defaults:\n  tag: &t nightly\njobs:\n  - {id: a, targets: [a.com], tag: *t}\n",
        "x: &base {page_size: 10}\njobs:\n  - {<<: *base, id: a, targets: [a.com]}\n",
    ],
)
def test_every_anchor_or_alias_is_refused_with_its_line(
    tmp_path: Path, parser: str, text: str
) -> None:
    path = write(tmp_path, "a.yaml", text)
    with_good_file(tmp_path)
    result = load_jobs(tmp_path)
    assert ids(result) == ["fine"]
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "&" in row)
    assert [(e.file, e.line) for e in result.errors] == [(str(path), line)]
    assert result.errors[0].message.startswith("YAML anchors and aliases")


# --- 2. deep nesting ------------------------------------------------------------------


def nested_block(depth: int) -> str:
    keys = "".join(" " * (6 + level) + "a:\n" for level in range(depth))
    return f"jobs:\n  - id: deep\n    targets: [a.com]\n    filters:\n{keys}{' ' * (6 + depth)}x\n"


def nested_flow(depth: int) -> str:
    return f"jobs:\n  - id: deep\n    targets: [a.com]\n    filters: {'[' * depth}{']' * depth}\n"


@pytest.mark.parametrize("text", [nested_block(1000), nested_flow(1000), nested_flow(100_000)])
def test_deep_nesting_is_a_clean_error_and_the_other_files_load(
    tmp_path: Path, parser: str, text: str
) -> None:
    path = write(tmp_path, "a-deep.yaml", text)
    with_good_file(tmp_path)
    result = load_jobs(tmp_path)
    assert ids(result) == ["fine"]
    (error,) = result.errors
    assert error.file == str(path)
    assert error.message == (
        "lists and mappings nested more than 32 levels deep, the limit "
        f"(ConfigLimits.max_depth); a job file needs far fewer; {DROPPED}"
    )
    assert error.line is not None and error.line >= 4


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    # 3 levels (the file, its jobs, the job) + filters and its groups: max_depth in all.
    depth = 8 - 3  # the outermost '[' is the filters list itself
    groups = "[" * depth + '"1.rank", ">", 1' + "]" * depth
    write(tmp_path, "a.yaml", f"jobs:\n  - id: nest\n    targets: [a.com]\n    filters: {groups}\n")
    result = load_jobs(tmp_path, limits=ConfigLimits(max_depth=8))
    assert (ids(result), messages(result)) == (["nest"], [])
    result = load_jobs(tmp_path, limits=ConfigLimits(max_depth=7))
    assert ids(result) == [] and "nested more than 7 levels" in messages(result)[0]


# --- 3. files that are not job files: nothing of them is echoed -------------------------

SECRET = "S3CRETvalue"
NOT_JOB_FILES: dict[str, str | bytes] = {
    "shadow": f"root:$6${SECRET}$abcdef:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n",
    "binary": bytes(range(256)) * 4 + SECRET.encode(),
    "nul": f"token: {SECRET}\x00\n",
    "control": f"token = {SECRET}\x01\n",
    "syntax": f"password: [{SECRET}\n  other: {SECRET}\n",
    "tab": f"\t{SECRET}: x\n",
    "tag-handle": f"!{SECRET}! value\n",
    "credentials-json": f'{{"password": "{SECRET}", "token": "{SECRET}"}}\n',
    "env": f"API_KEY={SECRET}\nOTHER={SECRET}\n",
    "unterminated": f'key: "{SECRET}\n',
    "utf16": f"jobs: {SECRET}\n".encode("utf-16"),
}


@pytest.mark.parametrize("kind", sorted(NOT_JOB_FILES))
def test_a_symlink_to_some_other_file_never_echoes_it(
    tmp_path: Path, parser: str, kind: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = write(elsewhere, "secret", NOT_JOB_FILES[kind])
    configs = tmp_path / "configs"
    configs.mkdir()
    link = configs / "a-link.yaml"
    link.symlink_to(target)
    with_good_file(configs)
    result = load_jobs(configs)
    assert ids(result) == ["fine"]
    (error,) = result.errors
    assert error.file == str(link)
    shown = error.describe().removeprefix(str(link))
    assert SECRET[:4] not in shown, shown
    assert "root" not in shown and "daemon" not in shown and "API_KEY" not in shown, shown
    assert len(shown) < 250
    assert shown.isprintable()


def test_a_shadow_like_file_is_a_yaml_mapping_whose_keys_are_not_quoted(tmp_path: Path) -> None:
    # Each line ending in ':' is a YAML key: the file parses as a mapping.
    path = write(tmp_path, "a.yaml", str(NOT_JOB_FILES["shadow"]))
    assert messages(load_jobs(tmp_path)) == [
        f"{path}:1: an unknown top-level key; the top level holds 'jobs:' and optionally "
        f"'defaults:'; {DROPPED}"
    ]
    write(tmp_path, "a.yaml", "root:*:1:::\nroot:*:1:::\n")
    assert messages(load_jobs(tmp_path)) == [
        f"{path}:2: the key is given twice in one mapping (first on line 1); YAML would keep "
        f"only the last: remove one; {DROPPED}"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"jobs: []\n\x00\n", "2: contains a NUL byte (a binary file?), which YAML does not allow"),
        (b"jobs:\n  - \x1b[31m\n", "2: contains the control character U+001B, which YAML"),
        (b"jobs:\n\n  - id: \xff\xfe\n", "3: not UTF-8 text (a binary file?); job files are"),
    ],
)
def test_binary_content_names_the_line_and_not_the_bytes(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = write(tmp_path, "a.yaml", content)
    with_good_file(tmp_path)
    result = load_jobs(tmp_path)
    assert ids(result) == ["fine"]
    (message,) = messages(result)
    assert message.startswith(f"{path}:{expected}"), message
    assert message.endswith(DROPPED)


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    locked = write(tmp_path, "a-locked.yaml", GOOD.replace("fine", "locked"))
    locked.chmod(0o000)
    with_good_file(tmp_path)
    loaded = load_in_subprocess(tmp_path, as_owner=True)
    assert loaded["jobs"] == ["fine"]
    assert loaded["errors"] == [f"{locked}: cannot read the file: Permission denied; {DROPPED}"]


def test_an_unlistable_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    with_good_file(folder)
    folder.chmod(0o311)  # enter, not list
    loaded = load_in_subprocess(folder, as_owner=True)
    assert (loaded["jobs"], loaded["errors"]) == (
        [],
        [f"{folder}: cannot list the folder: Permission denied"],
    )


# --- 4. size limits ---------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "a-big.yaml"
    with big.open("wb") as handle:  # sparse: nothing is written, nothing is read
        handle.truncate(8 * 1024 * 1024 + 1)
    with_good_file(tmp_path)
    result = load_jobs(tmp_path)
    assert ids(result) == ["fine"]
    assert messages(result) == [
        f"{big}: the file is 8.0 MiB; the limit is 8.0 MiB per file "
        f"(ConfigLimits.max_file_bytes): split the jobs over several files; {DROPPED}"
    ]


def test_the_size_limit_is_a_setting(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", GOOD + "# " + "x" * 1951 + "\n")
    assert path.stat().st_size == 2000
    limits = ConfigLimits(max_file_bytes=1999)
    assert messages(load_jobs(tmp_path, limits=limits)) == [
        f"{path}: the file is 2,000 bytes; the limit is 1,999 bytes per file "
        f"(ConfigLimits.max_file_bytes): split the jobs over several files; {DROPPED}"
    ]
    assert ids(load_jobs(tmp_path, limits=ConfigLimits(max_file_bytes=2000))) == ["fine"]


def jobs_file(folder: Path, name: str, count: int) -> Path:
    rows = "".join(f"  - {{id: {name}-{n}, targets: [a.com]}}\n" for n in range(count))
    return write(folder, f"{name}.yaml", "jobs:\n" + rows)


def test_more_jobs_than_the_limit_load_none_and_name_the_file(tmp_path: Path) -> None:
    jobs_file(tmp_path, "a", 2)
    jobs_file(tmp_path, "b", 2)
    third = jobs_file(tmp_path, "c", 2)
    jobs_file(tmp_path, "d", 2)
    result = load_jobs(tmp_path, limits=ConfigLimits(max_jobs=5))
    assert result.jobs == []
    assert messages(result) == [
        f"{third}:1: jobs: this file's 2 jobs bring the folder to 6 jobs, over the limit "
        "of 5 (ConfigLimits.max_jobs); no job of the folder was loaded: split the jobs "
        "over several folders"
    ]
    assert len(ids(load_jobs(tmp_path, limits=ConfigLimits(max_jobs=8)))) == 8


def test_the_default_limits_keep_a_20000_job_folder_working(tmp_path: Path) -> None:
    for part in range(2):
        jobs_file(tmp_path, f"part{part}", 10_000)
    result = load_jobs(tmp_path)
    assert (len(result.jobs), result.errors) == (20_000, [])


def test_the_value_count_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "jobs: [" + ", ".join(["x"] * 100) + "]\n")
    (message,) = messages(load_jobs(tmp_path, limits=ConfigLimits(max_values=50)))
    assert message == (
        f"{path}:1: more than 50 YAML values in one file, the limit "
        f"(ConfigLimits.max_values): split the jobs over several files; {DROPPED}"
    )


@pytest.mark.parametrize(
    "bad",
    [{"max_jobs": 0}, {"max_file_bytes": -1}, {"max_depth": True}, {"max_values": 1.5}],
)
def test_limits_must_be_positive_integers(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=f"ConfigLimits.{next(iter(bad))} must be"):
        ConfigLimits(**bad)


def test_each_yaml_value_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reading a file once for values and again for line numbers parses it twice: each
    # scalar's type would then be resolved twice.
    text = "jobs:\n  - id: once\n    targets: [a.com, b.com]\n    page_size: 10\n"
    write(tmp_path, "a.yaml", text)
    calls: list[Any] = []
    original: Any = yaml.resolver.BaseResolver.resolve

    def counting(self: Any, kind: Any, value: Any, implicit: Any) -> Any:
        calls.append(value)
        return original(self, kind, value, implicit)

    monkeypatch.setattr(yaml.resolver.BaseResolver, "resolve", counting)
    assert ids(load_jobs(tmp_path)) == ["once"]
    # The values: the file's mapping, 'jobs', the list, the job, 3 keys, 'once', the
    # target list and its 2 targets, 10.
    assert len(calls) == 12


# --- 8. odd files and odd values --------------------------------------------------------


def test_entries_that_are_not_regular_files_are_named_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "a-folder.yaml").mkdir()
    os.mkfifo(tmp_path / "b-pipe.yaml")  # opening it for reading would block
    (tmp_path / "c-broken.yaml").symlink_to(tmp_path / "nowhere")
    (tmp_path / "d-device.yml").symlink_to("/dev/zero")  # reading it would never end
    with_good_file(tmp_path)
    result = load_jobs(tmp_path)
    assert ids(result) == ["fine"]
    assert messages(result) == [
        f"{tmp_path / 'a-folder.yaml'}: a folder, not a regular file; only regular files "
        f"are read as job files; {DROPPED}",
        f"{tmp_path / 'b-pipe.yaml'}: a named pipe (FIFO), not a regular file; only regular "
        f"files are read as job files; {DROPPED}",
        f"{tmp_path / 'c-broken.yaml'}: a broken symbolic link: the file it points to does "
        f"not exist; {DROPPED}",
        f"{tmp_path / 'd-device.yml'}: a character device, not a regular file; only regular "
        f"files are read as job files; {DROPPED}",
    ]


def test_a_fifo_given_as_the_config_path_does_not_block(tmp_path: Path) -> None:
    pipe = tmp_path / "jobs.yaml"
    os.mkfifo(pipe)
    assert messages(load_jobs(pipe)) == [f"{pipe}: not a folder or a file"]


def two_jobs(bad_job: str) -> str:
    """A file whose first job is ``bad_job`` (its '- id:' on line 2) and a good one."""
    body = textwrap.indent(textwrap.dedent(bad_job).strip("\n"), "  ")
    return "jobs:\n" + body + "\n  - id: fine\n    targets: [hubspot.com]\n"


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (
            "- id: twice\n  targets: [a.com]\n  page_size: 10\n  targets: [b.com]",
            "5: job 'twice': targets: the key 'targets' is given twice in one mapping "
            "(first on line 3); YAML would keep only the last: remove one",
        ),
        (
            "- id: huge\n  targets: [a.com]\n  max_items: 100000000000000000000000000000",
            "4: job 'huge': max_items: 100000000000000000000000000000 is too large: integers "
            "must be within ±9,223,372,036,854,775,807",
        ),
        (
            "- id: digits\n  targets: [a.com]\n  max_items: " + "9" * 5000,
            "4: job 'digits': max_items: a number of 5,000 characters is too long",
        ),
        (
            '- id: inf\n  targets: [a.com]\n  filters: ["1.rank", ">", .inf]',
            "4: job 'inf': filters[2]: .inf is not a finite number; JSON, and so the API, "
            "has no infinity or NaN",
        ),
        (
            '- id: big\n  targets: [a.com]\n  filters: ["1.rank", ">", 1.0e+999]',
            "4: job 'big': filters[2]: 1.0e+999 is not a finite number; JSON, and so the API, "
            "has no infinity or NaN",
        ),
        (
            "- id: python\n  targets: [a.com]\n  tag: !!python/object/apply:os.system [id]",
            "4: job 'python': tag: the tag '!!python/object/apply:os.system' is not accepted "
            "in a job file; write plain strings, numbers, true/false, lists and mappings",
        ),
        (
            "- id: binary\n  targets: [a.com]\n  tag: !!binary aGVsbG8=",
            "4: job 'binary': tag: the tag '!!binary' is not accepted in a job file; write "
            "plain strings, numbers, true/false, lists and mappings",
        ),
        (
            "- id: custom\n  targets: !mine [a.com]",
            "3: job 'custom': targets: the tag '!mine' is not accepted in a job file; write "
            "plain strings, numbers, true/false, lists and mappings",
        ),
        (
            "- id: notint\n  targets: [a.com]\n  page_size: !!int ten",
            "4: job 'notint': page_size: 'ten' is not an integer",
        ),
        (
            "- id: unhashable\n  targets: [a.com]\n  ? [x, y]\n  : 1",
            "4: job 'unhashable': jobs[0]: a key must be a name or a number, not a list",
        ),
    ],
)
def test_a_bad_value_drops_its_job_not_the_file(
    tmp_path: Path, parser: str, job: str, expected: str
) -> None:
    path = write(tmp_path, "a.yaml", two_jobs(job))
    result = load_jobs(tmp_path)
    assert ids(result) == ["fine"]
    assert messages(result) == [f"{path}:{expected}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "jobs: []\ndefaults: {}\njobs: []\n",
            "3: the key 'jobs' is given twice in one mapping (first on line 1); YAML would "
            f"keep only the last: remove one; {DROPPED}",
        ),
        (
            "defaults: {page_size: 5, page_size: 6}\njobs: []\n",
            "1: the key 'page_size' is given twice in one mapping (first on line 1); YAML "
            f"would keep only the last: remove one; {DROPPED}",
        ),
        ("[a]: 1\n", f"1: a top-level key must be a name like 'jobs', got a list; {DROPPED}"),
        (
            "jobs: []\n---\njobs: []\n",
            "2: YAML syntax error: but found another document (expected a single document "
            f"in the stream at line 1); {DROPPED}",
        ),
    ],
)
def test_file_level_oddities(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "a.yaml", text)
    with_good_file(tmp_path)
    result = load_jobs(tmp_path)
    assert ids(result) == ["fine"]
    assert messages(result) == [f"{path}:{expected}"]


def test_a_bare_equals_sign_is_the_operator_it_looks_like(tmp_path: Path) -> None:
    # YAML 1.1 gives a lone '=' a tag of its own; PyYAML then cannot build it.
    write(tmp_path, "a.yaml", "jobs:\n  - {id: eq, targets: [a.com], filters: [1.rank, =, 5]}\n")
    result = load_jobs(tmp_path)
    assert messages(result) == []
    assert result.jobs[0].job.filters == ["1.rank", "=", 5]


# --- what messages quote: capped and escaped -------------------------------------------


def test_quoted_values_are_capped_and_escaped(tmp_path: Path) -> None:
    long_target = "a" * 5000 + ".com/x"
    escape = "\x1b]0;pwned\x07evil.com"
    key = "k\x1b[31m" + "x" * 300
    text = json.dumps(
        {
            "jobs": [
                {"id": "long", "targets": [long_target]},
                {"id": "esc", "targets": [escape]},
                {"id": "key", "targets": ["a.com"], key: 1},
                {"id": "x" * 5000, "targets": ["a.com"]},
                {"id": "mode", "targets": ["a.com"], "intersection_mode": "m" * 5000},
            ]
        }
    )
    write(tmp_path, "a.yaml", text)
    result = load_jobs(tmp_path)
    assert result.jobs == []
    texts = messages(result)
    assert len(texts) == 5
    for message in texts:
        assert message.isprintable(), message
        assert len(message) < len(str(tmp_path)) + 600, message
    assert "'" + "a" * 119 + "…' is a page without a scheme" in texts[0]
    assert "'\\x1b]0;pwned\\x07evil.com'" in texts[1]
    assert "unknown field 'k\\x1b[31m" in texts[2]
    assert f"job '{'x' * 119}…': id: Expected `str` of length <= 100" in texts[3]
    assert "Invalid enum value '" + "m" * 119 + "…'; use one of: 'all', 'partial'" in texts[4]
