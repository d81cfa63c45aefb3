"""In-process search with an Optuna study in SQLite: samplers, constraints, resume, repeated-arch cache."""
from __future__ import annotations

import math
import os
import sys
from typing import Any, Callable, Sequence

import optuna

from search_spaces import Arch

from .objectives import ArchEvaluator, objective_values

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {}


def register_sampler(name: str):
    """Decorator: register `fn(seed, population, constraints_func) -> BaseSampler` under `name`."""

    def wrap(fn):
        SAMPLERS[name] = fn
        return fn

    return wrap


@register_sampler("nsga2")
def _nsga2(seed, population, constraints_func):
    return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, constraints_func=constraints_func)


@register_sampler("nsga3")
def _nsga3(seed, population, constraints_func):
    return optuna.samplers.NSGAIIISampler(population_size=population, seed=seed, constraints_func=constraints_func)


@register_sampler("tpe")
def _tpe(seed, population, constraints_func):
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(10, population),
                                      constraints_func=constraints_func)


@register_sampler("gp")
def _gp(seed, population, constraints_func):
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population),
                                     constraints_func=constraints_func, warn_independent_sampling=False)


@register_sampler("random")
def _random(seed, population, constraints_func):
    return optuna.samplers.RandomSampler(seed=seed)


def constraint_values(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """Optuna's constraints_func: violations stored on the trial (<= 0 is feasible)."""
    return trial.user_attrs.get("constraints", [0.0])


def make_sampler(name: str, seed: int, population: int, constrained: bool) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise ValueError(f"search.sampler: unknown sampler '{name}'; valid: {', '.join(SAMPLERS)}")
    return SAMPLERS[name](seed, population, constraint_values if constrained else None)


def open_study(run_dir: str, name: str, directions: Sequence[str], sampler: optuna.samplers.BaseSampler,
               storage: str | None = None) -> optuna.Study:
    """Create or load the run's study (SQLite in the run folder; optuna-dashboard can open it)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage or f"sqlite:///{os.path.abspath(os.path.join(run_dir, 'study.db'))}"
    return optuna.create_study(study_name=name, storage=storage, directions=list(directions), sampler=sampler,
                               load_if_exists=True)


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


def make_objective(space, evaluator: ArchEvaluator, objectives: Sequence[str], on_trial=None):
    """The study's objective: decode, evaluate (cached), record arch/metrics/constraints as user attrs."""

    def objective(trial: optuna.Trial):
        arch = suggest_arch(trial, space)
        trial.set_user_attr("arch", arch.to_string())
        trial.set_user_attr("constraints", evaluator.violations(evaluator.cost(arch)) or [0.0])
        metrics = evaluator(arch)
        clean = {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool)) and
                 not (isinstance(v, float) and not math.isfinite(v))}
        trial.set_user_attr("metrics", clean)
        trial.set_user_attr("constraints", evaluator.violations(metrics) or [0.0])
        values = objective_values(metrics, objectives)
        if on_trial:
            on_trial(trial, arch, metrics)
        return values  # a NaN value makes Optuna mark the trial FAIL; the search goes on

    return objective


def run_study(study: optuna.Study, objective, n_trials: int, timeout: float | None = None,
              progress: bool | None = None) -> int:
    """Run until the study holds `n_trials` finished trials (resume-safe); returns how many were run now."""
    finished = len([t for t in study.get_trials(deepcopy=False) if t.state.is_finished()])
    todo = max(0, n_trials - finished)
    if todo:
        show = sys.stderr.isatty() if progress is None else progress
        study.optimize(objective, n_trials=todo, timeout=timeout, catch=(FloatingPointError,),
                       show_progress_bar=show, gc_after_trial=False)
    return todo
