"""`LatencyModel`: an architecture's latency as the calibrated sum of its units' table entries.

Why a calibration: a unit timed alone runs with its weights and input hot in cache and pays the
timing harness once, while inside a network it pays the Python dispatch of the nested Sequentials
(network -> stage -> layer -> op) and finds its weights evicted by the other layers. Summed naively,
the table falls 10-40% short of the measured network on the 2-core CPU here, by an amount that
varies with the machine's load. The calibration is fitted on a
few whole networks of the space measured end to end:

    predicted = intercept + sum over units u of (scale[family(u)] * table[u] + per_unit)

with a scale per op family (or one for all), a fixed cost per unit and a fixed cost per network.
It is fitted by non-negative least squares on relative error (each network's residual divided by its
measured latency, as the ±10% goal counts), with two Huber re-weightings so one
disturbed measurement cannot pull it; the form (ratio, linear, per-family) is chosen by
leave-one-out error on the calibration networks. The result stays a sum over units, so the minimum
latency over a space is found exactly by dynamic programming over positions (constraints.py).
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from nas.cost import count_arch
from nas.latency.table import LatencyTable, MissingEntriesError, _progress_bar
from nas.latency.units import Unit, arch_units
from search_spaces.arch import Arch
from search_spaces.builder import build_model

FORMS = ("ratio", "linear", "family")


@dataclass
class Calibration:
    """The correction from summed unit latencies to whole-network latency (see the module docstring)."""

    form: str = "identity"
    scale: dict[str, float] = field(default_factory=lambda: {"*": 1.0})
    per_unit: float = 0.0
    intercept: float = 0.0
    loo_mape: float | None = None  # leave-one-out mean absolute relative error on the calibration nets (0.05 = 5%)
    points: list[dict[str, Any]] = field(default_factory=list)  # the calibration networks, measured

    @classmethod
    def identity(cls) -> "Calibration":
        return cls()

    def unit_cost(self, family: str, ms: float) -> float:
        return self.scale.get(family, self.scale.get("*", 1.0)) * ms + self.per_unit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        return cls(d.get("form", "identity"), dict(d.get("scale") or {"*": 1.0}), float(d.get("per_unit", 0.0)),
                   float(d.get("intercept", 0.0)), d.get("loo_mape"), list(d.get("points") or []))


def space_signature(space) -> str:
    """Which calibration serves a space: its name, input channels and size (`mobile@3x32`)."""
    return f"{space.name}@{space.spec.in_channels}x{space.spec.input_size}"


class LatencyModel:
    """Predicts an `Arch`'s latency (ms) on the table's profile from its units and a calibration."""

    def __init__(self, table: LatencyTable, calibration: Calibration | None = None):
        self.table = table
        self.calibration = calibration or Calibration.identity()

    @classmethod
    def for_space(cls, table: LatencyTable, space, require_calibration: bool = True) -> "LatencyModel":
        """The table with the calibration fitted for `space` (identity if none and not required)."""
        d = (table.calibrations or {}).get(space_signature(space))
        if d is None and require_calibration:
            raise MissingEntriesError(f"latency table ({table.profile.key()}) has no calibration for space "
                                      f"'{space_signature(space)}'; run `nas latency build` for this space")
        return cls(table, Calibration.from_dict(d) if d else None)

    def unit_latencies(self, arch: Arch) -> list[tuple[Unit, float]]:
        units = arch_units(arch)
        return list(zip(units, self.table.lookup(units)))

    def raw(self, arch: Arch) -> float:
        """The naive sum of the table entries (no calibration)."""
        return sum(ms for _, ms in self.unit_latencies(arch))

    def predict(self, arch: Arch) -> float:
        """Calibrated latency of `arch` in ms."""
        cal = self.calibration
        return cal.intercept + sum(cal.unit_cost(u.family, ms) for u, ms in self.unit_latencies(arch))

    def unit_cost(self, unit: Unit) -> float:
        """One unit's calibrated share of a prediction (the intercept is added once per network)."""
        return self.calibration.unit_cost(unit.family, self.table.ms(unit))

    def breakdown(self, arch: Arch) -> list[tuple[str, float]]:
        """(unit key, calibrated ms) for every unit of `arch`, in network order."""
        return [(u.key(), self.calibration.unit_cost(u.family, ms)) for u, ms in self.unit_latencies(arch)]


# --- fitting ---------------------------------------------------------------------------------------

def _features(point: dict[str, Any], form: str, families: Sequence[str]) -> list[float]:
    fam = point["family_ms"]
    if form == "ratio":
        return [sum(fam.values())]
    if form == "linear":
        return [sum(fam.values()), point["n_units"], 1.0]
    rest = sum(v for f, v in fam.items() if f not in families)
    return [fam.get(f, 0.0) for f in families] + [rest, point["n_units"], 1.0]


def _varying_families(points: Sequence[dict[str, Any]]) -> list[str]:
    """Families that earn a scale of their own: >= 5% of the latency on average and varying across the
    networks (coefficient of variation >= 0.15); a near-constant family is confounded with the intercept."""
    out = []
    for f in sorted({f for p in points for f in p["family_ms"]}):
        v = np.array([p["family_ms"].get(f, 0.0) for p in points])
        share = float(np.mean(v / np.array([sum(p["family_ms"].values()) for p in points])))
        if share >= 0.05 and v.std() >= 0.15 * max(v.mean(), 1e-12):
            out.append(f)
    return out


def _fit(points: Sequence[dict[str, Any]], form: str, families: Sequence[str]) -> np.ndarray:
    """Relative-error least squares with non-negative scales, then Huber re-weighting (twice)."""
    from scipy.optimize import lsq_linear

    X = np.array([_features(p, form, families) for p in points], dtype=float)
    y = np.array([p["measured_ms"] for p in points], dtype=float)
    lower = np.zeros(X.shape[1])  # non-negative: scales, per-unit and per-network overheads
    live = np.abs(X).sum(0) > 0  # a family absent from every network gets no coefficient
    coef = np.zeros(X.shape[1])
    w = 1.0 / y
    for _ in range(3):
        A = X[:, live] * w[:, None]
        norm = np.linalg.norm(A, axis=0)  # columns scaled to unit norm: ms, unit counts and 1 are far apart
        res = lsq_linear(A / norm, y * w, bounds=(lower[live], np.full(int(live.sum()), np.inf)))
        coef[live] = res.x / norm
        rel = np.abs(X @ coef - y) / y
        delta = max(1.345 * 1.4826 * float(np.median(rel)), 1e-6)  # Huber threshold from the residuals' MAD
        w = (1.0 / y) * np.sqrt(np.minimum(1.0, delta / np.maximum(rel, 1e-12)))
    return coef


def _to_calibration(coef: np.ndarray, form: str, families: Sequence[str]) -> Calibration:
    if form == "ratio":
        return Calibration("ratio", {"*": float(coef[0])})
    if form == "linear":
        return Calibration("linear", {"*": float(coef[0])}, float(coef[1]), float(coef[2]))
    scale = {f: float(c) for f, c in zip(families, coef)}
    scale["*"] = float(coef[len(families)])  # the families pooled together
    return Calibration("family", scale, float(coef[-2]), float(coef[-1]))


def fit_from_points(points: Sequence[dict[str, Any]], forms: Sequence[str] = FORMS) -> Calibration:
    """The calibration form with the lowest leave-one-out error on `points`, refitted on all of them.

    A point is {"measured_ms", "n_units", "family_ms": {family: summed table ms}}. The per-family form
    gives a scale of its own to each family that varies across the networks (the rest share one), and is
    only tried with at least 4 networks per coefficient. Every coefficient is >= 0."""
    points = list(points)
    families = _varying_families(points)
    best: tuple[float, str] | None = None
    for form in forms:
        n_coef = len(_features(points[0], form, families))
        if len(points) < max(3, (4 if form == "family" else 2) * n_coef) or (form == "family" and not families):
            continue
        errs = []
        for i in range(len(points)):
            rest = points[:i] + points[i + 1:]
            coef = _fit(rest, form, families)
            pred = float(np.dot(_features(points[i], form, families), coef))
            errs.append(abs(pred / points[i]["measured_ms"] - 1))
        loo = float(np.mean(errs))
        if best is None or loo < 0.97 * best[0]:  # a form with more coefficients must win clearly
            best = (loo, form)
    if best is None:
        best = (float("nan"), "ratio")
    cal = _to_calibration(_fit(points, best[1], families), best[1], families)
    cal.loo_mape = best[0] if math.isfinite(best[0]) else None
    cal.points = points
    return cal


def arch_point(arch: Arch, table: LatencyTable, measured_ms: float) -> dict[str, Any]:
    """A calibration point: the arch, its measured latency and its table entries summed per family."""
    fam: dict[str, float] = {}
    units = arch_units(arch)
    for u, ms in zip(units, table.lookup(units)):
        fam[u.family] = fam.get(u.family, 0.0) + ms

    return {"arch": arch.to_string(), "measured_ms": float(measured_ms), "n_units": len(units), "family_ms": fam,
            "macs": float(count_arch(arch).macs)}


def calibration_archs(space, n: int, seed: int = 0) -> list[Arch]:
    """`n` distinct architectures: the smallest and largest by parameters, the rest drawn at random."""
    archs: dict[str, Arch] = {}
    for a in (space.smallest(), space.largest()):
        archs.setdefault(a.to_string(), a)
    rng = random.Random(seed)
    tries = 0
    while len(archs) < n and tries < 50 * n:
        a = space.sample(rng)
        archs.setdefault(a.to_string(), a)
        tries += 1
    return list(archs.values())[:n]


def reference_arch(space) -> Arch:
    """The fixed network of `space` that whole networks are timed beside (drift correction)."""
    return space.sample(random.Random(7919))


def measure_archs(archs: Sequence[Arch], table: LatencyTable, progress: Callable[[int], None] | None = None,
                  chunk: int = 6, reference: Arch | None = None) -> list[float]:
    """End-to-end median latency (ms) of each arch, built fresh, measured in interleaved chunks on the
    table's profile and (with its drift correction, beside network `reference`) at the table's machine speed."""
    out: list[float] = []
    for start in range(0, len(archs), chunk):
        part = archs[start:start + chunk]
        ms = table.measure([(build_model(a), (1, a.in_channels, a.input_size, a.input_size)) for a in part],
                           max(a.input_size for a in part), reference)
        out += [m.median_ms for m in ms]
        if progress:
            progress(len(part))
    return out


def fit_calibration(space, table: LatencyTable, profile=None, n: int = 24, seed: int = 0,
                    progress: bool | None = None, save: bool = True) -> Calibration:
    """Measure `n` networks of `space` end to end on the table's profile (`profile`, if given, must be it),
    fit the calibration, store it in the table under the space's signature (and save the table)."""
    if profile is not None and profile.key() != table.profile.key():
        raise ValueError(f"fit_calibration: profile {profile.key()} is not the table's ({table.profile.key()})")
    archs = calibration_archs(space, n, seed)
    table.build([u for a in archs for u in arch_units(a)], progress=progress, save=save,
                size=space.spec.input_size)
    bar = _progress_bar(len(archs), f"calibrate {space_signature(space)}", progress)
    try:
        measured = measure_archs(archs, table, progress=bar.update, reference=reference_arch(space))
    finally:
        bar.close()
    cal = fit_from_points([arch_point(a, table, m) for a, m in zip(archs, measured)])
    table.calibrations[space_signature(space)] = cal.to_dict()
    if save and table.path:
        table.save()
    return cal
