"""Objectives and constraints of one architecture, with a cache so a repeated architecture costs nothing."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from nas.cost import count_arch
from nas.errors import SearchFailed
from search_spaces import Arch


class ArchEvaluator:
    """Maps an `Arch` to its metrics: accuracy (or mIoU) from a scorer, latency from the model, cost counts."""

    def __init__(self, score: Callable[[Arch], dict[str, float]], latency_model=None,
                 constraints: Sequence = (), cache: dict[str, dict[str, Any]] | None = None,
                 quality: Sequence[str] = (), device_models: dict | None = None):
        self.score = score
        self.device_models = dict(device_models or {})  # several devices: each one's latency, `latency_ms@NAME`
        self.quality = tuple(quality)  # the task's metrics: a score that reports none of them fails the run
        self.latency_model = latency_model
        self.constraints = list(constraints)
        self.cache: dict[str, dict[str, Any]] = cache if cache is not None else {}
        self.cost_cache: dict[str, dict[str, float]] = {}

    def cost(self, arch: Arch) -> dict[str, float]:
        """Metrics that need no training: params, MACs, peak activation memory, predicted latency."""
        key = arch.to_string()
        if key not in self.cost_cache:
            c = count_arch(arch)
            out = {"params": float(c.params), "macs": float(c.macs),
                   "peak_activation_mb": float(getattr(c, "peak_activation_bytes", 0)) / 2 ** 20}
            if self.latency_model is not None:
                out["latency_ms"] = float(self.latency_model.predict(arch))
            for name, model in self.device_models.items():
                out[f"latency_ms@{name}"] = out["latency_ms"] if model is self.latency_model else float(
                    model.predict(arch))
            self.cost_cache[key] = out
        return dict(self.cost_cache[key])

    def violations(self, metrics: dict[str, float]) -> list[float]:
        """Optuna's convention: one value per constraint, <= 0 when satisfied."""
        return [float(c.violation(metrics[c.metric])) for c in self.constraints]

    def __call__(self, arch: Arch) -> dict[str, Any]:
        key = arch.to_string()
        if key in self.cache:
            return {**self.cache[key], "cached": True}
        metrics: dict[str, Any] = self.cost(arch)
        scored = self.score(arch)
        if self.quality and not any(q in scored for q in self.quality):
            raise SearchFailed(f"the trial's scorer reported {', '.join(sorted(scored)) or 'nothing'}, none of the "
                               f"task's quality metrics ({', '.join(self.quality)}): the search cannot rank trials")
        metrics.update(scored)
        metrics["feasible"] = all(v <= 0 for v in self.violations(metrics))
        self.cache[key] = metrics
        return dict(metrics)


def objective_values(metrics: dict[str, Any], names: Sequence[str]) -> list[float]:
    """The objective vector, NaN where a metric is missing or not finite (Optuna then marks the trial failed)."""
    out = []
    for n in names:
        v = metrics.get(n)
        out.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else float("nan"))
    return out
