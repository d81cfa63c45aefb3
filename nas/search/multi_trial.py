"""Multi-trial mode: each candidate trained from scratch on a budget, pruned by asynchronous successive halving.

Every trial trains its architecture from scratch for at most `search.trial_epochs` epochs and reports its
validation metrics (the task's) after each one. At the rungs (epochs 1, 2, 4, ... below the budget) a candidate whose
primary metric falls below the top 1/eta of the candidates already seen at that rung is stopped: the ASHA rule.

Why the rule lives here and not in an Optuna pruner: the search is multi-objective (accuracy vs latency),
and Optuna's `Trial.report` / `Trial.should_prune`, and with them every `optuna.pruners` pruner, support
single-objective studies only (both raise NotImplementedError when the study has several directions). So the in-process executor applies the rule itself (`SuccessiveHalving`, the same cut-off as
Ray Tune's `ASHAScheduler`, which the Ray executor uses) and ends a weak trial with `optuna.TrialPruned`,
which Optuna records as PRUNED in study.db whatever the number of objectives.

`search.early_stopping` picks the rule: `scalar` is the ASHA rule above; `pareto` (the default with several
objectives) is MO-ASHA (Schmucker et al. 2021, `ParetoHalving`): at a rung a candidate continues when it is in the
top 1/eta of the candidates recorded there, ranked by non-dominated sorting over all the search's objectives
(quality at that rung, costs known before training), ties in the last front broken by crowding distance; so a fast,
slightly less accurate candidate, which the scalar rule stops as "bottom half", goes on. `none` prunes nothing.
The Ray executor applies the same rule object at the same rungs (`ParetoScheduler` in executors/ray_tune.py).

In-process, the rungs' records live in the study (nas.search.rung_history.StudyHistory: each trial's values at the
rungs are user attrs), so `nas search --worker` processes sharing the study decide on each other's records too.
"""
from __future__ import annotations

import math
import tempfile
from typing import Any, Callable, Sequence

import numpy as np
import optuna
import torch

from nas.data import make_loaders
from nas.search.objectives import objective_values
from nas.search.pareto import pareto_rank, to_minimisation
from nas.search.rung_history import JsonHistory, StudyHistory
from nas.spec.sections import early_stopping
from nas.training.loop import TrainConfig, TrainingDiverged


def rungs(max_epochs: int, grace: int = 1, eta: int = 2) -> list[int]:
    """Epochs at which successive halving compares candidates: grace, grace*eta, ... below max_epochs."""
    if grace < 1 or eta < 2:
        raise ValueError(f"successive halving: grace must be >= 1 and eta >= 2 (got grace={grace}, eta={eta})")
    out, r = [], grace
    while r < max_epochs:
        out.append(r)
        r *= eta
    return out


def asha_cutoff(previous: list[float], eta: int) -> float | None:
    """Ray Tune's ASHA cut-off: the (1 - 1/eta) percentile of the scores already recorded at a rung."""
    finite = [s for s in previous if math.isfinite(s)]
    return float(np.percentile(finite, (1 - 1 / eta) * 100)) if finite else None


class Rungs:
    """The values candidates recorded at each rung, in the order recorded: in `history` (nas.search.rung_history),
    by default a JSON file at `path` (`{"epoch": [[candidate, value], ...]}`) so that a resumed search goes on
    with the same history."""

    def __init__(self, path: str | None, max_epochs: int, grace: int = 1, eta: int = 2, history=None):
        self.path, self.eta = path, eta
        self.rungs = rungs(max_epochs, grace, eta)
        self.history = history if history is not None else JsonHistory(path)

    @property
    def scores(self) -> dict[str, list[list]]:
        return self.history.scores

    def record(self, key: str, epoch: int, value) -> list[list]:
        """Record `key`'s `value` at rung `epoch`; returns the other candidates' entries there. A candidate scored
        again (rerun after an interruption) is compared with the others and recorded anew."""
        return self.history.record(key, epoch, value)


class SuccessiveHalving(Rungs):
    """ASHA for sequential in-process trials, on one score (the task's primary metric)."""

    def keep(self, key: str, epoch: int, score: float) -> bool:
        """Record `key`'s `score` at `epoch`; False when it is below the rung's cut-off (NaN never continues)."""
        if epoch not in self.rungs:
            return True
        seen = self.record(key, epoch, float(score))
        cut = asha_cutoff([s for _, s in seen], self.eta)
        return math.isfinite(score) and (cut is None or score >= cut)


class ParetoHalving(Rungs):
    """MO-ASHA for sequential in-process trials (and Ray's `ParetoScheduler`): `keep(key, epoch, point)` with `point`
    the candidate's objective vector in minimisation form. At a rung, the candidates recorded there (this one
    included, each once, its latest point) are ranked by non-dominated sorting, ties within a front by crowding
    distance (larger first); the candidate continues when fewer than ceil(n/eta) of the n finite ones rank strictly
    before it. A point with a NaN never continues and is not ranked. Rungs persist as SuccessiveHalving's do
    (`{"epoch": [[candidate, [values...]], ...]}` in a JSON file, or the study's trials), so a resumed search keeps
    its history."""

    def keep(self, key: str, epoch: int, point: Sequence[float]) -> bool:
        """Record `key`'s `point` at `epoch`; False when it falls outside the rung's top 1/eta."""
        if epoch not in self.rungs:
            return True
        point = [float(v) for v in np.atleast_1d(np.asarray(point, dtype=float))]
        seen = self.record(key, epoch, point)
        if not all(math.isfinite(v) for v in point):
            return False
        finite = [p for _, p in seen if len(p) == len(point) and all(math.isfinite(v) for v in p)] + [point]
        front, crowd = pareto_rank(np.array(finite))
        me = len(finite) - 1
        before = int(np.sum((front < front[me]) | ((front == front[me]) & (crowd > crowd[me]))))
        return before < math.ceil(len(finite) / self.eta)


class NoStopping:
    """`search.early_stopping: none`: every candidate trains for its whole budget."""

    eta, rungs = None, []

    def keep(self, key: str, epoch: int, point: Any) -> bool:
        return True


def stopping_rule(spec, path: str | None, history=None):
    """The spec's multi-trial pruning rule (search.early_stopping), its rungs kept in `history`, by default the JSON
    file `path`."""
    rule, epochs = early_stopping(spec), spec.search.trial_epochs
    if rule == "pareto":
        return ParetoHalving(path, epochs, history=history)
    if rule == "scalar":
        return SuccessiveHalving(path, epochs, history=history)
    return NoStopping()


def rung_point(metrics: dict[str, Any], objectives: Sequence[str], directions: Sequence[str]) -> list[float]:
    """A candidate's objective vector at a rung (its quality there, its costs), in minimisation form; NaN where
    a metric is missing or not finite."""
    return [float(v) for v in to_minimisation([objective_values(metrics, objectives)], directions)[0]]


class Pruned(optuna.TrialPruned):
    """A candidate stopped at a rung; `metrics` (its costs, its quality there, pruned_at_epoch) go into study.db."""

    def __init__(self, message: str, metrics: dict[str, Any]):
        super().__init__(message)
        self.metrics = metrics


def train_candidate(task, spec, splits, arch, epochs: int,
                    on_epoch: Callable[[int, dict[str, float]], bool] | None = None) -> dict[str, float]:
    """Train `arch` from scratch for `epochs` (seeded by spec.seed, so a candidate scores the same in any process);
    `on_epoch(epoch, metrics)` (the task's validation metrics) returning False stops early. Returns the last
    epoch's metrics."""

    class Stop(Exception):
        pass

    loaders = make_loaders(splits, spec.data.batch_size, seed=spec.seed)
    last = {q: float("nan") for q in task.quality}

    def epoch_end(record, _path):
        last.update({q: float(record.get(f"val_{q}", float("nan"))) for q in task.quality})
        if on_epoch is not None and not on_epoch(int(record["epoch"]), dict(last)):
            raise Stop

    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        try:
            task.train(task.build_model(arch), loaders, TrainConfig.from_spec(spec, epochs=epochs), tmp,
                       resume=False, progress=False, on_epoch_end=epoch_end)
        except Stop:
            pass
    return last


class MultiTrialScorer:
    """Scores an arch by training it from scratch; the spec's early-stopping rule (`stopping_rule`) prunes weak
    candidates at the rungs. `cost(arch)` (ArchEvaluator.cost) gives the cost objectives the pareto rule ranks on.
    The rungs' records are the study's (StudyHistory); `rungs`, the JSON file of an older run, is imported."""

    def __init__(self, ctx, cost: Callable[[Any], dict[str, float]] | None = None, rungs: str | None = None):
        self.ctx, self.cost = ctx, cost
        self.rule_name = early_stopping(ctx.spec)
        path = rungs or ctx.path("multi_trial_rungs.json")  # an older run's rungs, imported; then a copy
        self.halving = stopping_rule(ctx.spec, path, history=StudyHistory(path))

    def __call__(self, arch) -> dict[str, float]:
        ctx, primary = self.ctx, self.ctx.task.primary
        key, pruned = arch.to_string(), {"at": None}
        cost = dict(self.cost(arch)) if self.cost is not None else {}
        pareto = isinstance(self.halving, ParetoHalving)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
            score = rung_point({**cost, **metrics}, ctx.objectives, ctx.directions) if pareto else metrics[primary]
            if self.halving.keep(key, epoch, score):
                return True
            pruned["at"] = epoch
            return False

        try:
            metrics = train_candidate(ctx.task, ctx.spec, ctx.splits, arch, ctx.spec.search.trial_epochs, on_epoch)
        except TrainingDiverged:
            return {q: float("nan") for q in ctx.task.quality}  # NaN objective: the trial FAILs, the search goes on
        if pruned["at"] is not None:
            what = ("its objectives fall outside the top" if pareto
                    else f"{primary} {metrics[primary]:.3f} is below the top")
            raise Pruned(f"{what} 1/{self.halving.eta} of the rung at epoch {pruned['at']} ({self.rule_name} rule)",
                         {**cost, **metrics, "pruned_at_epoch": pruned["at"]})
        return metrics
