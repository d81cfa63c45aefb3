"""In-process search with the run's Optuna study: samplers, constraints, resume, repeated-arch cache."""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import optuna

from nas.errors import UserError
from nas.search.budget import counts_as_done, fill, finished_count, run_budget  # noqa: F401 (re-exported)
from nas.search.objectives import ArchEvaluator, objective_values
from nas.storage import STORAGE_ERRORS, local_file, masked, open_storage, resolve, unreadable_study
from search_spaces import Arch

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {}


def register_sampler(name: str):
    """Decorator: register `fn(seed, population) -> BaseSampler` under `name`.

    Constraints reach every sampler through `trial.set_constraint` (Optuna >= 5), so no sampler needs a
    constraints_func: NSGA-II/III rank infeasible trials behind feasible ones, TPE and GP model feasibility.
    """

    def wrap(fn):
        SAMPLERS[name] = fn
        return fn

    return wrap


@register_sampler("nsga2")
def _nsga2(seed, population):
    return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)


@register_sampler("nsga3")
def _nsga3(seed, population):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.NSGAIIISampler(population_size=population, seed=seed)


@register_sampler("tpe")
def _tpe(seed, population):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(10, population))


@register_sampler("gp")
def _gp(seed, population):
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population), warn_independent_sampling=False)


@register_sampler("random")
def _random(seed, population):
    return optuna.samplers.RandomSampler(seed=seed)


def make_sampler(name: str, seed: int, population: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise UserError(f"search.sampler: unknown sampler '{name}'; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](seed, population)


def set_constraints(trial, evaluator: ArchEvaluator, cost: dict[str, float]) -> None:
    """Store each constraint's violation on the trial (<= 0 is feasible), where every sampler reads it."""
    for constraint, v in zip(evaluator.constraints, evaluator.violations(cost)):
        trial.set_constraint(constraint.metric, v)


def open_study(run_dir: str, name: str, directions: Sequence[str], sampler: optuna.samplers.BaseSampler,
               storage: str | None = None) -> optuna.Study:
    """Create or load the run's study: `storage` (a resolved `search.storage` URL), by default SQLite in the run
    folder (optuna-dashboard can open it); a storage that is not an Optuna study is one line naming it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or resolve(None, run_dir)
    try:
        return optuna.create_study(study_name=name, storage=open_storage(url), directions=list(directions),
                                   sampler=sampler, load_if_exists=True)
    except STORAGE_ERRORS as e:
        raise UserError(unreadable_study(local_file(url) or masked(url), e)) from None


def suggest_arch(trial: optuna.trial.BaseTrial, space) -> Arch:
    """Ask the trial for every decision of the space and decode the answer."""
    assignment = {d.key: trial.suggest_categorical(d.key, list(d.choices)) for d in space.decisions()}
    return space.decode(assignment)


def completed_cache(study: optuna.Study) -> dict[str, dict[str, Any]]:
    """Metrics of finished trials keyed by arch string, so a resumed search never repeats one."""
    cache = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "arch" in t.user_attrs and "metrics" in t.user_attrs:
            cache[t.user_attrs["arch"]] = t.user_attrs["metrics"]
    return cache


def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    """The finite numbers and flags of a trial's metrics, as study.db stores them."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool)) and
            not (isinstance(v, float) and not math.isfinite(v))}


def make_objective(space, evaluator: ArchEvaluator, objectives: Sequence[str], on_trial=None):
    """The study's objective: decode, evaluate (cached), record arch/metrics/constraints as user attrs."""

    def objective(trial: optuna.Trial):
        arch = suggest_arch(trial, space)
        trial.set_user_attr("arch", arch.to_string())
        set_constraints(trial, evaluator, evaluator.cost(arch))  # known before training: cost metrics only
        try:
            metrics = evaluator(arch)
        except optuna.TrialPruned as e:  # stopped at a rung: its costs, its quality there, pruned_at_epoch
            trial.set_user_attr("metrics", _clean(getattr(e, "metrics", {})))
            raise
        trial.set_user_attr("metrics", _clean(metrics))
        values = objective_values(metrics, objectives)
        if on_trial:
            on_trial(trial, arch, metrics)
        return values  # a NaN value makes Optuna mark the trial FAIL; the search goes on

    return objective


def run_study(study: optuna.Study, objective, n_trials: int, timeout: float | None = None,
              progress: bool | None = None) -> int:
    """Run until the study holds `n_trials` finished trials (resume-safe); returns how many were run now. The
    missing trials wait in the study (nas.search.budget), where `nas search --worker` processes claim them too."""
    fill(study, n_trials)
    return run_budget(study, objective, n_trials, timeout, progress)
