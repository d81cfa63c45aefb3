"""Multi-trial mode in-process: the ASHA rule on synthetic scores, and a whole search that prunes."""
import csv
import json
import math
import os

import numpy as np
import optuna
import pytest

from nas.spec.sections import load_spec
from nas.search.multi_trial import SuccessiveHalving, asha_cutoff, rungs
from nas.errors import SearchFailed
from nas.search.runner import SearchRun


def test_rungs_are_the_asha_milestones_below_the_budget():
    assert rungs(4) == [1, 2]
    assert rungs(9, grace=1, eta=3) == [1, 3]
    assert rungs(1) == []
    with pytest.raises(ValueError, match="eta >= 2"):
        rungs(4, eta=1)


def test_cutoff_is_ray_tunes_asha_percentile():
    assert asha_cutoff([], 2) is None
    assert asha_cutoff([0.5], 2) == 0.5
    assert asha_cutoff([0.2, 0.4, 0.6], 2) == pytest.approx(0.4)
    # eta 3 keeps the top third: the 66.7th percentile, as ray.tune.schedulers.ASHAScheduler computes it
    assert asha_cutoff([0.1, 0.2, 0.3, 0.9], 3) == pytest.approx(np.nanpercentile([0.1, 0.2, 0.3, 0.9], 200 / 3))
    assert asha_cutoff([float("nan"), 0.3], 2) == 0.3


def test_successive_halving_prunes_below_the_rung_and_resumes(tmp_path):
    path = str(tmp_path / "rungs.json")
    sh = SuccessiveHalving(path, max_epochs=4)
    assert sh.rungs == [1, 2]
    assert sh.keep("a", 1, 0.50)          # first at the rung: nothing to compare with
    assert not sh.keep("b", 1, 0.40)      # below the median of {0.50}
    assert sh.keep("c", 1, 0.60)          # above the median of {0.50, 0.40}
    assert not sh.keep("d", 1, 0.45)      # median of {0.5, 0.4, 0.6} is 0.5
    assert sh.keep("a", 3, 0.10)          # epoch 3 is no rung
    assert sh.keep("a", 2, 0.70) and not sh.keep("c", 2, 0.65)
    assert not sh.keep("e", 1, float("nan"))
    # the same candidate scored again (a trial rerun after an interruption) is compared with the others only
    assert sh.keep("b", 1, 0.55)
    # a resumed search reads the rungs back and goes on with the same history
    again = SuccessiveHalving(path, max_epochs=4)
    assert again.scores["1"][-1] == ["b", 0.55] and [k for k, _ in again.scores["2"]] == ["a", "c"]
    assert not again.keep("f", 2, 0.60)
    with open(path) as f:
        assert json.load(f)["2"][-1] == ["f", 0.60]


def _replay(scores: dict) -> set[str]:
    """Which keys the rule stopped, replaying each rung in recording order."""
    stopped = set()
    for epoch in sorted(scores, key=int):
        seen: list[float] = []
        for key, s in scores[epoch]:
            cut = asha_cutoff(seen, 2)
            if not math.isfinite(s) or (cut is not None and s < cut):
                stopped.add(key)
            seen.append(s)
    return stopped


def test_multi_trial_search_prunes_with_successive_halving(tiny_spec):
    # NSGA-II's own random first generation: among these 7 candidates are some the rule stops (started spread,
    # ends first, none of the 7 fell below the rule's cutoff: a test of the rule needs candidates that do)
    tiny_spec["search"].update({"mode": "multi_trial", "trial_epochs": 4, "trials": 7, "spread_trials": 0,
                                "early_stopping": "scalar"})  # the pareto rule: test_pareto_early_stopping.py
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    run_dir = tiny_spec["run_dir"]
    summary = SearchRun(load_spec(tiny_spec)).run()

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 7 and all(s.is_finished() for s in states)
    assert pruned, "no trial was pruned"
    assert complete and all(len(t.values) == 2 for t in complete)
    assert all(t.values is None for t in pruned)
    # the trials pruned are exactly those the rung history says the rule stopped
    with open(os.path.join(run_dir, "multi_trial_rungs.json")) as f:
        scores = json.load(f)
    assert set(scores) <= {"1", "2"}
    archs = [t.user_attrs["arch"] for t in study.trials]
    once = {a for a in archs if archs.count(a) == 1}  # a pruned arch sampled again is trained again
    assert {t.user_attrs["arch"] for t in pruned} & once == _replay(scores) & once
    assert not {t.user_attrs["arch"] for t in complete} & once & _replay(scores)
    # a survivor of rung 1 is recorded at rung 2; a candidate stopped at rung 1 is not
    assert not {k for k, _ in scores.get("2", [])} & _replay({"1": scores["1"]})

    with open(os.path.join(run_dir, "trials.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 and summary["complete"] == len(complete)
    assert all(r["on_front"] == "False" for r in rows if r["state"] == "PRUNED")
    assert any(r["on_front"] == "True" for r in rows)
    assert os.path.exists(os.path.join(run_dir, "best", "model.py"))


def test_a_diverging_candidate_fails_and_the_search_goes_on(tiny_spec):
    """Each diverged candidate is a FAIL trial and the next one still runs; a search where all of them diverged
    has nothing to report and says so (SearchFailed: a non-zero exit), not "0 complete"."""
    tiny_spec["search"].update({"mode": "multi_trial", "trial_epochs": 1, "trials": 2})
    tiny_spec["supernet"].update({"lr": 1e12, "grad_clip": 0})
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    with pytest.raises(SearchFailed, match=r"none of 2 trials completed \(2 fail\): every scored trial's "
                                           r"objectives were NaN"):
        SearchRun(load_spec(tiny_spec)).run()

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_spec['run_dir']}/study.db")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert all("accuracy" not in t.user_attrs["metrics"] for t in study.trials)  # scored: NaN, not stored
    assert not os.path.exists(os.path.join(tiny_spec["run_dir"], "best"))
