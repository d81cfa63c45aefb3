"""Appending a benchmark's report to bench/RESULTS.md under a dated heading."""
from __future__ import annotations

import datetime
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def append_results(title: str, command: str, text: str) -> None:
    """Add `## TITLE — <now> (`COMMAND`)` and `text` at the end of bench/RESULTS.md."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    with open(RESULTS, "a") as f:
        f.write(f"\n## {title} — {stamp} (`{command}`)\n\n{text}\n")
