"""``python -m intersect_batch.emulator``: the ``intersect-batch emulate`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
