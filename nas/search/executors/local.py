"""The in-process executor: the run's Optuna study optimised in this process, one trial after another."""
from __future__ import annotations

from nas.search.study import completed_cache, make_objective, run_study


def run_local(ctx, study, evaluator, on_trial=None) -> int:
    """Run trials until the study holds `search.trials` finished ones; returns how many ran now."""
    evaluator.cache.update(completed_cache(study))  # a resumed search never scores an architecture twice
    objective = make_objective(ctx.space, evaluator, ctx.objectives, on_trial=on_trial)
    return run_study(study, objective, ctx.spec.search.trials, ctx.spec.search.timeout_s, ctx.progress)
