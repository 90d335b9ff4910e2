"""Reads a folder of YAML job files into validated Jobs and ConfigErrors that name lines."""

from __future__ import annotations

import contextlib
import difflib
import gc
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from ..errors import ConfigError, printable
from ._checks import FieldPath, Problem, check_job, format_path
from ._excerpt import excerpt, label
from ._limits import ConfigLimits
from ._model import CHOICES, ID_PATTERN, JOB_FIELDS, Job, JobConfig, JobDefaults
from ._parse import (
    FileProblem,
    ValueProblem,
    compose,
    construct,
    duplicate_key,
    kind_of,
    read_text,
    scalar_value,
)
from ._warning import ConfigWarning

__all__ = ["JobEntry", "LoadResult", "load_jobs"]

YAML_SUFFIXES = (".yaml", ".yml")
_FILE_DROPPED = "no job of this file was loaded"
# Past this many, a job's problems are summed up: a list of a million bad filter
# elements must not print a million lines.
_MAX_PROBLEMS_PER_JOB = 20
_UNKNOWN_HINTS = {
    "limit": "the API's limit per call is 'page_size'",
    "offset": "offsets are chosen by the crawler; to stop early use 'max_items'",
    "target": "did you mean 'targets'?",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


@dataclass(frozen=True)
class JobEntry:
    """A valid job and where it was written."""

    job: Job
    file: Path
    line: int | None


@dataclass(frozen=True)
class LoadResult:
    """What a config folder holds: the jobs that can run, every problem, and warnings.

    A warning is about a job that loads and runs but may not do what was meant.
    """

    jobs: list[JobEntry]
    errors: list[ConfigError]
    files: list[Path]
    warnings: list[ConfigWarning] = field(default_factory=list)


class _FileShape(msgspec.Struct, forbid_unknown_fields=True):
    """The top level of a job file; the jobs are checked one by one."""

    jobs: list[Any]
    defaults: dict[str, Any] | None = None


@dataclass
class _Folder:
    """What the files of one folder add up to, as they are loaded one by one."""

    limits: ConfigLimits
    entries: list[JobEntry] = field(default_factory=list)
    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[ConfigWarning] = field(default_factory=list)
    ids: dict[str, list[tuple[Path, int | None]]] = field(default_factory=dict)
    job_count: int = 0
    over_limit: bool = False


def load_jobs(config_dir: Path, *, limits: ConfigLimits | None = None) -> LoadResult:
    """Every job of the folder's *.yaml / *.yml files (sorted by name, not recursive).

    Never raises for a bad config: each problem is a ConfigError in ``errors``, and an
    invalid job or file never keeps the others from loading; the one exception is a
    folder with more jobs than ``limits.max_jobs``, of which no job loads. A single file
    may be given instead of a folder. ``limits``: how much is read (``ConfigLimits()``).
    """
    folder = _Folder(limits or ConfigLimits())
    files, error = _find_files(config_dir)
    if error is not None:
        return LoadResult(jobs=[], errors=[error], files=[])
    with _gc_paused():
        for path in files:
            _FileLoader(path, folder).load()
            if folder.over_limit:
                return LoadResult(
                    jobs=[], errors=folder.errors, files=files, warnings=folder.warnings
                )
    for job_id, places in folder.ids.items():
        if len(places) > 1:
            spots = [f"{printable(str(file))}:{line}" for file, line in places]
            where = ", ".join(spots[:-1]) + f" and {spots[-1]}"
            file, line = places[-1]
            folder.errors.append(
                ConfigError(
                    f"the id is used {len(places)} times ({where}); ids name the output "
                    "files, so each must be unique across the folder: none of these jobs will run",
                    file=str(file),
                    job=label(job_id),
                    field="id",
                    line=line,
                )
            )
    entries = [entry for entry in folder.entries if len(folder.ids[entry.job.id]) == 1]
    return LoadResult(jobs=entries, errors=folder.errors, files=files, warnings=folder.warnings)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    # Parsing a large file makes hundreds of thousands of small objects and no cycles
    # (YAML aliases are refused); the cycle collector's passes over that growing graph
    # would double the load time and find nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _find_files(config_dir: Path) -> tuple[list[Path], ConfigError | None]:
    """The folder's job files; a named entry that is not a regular file is kept (and refused
    when read), so that a folder, FIFO or broken link called ``*.yaml`` is reported."""
    where = str(config_dir)
    try:
        if config_dir.is_file():
            return [config_dir], None
        if not config_dir.exists():
            return [], ConfigError("no such folder; give the folder of job files", file=where)
        if not config_dir.is_dir():
            return [], ConfigError("not a folder or a file", file=where)
        files = sorted(
            path
            for path in config_dir.iterdir()
            if path.suffix.lower() in YAML_SUFFIXES and not path.name.startswith(".")
        )
    except OSError as exc:
        return [], ConfigError(
            f"cannot list the folder: {exc.strerror or type(exc).__name__}", file=where
        )
    if not files:
        return [], ConfigError(
            "no job files here: expected *.yaml or *.yml files with a 'jobs:' list",
            file=where,
        )
    return files, None


class _FileLoader:
    """Loads one file, adding to the folder's entries, errors, warnings and id registry."""

    def __init__(self, path: Path, folder: _Folder) -> None:
        self.path = path
        self.folder = folder
        self.root: yaml.Node | None = None
        # A warning about a value from 'defaults:' is said once per file, not per job.
        self.defaults_warned: set[tuple[FieldPath, str]] = set()

    def error(
        self,
        message: str,
        *,
        yaml_path: FieldPath = (),
        field: str | None = None,
        job: str | None = None,
        line: int | None = None,
    ) -> None:
        self.folder.errors.append(
            ConfigError(
                message,
                file=str(self.path),
                job=None if job is None else label(job),
                field=field,
                line=self.line(yaml_path) if line is None else line,
            )
        )

    def warn(self, message: str, *, yaml_path: FieldPath, job: str | None) -> None:
        self.folder.warnings.append(
            ConfigWarning(
                message=message,
                file=str(self.path),
                job=None if job is None else label(job),
                field=_field_of(yaml_path) or None,
                line=self.line(yaml_path),
            )
        )

    def line(self, path: FieldPath) -> int | None:
        """The 1-based line of the value at ``path``; of its key, if it has one.

        The key's line: a block list starts on the line after its key, where a
        person would not look for it. A path that goes further than the YAML gives
        the line of the deepest node found (a missing field: the job's line).
        """
        node = self.root
        if node is None:
            return None
        for index, segment in enumerate(path):
            if isinstance(node, yaml.MappingNode):
                match = next(
                    (
                        (key, value)
                        for key, value in node.value
                        if isinstance(key, yaml.ScalarNode) and key.value == str(segment)
                    ),
                    None,
                )
                if match is None:
                    break
                if index == len(path) - 1:
                    return int(match[0].start_mark.line) + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(segment, int):
                if not 0 <= segment < len(node.value):
                    break
                node = node.value[segment]
            else:
                break
        return int(node.start_mark.line) + 1

    def load(self) -> None:
        raw = self.read()
        if raw is None:
            return
        try:
            shape = msgspec.convert(raw, _FileShape)
        except msgspec.ValidationError as exc:
            self.validation_error(exc, raw, scope="file")
            return
        defaults = shape.defaults or {}
        try:
            msgspec.convert(defaults, JobDefaults)
        except msgspec.ValidationError as exc:
            self.validation_error(exc, defaults, scope="defaults")
            return
        if not self.within_job_limit(len(shape.jobs)):
            return
        for index, job in enumerate(shape.jobs):
            raw_job = self.build_job(index, job) if isinstance(job, yaml.Node) else job
            if raw_job is not _UNBUILT:
                self.load_job(index, raw_job, defaults)

    def read(self) -> dict[Any, Any] | None:
        """The file's top-level mapping, its 'jobs:' left as nodes; None after an error."""
        limits = self.folder.limits
        try:
            self.root = root = compose(read_text(self.path, limits), limits)
        except FileProblem as problem:
            self.error(f"{problem.message}; {_FILE_DROPPED}", line=problem.line)
            return None
        if root is None:
            self.error("the file is empty; expected a 'jobs:' list")
            return None
        if not isinstance(root, yaml.MappingNode) or root.tag != _MAP_TAG:
            # Not the shape of a job file: say what it is, never what it holds.
            self.error(
                f"expected a mapping with 'jobs:' (and optionally 'defaults:') at the top, "
                f"got {kind_of(root)}; {_FILE_DROPPED}"
            )
            return None
        # The top level may be some other file that parses as a mapping (each line of
        # /etc/shadow is a YAML key): only the job file's own words are quoted from it.
        raw: dict[Any, Any] = {}
        try:
            twice = duplicate_key(root, quote=_top_level_key)
            if twice is not None:
                raise twice
            for key_node, value_node in root.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                    raise ValueProblem(
                        f"a top-level key must be a name like 'jobs', got {kind_of(key_node)}",
                        key_node,
                    )
                key = key_node.value
                if key == "jobs" and value_node.tag == _SEQ_TAG:
                    # Each job is built on its own: a bad value drops its job, not the file.
                    raw[key] = list(value_node.value)
                elif key in _FileShape.__struct_fields__:
                    raw[key] = construct(value_node)
                else:
                    raw[key] = None  # msgspec names the unknown key; its value is not read
        except ValueProblem as problem:
            self.error(f"{problem.message}; {_FILE_DROPPED}", line=problem.line)
            return None
        return raw

    def within_job_limit(self, count: int) -> bool:
        folder = self.folder
        folder.job_count += count
        if folder.job_count <= folder.limits.max_jobs:
            return True
        folder.over_limit = True
        self.error(
            f"this file's {count:,} jobs bring the folder to {folder.job_count:,} jobs, over "
            f"the limit of {folder.limits.max_jobs:,} (ConfigLimits.max_jobs); no job of the "
            "folder was loaded: split the jobs over several folders",
            yaml_path=("jobs",),
            field="jobs",
        )
        return False

    def build_job(self, index: int, node: yaml.Node) -> Any:
        """The job's value, or _UNBUILT after an error that names the job."""
        try:
            return construct(node)
        except ValueProblem as problem:
            job_id = scalar_value(node, "id")
            if job_id is not None:
                self.folder.ids.setdefault(job_id, []).append(
                    (self.path, self.line(("jobs", index)))
                )
            inner = None if problem.node is None else _path_to(node, problem.node)
            located: FieldPath = ("jobs", index, *(inner or ()))
            self.error(
                problem.message,
                field=_field_of(located) or format_path(located),
                job=job_id,
                line=problem.line,
            )
            return _UNBUILT

    def load_job(self, index: int, raw_job: Any, defaults: dict[str, Any]) -> None:
        job_path: FieldPath = ("jobs", index)
        if not isinstance(raw_job, dict):
            self.error(
                f"expected a job (a mapping with 'id' and 'targets'), got {_kind(raw_job)}",
                yaml_path=job_path,
                field=format_path(job_path),
            )
            return
        job_id = raw_job.get("id") if isinstance(raw_job.get("id"), str) else None
        line = self.line(job_path)
        if job_id is not None:
            self.folder.ids.setdefault(job_id, []).append((self.path, line))
        merged = {**defaults, **raw_job}
        targets = merged.get("targets")
        if isinstance(targets, dict):
            # YAML reads `1: example.com` with an int key; the API wants "1".
            merged["targets"] = {
                str(key) if isinstance(key, int) and not isinstance(key, bool) else key: value
                for key, value in targets.items()
            }

        def where(path: FieldPath) -> FieldPath:
            in_job = not path or path[0] in raw_job or path[0] not in defaults
            return (*job_path, *path) if in_job else ("defaults", *path)

        try:
            cfg = msgspec.convert(merged, JobConfig)
        except msgspec.ValidationError as exc:
            self.validation_error(exc, merged, scope="job", job=job_id, locate=where)
            return
        targets_map, problems, warnings = check_job(cfg)
        for path, message in warnings:
            self.job_warning(message, where(path), job_id)
        for path, message in _capped(problems):
            located = where(path)
            self.error(message, yaml_path=located, field=_field_of(located), job=job_id)
        if problems:
            return
        job = Job(**{**msgspec.structs.asdict(cfg), "targets": targets_map})
        self.folder.entries.append(JobEntry(job=job, file=self.path, line=line))

    def job_warning(self, message: str, located: FieldPath, job_id: str | None) -> None:
        if located[:1] != ("defaults",):
            self.warn(message, yaml_path=located, job=job_id)
        elif (located, message) not in self.defaults_warned:
            self.defaults_warned.add((located, message))
            self.warn(message, yaml_path=located, job=None)

    def validation_error(
        self,
        exc: msgspec.ValidationError,
        raw: Any,
        *,
        scope: Literal["file", "defaults", "job"],
        job: str | None = None,
        locate: Callable[[FieldPath], FieldPath] | None = None,
    ) -> None:
        """Turns msgspec's message and ``$.a[0]`` path into a ConfigError with a line."""
        text = str(exc)
        # The path is msgspec's, at the end; a key may hold anything, so split from there.
        message, at, dollar = text.rpartition(" - at `$")
        if not at:
            message, dollar = text, ""
        path = _parse_path(dollar.rstrip("`"), raw)
        unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message, re.DOTALL)
        missing = re.fullmatch(r"Object missing required field `(.*)`", message, re.DOTALL)
        field_shown = True
        if unknown:
            name = unknown.group(1)
            path = (*path, name)
            if scope == "file" and _top_level_key(name) is None:
                field_shown = False
                message = "an unknown top-level key" + _unknown_hint("", scope)
            else:
                message = f"unknown field {excerpt(name)}{_unknown_hint(name, scope)}"
        elif missing:
            # Not in the YAML: the line is the one of the mapping it is missing from.
            path = (*path, missing.group(1))
            message = "required field is missing"
        else:
            message = _polish(message, path, raw)
        if scope != "job":
            message += f"; {_FILE_DROPPED}"
        if locate is not None:
            located = locate(path)
        else:
            located = ("defaults", *path) if scope == "defaults" else path
        field = (_field_of(located) or None) if field_shown else None
        self.error(message, yaml_path=located, field=field, job=job)


def _field_of(located: FieldPath) -> str:
    """A job's field path reads from the job (``targets[2]``), others from the top."""
    return format_path(located[2:] if located[:1] == ("jobs",) else located)


def _parse_path(text: str, raw: Any) -> FieldPath:
    """``.targets[...]`` -> ("targets", "2"): a mapping's ``[...]`` becomes its bad key."""
    path: list[str | int] = []
    node = raw
    for match in _PATH_TOKEN.finditer(text):
        name, index = match.groups()
        if name is not None:
            path.append(name)
        elif index is not None:
            path.append(int(index))
        else:
            items = node.items() if isinstance(node, dict) else ()
            bad = [key for key, value in items if not isinstance(value, str)]
            if not bad:
                break
            path.append(str(bad[0]))
        node = _get(node, path[-1])
    return tuple(path)


def _get(node: Any, segment: str | int) -> Any:
    if isinstance(node, Mapping):
        return node.get(segment)
    if isinstance(node, Sequence) and isinstance(segment, int) and segment < len(node):
        return node[segment]
    return None


def _value_at(raw: Any, path: FieldPath) -> Any:
    for segment in path:
        raw = _get(raw, segment)
    return raw


def _polish(message: str, path: FieldPath, raw: Any) -> str:
    """msgspec's message, plus the value it got and how to fix it where that helps."""
    value = _value_at(raw, path)
    name = next((segment for segment in reversed(path) if isinstance(segment, str)), "")
    if message.startswith("Expected `str` matching regex") and name == "id":
        return (
            f"{excerpt(value)} is not a valid id: use lower-case letters, digits, '.', '_' "
            f"and '-', starting with a letter or digit ({ID_PATTERN})"
        )
    if message.startswith("Invalid enum value"):
        # msgspec quotes the value in full; quote it the capped way instead.
        choices = f"; use one of: {', '.join(map(repr, CHOICES[name]))}" if name in CHOICES else ""
        close = (
            difflib.get_close_matches(value, CHOICES.get(name, ()), n=1, cutoff=0.6)
            if isinstance(value, str)
            else []
        )
        guess = f"; did you mean {close[0]!r}?" if close else ""
        return f"Invalid enum value {excerpt(value)}{choices}{guess}"
    if re.fullmatch(r"Expected `(array|object)` of length [<>]= \d+", message):
        return f"{message}, got {len(value)}"
    if re.fullmatch(r"Expected `str` of length [<>]= \d+", message):
        return f"{message}, got {len(value)} characters"
    if re.fullmatch(r"Expected `(int|float)` [<>]=? \d+", message):
        return f"{message}, got {excerpt(value)}"
    if message.startswith("Expected `object | array`") and name == "targets":
        return f"{message}; write a list, like: targets: [example.com, example.org]"
    return message


def _top_level_key(name: str) -> str | None:
    """A top-level key quoted, if it is (close to) one of the job file's words; else None."""
    if not _NAME.fullmatch(name):
        return None
    ours = (*_FileShape.__struct_fields__, *JOB_FIELDS)
    if name in ours or difflib.get_close_matches(name, ours, n=1):
        return excerpt(name)
    return None


def _unknown_hint(name: str, scope: Literal["file", "defaults", "job"]) -> str:
    if scope == "file":
        if name in JOB_FIELDS:
            return "; job fields go under 'jobs:' (or 'defaults:')"
        close = (
            difflib.get_close_matches(name, _FileShape.__struct_fields__, n=1)
            if len(name) <= 64
            else []
        )
        guess = f"did you mean {close[0]!r}? " if close else ""
        return f"; {guess}the top level holds 'jobs:' and optionally 'defaults:'"
    if name == "id" and scope == "defaults":
        return "; each job needs its own id"
    if name in _UNKNOWN_HINTS:
        return "; " + _UNKNOWN_HINTS[name]
    if len(name) > 64:  # no field name is that long; spare difflib the work
        return ""
    close = difflib.get_close_matches(name, JOB_FIELDS, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


_UNBUILT = object()


def _capped(problems: list[Problem]) -> list[Problem]:
    """At most _MAX_PROBLEMS_PER_JOB problems, the last one counting those left out."""
    if len(problems) <= _MAX_PROBLEMS_PER_JOB:
        return problems
    shown = problems[: _MAX_PROBLEMS_PER_JOB - 1]
    left = len(problems) - len(shown)
    return [*shown, (problems[len(shown)][0], f"... and {left:,} more problems in this job")]


def _path_to(root: yaml.Node, target: yaml.Node) -> FieldPath | None:
    """Where ``target`` sits below ``root``: ('filters', 0, 2); a key: its own name."""
    if root is target:
        return ()
    if isinstance(root, yaml.SequenceNode):
        for index, child in enumerate(root.value):
            found = _path_to(child, target)
            if found is not None:
                return (index, *found)
    elif isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            if key is target:
                # A list or mapping as a key has no name: the mapping it is in stands for it.
                return (name,) if isinstance(key, yaml.ScalarNode) else ()
            found = _path_to(value, target)
            if found is not None:
                return (name, *found)
    return None
