"""``make demo``: crawl ``configs/`` against the bundled emulator into ``out/``.

Starts the emulator on a free loopback port, runs the real CLI against it with the
emulator's demo credentials, prints the summary, and stops the emulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from intersect_batch.cli import main as cli_main

__all__ = ["main"]

DEMO_ENV = {
    "DATAFORSEO_LOGIN": "demo",
    "DATAFORSEO_PASSWORD": "demo-password",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; extra arguments go to ``intersect-batch run``."""
    extra = list(sys.argv[1:] if argv is None else argv)
    env = {**os.environ, **DEMO_ENV}
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "intersect_batch.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            "7",
            "--latency-median",
            "0.2",
            "--latency-spread",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the run's own last line says where the results are
        env=env,
        text=True,
        # Its own session: a Ctrl-C at the terminal reaches the crawl (which then waits
        # for its calls in flight), not the server answering them.
        start_new_session=True,
    )
    try:
        assert emulator.stdout is not None
        base = emulator.stdout.readline().strip()
        if not base.startswith("http://"):
            print("the emulator did not start", file=sys.stderr)
            return 2
        print(f"emulator listening on {base}", file=sys.stderr)
        os.environ.update(DEMO_ENV)
        return cli_main(
            [
                "run",
                "configs",
                "--base-url",
                f"{base}/v3",
                "--out",
                "out",
                "--fresh",
                "--report",
                *extra,
            ]
        )
    finally:
        # A Ctrl-C pressed again while the emulator stops must not cut the stop short.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            emulator.terminate()
            try:
                emulator.wait(timeout=10)
            except subprocess.TimeoutExpired:
                emulator.kill()
                emulator.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    raise SystemExit(main())
