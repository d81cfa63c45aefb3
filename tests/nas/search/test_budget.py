"""The trial budget as WAITING trials (nas.search.budget): processes racing for them on one journal file run each
trial number once and exactly the budget; trials a dead process left RUNNING run again."""
import os
import sqlite3
import subprocess
import sys

import optuna
import pytest

from nas.search.budget import claim, fail_stale, fill, finished_count, run_budget, run_one
from nas.storage import open_storage

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
State = optuna.trial.TrialState
CLAIMER = """
import sys, optuna
from nas.search.budget import run_budget
from nas.storage import open_storage
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1]), sampler=optuna.samplers.RandomSampler())
print(run_budget(study, lambda t: t.suggest_float("x", 0, 1), int(sys.argv[2]), progress=False))
"""


def test_processes_racing_for_the_budget_run_each_trial_once(tmp_path):
    url, budget = f"journal:{tmp_path}/s.log", 60
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    assert fill(study, budget) == budget and fill(study, budget) == 0
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, str(budget)], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    ran = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    trials = optuna.load_study(study_name="s", storage=open_storage(url)).trials
    assert sum(ran) == budget and sorted(t.number for t in trials) == list(range(budget))
    assert all(t.state == State.COMPLETE for t in trials)
    assert sum(r > 0 for r in ran) >= 2, ran  # they did race


def test_trials_left_running_by_a_dead_process_run_again(tmp_path):
    study = optuna.create_study(study_name="s", storage=open_storage(f"journal:{tmp_path}/s.log"))
    fill(study, 5)
    assert claim(study, 5) is not None and claim(study, 5) is not None  # a worker took two, then died
    assert fail_stale(study) == 2 and fill(study, 5) == 2
    assert run_budget(study, lambda t: t.suggest_float("x", 0, 1), 5, progress=False) == 5
    assert finished_count(study) == 5 and len(study.trials) == 7  # the two cut short stay FAIL, never scored
    assert claim(study, 5) is None


def test_ctrl_c_while_the_storage_is_locked_still_stops_with_the_interrupt(tmp_path):
    """Ctrl-C that breaks off an SQLite read leaves the file locked, so failing the trial fails too: the interrupt
    (one line, exit 130) must still be what surfaces, and the trial left RUNNING runs again on resume."""
    db = tmp_path / "s.db"
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}", engine_kwargs={"connect_args": {"timeout": 0.1}})
    study = optuna.create_study(study_name="s", storage=storage)
    fill(study, 2)
    trial = claim(study, 2)
    lock = sqlite3.connect(db, isolation_level=None)

    def objective(t):
        lock.execute("BEGIN EXCLUSIVE")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(study, trial, objective)
    lock.execute("ROLLBACK")
    assert study.trials[trial.number].state == State.RUNNING
    assert fail_stale(study) == 1 and fill(study, 2) == 1
    assert run_budget(study, lambda t: t.suggest_float("x", 0, 1), 2, progress=False) == 2
    assert finished_count(study) == 2
