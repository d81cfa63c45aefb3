"""Multi-trial rungs kept in the study (nas.search.rung_history): two `Study` objects on one journal file decide on
each other's records, an older run's JSON is imported, and what a trial was compared with is on the trial."""
import json

import optuna
import pytest

from nas.search.budget import run_one
from nas.search.multi_trial import ParetoHalving, SuccessiveHalving, rung_point
from nas.search.rung_history import StudyHistory, study_entries
from nas.storage import open_storage

MO, DIRS = ["accuracy", "latency_ms"], ["maximize", "minimize"]
State = optuna.trial.TrialState


def _pt(acc, lat):
    return rung_point({"accuracy": acc, "latency_ms": lat}, MO, DIRS)


def _journal_study(path, kind: str = "journal"):
    url = f"journal:{path}" if kind == "journal" else f"sqlite:///{path}.db"
    return optuna.create_study(study_name="s", storage=open_storage(url), directions=DIRS, load_if_exists=True)


def _candidate(rule, arch: str, point):
    """A trial's objective: the candidate `arch` at rung 1 with `point`, pruned when the rule says so."""

    def objective(trial):
        trial.set_user_attr("arch", arch)
        if not rule.keep(arch, 1, point):
            raise optuna.TrialPruned()
        return [-point[0], point[1]]

    return objective


def _run(study, rule, arch, point) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    run_one(study, trial, _candidate(rule, arch, point))
    return study.trials[trial.number]


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_studies_on_one_storage_decide_on_each_others_records(tmp_path, kind):
    a, b = _journal_study(tmp_path / "study.log", kind), _journal_study(tmp_path / "study.log", kind)
    rule_a = ParetoHalving(None, max_epochs=4, history=StudyHistory(None))
    rule_b = ParetoHalving(None, max_epochs=4, history=StudyHistory(None))
    x = _run(a, rule_a, "x", _pt(0.9, 1.0))
    assert x.state == State.COMPLETE and x.user_attrs["rung:1"] == [-0.9, 1.0] and x.user_attrs["rung_seen:1"] == []
    # b's rule holds no record of its own: y is pruned because x, recorded through a, dominates it
    y = _run(b, rule_b, "y", _pt(0.5, 5.0))
    assert y.state == State.PRUNED and y.user_attrs["rung_seen:1"] == [x.number]
    # and a sees y: with y recorded, z (behind x only) is in the top half of three; alone with x it would not be
    z = _run(a, rule_a, "z", _pt(0.6, 4.0))
    assert z.state == State.COMPLETE and z.user_attrs["rung_seen:1"] == [x.number, y.number]
    alone = ParetoHalving(None, max_epochs=4)
    assert alone.keep("x", 1, _pt(0.9, 1.0)) and not alone.keep("z", 1, _pt(0.6, 4.0))


def test_scalar_rule_on_a_shared_study_and_a_rerun_candidate(tmp_path):
    a, b = _journal_study(tmp_path / "study.log"), _journal_study(tmp_path / "study.log")
    rule_a = SuccessiveHalving(None, max_epochs=4, history=StudyHistory(None))
    rule_b = SuccessiveHalving(None, max_epochs=4, history=StudyHistory(None))

    def run(study, rule, arch, acc):
        trial = study.ask()

        def objective(t):
            t.set_user_attr("arch", arch)
            if not rule.keep(arch, 1, acc):
                raise optuna.TrialPruned()
            return [acc, 1.0]

        run_one(study, trial, objective)
        return study.trials[trial.number].state

    assert run(a, rule_a, "p", 0.5) == State.COMPLETE
    assert run(b, rule_b, "q", 0.4) == State.PRUNED      # below p's 0.5, recorded through a
    assert run(a, rule_a, "q", 0.6) == State.COMPLETE    # q again: compared with p only, its new record replaces it
    entries = study_entries(b.trials)
    assert list(entries["1"]) == ["p", "q"] and entries["1"]["q"] == (0.6, 2)


def test_an_older_runs_json_is_imported_and_kept_as_a_copy(tmp_path):
    path = tmp_path / "multi_trial_rungs.json"
    path.write_text(json.dumps({"1": [["old", [-0.9, 1.0]], ["older", [-0.1, 9.0]]]}))
    study = _journal_study(tmp_path / "study.log")
    rule = ParetoHalving(str(path), max_epochs=4, history=StudyHistory(str(path)))
    # dominated by both imported entries: of 3, two rank before it (ceil(3/2) = 2)
    t = _run(study, rule, "new", _pt(0.05, 9.5))
    assert t.state == State.PRUNED and t.user_attrs["rung_seen:1"] == []  # imported entries have no trial
    # "old" trained again: its record replaces the imported entry and moves to the end
    t = _run(study, rule, "old", _pt(0.2, 8.0))
    assert t.state == State.COMPLETE and t.user_attrs["rung_seen:1"] == [0]
    copy = json.loads(path.read_text())
    assert copy == {"1": [["older", [-0.1, 9.0]], ["new", [-0.05, 9.5]], ["old", [-0.2, 8.0]]]} == rule.scores
    # a new process on the same run (the copy imported again) derives the same history
    again = StudyHistory(str(path))
    assert {e: [[k, v] for k, (v, _) in r.items()] for e, r in study_entries(study.trials, again.imported).items()} \
        == copy


def test_outside_a_running_trial_the_rule_keeps_its_json(tmp_path):
    path = str(tmp_path / "rungs.json")
    rule = ParetoHalving(path, max_epochs=4, history=StudyHistory(path))
    assert rule.keep("a", 1, _pt(0.9, 1.0)) and not rule.keep("b", 1, _pt(0.5, 5.0))
    with open(path) as f:
        assert [k for k, _ in json.load(f)["1"]] == ["a", "b"]
