"""Hardware constraints of a search, checked against the least value any architecture of the space reaches.

`Constraint.violation` follows Optuna's `constraints_func` convention: <= 0 when satisfied. It is the
relative excess `(value - max) / max`, so that violations of constraints in different units (ms,
parameters, MACs) are comparable when NSGA-II sums them.

Whether a constraint can be met at all is asked of the run's task (`Task.minimum`, nas.latency.minimum):
an exact minimum above the limit refuses the run before any training; an estimate only warns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nas.errors import UserError
from nas.latency.minimum import COST_METRICS as METRICS
from nas.spec.schema import SpecError
from nas.spec.sections import split_metric

UNITS = {"latency_ms": " ms", "params": "", "macs": "", "peak_activation_mb": " MB"}


@dataclass(frozen=True)
class Constraint:
    """`metric <= max`; `latency_ms@DEVICE` is one device's latency in a several-device search."""

    metric: str
    max: float

    def __post_init__(self):
        if split_metric(self.metric)[0] not in METRICS:
            raise UserError(f"constraints.{self.metric}: unknown constraint; valid: {', '.join(METRICS)}")
        if not (isinstance(self.max, (int, float)) and math.isfinite(self.max) and self.max > 0):
            raise UserError(f"constraints.{self.metric}: the limit must be a positive number, got {self.max!r}")

    def feasible(self, value: float) -> bool:
        return float(value) <= self.max

    def violation(self, value: float) -> float:
        """Optuna's convention: <= 0 when feasible, else the relative excess over the limit."""
        return (float(value) - self.max) / self.max


def unmet_message(space, constraint: Constraint, minimum: float) -> str:
    unit = UNITS.get(split_metric(constraint.metric)[0], "")
    return (f"constraints.{constraint.metric}: {constraint.max:g}{unit} cannot be met by any architecture of space "
            f"'{space.name}' (minimum {minimum:.4g}{unit})")


def check_achievable(space, constraints, task, latency_model=None, device_models=None) -> list[str]:
    """Raise a one-line `SpecError` for the first constraint that no architecture of `space` can meet (by the
    task's exact minimum); returns warnings for constraints below an estimated minimum (not refused). A
    `latency_ms@DEVICE` constraint is checked on `device_models[DEVICE]`."""
    warnings = []
    for c in constraints:
        metric, device = split_metric(c.metric)
        model = device_models[device] if device is not None else latency_model
        low, exact = task.minimum(space, metric, latency_model=model)
        if low > c.max:
            if exact:
                raise SpecError(unmet_message(space, c, low))
            warnings.append(unmet_message(space, c, low).replace("cannot be met by any", "may be below every")
                            .replace("(minimum", "(an upper bound of its minimum is") + "; searching anyway")
    return warnings
