"""Multi-trial mode: each candidate trained from scratch on a budget, pruned by asynchronous successive halving.

Every trial trains its architecture from scratch for at most `search.trial_epochs` epochs and reports its
validation metrics (the task's) after each one. At the rungs (epochs 1, 2, 4, ... below the budget) a candidate whose
primary metric falls below the top 1/eta of the candidates already seen at that rung is stopped: the ASHA rule.

Why the rule lives here and not in an Optuna pruner: the search is multi-objective (accuracy vs latency),
and Optuna's `Trial.report` / `Trial.should_prune`, and with them every `optuna.pruners` pruner, support
single-objective studies only (both raise NotImplementedError when the study has several directions). So the in-process executor applies the rule itself (`SuccessiveHalving`, the same cut-off as
Ray Tune's `ASHAScheduler`, which the Ray executor uses) and ends a weak trial with `optuna.TrialPruned`,
which Optuna records as PRUNED in study.db whatever the number of objectives.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Callable

import numpy as np
import optuna
import torch

from nas.data import make_loaders
from nas.io import atomic_write_json
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


class SuccessiveHalving:
    """ASHA for sequential in-process trials; each rung's scores, in the order recorded, kept in a JSON file
    (`{"epoch": [[candidate, score], ...]}`) so that a resumed search goes on with the same history."""

    def __init__(self, path: str | None, max_epochs: int, grace: int = 1, eta: int = 2):
        self.path, self.eta = path, eta
        self.rungs = rungs(max_epochs, grace, eta)
        self.scores: dict[str, list[list]] = {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.scores = json.load(f)

    def keep(self, key: str, epoch: int, score: float) -> bool:
        """Record `key`'s `score` at `epoch`; False when it is below the rung's cut-off (NaN never continues)."""
        if epoch not in self.rungs:
            return True
        # a candidate scored again (rerun after an interruption) is compared with the others, recorded anew
        seen = [kv for kv in self.scores.get(str(epoch), []) if kv[0] != key]
        cut = asha_cutoff([s for _, s in seen], self.eta)
        self.scores[str(epoch)] = seen + [[key, float(score)]]
        if self.path:
            atomic_write_json(self.path, self.scores)
        return math.isfinite(score) and (cut is None or score >= cut)


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
    """Scores an arch by training it from scratch; successive halving on the task's primary metric prunes weak
    candidates early."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.halving = SuccessiveHalving(ctx.path("multi_trial_rungs.json"), ctx.spec.search.trial_epochs)

    def __call__(self, arch) -> dict[str, float]:
        ctx, primary = self.ctx, self.ctx.task.primary
        key, pruned = arch.to_string(), {"at": None}

        def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
            if self.halving.keep(key, epoch, metrics[primary]):
                return True
            pruned["at"] = epoch
            return False

        try:
            metrics = train_candidate(ctx.task, ctx.spec, ctx.splits, arch, ctx.spec.search.trial_epochs, on_epoch)
        except TrainingDiverged:
            return {q: float("nan") for q in ctx.task.quality}  # NaN objective: the trial FAILs, the search goes on
        if pruned["at"] is not None:
            raise optuna.TrialPruned(f"{primary} {metrics[primary]:.3f} at epoch {pruned['at']} is below the top "
                                     f"1/{self.halving.eta} of that rung")
        return metrics
