"""The in-process controller: samplers, NaN trials, the repeated-architecture cache, resume counting."""
import random

import optuna
import pytest

import search_spaces
from nas.search.objectives import ArchEvaluator
from nas.search.study import SAMPLERS, make_objective, make_sampler, open_study, run_study
from tiny_space import TINY_SPACE


def _space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return search_spaces.load(str(path))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_runs_a_constrained_two_objective_study(name, tmp_path):
    space = _space(tmp_path)
    calls = []

    def score(arch):
        calls.append(arch.to_string())
        return {"accuracy": random.Random(arch.to_string()).random()}

    from nas.search.constraints import Constraint

    evaluator = ArchEvaluator(score, None, [Constraint("params", 20000.0)])
    study = open_study(str(tmp_path), name, ["maximize", "minimize"], make_sampler(name, 0, 10))
    objective = make_objective(space, evaluator, ["accuracy", "params"])
    assert run_study(study, objective, 12, progress=False) == 12
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 12
    for t in done:  # violations are stored for Optuna's constraints_func and agree with the params
        assert (t.constraints["params"] <= 0) == (t.user_attrs["metrics"]["params"] <= 20000)
    assert len(calls) == len(set(calls))  # a repeated architecture was answered from the cache


def test_nan_score_marks_trial_failed_and_search_goes_on(tmp_path):
    space = _space(tmp_path)
    evaluator = ArchEvaluator(lambda a: {"accuracy": float("nan") if "dw_separable" in a.to_string() else 0.5})
    study = open_study(str(tmp_path), "nan", ["maximize"], make_sampler("random", 0, 4))
    run_study(study, make_objective(space, evaluator, ["accuracy"]), 15, progress=False)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.FAIL in states and optuna.trial.TrialState.COMPLETE in states
    assert len(study.trials) == 15
    # failed-after-scoring trials count as done: a resume with the same budget runs nothing
    assert run_study(study, make_objective(space, evaluator, ["accuracy"]), 15, progress=False) == 0


def test_unknown_sampler_is_one_line():
    with pytest.raises(ValueError, match="search.sampler: unknown sampler 'cmaes'; valid: nsga2"):
        make_sampler("cmaes", 0, 4)
