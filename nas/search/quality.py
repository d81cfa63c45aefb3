"""`QualityCache`: an architecture's quality, scored once per run and kept in RUN/quality.jsonl.

Quality (accuracy, mIoU) is a property of the architecture and the trained supernet (or of its training from
scratch), not of the device it runs on: in a several-device search (nas.search.devices) each device's search
asks for it, and an architecture another device's search (or an earlier, interrupted run) scored is not
scored again. One JSON line is appended per scored architecture, flushed and synced; a torn last line (a
kill during the write) is skipped when the file is read back.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Sequence

from search_spaces import Arch


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class QualityCache:
    """Wraps a scorer (`arch -> {metric: value}`): a known architecture's quality from the cache, an unknown one
    scored and appended to `path`. Only complete scores (every quality metric finite) are kept."""

    def __init__(self, path: str, score: Callable[[Arch], dict[str, float]] | None, quality: Sequence[str]):
        self.path, self.score, self.quality = path, score, tuple(quality)
        self.known: dict[str, dict[str, Any]] = read_quality(path)
        self.scored = 0  # architectures scored by this process (the rest came from the cache)

    def complete(self, metrics: dict[str, Any]) -> bool:
        return bool(self.quality) and all(_finite(metrics.get(q)) for q in self.quality)

    def seed(self, cache: dict[str, dict[str, Any]]) -> None:
        """Learn the quality of architectures a study already scored (arch string -> its trial's metrics)."""
        for key, metrics in cache.items():
            if key not in self.known and self.complete(metrics):
                self.known[key] = {q: float(metrics[q]) for q in self.quality}

    def __call__(self, arch: Arch) -> dict[str, Any]:
        key = arch.to_string()
        if key in self.known:
            return dict(self.known[key])
        out = self.score(arch)
        self.scored += 1
        if self.complete(out):
            self.known[key] = {k: v for k, v in out.items() if _finite(v)}
            self._append(key, self.known[key])
        return out

    def _append(self, key: str, metrics: dict[str, Any]) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with open(self.path, "a+b") as f:
            torn = f.seek(0, os.SEEK_END) > 0 and f.seek(-1, os.SEEK_END) >= 0 and f.read(1) != b"\n"
            line = json.dumps({"arch": key, "metrics": metrics}) + "\n"
            f.write((("\n" if torn else "") + line).encode())  # a torn last line stays a line of its own
            f.flush()
            os.fsync(f.fileno())


def read_quality(path: str) -> dict[str, dict[str, Any]]:
    """Arch string -> quality metrics from a quality.jsonl (empty when there is none; unreadable lines skipped)."""
    out: dict[str, dict[str, Any]] = {}
    if not os.path.isfile(path):
        return out
    with open(path) as f:
        for line in f:
            try:
                d = json.loads(line)
                out[str(d["arch"])] = dict(d["metrics"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill mid-write: that architecture is scored again
    return out
