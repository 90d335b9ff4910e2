"""``python -m bench``: run every scenario, write results.json and results.md, print the table."""

from __future__ import annotations

import sys

from bench.harness import main

sys.exit(main())
