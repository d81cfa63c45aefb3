"""The Ray Tune executor on a local 2-CPU Ray: one-shot search, resume (new segment, then Tuner.restore after
Ctrl-C in the driver), and multi-trial search with ASHA."""
import csv
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml

import search_spaces
from nas.spec.sections import load_spec
from nas.search.constraints import Constraint
from nas.search.objectives import ArchEvaluator
from nas.search.study import counts_as_done
from nas.spec.schema import SpecError
from nas.search.executors.ray_tune import (
    _HOOKS, _RUN_STUDY, DONE_MARK, ArchSpace, StudySearch, connect, restorable, segments)
from nas.search.runner import SearchRun
from nas.tracking import find_offline_runs, read_offline_run
from tiny_space import TINY_SPACE
from study_helpers import complete_trials

State = optuna.trial.TrialState


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray runtime for the module (start-up is slow); its address, for a second driver to join."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _rows(run_dir):
    with open(os.path.join(run_dir, "trials.csv")) as f:
        return list(csv.DictReader(f))


def _study(run_dir):
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")


def _finished(run_dir):
    """Trial number -> (arch, values) of the finished trials (counts_as_done)."""
    return {t.number: (t.user_attrs["arch"], t.values) for t in _study(run_dir).trials if counts_as_done(t)}




def _signal_when(proc, sig, done, timeout=240.0) -> str:
    """Send `sig` to the driver once `done()` holds (the run must not have ended by itself); its stderr."""
    t0 = time.time()
    while not done():
        assert proc.poll() is None, f"the driver ended before it could be stopped:\n{proc.stderr.read()}"
        assert time.time() - t0 < timeout, "the driver made no progress"
        time.sleep(0.2)
    os.kill(proc.pid, sig)
    return proc.communicate(timeout=timeout)[1]


def test_study_search_records_each_outcome_in_the_study(tmp_path):
    """The searcher's bookkeeping, driven as Tune drives it: suggest, then one completion per trial."""
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    space = search_spaces.load(str(tmp_path / "tiny.yaml"))
    evaluator = ArchEvaluator(None, None, [Constraint("params", 5000)], quality=("accuracy",))
    url = f"sqlite:///{tmp_path}/study.db"
    seen = []
    _HOOKS[url] = lambda trial, arch, metrics: seen.append((trial.number, metrics["accuracy"]))

    def searcher():
        return StudySearch(ArchSpace(space, evaluator, {}), ["accuracy", "params"], ["maximize", "minimize"],
                           optuna.samplers.RandomSampler(seed=0), "s", optuna.storages.RDBStorage(url), url,
                           trial_epochs=4)

    try:
        search = searcher()
        configs = [search.suggest(str(i)) for i in range(6)]
        assert all(set(c["cost"]) == {"params", "macs", "peak_activation_mb"} and c["cached"] is None
                   for c in configs)
        assert all(space.decode({d.key: c[d.key] for d in space.decisions()}) for c in configs)
        search.on_trial_complete("0", {"accuracy": 0.8, "epoch": 4, **configs[0]["cost"]})  # finished
        search.on_trial_complete("1", {"accuracy": 0.3, "epoch": 2})  # stopped by ASHA at rung 2
        search.on_trial_complete("2", {"accuracy": 0.3, "epoch": 1}, error=True)  # errored after retries
        search.on_trial_complete("3")  # removed before it ran (time budget)
        search.on_trial_complete("4", {"accuracy": float("nan"), "epoch": 4})  # diverged
        search.on_trial_complete("0", {"accuracy": 0.1, "epoch": 4})  # a second completion is ignored
        study = optuna.load_study(study_name="s", storage=url)
        t = study.trials
        assert [x.state for x in t] == [State.COMPLETE, State.PRUNED, State.FAIL, State.FAIL, State.FAIL,
                                        State.RUNNING]
        assert t[0].values == [0.8, configs[0]["cost"]["params"]]
        assert t[0].user_attrs["metrics"]["feasible"] == (configs[0]["cost"]["params"] <= 5000)
        assert (t[0].constraints["params"] <= 0) == t[0].user_attrs["metrics"]["feasible"]
        assert t[1].values is None and t[1].user_attrs["metrics"]["pruned_at_epoch"] == 2
        assert "metrics" not in t[2].user_attrs and "metrics" not in t[3].user_attrs
        assert "accuracy" not in t[4].user_attrs["metrics"]  # NaN is not stored; the trial counts as done
        assert [counts_as_done(x) for x in t] == [True, True, False, False, True, False]
        assert [n for n, _ in seen] == [0, 4] and seen[0][1] == 0.8 and math.isnan(seen[1][1])

        # Tune checkpoints the searcher with plain pickle; the restored one finishes the open trial
        search.save(str(tmp_path / "searcher.pkl"))
        again = searcher()
        again.restore(str(tmp_path / "searcher.pkl"))
        again.on_trial_complete("5", {"accuracy": 0.5, "epoch": 4, **configs[5]["cost"]})
        assert optuna.load_study(study_name="s", storage=url).trials[5].values[0] == 0.5
        # a repeated architecture is served from the study's earlier result, not scored again
        study.enqueue_trial(t[0].params)
        assert again.suggest("6")["cached"] == {"accuracy": 0.8}
    finally:
        _HOOKS.pop(url, None)


def test_study_search_restored_after_the_run_folder_moved(tmp_path):
    """Tune's pickled searcher (tuner.pkl, searcher-state) restores against the study where the run folder lies now
    (issue 13: it kept the old absolute study.db path)."""
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    space = search_spaces.load(str(tmp_path / "tiny.yaml"))
    evaluator = ArchEvaluator(None, None, [], quality=("accuracy",))
    first, moved = tmp_path / "run", tmp_path / "moved"
    first.mkdir()
    url = f"sqlite:///{first}/study.db"
    search = StudySearch(ArchSpace(space, evaluator, {}), ["accuracy", "params"], ["maximize", "minimize"],
                         optuna.samplers.RandomSampler(seed=0), "s", optuna.storages.RDBStorage(url), url)
    configs = [search.suggest(str(i)) for i in range(2)]
    search.on_trial_complete("0", {"accuracy": 0.8, **configs[0]["cost"]})
    pickled = pickle.dumps(search)
    search.save(str(first / "searcher.pkl"))
    del search
    os.rename(first, moved)
    _RUN_STUDY["url"] = f"sqlite:///{moved}/study.db"
    try:
        again = pickle.loads(pickled)  # as Tuner.restore reads tuner.pkl
        again.restore(str(moved / "searcher.pkl"))
        again.on_trial_complete("1", {"accuracy": 0.5, **configs[1]["cost"]})
    finally:
        _RUN_STUDY.clear()
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{moved}/study.db").trials
    assert [t.values[0] for t in trials] == [0.8, 0.5] and not first.exists()


def test_a_trial_the_local_runtime_cannot_hold_is_refused(ray_address):
    assert connect(load_spec({"search": {"ray": {"cpus_per_trial": 1, "gpus_per_trial": 0}}}).search.ray) is None
    with pytest.raises(SpecError, match=r"^search.ray.gpus_per_trial: 0.5 per trial, but the local Ray runtime "
                                        r"has 0 GPUs; lower it, or join a cluster with search.ray.address$"):
        connect(load_spec({"search": {"ray": {"gpus_per_trial": 0.5}}}).search.ray)
    with pytest.raises(SpecError, match=r"^search.ray.cpus_per_trial: 3 per trial, but the local Ray runtime has 2 "):
        connect(load_spec({"search": {"ray": {"cpus_per_trial": 3}}}).search.ray)


def test_one_shot_search_on_ray_interrupted_then_resumed(tiny_spec, ray_address, monkeypatch):
    """A driver that joined this Ray by address is stopped by Ctrl-C mid-search; the folder is moved; the resume
    continues its Tune experiment with Tuner.restore, then runs the trials added to the budget in a new one; nothing
    runs twice."""
    run_dir = tiny_spec["run_dir"]
    tiny_spec["constraints"] = {"params": 5000}
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    tiny_spec["search"].update({"executor": "ray", "trials": 4,  # one actor per Tune run: each imports torch
                                "ray": {"address": ray_address, "cpus_per_trial": 1, "max_concurrent": 1}})
    spec_path = os.path.join(os.path.dirname(run_dir), "spec.yaml")
    with open(spec_path, "w") as f:
        yaml.safe_dump(tiny_spec, f)
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "0", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "nas.cli", "search", spec_path, "--quiet"], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = os.path.join(run_dir, "ray", "tune-0")
    err = _signal_when(proc, signal.SIGINT, lambda: complete_trials(run_dir) >= 1 and restorable(first))
    assert proc.returncode == 130 and "interrupted; the run folder is resumable with --resume" in err, err
    stopped = _finished(run_dir)
    assert 1 <= len(stopped) < 4 and restorable(first)

    # the folder is moved before the resume: Tune's saved searcher binds to the study where it lies now
    moved = os.path.join(os.path.dirname(run_dir), "moved")
    shutil.move(run_dir, moved)
    run_dir = tiny_spec["run_dir"] = moved
    first = os.path.join(run_dir, "ray", "tune-0")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    tiny_spec["search"]["trials"] = 6
    tiny_spec["tracking"]["wandb"]["enabled"] = True
    summary = SearchRun(load_spec(tiny_spec), resume=True).run()
    with open(os.path.join(run_dir, "search.log")) as f:
        assert f"continuing the interrupted Ray Tune experiment {first}" in f.read()
    ray_dir = os.path.join(run_dir, "ray")
    assert segments(ray_dir) == [first, os.path.join(ray_dir, "tune-1")]
    assert all(os.path.exists(os.path.join(p, DONE_MARK)) for p in segments(ray_dir))
    after = _finished(run_dir)
    assert len(after) == 6 and all(after[n] == stopped[n] for n in stopped)

    study = _study(run_dir)
    assert not study.get_trials(states=(State.RUNNING,))
    # the first population was enqueued spread over latency; OptunaSearch's ask() ran those first
    assert all("fixed_params" in t.system_attrs for t in study.trials[:4])
    done = [t for t in study.trials if counts_as_done(t)]
    assert all(t.state == State.COMPLETE for t in done)
    for t in done:  # the values the sampler saw are the metrics the table shows
        assert t.values == [t.user_attrs["metrics"]["accuracy"], t.user_attrs["metrics"]["latency_ms"]]
        assert 0 <= t.values[0] <= 1 and t.values[1] > 0
        assert (t.constraints["params"] <= 0) == (t.user_attrs["cost"]["params"] <= 5000)
    rows = [r for r in _rows(run_dir) if r["state"] == "COMPLETE"]
    assert len(rows) == 6 and summary["complete"] == 6
    assert len(_rows(run_dir)) == summary["trials"] == len([t for t in study.trials if t.state.is_finished()])
    for r in rows:  # feasibility is the constraint, the front is the non-dominated feasible trials
        assert (r["feasible"] == "True") == (float(r["params"]) <= 5000)
        acc, lat = float(r["accuracy"]), float(r["latency_ms"])
        dominated = any(float(o["accuracy"]) >= acc and float(o["latency_ms"]) <= lat and
                        (float(o["accuracy"]) > acc or float(o["latency_ms"]) < lat)
                        for o in rows if o["feasible"] == "True")
        repeat = any(o["arch"] == r["arch"] and int(o["trial"]) < int(r["trial"]) for o in rows)
        assert (r["on_front"] == "True") == (r["feasible"] == "True" and not dominated and not repeat)
    # wandb: a hypervolume point per trial this driver finished, and the table of all trials
    wb = read_offline_run(find_offline_runs(run_dir)[0])
    assert len([h for h in wb["history"] if "hypervolume" in h]) == 6 - len(stopped)
    assert len(wb["tables"]["trials"]["data"]) == summary["trials"]


def test_multi_trial_search_on_ray_with_asha(tiny_spec, ray_address):
    run_dir = tiny_spec["run_dir"]
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    # one trial at a time: the rungs see the trials in the same order on every run (2 at once pruned none once)
    tiny_spec["search"].update({"executor": "ray", "mode": "multi_trial", "trial_epochs": 4, "trials": 6,
                                "early_stopping": "scalar",
                                "ray": {"address": ray_address, "cpus_per_trial": 1, "max_concurrent": 1}})
    summary = SearchRun(load_spec(tiny_spec)).run()

    study = _study(run_dir)
    assert len(study.trials) == 6
    assert {t.state for t in study.trials} <= {State.COMPLETE, State.PRUNED}
    for t in study.trials:
        m = t.user_attrs["metrics"]
        if t.state == State.PRUNED:  # stopped by ASHA at rung 1 or 2 of the 4-epoch budget
            assert t.values is None and m["pruned_at_epoch"] in (1, 2)
        else:
            assert t.values == [m["accuracy"], m["latency_ms"]] and "pruned_at_epoch" not in m
    # trials 0 and 1 start first and learn; a candidate still at chance level at epoch 2 falls below them
    assert any(t.state == State.PRUNED for t in study.trials), "ASHA stopped no trial"
    rows = _rows(run_dir)
    assert len(rows) == 6 and summary["complete"] == sum(t.state == State.COMPLETE for t in study.trials)
    assert all(r["on_front"] == "False" for r in rows if r["state"] == "PRUNED")
    assert any(r["on_front"] == "True" for r in rows)


def test_the_searcher_pickles_a_sampler_that_holds_a_lock():
    import pickle
    import threading

    from nas.search.executors.ray_tune import PicklableSampler

    sampler = optuna.samplers.NSGAIISampler(population_size=6, seed=0)
    sampler._test_lock = threading.Lock()  # Optuna 5.1's NSGA-II holds one (`_thread_lock`); Tune pickles searchers
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(sampler)
    restored = pickle.loads(pickle.dumps(PicklableSampler(sampler))).restore()
    assert type(restored) is optuna.samplers.NSGAIISampler and restored._population_size == 6
    assert isinstance(restored._test_lock, type(threading.Lock()))
