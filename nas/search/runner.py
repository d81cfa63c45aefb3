"""`nas search`: one run folder from spec to Pareto front to exported winner, resumable at every stage."""
from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

from nas.config import Spec
from nas.io import atomic_write_json, atomic_write_text
from nas.schema import SpecError, to_dict
from search_spaces.loader import parse_yaml

log = logging.getLogger("nas.search")


# what a resumed run may change: budgets, later stages, and where the work runs (a run started on a laptop goes on
# on a Ray cluster; the global batch keeps supernet training the same at any process count)
RESUMABLE_CHANGES = {"search.trials", "search.timeout_s", "search.spread_trials", "search.ray.address", "distributed",
                     "retrain", "tracking", "export"}


class SearchRun:
    """The stages of one search, each cached in the run folder so a killed run resumes where it stopped."""

    def __init__(self, spec: Spec, resume: bool = False, progress: bool | None = None):
        self.spec = spec
        self.dir = spec.out_dir
        self.resume = resume
        self.progress = progress
        self._prepare_dir()
        from nas.data import load_dataset

        self.splits = load_dataset(spec.data.name, root=spec.data.root, input_size=spec.data.input_size,
                                   seed=spec.seed, download=spec.data.download)
        self.space = self._load_space()
        self.objectives = [o.metric for o in spec.objectives]
        self.directions = [o.direction for o in spec.objectives]

    # --- run folder ---
    def _prepare_dir(self) -> None:
        spec_path = os.path.join(self.dir, "spec.yaml")
        text = self.spec.to_yaml()
        if os.path.exists(spec_path):
            if not self.resume:
                raise SpecError(f"run folder '{self.dir}' already holds a run; pass --resume to continue it, or "
                                f"choose another with --set run_dir=PATH")
            with open(spec_path) as f:
                old = parse_yaml(f, spec_path, SpecError)
            new = parse_yaml(text, "spec", SpecError)
            changed = _first_difference(old, new, ignore=RESUMABLE_CHANGES)
            if changed:
                raise SpecError(f"--resume: the spec differs from the run's spec.yaml at '{changed}'; "
                                f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change on resume")
        os.makedirs(self.dir, exist_ok=True)
        atomic_write_text(spec_path, text)

    def _load_space(self):
        from nas.distributed import load_space

        return load_space(self.spec, self.splits)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    # --- stages ---
    def latency_model(self):
        """The run's latency table (built incrementally) and its calibration."""
        from nas.latency import stage as latency_stage

        return latency_stage.prepare(self.space, self.spec.hardware, self.path("latency"), progress=self.progress,
                                     seed=self.spec.seed)

    def constraints(self, latency_model):
        """Constraints from the spec, checked against the space's reachable minimum before any training."""
        from nas.search.constraints import Constraint, minimum_achievable

        out = []
        for metric, limit in self.spec.constraints.items():
            c = Constraint(metric, float(limit))
            low = minimum_achievable(self.space, metric, latency_model=latency_model)
            if low > c.max:
                unit = " ms" if metric == "latency_ms" else ""
                raise SpecError(f"constraints.{metric}: {c.max:g}{unit} cannot be met by any architecture of space "
                                f"'{self.space.name}' (minimum {low:.4g}{unit})")
            out.append(c)
        return out

    def supernet(self):
        """Train the supernet (or load it from the run folder; a partial training resumes)."""
        from nas.search import stages

        return stages.trained_supernet(self)

    def run(self) -> dict[str, Any]:
        from nas.search import stages

        t0 = time.time()
        latency_model = self.latency_model()
        constraints = self.constraints(latency_model)
        return stages.search_and_report(self, latency_model, constraints, t0)


def _first_difference(old: Any, new: Any, ignore: set[str], prefix: str = "") -> str | None:
    if prefix.rstrip(".") in ignore:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            d = _first_difference(old.get(k), new.get(k), ignore, f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if old == new else prefix.rstrip(".")


def seeded(seed: int) -> random.Random:
    return random.Random(seed)


def save_summary(run: SearchRun, summary: dict[str, Any]) -> None:
    atomic_write_json(run.path("summary.json"), summary)


__all__ = ["SearchRun", "save_summary", "to_dict"]
