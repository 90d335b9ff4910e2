"""``run --env-file F``: the credentials read from ``KEY=VALUE`` lines, without a shell.

A shell's ``. env-file`` breaks on a password holding ``$``, ``&`` or a quote; this reads
each line as it is written. Blank lines and ``#`` comments are skipped, ``export `` before
a name is allowed, a line may end in CRLF, and one pair of quotes (``'...'`` or ``"..."``)
around a value is removed; nothing else is interpreted. Only the credential variables
the tool knows are taken; other names are left alone. No error ever quotes a line: it
may hold a secret.
"""

from __future__ import annotations

import re
from pathlib import Path

from intersect_batch.errors import UsageError

__all__ = ["CREDENTIAL_VARIABLES", "MAX_ENV_FILE_BYTES", "read_env_file"]

#: The variables an env file may set (see the providers' credentials).
CREDENTIAL_VARIABLES = ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD", "AISA_API_KEY")
#: An env file larger than this is not one.
MAX_ENV_FILE_BYTES = 64 * 1024

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")


def _value(text: str) -> str:
    text = text.strip(" \t")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def read_env_file(path: Path) -> dict[str, str]:
    """The credential variables ``path`` sets, by name.

    Raises UsageError naming the file (and the line number, never its content) when it
    cannot be read or a line is not ``KEY=VALUE``.
    """
    where = f"--env-file {path}"
    if not path.is_file():
        reason = "no such file" if not path.exists() else "not a regular file"
        raise UsageError(f"{where}: {reason}")
    try:
        with path.open("rb") as file:
            data = file.read(MAX_ENV_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{where}: {exc.strerror or exc}") from None
    if len(data) > MAX_ENV_FILE_BYTES:
        raise UsageError(f"{where}: larger than {MAX_ENV_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: not UTF-8 text") from None
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise UsageError(f"{where}:{number}: not a KEY=VALUE line")
        name, value = match.group(1), match.group(2)
        if name in CREDENTIAL_VARIABLES:
            found[name] = _value(value)
    return found
