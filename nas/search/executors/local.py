"""The in-process executor: the run's Optuna study optimised in this process, one trial after another, and by the
`nas search --worker` processes that join it (nas.search.shared)."""
from __future__ import annotations

import time

from optuna.trial import TrialState

from nas.search.budget import fail_stale, fill, run_budget
from nas.search.shared import OpenTrials
from nas.search.study import completed_cache, make_objective


def cached_objective(study, evaluator, objective):
    """`objective` that first takes in the architectures other processes scored, so none is scored twice."""

    def run(trial):
        evaluator.cache.update(completed_cache(study))
        return objective(trial)

    return run


def run_local(ctx, study, evaluator, on_trial=None, lock=None, url: str | None = None) -> int:
    """Run trials until the study holds `search.trials` finished ones; returns how many ran in this process. With
    the run folder's `lock` (the driver's), workers may claim trials meanwhile; once they have all ended, trials a
    dead worker left RUNNING run again here."""
    s = ctx.spec.search
    objective = cached_objective(study, evaluator, make_objective(ctx.space, evaluator, ctx.objectives,
                                                                  on_trial=on_trial))
    fill(study, s.trials)
    if lock is None:
        return run_budget(study, objective, s.trials, s.timeout_s, ctx.progress)
    t0 = time.time()
    with OpenTrials(ctx, lock, url, s.trials):
        n = run_budget(study, objective, s.trials, s.timeout_s, ctx.progress)
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if running:
            ctx.say(f"search: waiting for the workers' last {running} trials")
    stale = fail_stale(study)
    if stale and fill(study, s.trials):
        ctx.say(f"search: {stale} trials cut short in a worker that ended run again here")
        left = None if s.timeout_s is None else max(0.0, s.timeout_s - (time.time() - t0))
        n += run_budget(study, objective, s.trials, left, ctx.progress)
    return n
