"""Decoding the run's own JSON files tolerantly: what does not fit is left out, not all.

run.json and the manifests are written by other versions of this tool too (older ones,
and ones that add fields): a field that is missing or of another type than expected
becomes its default, and the rest of the file is still read.
"""

from __future__ import annotations

import functools
import logging
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from intersect_batch.durable import UnreadableFile, read_file

__all__ = ["decode_tolerantly", "read_tolerantly"]


log = logging.getLogger("intersect_batch")

S = TypeVar("S", bound=msgspec.Struct)

_raw_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_MISSING = object()


def _struct_of(tp: Any) -> type[msgspec.Struct] | None:
    """The Struct class of ``tp`` or of ``tp | None``, else ``None``."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        structs = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(structs) == 1:
            return _struct_of(structs[0])
    return None


@functools.cache
def _fields(cls: type[msgspec.Struct]) -> tuple[msgspec.structs.FieldInfo, ...]:
    """A Struct's fields, worked out once (each call evaluates its annotations anew)."""
    return msgspec.structs.fields(cls)


def _field_value(tp: Any, raw: msgspec.Raw) -> Any:
    struct = _struct_of(tp)
    if struct is not None:
        if bytes(raw).strip() == b"null":
            return None
        value = decode_tolerantly(struct, raw)
        return _MISSING if value is None else value
    if typing.get_origin(tp) is list:
        [inner] = typing.get_args(tp)
        inner_struct = _struct_of(inner)
        if inner_struct is not None:
            try:
                elements = _raw_list.decode(raw)
            except msgspec.DecodeError:
                return _MISSING
            decoded = (decode_tolerantly(inner_struct, e) for e in elements)
            return [e for e in decoded if e is not None]
    try:
        return msgspec.json.decode(raw, type=tp, strict=False)
    except msgspec.DecodeError:
        return _MISSING


def decode_tolerantly(cls: type[S], data: bytes | msgspec.Raw) -> S | None:
    """``data`` (a JSON object) as ``cls``, leaving out each field that does not fit.

    ``None`` when ``data`` is not a JSON object or lacks a required field. Nested Structs
    and lists of Structs are decoded the same way, element by element.
    """
    try:
        raw = _raw_object.decode(data)
    except msgspec.DecodeError:
        return None
    values: dict[str, Any] = {}
    for info in _fields(cls):
        found = raw.get(info.encode_name)
        if found is None:
            continue
        value = _field_value(info.type, found)
        if value is not _MISSING:
            values[info.name] = value
    try:
        return cls(**values)
    except TypeError:  # a required field is missing
        return None


def read_tolerantly(path: Path, cls: type[S]) -> S | None:
    """The file at ``path`` decoded by :func:`decode_tolerantly`; ``None`` if unreadable.

    Only a regular file is read (:func:`~intersect_batch.durable.read_file`): a FIFO in
    its place is refused with a warning naming it, never waited on.
    """
    try:
        data = read_file(path)
    except UnreadableFile as exc:
        log.warning("not read: %s", exc)
        return None
    except OSError:
        return None
    return decode_tolerantly(cls, data)
