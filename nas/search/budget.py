"""The trial budget of a study that several processes share: `search.trials` WAITING trials, each claimed once.

`study.optimize(n_trials=...)` counts one process's trials, and `MaxTrialsCallback` stops a process after the
study has passed the count, so N processes sharing a study overshoot by up to N - 1 trials. Here the driver
enqueues the trials still missing as WAITING ones without fixed parameters (the sampler fills them in as it does a
new trial), and every process claims one with Optuna's own atomic pop of a WAITING trial (a row lock in an RDB
storage, the log's order in a journal); a process that finds none left stops. So each trial number runs once, in
one process, and the study ends with exactly the budget done. A trial cut short (Ctrl-C, a killed worker) is
not done: the driver fails it once no process is left that could be running it, and enqueues it again.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
import time
import warnings
from contextvars import ContextVar

import optuna

State = optuna.trial.TrialState
log = logging.getLogger("nas.search")
_RUNNING: ContextVar[optuna.Trial | None] = ContextVar("nas_running_trial", default=None)


def running_trial() -> optuna.Trial | None:
    """The trial `run_one` is running in this thread, on which its objective may record per-trial state (the
    multi-trial rungs: nas.search.rung_history); None outside one."""
    return _RUNNING.get()


def counts_as_done(t: optuna.trial.FrozenTrial) -> bool:
    """Complete, pruned, or failed after scoring (NaN); a trial cut short by Ctrl-C is run again on resume."""
    return t.state in (State.COMPLETE, State.PRUNED) or (t.state == State.FAIL and "metrics" in t.user_attrs)


def finished_count(study: optuna.Study) -> int:
    """Trials that count as done (`counts_as_done`): what a resumed search does not run again."""
    return sum(counts_as_done(t) for t in study.get_trials(deepcopy=False))


def fill(study: optuna.Study, budget: int) -> int:
    """Enqueue WAITING trials until done + waiting ones make `budget`; returns how many were enqueued."""
    have = sum(counts_as_done(t) or t.state == State.WAITING for t in study.get_trials(deepcopy=False))
    for _ in range(budget - have):
        study.enqueue_trial({})
    return max(0, budget - have)


def fail_stale(study: optuna.Study) -> int:
    """Mark RUNNING trials FAIL (never scored: run again); only when no live process can be running them."""
    stale = study.get_trials(deepcopy=False, states=(State.RUNNING,))
    for t in stale:
        study.tell(t.number, state=State.FAIL, skip_if_finished=True)
    return len(stale)


def claim(study: optuna.Study, budget: int) -> optuna.Trial | None:
    """A WAITING trial of the study, now RUNNING in this process; None when none is left or the budget is done."""
    if finished_count(study) >= budget:  # a budget lowered on resume leaves WAITING trials nobody claims
        return None
    study._thread_local.cached_all_trials = None  # as study.ask(): the sampler sees the latest trials
    trial_id = study._pop_waiting_trial_id()  # study.ask() without its fallback of creating a new trial
    return None if trial_id is None else optuna.Trial(study, trial_id)


def run_one(study: optuna.Study, trial: optuna.Trial, objective, catch=(FloatingPointError,)) -> None:
    """Run `objective` on a claimed trial and tell the study, as study.optimize does."""
    token = _RUNNING.set(trial)
    try:
        values = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=State.PRUNED)
        return
    except catch as e:
        log.warning(f"trial {trial.number} failed: {e!r}")
        study.tell(trial, state=State.FAIL)
        return
    except BaseException:  # Ctrl-C or a bug: the trial was never scored and runs again on resume
        try:
            study.tell(trial, state=State.FAIL)
        except Exception as e:  # e.g. SQLite still locked by the read Ctrl-C broke off: resume fails it (fail_stale)
            log.warning(f"trial {trial.number} stays RUNNING until the search resumes ({type(e).__name__})")
        raise
    finally:
        _RUNNING.reset(token)
    with warnings.catch_warnings():  # "The value nan is not acceptable": Optuna marks it FAIL, the search goes on
        warnings.simplefilter("ignore", UserWarning)
        study.tell(trial, values)


def run_budget(study: optuna.Study, objective, budget: int, timeout: float | None = None,
               progress: bool | None = None) -> int:
    """Claim and run the study's WAITING trials until none is left (or `timeout` s passed); returns how many."""
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    n, t0 = 0, time.time()
    with tqdm(total=max(0, budget - finished_count(study)), disable=not show, desc="trials") as bar:
        while timeout is None or time.time() - t0 < timeout:
            trial = claim(study, budget)
            if trial is None:
                break
            trial.set_user_attr("process", f"{socket.gethostname()}:{os.getpid()}")  # who ran it
            run_one(study, trial, objective)
            n += 1
            bar.update()
    return n
