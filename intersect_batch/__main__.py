"""``python -m intersect_batch`` runs the command-line interface."""

from __future__ import annotations

from intersect_batch.cli import main

raise SystemExit(main())
