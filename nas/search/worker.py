"""`nas search SPEC --worker`: one more process running trials of a driver's study (Optuna's distributed mode).

The worker reads the driver's latency table and trained supernet from the run folder (shared storage between
machines), opens the study at `search.storage` with the spec's sampler, objectives and constraints, and claims
the study's waiting trials until none is left (nas.search.budget); the driver alone writes the front and export.
In multi-trial mode a worker's trials record their rungs in the study and are pruned on every process's records
(nas.search.rung_history).
"""
from __future__ import annotations

import os
from typing import Any

from nas.errors import UserError
from nas.search.budget import finished_count, run_budget
from nas.search.executors.local import cached_objective
from nas.search.multi_trial import MultiTrialScorer
from nas.search.objectives import ArchEvaluator
from nas.search.shared import wait_for_driver
from nas.search.stages import one_shot_scorer, supernet_with
from nas.search.study import make_objective, make_sampler, open_study
from nas.storage import local_file, masked, resolve
from nas.training.checkpoint import read_checkpoint


def check_worker(spec) -> None:
    """What a worker cannot join: Ray's trials (add nodes to the cluster instead). Multi-trial pruning rungs are
    the study's (nas.search.rung_history), so workers prune on every process's records."""
    if spec.search.executor == "ray":
        raise UserError("--worker: search.executor is ray, whose trials already run on the Ray cluster; add nodes "
                        "to it (search.ray.address) instead of workers, or use executor: optuna")


def worker_seed(seed: int) -> int:
    """The sampler seed of a worker: its own, so two workers do not propose the same architectures."""
    return (seed + 1 + os.getpid()) % 2 ** 32


def run_worker(run, wait_s: float, check=None) -> dict[str, Any]:
    """Wait for the driver's trials, `check()` the spec against the driver's, load what it prepared, claim trials
    until none is left; a summary dict."""
    ctx, spec = run.ctx, run.spec
    lock = wait_for_driver(ctx.dir, wait_s, ctx.say)
    try:
        if check is not None:
            check()
        latency_model = run.latency_model()  # complete in the folder by now: nothing is measured
        constraints = run.constraints(latency_model)
        score = None
        if spec.search.mode == "one_shot":
            ck = read_checkpoint(ctx.path("supernet"))
            if ck is None or ck["epoch"] < spec.supernet.epochs:
                raise UserError(f"--worker: {ctx.path('supernet')} holds no supernet trained for "
                                f"{spec.supernet.epochs} epochs; is the driver's spec the same as this one?")
            score = one_shot_scorer(ctx, supernet_with(ctx, ck))
        evaluator = ArchEvaluator(score, latency_model, constraints, quality=ctx.task.quality)
        if score is None:
            evaluator.score = MultiTrialScorer(ctx, cost=evaluator.cost)
        url = resolve(spec.search.storage, ctx.dir)
        sampler = make_sampler(spec.search.sampler, worker_seed(spec.seed), spec.search.population)
        study = open_study(ctx.dir, spec.name, ctx.directions, sampler, storage=url)
        ctx.say(f"worker: joined {spec.name} in {local_file(url) or masked(url)} "
                f"({finished_count(study)} of {spec.search.trials} trials done)")
        objective = cached_objective(study, evaluator, make_objective(ctx.space, evaluator, ctx.objectives))
        n = run_budget(study, objective, spec.search.trials, spec.search.timeout_s, ctx.progress)
        return {"ran": n, "done": finished_count(study), "trials": spec.search.trials, "study": masked(url)}
    finally:
        lock.release()
