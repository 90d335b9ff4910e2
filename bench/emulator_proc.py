"""Serve the emulator in its own process with settings the CLI cannot express.

``python -m bench.emulator_proc '<json>'`` (or ``@FILE``, a file holding it) prints the base
URL as its first stdout line and serves until SIGTERM. The JSON holds ``EmulatorSettings``
keywords plus ``clock_scale`` (the emulator's clock runs that many times faster than
``time.monotonic``, so a 60 s quota window lasts ``60 / clock_scale`` real seconds).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from intersect_batch.emulator import EmulatorSettings
from intersect_batch.emulator.cli import serve_until_stopped


def settings_from_json(text: str) -> EmulatorSettings:
    """The emulator settings a harness asked for."""
    values: dict[str, Any] = json.loads(text)
    scale = float(values.pop("clock_scale", 1.0))
    if values.get("log_file") is not None:
        values["log_file"] = Path(values["log_file"])
    if scale != 1.0:
        values["clock"] = lambda: time.monotonic() * scale
    return EmulatorSettings(**values)


def main() -> None:
    text = sys.argv[1]
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    asyncio.run(serve_until_stopped(settings_from_json(text)))


if __name__ == "__main__":
    main()
