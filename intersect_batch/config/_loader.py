"""Reads a folder of YAML job files into validated Jobs and ConfigErrors that name lines."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import msgspec.yaml
import yaml

from ..errors import ConfigError
from ._checks import FieldPath, check_job, format_path
from ._model import CHOICES, ID_PATTERN, JOB_FIELDS, Job, JobConfig, JobDefaults

__all__ = ["JobEntry", "LoadResult", "load_jobs"]

YAML_SUFFIXES = (".yaml", ".yml")
_FILE_DROPPED = "no job of this file was loaded"
_UNKNOWN_HINTS = {
    "limit": "the API's limit per call is 'page_size'",
    "offset": "offsets are chosen by the crawler; to stop early use 'max_items'",
    "target": "did you mean 'targets'?",
}
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")


@dataclass(frozen=True)
class JobEntry:
    """A valid job and where it was written."""

    job: Job
    file: Path
    line: int | None


@dataclass(frozen=True)
class LoadResult:
    """What a config folder holds: the jobs that can run, and every problem found."""

    jobs: list[JobEntry]
    errors: list[ConfigError]
    files: list[Path]


class _FileShape(msgspec.Struct, forbid_unknown_fields=True):
    """The top level of a job file; the jobs are checked one by one."""

    jobs: list[Any]
    defaults: dict[str, Any] | None = None


def load_jobs(config_dir: Path) -> LoadResult:
    """Every job of the folder's *.yaml / *.yml files (sorted by name, not recursive).

    Never raises for a bad config: each problem is a ConfigError in ``errors``, and an
    invalid job or file never keeps the others from loading. A single file may be given
    instead of a folder.
    """
    files, error = _find_files(config_dir)
    if error is not None:
        return LoadResult(jobs=[], errors=[error], files=[])
    entries: list[JobEntry] = []
    errors: list[ConfigError] = []
    ids: dict[str, list[tuple[Path, int | None]]] = {}
    for path in files:
        _FileLoader(path, entries, errors, ids).load()
    for job_id, places in ids.items():
        if len(places) > 1:
            spots = [f"{file}:{line}" for file, line in places]
            where = ", ".join(spots[:-1]) + f" and {spots[-1]}"
            file, line = places[-1]
            errors.append(
                ConfigError(
                    f"the id is used {len(places)} times ({where}); ids name the output "
                    "files, so each must be unique across the folder: none of these jobs will run",
                    file=str(file),
                    job=job_id,
                    field="id",
                    line=line,
                )
            )
    entries = [entry for entry in entries if len(ids[entry.job.id]) == 1]
    return LoadResult(jobs=entries, errors=errors, files=files)


def _find_files(config_dir: Path) -> tuple[list[Path], ConfigError | None]:
    where = str(config_dir)
    if config_dir.is_file():
        return [config_dir], None
    if not config_dir.exists():
        return [], ConfigError("no such folder; give the folder of job files", file=where)
    if not config_dir.is_dir():
        return [], ConfigError("not a folder or a file", file=where)
    files = sorted(
        path
        for path in config_dir.iterdir()
        if path.suffix.lower() in YAML_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )
    if not files:
        return [], ConfigError(
            "no job files here: expected *.yaml or *.yml files with a 'jobs:' list",
            file=where,
        )
    return files, None


class _FileLoader:
    """Loads one file, appending to the run's entries, errors and id registry."""

    def __init__(
        self,
        path: Path,
        entries: list[JobEntry],
        errors: list[ConfigError],
        ids: dict[str, list[tuple[Path, int | None]]],
    ) -> None:
        self.path = path
        self.entries = entries
        self.errors = errors
        self.ids = ids
        self.root: yaml.Node | None = None

    def error(
        self,
        message: str,
        *,
        yaml_path: FieldPath = (),
        field: str | None = None,
        job: str | None = None,
    ) -> None:
        self.errors.append(
            ConfigError(
                message,
                file=str(self.path),
                job=job,
                field=field,
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
        for index, raw_job in enumerate(shape.jobs):
            self.load_job(index, raw_job, defaults)

    def read(self) -> Any:
        try:
            data = self.path.read_bytes()
            self.root = yaml.compose(data.decode("utf-8-sig"), Loader=yaml.SafeLoader)
            raw = msgspec.yaml.decode(data)
        except OSError as exc:
            self.error(f"cannot read the file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError:
            self.error(f"not UTF-8 text; {_FILE_DROPPED}")
            return None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            if exc.context and exc.context_mark and exc.context_mark is not mark:
                problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
            self.errors.append(
                ConfigError(
                    f"YAML syntax error: {problem}; {_FILE_DROPPED}",
                    file=str(self.path),
                    line=None if mark is None else mark.line + 1,
                )
            )
            return None
        except (yaml.YAMLError, msgspec.DecodeError) as exc:
            self.error(f"invalid YAML: {exc}; {_FILE_DROPPED}")
            return None
        if raw is None:
            self.error("the file is empty; expected a 'jobs:' list")
        elif not isinstance(raw, dict):
            self.error(
                f"expected a mapping with 'jobs:' (and optionally 'defaults:') at the top, "
                f"got {_kind(raw)}; {_FILE_DROPPED}"
            )
        else:
            return raw
        return None

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
            self.ids.setdefault(job_id, []).append((self.path, line))
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
        targets_map, problems = check_job(cfg)
        for path, message in problems:
            located = where(path)
            self.error(message, yaml_path=located, field=_field_of(located), job=job_id)
        if problems:
            return
        job = Job(**{**msgspec.structs.asdict(cfg), "targets": targets_map})
        self.entries.append(JobEntry(job=job, file=self.path, line=line))

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
        message, _, dollar = text.partition(" - at `$")
        path = _parse_path(dollar.rstrip("`"), raw)
        unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
        missing = re.fullmatch(r"Object missing required field `(.*)`", message)
        if unknown:
            name = unknown.group(1)
            path = (*path, name)
            message = f"unknown field {name!r}{_unknown_hint(name, scope)}"
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
        self.error(message, yaml_path=located, field=_field_of(located) or None, job=job)


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
            f"{value!r} is not a valid id: use lower-case letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit ({ID_PATTERN})"
        )
    if message.startswith("Invalid enum value") and name in CHOICES:
        return f"{message}; use one of: {', '.join(map(repr, CHOICES[name]))}"
    if re.fullmatch(r"Expected `(array|object)` of length [<>]= \d+", message):
        return f"{message}, got {len(value)}"
    if re.fullmatch(r"Expected `str` of length [<>]= \d+", message):
        return f"{message}, got {len(value)} characters"
    if re.fullmatch(r"Expected `(int|float)` [<>]=? \d+", message):
        return f"{message}, got {value!r}"
    if message.startswith("Expected `object | array`") and name == "targets":
        return f"{message}; write a list, like: targets: [example.com, example.org]"
    return message


def _unknown_hint(name: str, scope: Literal["file", "defaults", "job"]) -> str:
    if scope == "file":
        if name in JOB_FIELDS:
            return "; job fields go under 'jobs:' (or 'defaults:')"
        close = difflib.get_close_matches(name, _FileShape.__struct_fields__, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        return f"; {guess}the top level holds 'jobs:' and optionally 'defaults:'"
    if name == "id" and scope == "defaults":
        return "; each job needs its own id"
    if name in _UNKNOWN_HINTS:
        return "; " + _UNKNOWN_HINTS[name]
    close = difflib.get_close_matches(name, JOB_FIELDS, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _kind(value: Any) -> str:
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)
