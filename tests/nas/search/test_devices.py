"""Train once, a front for every device: a `hardware:` list searches one supernet for several devices, each with
its own table, study, front, pareto files, best/ and wandb charts; a device added on --resume is measured and
searched without a training step; quality is scored once per architecture for the whole run."""
import csv
import json
import os
import shutil
import subprocess
import sys

import optuna
import pytest

from tiny_space import tiny_spec_in
from nas.cli import main
from nas.errors import UserError
from nas.latency import stage as latency_stage
from nas.latency.minimum import exact_minimum
from nas.search.runner import SearchRun
from nas.spec.resolve import load_space, load_splits
from nas.spec.schema import SpecError
from nas.spec.sections import load_spec
from nas.tasks import get_task
from nas.tracking import find_offline_runs, read_offline_run
from nas.training import loop

PROFILE = {"calibration_archs": 3, "warmup": 2, "repeats": 10}
CPU1 = {"kind": "cpu", "threads": 1, **PROFILE}
CPU2 = {"kind": "cpu", "threads": 2, **PROFILE}
DEVICES = ("cpu-1t", "cpu-2t")


def spec_for(folder, hardware, trials: int = 4, **changes) -> dict:
    spec = tiny_spec_in(folder, hardware=hardware)
    spec["supernet"]["epochs"] = 1
    spec["search"].update({"trials": trials, "population": 2})
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Each device's latency folder (RUN/latency/<device>/), measured once for the module."""
    folder = tmp_path_factory.mktemp("tables")
    spec = load_spec(spec_for(folder, [CPU1, CPU2]))
    space = load_space(spec, load_splits(spec))
    models = {d.name: latency_stage.prepare(space, d, str(folder / "latency" / d.name), progress=False)
              for d in spec.hardware}
    return folder / "latency", space, models


def with_tables(spec: dict, tables, names=DEVICES) -> dict:
    for name in names:
        shutil.copytree(tables[0] / name, os.path.join(spec["run_dir"], "latency", name))
    return spec


def read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def counted(monkeypatch):
    """How often the one-shot scorer and a supernet training epoch really run (the real code, counted)."""
    calls = {"score": [], "epochs": 0}
    task_class = type(get_task("classification"))
    score, train_epoch = task_class.score, loop._train_epoch

    def counting_score(self, supernet, arch, *args, **kwargs):
        calls["score"].append(arch.to_string())
        return score(self, supernet, arch, *args, **kwargs)

    def counting_epoch(*args, **kwargs):
        calls["epochs"] += 1
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(task_class, "score", counting_score)
    monkeypatch.setattr(loop, "_train_epoch", counting_epoch)
    return calls


@pytest.mark.slow
def test_resume_adds_a_device_without_training(tmp_path, tables, counted, monkeypatch, capsys):
    """One device (a plain hardware: mapping), then --resume with a second device appended on the command line:
    the new device's table is measured and its search runs, no training step runs, the first device's trials are
    kept and no architecture is scored twice."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    spec = spec_for(tmp_path, dict(CPU1))
    shutil.copytree(tables[0] / "cpu-1t", os.path.join(spec["run_dir"], "latency"))  # the one-device layout
    run_dir = spec["run_dir"]
    SearchRun(load_spec(spec), progress=False).run()
    assert counted["epochs"] == 1 and os.path.isfile(os.path.join(run_dir, "best", "model.py"))
    storage = f"sqlite:///{run_dir}/study.db"
    first = [(t.number, t.user_attrs["arch"]) for t in optuna.load_study(study_name="tiny", storage=storage).trials]
    checkpoint = os.path.join(run_dir, "supernet", "checkpoint.pt")
    stamp = os.stat(checkpoint).st_mtime_ns
    scored_before = len(counted["score"])
    with open(os.path.join(tmp_path, "spec.yaml"), "w") as f:
        json.dump(spec, f)

    devices = json.dumps([CPU1, CPU2])
    capsys.readouterr()
    assert main(["search", str(tmp_path / "spec.yaml"), "--resume", "--quiet", "--set", f"hardware={devices}"]) == 0
    assert counted["epochs"] == 1, "the supernet was trained again"
    assert os.stat(checkpoint).st_mtime_ns == stamp
    assert os.path.isfile(os.path.join(run_dir, "latency", "cpu-2t", "cpu-t2-b1-float32.json"))
    kept = optuna.load_study(study_name="tiny@cpu-1t", storage=storage).trials
    assert [(t.number, t.user_attrs["arch"]) for t in kept] == first
    second = optuna.load_study(study_name="tiny@cpu-2t", storage=storage).trials
    assert len(second) == 4 and all(t.state.name == "COMPLETE" for t in second)
    assert len(counted["score"]) == len(set(counted["score"])), "an architecture was scored twice"
    new = {t.user_attrs["arch"] for t in second} - {a for _, a in first}
    assert len(counted["score"]) - scored_before == len(new)
    err = capsys.readouterr().err
    assert "table entries on cpu-t2-b1-float32" in err and "cpu-t1" not in err  # only the new device is measured

    # trials.csv: every trial of both searches, every device's latency predicted for every row
    rows = read_csv(os.path.join(run_dir, "trials.csv"))
    assert len(rows) == 8 and {r["device"] for r in rows} == set(DEVICES)
    assert all(float(r[f"latency_ms@{d}"]) > 0 for r in rows for d in DEVICES)
    assert "latency_ms" not in rows[0] and {f"on_front@{d}" for d in DEVICES} <= set(rows[0])
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    for d in DEVICES:
        front = read_csv(os.path.join(run_dir, f"pareto@{d}.csv"))
        assert front and {r["arch"] for r in front} == {r["arch"] for r in rows if r[f"on_front@{d}"] == "True"}
        assert all(r["latency_ms"] == r[f"latency_ms@{d}"] for r in front)  # the device's own latency on its axis
        assert os.path.isfile(os.path.join(run_dir, f"pareto@{d}.png"))
        assert summary["devices"][d]["best"]["arch"] in {r["arch"] for r in front}
        out = subprocess.run([sys.executable, "-I", "model.py"], capture_output=True, text=True, timeout=120,
                             cwd=os.path.join(run_dir, "best", d))
        assert out.returncode == 0 and "output (1, 10)" in out.stdout, out.stderr
        card = open(os.path.join(run_dir, "best", d, "README.md")).read()  # the model card: every device's latency
        assert card.startswith(f"# tiny on {d}: trial") and all(f"| `{e}` | " in card for e in DEVICES)
        assert os.path.isfile(os.path.join(run_dir, "best", d, "arch.svg"))

    # wandb (the resumed run's offline run): one front chart, scatter and hypervolume history per device
    run = read_offline_run(find_offline_runs(run_dir)[-1])
    for d in DEVICES:
        assert f"_wandb.visualize.pareto_front@{d}" in run["config"]
        chart = run["tables"][f"pareto_front@{d}_table"]
        assert chart["columns"] == ["trial", "arch", "latency_ms", "accuracy", "series"]
        assert {r[1] for r in chart["data"] if r[4] == "front"} == {r["arch"] for r in summary["devices"][d]["front"]}
        assert any(f"hypervolume@{d}" in h for h in run["history"]) or d == "cpu-1t"
    assert len(run["tables"]["trials"]["data"]) == 8

    # nas export and nas latency name a device of the run
    capsys.readouterr()
    best = summary["devices"]["cpu-2t"]["best"]
    assert main(["export", run_dir, "--device", "cpu-2t", "--out", str(tmp_path / "exported")]) == 0
    with open(os.path.join(run_dir, "best", "cpu-2t", "arch.yaml")) as f:
        assert (tmp_path / "exported" / "arch.yaml").read_text() == f.read()
    assert f"trial {best['trial']}" in capsys.readouterr().out
    assert main(["export", run_dir, "--device", "gpu"]) == 2
    assert "--device gpu: not a device of the run; valid: cpu-1t, cpu-2t" in capsys.readouterr().err
    assert main(["latency", "build", os.path.join(run_dir, "spec.yaml"), "--device", "cpu-2t"]) == 0
    assert "measuring 0 on cpu-t2-b1-float32" in capsys.readouterr().err  # the run's table of that device, complete

    # a device of the run may not change on resume, nor the supernet
    capsys.readouterr()
    changed = json.dumps([{**CPU1, "batch": 2}, CPU2])
    assert main(["search", run_dir, "--resume", "--set", f"hardware={changed}"]) == 2
    assert "differs from the run's spec.yaml at 'hardware[0]'" in capsys.readouterr().err
    assert main(["search", run_dir, "--resume", "--set", "supernet.lr=0.2"]) == 2
    assert "differs from the run's spec.yaml at 'supernet.lr'" in capsys.readouterr().err


@pytest.mark.slow
def test_named_device_constraint_and_shared_quality(tmp_path, tables, counted):
    """`latency_ms@cpu-2t` bounds every device's search (each front point meets it on cpu-2t), `latency_ms` is each
    device's own; quality is scored once per architecture across both searches."""
    _, space, models = tables
    low = exact_minimum(space, "latency_ms", models["cpu-2t"])
    limit = low * 1.6
    spec = with_tables(spec_for(tmp_path, [CPU1, CPU2], trials=5, constraints={"latency_ms@cpu-2t": limit}), tables)
    spec["tracking"]["wandb"]["enabled"] = False
    summary = SearchRun(load_spec(spec), progress=False).run()
    rows = read_csv(os.path.join(spec["run_dir"], "trials.csv"))
    assert any(float(r["latency_ms@cpu-2t"]) > limit for r in rows), "the limit binds nothing: the test tests nothing"
    for d in DEVICES:
        front = summary["devices"][d]["front"]
        assert front and all(r["latency_ms@cpu-2t"] <= limit for r in front)
        assert summary["devices"][d]["best"]["latency_ms@cpu-2t"] <= limit
    assert all(r["feasible@cpu-1t"] == str(float(r["latency_ms@cpu-2t"]) <= limit) for r in rows if r["accuracy"])
    study = optuna.load_study(study_name="tiny@cpu-1t", storage=f"sqlite:///{spec['run_dir']}/study.db")
    assert set(study.trials[0].constraints) == {"latency_ms@cpu-2t"}  # the named device's, in both searches
    assert sorted(counted["score"]) == sorted({r["arch"] for r in rows if r["accuracy"]})
    with open(os.path.join(spec["run_dir"], "quality.jsonl")) as f:
        assert len(f.readlines()) == len(counted["score"])


@pytest.mark.slow
def test_multi_trial_two_devices(tmp_path, tables):
    spec = with_tables(spec_for(tmp_path, [CPU1, CPU2], trials=3), tables)
    spec["search"].update({"mode": "multi_trial", "trial_epochs": 1})
    spec["tracking"]["wandb"]["enabled"] = False
    summary = SearchRun(load_spec(spec), progress=False).run()
    assert summary["complete"] == 6 and set(summary["devices"]) == set(DEVICES)
    for d in DEVICES:
        assert summary["devices"][d]["front"]
        assert os.path.isfile(os.path.join(spec["run_dir"], "best", d, "model.py"))
    archs = {r["arch"] for r in read_csv(os.path.join(spec["run_dir"], "trials.csv"))}
    with open(os.path.join(spec["run_dir"], "quality.jsonl")) as f:
        assert len(f.readlines()) == len(archs)  # each architecture trained once for both devices


def test_device_names_and_errors(tmp_path):
    spec = load_spec(spec_for(tmp_path, [CPU1, CPU2, {"kind": "onnxruntime-cpu"}]))
    assert [d.name for d in spec.hardware] == ["cpu-1t", "cpu-2t", "onnxruntime-cpu"]
    assert load_spec(spec_for(tmp_path, [{**CPU1, "name": "edge"}])).hardware[0].name == "edge"
    bad = [({"hardware": [CPU1, CPU1]}, r"^hardware\[1\]\.name: 'cpu-1t' is already the name of hardware\[0\]"),
           ({"hardware": [{**CPU1, "name": "my device"}]}, r"^hardware\[0\]\.name: 'my device' is not a device name"),
           ({"hardware": [{**CPU1, "thread": 2}]}, r"^hardware\[0\]\.thread: unknown key"),
           ({"hardware": [CPU1], "constraints": {"latency_ms@gpu": 1.0}},
            r"^constraints\.latency_ms@gpu: unknown device; valid: latency_ms@DEVICE with DEVICE one of cpu-1t$"),
           ({"constraints": {"latency_ms@cpu-1t": 1.0}}, r"^constraints\.latency_ms@cpu-1t: unknown device"),
           ({"hardware": [CPU1], "constraints": {"params@cpu-1t": 1.0}}, "only latency is measured per device")]
    for changes, message in bad:
        with pytest.raises(SpecError, match=message) as e:
            load_spec(spec_for(tmp_path, **changes) if "hardware" in changes else
                      spec_for(tmp_path, dict(CPU1), **changes))
        assert "\n" not in str(e.value)
    for key, value, message in (("search", {"executor": "ray"}, "^search.executor: 'ray' searches one device"),
                                ("retrain", {"top_k": 2}, "^retrain.top_k: retraining is not done")):
        spec = spec_for(tmp_path, [CPU1, CPU2])
        spec[key] = {**spec.get(key, {}), **value}
        with pytest.raises(UserError, match=message):
            SearchRun(load_spec(spec), progress=False)
        assert not os.path.exists(spec["run_dir"])  # refused before the run folder is written


def test_quality_cache_survives_a_torn_line_and_keeps_only_complete_scores(tmp_path):
    import random

    import search_spaces
    from nas.search.quality import QualityCache

    space = search_spaces.load("mobile", in_channels=1, input_size=16, num_classes=10)
    a, b, c = (space.sample(random.Random(i)) for i in range(3))
    calls = []

    def score(arch):
        calls.append(arch.to_string())
        return {"accuracy": float("nan") if arch == c else 0.5}

    path = str(tmp_path / "quality.jsonl")
    cache = QualityCache(path, score, ["accuracy"])
    assert cache(a) == {"accuracy": 0.5} and cache(a) == {"accuracy": 0.5} and calls == [a.to_string()]
    cache(c)  # NaN: not kept, scored again next time
    with open(path, "a") as f:
        f.write('{"arch": "' + b.to_string()[:20])  # a kill in the middle of a write
    again = QualityCache(path, score, ["accuracy"])
    assert set(again.known) == {a.to_string()}
    again(a), again(b), again(c)
    assert calls == [a.to_string(), c.to_string(), b.to_string(), c.to_string()] and again.scored == 2
    assert set(QualityCache(path, score, ["accuracy"]).known) == {a.to_string(), b.to_string()}
