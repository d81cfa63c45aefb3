"""In-process search with an Optuna study in SQLite: samplers, constraints, resume, repeated-arch cache."""
from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from typing import Any, Callable, Sequence

import optuna
import sqlalchemy.exc

from nas.errors import UserError
from nas.search.objectives import ArchEvaluator, objective_values
from search_spaces import Arch

STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)
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
    """Create or load the run's study (SQLite in the run folder; optuna-dashboard can open it); a file that is
    not an Optuna SQLite study is one line naming it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = os.path.abspath(os.path.join(run_dir, "study.db"))
    try:
        return optuna.create_study(study_name=name, storage=storage or f"sqlite:///{path}",
                                   directions=list(directions), sampler=sampler, load_if_exists=True)
    except STORAGE_ERRORS as e:
        raise UserError(unreadable_study(storage or path, e)) from None


def unreadable_study(where: str, error: BaseException) -> str:
    """One line: the study storage cannot be read, why (the driver's first line), and what to do."""
    why = (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]
    return (f"{where}: not a readable Optuna study ({why}); move it away (or delete it) to start the search over, "
            f"or restore it from a copy")


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


def counts_as_done(t: optuna.trial.FrozenTrial) -> bool:
    """Complete, pruned, or failed after scoring (NaN); a trial cut short by Ctrl-C is run again on resume."""
    State = optuna.trial.TrialState
    return t.state in (State.COMPLETE, State.PRUNED) or (t.state == State.FAIL and "metrics" in t.user_attrs)


def finished_count(study: optuna.Study) -> int:
    """Trials that count as done (`counts_as_done`): what a resumed search does not run again."""
    return sum(counts_as_done(t) for t in study.get_trials(deepcopy=False))


def run_study(study: optuna.Study, objective, n_trials: int, timeout: float | None = None,
              progress: bool | None = None) -> int:
    """Run until the study holds `n_trials` finished trials (resume-safe); returns how many were run now."""
    todo = max(0, n_trials - finished_count(study))
    if todo:
        show = sys.stderr.isatty() if progress is None else progress
        quiet = QuietInterrupt()
        optuna_log = logging.getLogger("optuna.study._optimize")
        optuna_log.addFilter(quiet)
        try:
            study.optimize(objective, n_trials=todo, timeout=timeout, catch=(FloatingPointError,),
                           show_progress_bar=show, gc_after_trial=False)
        finally:
            optuna_log.removeFilter(quiet)
    return todo


class QuietInterrupt(logging.Filter):
    """Drops Optuna's warnings (with traceback) about the trial that Ctrl-C cut short: the CLI says it in one line,
    and the trial (FAIL, never scored) runs again on resume."""

    interrupted = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            self.interrupted = True
            return False
        return not (self.interrupted and "failed with value None" in record.getMessage())
