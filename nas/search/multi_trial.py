"""Multi-trial mode: each candidate trained from scratch on a budget, pruned by successive halving."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Callable

import optuna

from nas.io import atomic_write_json


def rungs(max_epochs: int, grace: int = 1, eta: int = 2) -> list[int]:
    """Epochs at which successive halving compares candidates: grace, grace*eta, ... below max_epochs."""
    out, r = [], grace
    while r < max_epochs:
        out.append(r)
        r *= eta
    return out


class SuccessiveHalving:
    """Asynchronous successive halving (the ASHA rule): continue only in the top 1/eta of a rung so far."""

    def __init__(self, path: str, max_epochs: int, grace: int = 1, eta: int = 2):
        self.path, self.eta = path, eta
        self.rungs = rungs(max_epochs, grace, eta)
        self.scores: dict[str, list[float]] = {}
        if os.path.exists(path):
            with open(path) as f:
                self.scores = json.load(f)

    def keep(self, epoch: int, score: float) -> bool:
        """Record `score` at `epoch`; False when the candidate falls below its rung's top 1/eta."""
        if epoch not in self.rungs:
            return True
        seen = self.scores.setdefault(str(epoch), [])
        seen.append(float(score))
        atomic_write_json(self.path, self.scores)
        if len(seen) < self.eta:
            return True
        k = max(1, len(seen) // self.eta)
        return score >= sorted(seen, reverse=True)[k - 1]


def train_candidate(spec, splits, arch, epochs: int, on_epoch: Callable[[int, float], bool] | None = None,
                    run_dir: str | None = None) -> float:
    """Train `arch` from scratch for `epochs`; `on_epoch(epoch, val_acc)` returning False stops early."""
    from nas.data import make_loaders
    from nas.train import TrainConfig, train_model
    from search_spaces import build_model

    class Stop(Exception):
        pass

    loaders = make_loaders(splits, spec.data.batch_size, seed=spec.seed)
    best = {"acc": 0.0}

    def epoch_end(record, _path):
        best["acc"] = float(record.get("val_accuracy", 0.0))
        if on_epoch is not None and not on_epoch(int(record["epoch"]), best["acc"]):
            raise Stop

    with tempfile.TemporaryDirectory() as tmp:
        try:
            train_model(build_model(arch), loaders, TrainConfig.from_spec(spec, epochs=epochs), run_dir or tmp,
                        resume=False, progress=False, on_epoch_end=epoch_end)
        except Stop:
            pass
    return best["acc"]


class MultiTrialScorer:
    """Scores an arch by training it from scratch; successive halving prunes weak candidates early."""

    def __init__(self, run):
        self.run = run
        self.halving = SuccessiveHalving(run.path("multi_trial_rungs.json"), run.spec.search.trial_epochs)

    def __call__(self, arch) -> dict[str, float]:
        pruned = {"at": None}

        def on_epoch(epoch: int, acc: float) -> bool:
            if self.halving.keep(epoch, acc):
                return True
            pruned["at"] = epoch
            return False

        acc = train_candidate(self.run.spec, self.run.splits, arch, self.run.spec.search.trial_epochs, on_epoch)
        if pruned["at"] is not None:
            raise optuna.TrialPruned(f"below the top 1/{self.halving.eta} at epoch {pruned['at']} ({acc:.3f})")
        return {"accuracy": acc}
