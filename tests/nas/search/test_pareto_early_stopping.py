"""Pareto-aware early stopping (search.early_stopping, MO-ASHA): the rule on synthetic points, Ray's scheduler on
synthetic results, and an in-process multi-trial search that prunes with it."""
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import optuna
import pytest

from nas.search.multi_trial import (
    NoStopping,
    ParetoHalving,
    SuccessiveHalving,
    rung_point,
    stopping_rule,
)
from nas.search.pareto import crowding_distance, non_dominated_sort, pareto_rank
from nas.spec.schema import SpecError
from nas.spec.sections import early_stopping, load_spec

MO = ["accuracy", "latency_ms"]
DIRS = ["maximize", "minimize"]


def _pt(acc, lat):
    return rung_point({"accuracy": acc, "latency_ms": lat}, MO, DIRS)


def test_non_dominated_sort_and_crowding():
    pts = np.array([[0, 3], [1, 1], [3, 0], [2, 2], [4, 4], [3, 3]], dtype=float)
    assert [sorted(f.tolist()) for f in non_dominated_sort(pts)] == [[0, 1, 2], [3], [5], [4]]
    cd = crowding_distance(pts[[0, 1, 2]])
    assert math.isinf(cd[0]) and math.isinf(cd[2]) and cd[1] == pytest.approx(2.0)  # (3-0)/3 + (3-0)/3
    front, crowd = pareto_rank(pts)
    assert front.tolist() == [0, 0, 0, 1, 3, 2] and math.isinf(crowd[3])


def test_a_fast_slightly_less_accurate_candidate_is_kept_by_pareto_and_stopped_by_scalar():
    pareto, scalar = ParetoHalving(None, max_epochs=4), SuccessiveHalving(None, max_epochs=4)
    for key, acc in (("a", 0.80), ("b", 0.82), ("c", 0.85), ("d", 0.90)):  # accurate, all slow
        pareto.keep(key, 1, _pt(acc, 10.0))
        scalar.keep(key, 1, acc)
    assert pareto.keep("fast", 1, _pt(0.79, 2.0))  # on the first front: nothing is both faster and more accurate
    assert not scalar.keep("fast", 1, 0.79)        # below the median accuracy of the rung


def test_pareto_keeps_the_top_1_over_eta_of_the_rung():
    # a chain of dominated points: one per front, so the rank is the position in the chain
    chain = [_pt(0.9 - 0.1 * i, 1.0 + i) for i in range(6)]
    for eta in (2, 3):
        rule = ParetoHalving(None, max_epochs=9, eta=eta)
        for i, p in enumerate(chain[:-1]):
            rule.keep(f"c{i}", 1, p)  # the best first: all recorded
        # 6 candidates recorded with the worst: it continues only when fewer than ceil(6/eta) rank before it
        n_before = 5
        assert rule.keep("worst", 1, chain[-1]) == (n_before < math.ceil(6 / eta))
        # between chain[2] and chain[3]: 3 rank before it of 7; it continues with eta=2 (ceil(7/2)=4), not with
        # eta=3 (ceil(7/3)=3)
        assert rule.keep("fourth", 1, _pt(0.65, 3.5)) == (eta == 2)
    # the first candidate at a rung always continues; a point in the last front's middle loses to its extremes
    rule = ParetoHalving(None, max_epochs=4)
    assert rule.keep("a", 1, _pt(0.1, 100.0))
    for key, p in (("x", _pt(0.9, 9.0)), ("y", _pt(0.5, 1.0))):
        rule.keep(key, 1, p)
    # on the first front with x and y, but between them: both extremes rank before it, and ceil(4/2) = 2
    assert not rule.keep("mid", 1, _pt(0.7, 5.0))
    assert rule.keep("b", 3, _pt(0.0, 1e9))  # epoch 3 is no rung


def test_nan_never_continues_and_is_not_ranked():
    rule = ParetoHalving(None, max_epochs=4)
    assert not rule.keep("nan", 1, _pt(float("nan"), 1.0))
    assert not rule.keep("nan-cost", 1, rung_point({"accuracy": 0.9}, MO, DIRS))  # latency missing: NaN
    assert rule.keep("a", 1, _pt(0.1, 9.0))  # the first finite point: the NaN ones do not count
    assert [k for k, _ in rule.scores["1"]] == ["nan", "nan-cost", "a"]


def test_pareto_rungs_resume_from_the_json(tmp_path):
    path = str(tmp_path / "rungs.json")
    rule = ParetoHalving(path, max_epochs=4)
    assert rule.keep("a", 1, _pt(0.9, 1.0))          # dominates everything after it
    assert not rule.keep("b", 1, _pt(0.5, 5.0))
    assert rule.keep("a", 2, _pt(0.95, 1.0))
    again = ParetoHalving(path, max_epochs=4)
    assert again.scores == rule.scores and again.scores["1"][0] == ["a", [-0.9, 1.0]]
    assert not again.keep("c", 2, _pt(0.6, 2.0))     # compared with a's rung-2 point read back from the file
    assert again.keep("b", 1, _pt(0.95, 0.5))        # rescored: replaces its own entry, compared with the others
    with open(path) as f:
        saved = json.load(f)
    assert [k for k, _ in saved["1"]] == ["a", "b"] and [k for k, _ in saved["2"]] == ["a", "c"]


def test_the_rule_comes_from_the_spec():
    spec = load_spec({"search": {"mode": "multi_trial", "trial_epochs": 4}})
    assert early_stopping(spec) == "pareto" and isinstance(stopping_rule(spec, None), ParetoHalving)
    single = load_spec({"objectives": [{"metric": "accuracy"}], "search": {"trial_epochs": 4}})
    assert early_stopping(single) == "scalar" and isinstance(stopping_rule(single, None), SuccessiveHalving)
    off = load_spec({"search": {"early_stopping": "none"}})
    assert isinstance(stopping_rule(off, None), NoStopping) and stopping_rule(off, None).keep("a", 1, [math.nan])
    with pytest.raises(SpecError, match=r"^search\.early_stopping: 'asha' is not a rule; valid: pareto, scalar, none$"):
        load_spec({"search": {"early_stopping": "asha"}})


def test_ray_scheduler_stops_what_the_rule_stops(tmp_path):
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from nas.search.executors.ray_tune import ParetoScheduler, make_scheduler

    path = str(tmp_path / "rungs.json")
    sched = ParetoScheduler(ParetoHalving(path, max_epochs=4), MO, DIRS)
    CONT, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP

    def result(trial_id, epoch, acc, lat):
        return sched.on_trial_result(None, SimpleNamespace(trial_id=trial_id), {
            "accuracy": acc, "epoch": epoch, "latency_ms": lat, "params": 1e4, "macs": 1e6})

    assert [result(k, 1, a, 10.0) for k, a in (("a", 0.85), ("b", 0.80), ("c", 0.82), ("d", 0.90))] == \
        [CONT, STOP, CONT, CONT]
    assert result("fast", 1, 0.79, 2.0) == CONT     # as the in-process rule decides
    assert result("slow", 1, 0.70, 20.0) == STOP    # dominated by all: the last front
    assert result("a", 3, 0.1, 10.0) == CONT        # no rung
    assert result("e", 1, float("nan"), 1.0) == STOP
    assert sched.on_trial_result(None, SimpleNamespace(trial_id="z"), {"epoch": 4, "cached": True}) == CONT
    assert sched.num_stopped == 3 and "num_stopped=3" in sched.debug_string()
    # the same decisions as the in-process rule on the same points, recorded in the same JSON form
    replay = ParetoHalving(None, max_epochs=4)
    with open(path) as f:
        saved = json.load(f)
    assert [replay.keep(k, 1, p) for k, p in saved["1"]] == [True, False, True, True, True, False, False]

    ctx = SimpleNamespace(spec=load_spec({"search": {"mode": "multi_trial", "trial_epochs": 4}}),
                          objectives=MO, directions=DIRS, task=SimpleNamespace(primary="accuracy"),
                          path=lambda *p: os.path.join(str(tmp_path), *p))
    assert isinstance(make_scheduler(ctx), ParetoScheduler)
    ctx.spec.search.early_stopping = "scalar"
    assert isinstance(make_scheduler(ctx), ASHAScheduler)
    ctx.spec.search.early_stopping = "none"
    assert make_scheduler(ctx) is None


def test_multi_trial_search_prunes_with_the_pareto_rule(tiny_spec):
    from nas.search.runner import SearchRun

    tiny_spec["search"].update({"mode": "multi_trial", "trial_epochs": 4, "trials": 7, "spread_trials": 0,
                                "early_stopping": "pareto"})
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    run_dir = tiny_spec["run_dir"]
    summary = SearchRun(load_spec(tiny_spec)).run()

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")
    assert len(study.trials) == 7 and all(t.state.is_finished() for t in study.trials)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the pareto rule stopped no trial"
    for t in pruned:  # its costs and its accuracy at the rung where it stopped
        m = t.user_attrs["metrics"]
        assert t.values is None and m["pruned_at_epoch"] in (1, 2) and {"accuracy", "latency_ms"} <= set(m)
    with open(os.path.join(run_dir, "multi_trial_rungs.json")) as f:
        scores = json.load(f)
    assert set(scores) <= {"1", "2"} and all(len(p) == 2 for rung in scores.values() for _, p in rung)
    # each pruned candidate's point at its rung is the one the rule recorded: minus accuracy, latency
    for t in pruned:
        m = t.user_attrs["metrics"]
        recorded = {k: p for k, p in scores[str(m["pruned_at_epoch"])]}[t.user_attrs["arch"]]
        assert recorded == pytest.approx([-m["accuracy"], m["latency_ms"]])
    assert summary["complete"] == 7 - len(pruned)


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray runtime for this module's Ray search; its address."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_multi_trial_search_on_ray_prunes_with_the_pareto_scheduler(tiny_spec, ray_address):
    from nas.search.runner import SearchRun

    run_dir = tiny_spec["run_dir"]
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    tiny_spec["search"].update({"executor": "ray", "mode": "multi_trial", "trial_epochs": 4, "trials": 6,
                                "ray": {"address": ray_address, "cpus_per_trial": 1, "max_concurrent": 2}})
    SearchRun(load_spec(tiny_spec)).run()  # pareto: the default with two objectives

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")
    assert len(study.trials) == 6
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the pareto scheduler stopped no trial"
    assert all(t.user_attrs["metrics"]["pruned_at_epoch"] in (1, 2) for t in pruned)
    with open(os.path.join(run_dir, "multi_trial_rungs.json")) as f:
        scores = json.load(f)
    # the scheduler recorded each trial's (-accuracy, latency) at rung 1, keyed by Ray trial id
    assert len(scores["1"]) == 6 and all(len(p) == 2 and p[1] > 0 for _, p in scores["1"])
    # and a replay of the in-process rule on those points stops as many trials there as Ray did
    replay = ParetoHalving(None, max_epochs=4)
    stopped_at_1 = sum(not replay.keep(k, 1, p) for k, p in scores["1"])
    assert stopped_at_1 == sum(t.user_attrs["metrics"]["pruned_at_epoch"] == 1 for t in pruned)
