"""Serve the emulator in its own process with settings the CLI cannot express.

``python -m bench.emulator_proc '<json>'`` prints the base URL as its first stdout line
and serves until SIGTERM. The JSON holds ``EmulatorSettings`` keywords plus ``clock_scale``
(the emulator's clock runs that many times faster than ``time.monotonic``, so a 60 s
quota window lasts ``60 / clock_scale`` real seconds).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from intersect_batch.emulator import EmulatorSettings, running_emulator


def settings_from_json(text: str) -> EmulatorSettings:
    """The emulator settings a harness asked for."""
    values: dict[str, Any] = json.loads(text)
    scale = float(values.pop("clock_scale", 1.0))
    if values.get("log_file") is not None:
        values["log_file"] = Path(values["log_file"])
    if scale != 1.0:
        values["clock"] = lambda: time.monotonic() * scale
    return EmulatorSettings(**values)


async def _serve(settings: EmulatorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running_emulator(settings) as emulator:
        sys.stdout.write(emulator.url + "\n")
        sys.stdout.flush()
        await stop.wait()


def main() -> None:
    asyncio.run(_serve(settings_from_json(sys.argv[1])))


if __name__ == "__main__":
    main()
