"""One job file -> its YAML nodes, read and parsed once, within the loader's limits.

Hostile input is the norm here: a config path can be a symlink to any file, and a YAML
file can ask for exponential work (aliases), deep recursion or huge numbers. So:

- the file is checked to be a regular file before it is opened (a FIFO or a device
  would block or never end), opened non-blocking, and read up to the size limit only;
- its text must be UTF-8 with no character YAML forbids (a binary file stops here);
- PyYAML's event parser (libyaml when present) feeds a composer that refuses anchors and
  aliases (so nothing can expand), and stops at the depth and value-count limits before
  any recursion or memory blow-up;
- values are built by a constructor that knows only plain YAML types: no
  ``!!python/...``, ``!!binary`` or ``!!set``, integers within 64 bits, finite floats,
  and a key given twice in one mapping is an error instead of a silent overwrite.

Messages say what is wrong and where, never what the file holds (see ``_excerpt``).
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    Event,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from ._excerpt import excerpt, label, plain
from ._limits import ConfigLimits

__all__ = [
    "DEFAULT_PARSER",
    "FileProblem",
    "PurePythonParser",
    "ValueProblem",
    "compose",
    "construct",
    "duplicate_key",
    "kind_of",
    "read_text",
    "scalar_value",
]

_ALIASES = (
    "YAML anchors and aliases ('&name', '*name') are not accepted in job files; "
    "put values shared by several jobs under 'defaults:'"
)
# The characters YAML 1.1 allows in a stream (PyYAML's own Reader check).
_NOT_YAML_TEXT = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_INT64_MAX = 2**63 - 1
# Longer numbers are refused before Python converts them: int() of a long decimal
# string is quadratic, and a 64-bit integer fits in 66 characters ('0b' + 64 digits).
_MAX_NUMBER_CHARS = 100
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
# A mapping with one of these keys is built by PyYAML, which knows what they mean.
_SPECIAL_KEYS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")
_ALLOWED_TAGS = (
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    _STR,
    _SEQ,
    _MAP,
    "tag:yaml.org,2002:timestamp",
)
_KINDS = {
    "tag:yaml.org,2002:null": "a null",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    _STR: "a string",
    "tag:yaml.org,2002:seq": "a list",
    "tag:yaml.org,2002:map": "a mapping",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:merge": "a merge key ('<<')",
    "tag:yaml.org,2002:value": "'='",
}


class FileProblem(Exception):
    """Why a file cannot be used at all; ``line`` when the problem has a place."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class ValueProblem(Exception):
    """A value that cannot be built: why, its line, and the node it is about if known."""

    def __init__(self, message: str, node: Node | None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node
        self.line = line if node is None else _line(node)


def _line(node: Node) -> int | None:
    mark = node.start_mark
    return None if mark is None else int(mark.line) + 1


def _mebibytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size:,} bytes"


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_text(path: Path, limits: ConfigLimits) -> str:
    """The file's text; FileProblem unless it is a readable UTF-8 regular file within the limit."""
    try:
        # stat() first: opening a FIFO or a device may block or have effects.
        info = os.stat(path)
    except FileNotFoundError:
        raise FileProblem("a broken symbolic link: the file it points to does not exist") from None
    except OSError as exc:
        raise FileProblem(f"cannot read the file: {exc.strerror or type(exc).__name__}") from None
    _check_regular(info, limits)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise FileProblem(f"cannot read the file: {exc.strerror or type(exc).__name__}") from None
    try:
        # The file may have been swapped since stat(): check what was opened.
        _check_regular(os.fstat(fd), limits)
        data = _read_at_most(fd, limits.max_file_bytes + 1)
    except OSError as exc:
        raise FileProblem(f"cannot read the file: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if len(data) > limits.max_file_bytes:
        raise FileProblem(_too_big(len(data), limits, grew=True))
    return _decode(data)


def _check_regular(info: os.stat_result, limits: ConfigLimits) -> None:
    kind = _file_kind(info.st_mode)
    if kind is not None:
        raise FileProblem(f"{kind}, not a regular file; only regular files are read as job files")
    if info.st_size > limits.max_file_bytes:
        raise FileProblem(_too_big(info.st_size, limits, grew=False))


def _too_big(size: int, limits: ConfigLimits, *, grew: bool) -> str:
    held = (
        f"holds more than {_mebibytes(limits.max_file_bytes)}"
        if grew
        else (f"is {_mebibytes(size)}")
    )
    return (
        f"the file {held}; the limit is {_mebibytes(limits.max_file_bytes)} per file "
        "(ConfigLimits.max_file_bytes): split the jobs over several files"
    )


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileProblem(
            "not UTF-8 text (a binary file?); job files are UTF-8 YAML", line=line
        ) from None
    bad = _NOT_YAML_TEXT.search(text)
    if bad is not None:
        code = ord(bad.group())
        what = "a NUL byte (a binary file?)" if code == 0 else f"the control character U+{code:04X}"
        raise FileProblem(
            f"contains {what}, which YAML does not allow in a text file",
            line=text.count("\n", 0, bad.start()) + 1,
        )
    return text


class _BoundedComposer(Composer):
    """PyYAML's composer, refusing anchors and aliases and counting depth and values.

    One method instead of PyYAML's four, for speed: a 20,000-job file is half a
    million nodes, and each saved call counts.
    """

    if TYPE_CHECKING:  # given by the parser class it is mixed with

        def get_event(self) -> Any: ...
        def check_event(self, *choices: type[Event]) -> bool: ...
        def resolve(self, kind: type[Node], value: str | None, implicit: Any) -> str: ...

    def __init__(self, limits: ConfigLimits) -> None:
        super().__init__()
        self._limits = limits
        self._depth = 0
        self._values = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.get_event()
        kind = type(event)
        if kind is AliasEvent or event.anchor is not None:
            raise FileProblem(_ALIASES, line=_line_of(event))
        self._values += 1
        if self._values > self._limits.max_values:
            raise FileProblem(
                f"more than {self._limits.max_values:,} YAML values in one file, the limit "
                "(ConfigLimits.max_values): split the jobs over several files",
                line=_line_of(event),
            )
        tag = event.tag
        if kind is ScalarEvent:
            if tag is None or tag == "!":
                tag = self.resolve(ScalarNode, event.value, event.implicit)
            # The start mark serves as the end too: nothing reads end marks here, and a
            # mark object per value is a fifth of the memory a large file takes.
            return ScalarNode(tag, event.value, event.start_mark, event.start_mark, event.style)
        # Checked before going down: composing is recursive.
        self._depth += 1
        if self._depth > self._limits.max_depth:
            raise FileProblem(_too_deep(self._limits), line=_line_of(event))
        node: SequenceNode | MappingNode
        if kind is SequenceStartEvent:
            if tag is None or tag == "!":
                tag = self.resolve(SequenceNode, None, event.implicit)
            node = SequenceNode(tag, [], event.start_mark, None, event.flow_style)
            items = node.value
            while not self.check_event(SequenceEndEvent):
                items.append(self.compose_node(node, len(items)))
        else:
            if tag is None or tag == "!":
                tag = self.resolve(MappingNode, None, event.implicit)
            node = MappingNode(tag, [], event.start_mark, None, event.flow_style)
            pairs = node.value
            while not self.check_event(MappingEndEvent):
                key = self.compose_node(node, len(pairs))
                pairs.append((key, self.compose_node(node, len(pairs))))
        self.get_event()  # the end of the list or mapping
        node.end_mark = node.start_mark
        self._depth -= 1
        return node


def _too_deep(limits: ConfigLimits) -> str:
    return (
        f"lists and mappings nested more than {limits.max_depth} levels deep, the limit "
        "(ConfigLimits.max_depth); a job file needs far fewer"
    )


def _line_of(event: Event) -> int | None:
    return None if event.start_mark is None else int(event.start_mark.line) + 1


class PurePythonParser(Reader, Scanner, Parser, _BoundedComposer, Resolver):
    """Text -> bounded nodes with PyYAML's pure-Python parser (when libyaml is missing)."""

    def __init__(self, text: str, limits: ConfigLimits) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self, limits)
        Resolver.__init__(self)

    def dispose(self) -> None:
        """Nothing to free (libyaml's parser has a C buffer to free)."""


DEFAULT_PARSER: Any = PurePythonParser
try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    pass
else:

    class LibyamlParser(_BoundedComposer, CParser, Resolver):
        """Text -> bounded nodes with libyaml's parser: about 10 times faster."""

        def __init__(self, text: str, limits: ConfigLimits) -> None:
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self, limits)
            Resolver.__init__(self)

    DEFAULT_PARSER = LibyamlParser


def compose(text: str, limits: ConfigLimits, parser: Any = None) -> Node | None:
    """The file's root node (None: an empty file); FileProblem for anything YAML rejects.

    ``parser``: the class that turns text into nodes, ``DEFAULT_PARSER`` if None (libyaml's
    parser with the bounded composer, or ``PurePythonParser`` without libyaml).
    """
    loader = (parser or DEFAULT_PARSER)(text, limits)
    try:
        node: Node | None = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else int(mark.line) + 1
        if "maximum nesting depth" in (exc.problem or ""):
            # libyaml's own bound (1000 levels), met while it scans ahead: the same story.
            raise FileProblem(_too_deep(limits), line=line) from None
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise FileProblem(f"YAML syntax error: {plain(problem)}", line=line) from None
    except yaml.YAMLError as exc:
        raise FileProblem(f"invalid YAML: {plain(type(exc).__name__)}") from None
    finally:
        loader.dispose()
    return node


def kind_of(node: Node) -> str:
    """What a node holds, in words: 'a list', 'a string', ..."""
    return _KINDS.get(node.tag, "a value with a tag")


def construct(node: Node) -> Any:
    """The node's Python value; ValueProblem for anything a job file should not hold."""
    constructor = _JobConstructor()
    try:
        return constructor.build(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else int(mark.line) + 1
        raise ValueProblem(
            plain(exc.problem or exc.context or "invalid value"), None, line
        ) from None


_Construct = Callable[[Any, Any], Any]


def _checked(kind: str, build: _Construct) -> _Construct:
    """A constructor for an explicit tag that turns Python's errors into a ValueProblem."""

    def run(self: _JobConstructor, node: Node) -> Any:
        try:
            return build(self, node)
        except (ValueError, KeyError, IndexError, AttributeError, TypeError):
            raise ValueProblem(f"{_quoted(node)} is not {kind}", node) from None

    return run


def _quoted(node: Node) -> str:
    return excerpt(node.value) if isinstance(node, ScalarNode) else kind_of(node)


_safe_int = _checked("an integer", SafeConstructor.construct_yaml_int)
_safe_float = _checked("a number", SafeConstructor.construct_yaml_float)


class _JobConstructor(SafeConstructor):
    """SafeConstructor limited to plain YAML types, sane numbers and unique keys."""

    yaml_constructors: ClassVar[dict[str | None, Any]] = {
        tag: SafeConstructor.yaml_constructors[tag] for tag in _ALLOWED_TAGS
    }

    def build(self, node: Node) -> Any:
        """The node's value: plain strings, lists and mappings directly, the rest by PyYAML.

        The direct way skips PyYAML's bookkeeping for shared and recursive nodes, which
        cannot occur without aliases: it builds a job file about twice as fast.
        """
        kind = type(node)
        if kind is ScalarNode and node.tag == _STR:
            return node.value
        if kind is SequenceNode and node.tag == _SEQ:
            return [self.build(child) for child in node.value]
        if isinstance(node, MappingNode) and node.tag == _MAP:
            twice = duplicate_key(node)
            if twice is not None:
                raise twice
            if all(key.tag not in _SPECIAL_KEYS for key, _ in node.value):
                built: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    key = self.build(key_node)
                    if isinstance(key, list | dict):
                        raise ValueProblem(
                            f"a key must be a name or a number, not {kind_of(key_node)}", key_node
                        )
                    built[key] = self.build(value_node)
                return built
        # Numbers, true/false, null, dates, merge keys and refused tags.
        value = self.construct_object(node, deep=True)
        self.constructed_objects.clear()
        return value

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, MappingNode):
            twice = duplicate_key(node)
            if twice is not None:
                raise twice
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        value = self.construct_scalar(node)
        if len(value) > _MAX_NUMBER_CHARS:
            raise ValueProblem(f"a number of {len(value):,} characters is too long", node)
        number = _safe_int(self, node)
        if not -_INT64_MAX <= number <= _INT64_MAX:
            raise ValueProblem(
                f"{label(value)} is too large: integers must be within ±{_INT64_MAX:,}", node
            )
        return int(number)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value = self.construct_scalar(node)
        if len(value) > _MAX_NUMBER_CHARS:
            raise ValueProblem(f"a number of {len(value):,} characters is too long", node)
        number = _safe_float(self, node)
        if not math.isfinite(number):
            raise ValueProblem(
                f"{label(value)} is not a finite number; JSON, and so the API, has no "
                "infinity or NaN",
                node,
            )
        return float(number)

    def construct_undefined(self, node: Node) -> Any:
        tag = node.tag
        short = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:") else tag
        raise ValueProblem(
            f"the tag {excerpt(short)} is not accepted in a job file; "
            "write plain strings, numbers, true/false, lists and mappings",
            node,
        )

    def construct_scalar_string(self, node: ScalarNode) -> str:
        return str(self.construct_scalar(node))


_JobConstructor.yaml_constructors.update(
    {
        "tag:yaml.org,2002:int": _JobConstructor.construct_yaml_int,
        "tag:yaml.org,2002:float": _JobConstructor.construct_yaml_float,
        "tag:yaml.org,2002:bool": _checked("true or false", SafeConstructor.construct_yaml_bool),
        "tag:yaml.org,2002:null": _checked("null", SafeConstructor.construct_yaml_null),
        "tag:yaml.org,2002:timestamp": _checked("a date", SafeConstructor.construct_yaml_timestamp),
        # YAML 1.1 reads a bare '=' (a filter operator) and '<<' as special tags; in a
        # job file they are the strings the user wrote.
        "tag:yaml.org,2002:value": _JobConstructor.construct_scalar_string,
        "tag:yaml.org,2002:merge": _JobConstructor.construct_scalar_string,
        None: _JobConstructor.construct_undefined,
    }
)


def duplicate_key(
    node: MappingNode, quote: Callable[[str], str | None] = excerpt
) -> ValueProblem | None:
    """The problem of a key written twice in the mapping, or None.

    PyYAML keeps the last value silently; a person who wrote 'targets:' twice meant one.
    ``quote``: how the key is shown; None leaves it out.
    """
    first: dict[str, Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
            continue
        if key_node.value in first:
            shown = quote(key_node.value)
            return ValueProblem(
                f"the key {'' if shown is None else shown + ' '}is given twice in one mapping "
                f"(first on line {_line(first[key_node.value])}); YAML would keep only the "
                "last: remove one",
                key_node,
            )
        first[key_node.value] = key_node
    return None


def scalar_value(node: Node | None, key: str) -> str | None:
    """A mapping node's plain string value under ``key`` (a job's id), or None."""
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            if isinstance(value_node, ScalarNode) and value_node.tag == _STR:
                return str(value_node.value)
            return None
    return None
