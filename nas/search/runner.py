"""`nas search`: one run folder from spec to Pareto front to exported winner, resumable at every stage."""
from __future__ import annotations

import os
import time
from typing import Any

from nas.io import atomic_write_text
from nas.latency import stage as latency_stage
from nas.search.constraints import Constraint, check_achievable
from nas.search.context import RunContext
from nas.search.stages import search_and_report, trained_supernet
from nas.spec.resolve import load_space, load_splits
from nas.spec.schema import SpecError
from nas.spec.sections import COST_METRICS, Spec
from nas.tasks import task_for
from search_spaces.loader import parse_yaml

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
        splits = load_splits(spec)
        space = load_space(spec, splits)
        task = task_for(spec.task, space)
        check_data(task, splits, spec)
        check_objectives(task, spec)
        self._prepare_dir()
        self.ctx = RunContext(spec, self.dir, splits, space, task, progress)

    @property
    def space(self):
        return self.ctx.space

    @property
    def task(self):
        return self.ctx.task

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

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    # --- stages ---
    def latency_model(self):
        """The run's latency table (built incrementally) and its calibration."""
        return latency_stage.prepare(self.space, self.spec.hardware, self.path("latency"), progress=self.progress,
                                     seed=self.spec.seed)

    def constraints(self, latency_model) -> list[Constraint]:
        """Constraints from the spec, checked against the space's reachable minimum before any training (an exact
        minimum above a limit refuses the run; an estimated one only warns)."""
        out = [Constraint(metric, float(limit)) for metric, limit in self.spec.constraints.items()]
        for warning in check_achievable(self.space, out, self.task, latency_model):
            self.ctx.say(f"warning: {warning}")
        return out

    def supernet(self):
        """Train the supernet (or load it from the run folder; a partial training resumes)."""
        return trained_supernet(self.ctx)

    def run(self) -> dict[str, Any]:
        t0 = time.time()
        latency_model = self.latency_model()
        constraints = self.constraints(latency_model)
        return search_and_report(self.ctx, latency_model, constraints, t0)


def check_data(task, splits, spec: Spec) -> None:
    """The spec's dataset must be one the task learns from."""
    if not task.accepts(splits):
        raise SpecError(f"data.name: dataset '{spec.data.name}' holds {getattr(splits, 'task', 'classification')} "
                        f"data, but task '{task.name}' learns {task.kind}; choose a {task.kind} dataset")


def check_objectives(task, spec: Spec) -> None:
    """Every objective is a cost or one of the task's quality metrics; at least one is a quality metric."""
    valid = [*task.quality, *COST_METRICS]
    for i, o in enumerate(spec.objectives):
        if o.metric not in valid:
            raise SpecError(f"objectives[{i}].metric: '{o.metric}' is not measured by task '{task.name}'; valid: "
                            f"{', '.join(valid)}")
    if all(o.metric in COST_METRICS for o in spec.objectives):
        raise SpecError(f"objectives: at least one quality metric is needed; task '{task.name}' measures "
                        f"{', '.join(task.quality)}")


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


__all__ = ["SearchRun"]
