"""The call log: one ``CallRecord`` per request served, in memory and optionally as JSONL."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import IO, Literal

import msgspec

__all__ = ["CallLog", "CallRecord", "credential_id"]

Route = Literal["dataforseo", "aisa", "other"]


class CallRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One request as the emulator saw it (never a password or a key)."""

    t: float
    """The emulator's clock at arrival."""
    route: Route
    credential: str | None
    """The login, or "key:" + 8 hex of the key's sha256; None when none was sent."""
    offset: int | None
    limit: int | None
    targets: dict[str, str] | None
    tag: str | None
    http_status: int
    status_code: int
    """The first task's status code when there is a task, else the envelope's."""
    cost: float
    items: int
    latency: float
    """Wall-clock seconds from arrival to the answer (including the modelled latency)."""
    fault: str | None
    tasks_count: int
    total_count: int | None = None
    conditions: int | None = None
    """How many filter conditions the task held (None: no filters)."""
    as_of: str | None = None
    """The date the index was taken on (with a timeline only)."""


def credential_id(*, login: str | None = None, api_key: str | None = None) -> str | None:
    """A non-secret name for a credential."""
    if login is not None:
        return login
    if api_key is not None:
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:8]
    return None


class CallLog:
    """Records in arrival order; appends each to ``path`` as one JSON line when given."""

    def __init__(self, path: Path | None = None) -> None:
        self._records: list[CallRecord] = []
        self._encoder = msgspec.json.Encoder()
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")

    def append(self, record: CallRecord) -> None:
        self._records.append(record)
        if self._file is not None:
            # One short line per call: cheaper inline than a hop to a thread.
            self._file.write(self._encoder.encode(record) + b"\n")
            self._file.flush()

    def records(self) -> list[CallRecord]:
        return list(self._records)

    def encode(self) -> bytes:
        return self._encoder.encode(self._records)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
