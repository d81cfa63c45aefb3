"""Whole searches on a tiny space: outputs, resume, tracking, export, constraints, bad input."""
import csv
import json
import os
import subprocess
import sys

import optuna
import pytest
import torch

from nas.cli import main
from nas.spec.sections import load_spec
from nas.spec.schema import SpecError
from nas.search.runner import SearchRun
from nas.tracking import find_offline_runs, read_offline_run


def _trials(run_dir):
    with open(os.path.join(run_dir, "trials.csv")) as f:
        return list(csv.DictReader(f))


def test_search_end_to_end_then_resume(tiny_spec, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tiny_spec["run_dir"]
    summary = SearchRun(load_spec(tiny_spec)).run()

    rows = _trials(run_dir)
    assert len(rows) == 6 and summary["complete"] == 6
    # the first generation (population 4) was enqueued spread over the latency range, the rest proposed by NSGA-II
    # (enqueued as the budget's waiting trials without parameters: nas.search.budget)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")
    assert [bool(t.system_attrs.get("fixed_params")) for t in study.trials] == [True] * 4 + [False] * 2
    with open(os.path.join(run_dir, "search.log")) as f:
        log = f.read()
    assert "the first 4 trials spread over the space's latency_ms range" in log and "(0 already done in" in log
    first = [float(r["latency_ms"]) for r in rows[:4]]
    assert first[0] == min(first) and first[1] == max(first)
    front = [r for r in rows if r["on_front"] == "True"]
    assert front and summary["hypervolume"] > 0
    # every front point is non-dominated among complete trials
    for f in front:
        acc, lat = float(f["accuracy"]), float(f["latency_ms"])
        assert not any(float(r["accuracy"]) >= acc and float(r["latency_ms"]) <= lat and
                       (float(r["accuracy"]) > acc or float(r["latency_ms"]) < lat) for r in rows)
    for name in ("pareto.csv", "pareto.html", "pareto.png", "study.db", "spec.yaml", "summary.json",
                 "best/model.py", "best/weights.pt", "best/arch.yaml"):
        assert os.path.exists(os.path.join(run_dir, name)), name

    # the wandb offline run holds the trials table and the front chart
    run = read_offline_run(find_offline_runs(run_dir)[0])
    assert len(run["tables"]["trials"]["data"]) == 6
    assert "_wandb.visualize.pareto_front" in run["config"]
    assert [h for h in run["history"] if "hypervolume" in h]

    # every front trial's picture: in pictures/, shown by pareto.html on hover, logged to wandb; best/ has its card
    fronts = sorted(int(f["trial"]) for f in front)
    assert sorted(os.listdir(os.path.join(run_dir, "pictures"))) == sorted(
        f"trial_{t}.{ext}" for t in fronts for ext in ("png", "svg"))
    html = open(os.path.join(run_dir, "pareto.html")).read().replace("\\u002f", "/")
    assert all(f'"pictures/trial_{t}.svg"' in html for t in fronts) and "arch-picture" in html
    logged = next(h for h in run["history"] if "front_pictures.count" in h)
    assert logged["front_pictures.count"] == len(fronts)
    assert sorted(int(c.split(":")[0].split()[1]) for c in logged["front_pictures.captions"]) == fronts
    for name in logged["front_pictures.filenames"]:
        with open(os.path.join(find_offline_runs(run_dir)[0], "files", name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    card = open(os.path.join(run_dir, "best", "README.md")).read()
    best = summary["best"]
    assert f"# tiny: trial {best['trial']} (tiny)" in card and "![architecture](arch.png)" in card
    assert f"| `cpu-t1-b1-float32` | {best['latency_ms']:.4g} | – |" in card
    assert f"| one-shot (supernet weights, val split) | {best['accuracy']:.4g} |" in card
    assert "from model import load_net" in card and best["arch"] in card
    assert "predicted latency share" in open(os.path.join(run_dir, "best", "arch.svg")).read()

    # the exported model runs standalone and matches the supernet path it was extracted from
    out = subprocess.run([sys.executable, "-I", os.path.join(run_dir, "best", "model.py")], capture_output=True,
                         text=True, cwd=os.path.join(run_dir, "best"), timeout=120)
    assert out.returncode == 0, out.stderr

    # resume with a larger budget: the old trials are kept, none is run twice
    tiny_spec["search"]["trials"] = 9
    SearchRun(load_spec(tiny_spec), resume=True).run()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")
    assert len(study.trials) == 9
    assert [t.number for t in study.trials[:6]] == list(range(6))
    assert len(_trials(run_dir)) == 9


def test_existing_run_needs_resume_and_same_spec(tiny_spec):
    os.makedirs(tiny_spec["run_dir"])
    with open(os.path.join(tiny_spec["run_dir"], "spec.yaml"), "w") as f:
        f.write(load_spec(tiny_spec).to_yaml())
    open(os.path.join(tiny_spec["run_dir"], "study.db"), "w").close()  # a result: the folder holds a run
    with pytest.raises(SpecError, match="already holds a run; pass --resume"):
        SearchRun(load_spec(tiny_spec))
    moved = {**tiny_spec, "distributed": {"backend": "ddp", "nproc": 2},
             "search": {**tiny_spec["search"], "trials": 20, "ray": {"address": "ray://head:10001"}}}
    assert SearchRun(load_spec(moved), resume=True).spec.search.ray.address == "ray://head:10001"
    tiny_spec["supernet"]["epochs"] = 5
    with pytest.raises(SpecError, match="differs from the run's spec.yaml at 'supernet.epochs'"):
        SearchRun(load_spec(tiny_spec), resume=True)


def test_infeasible_constraint_stops_before_training(tiny_spec):
    tiny_spec["constraints"] = {"params": 10}
    with pytest.raises(SpecError, match=r"constraints.params: 10 cannot be met by any architecture of space 'tiny' "
                                        r"\(minimum \d+"):
        SearchRun(load_spec(tiny_spec))
    assert not os.path.exists(tiny_spec["run_dir"])  # checked before the run folder is written


def test_cli_reports_bad_spec_in_one_line(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("search: {trials: many}\n")
    assert main(["search", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nas search: error: search.trials: expected an integer, got 'many'"
    assert main(["search", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_print_spec_shows_defaults_and_overrides(capsys):
    assert main(["search", "experiments/quickstart.yaml", "--print-spec", "--set", "search.trials=7"]) == 0
    out = capsys.readouterr().out
    assert "trials: 7" in out and "sampler: nsga2" in out and "calibration_archs: 12" in out


def test_search_trains_its_supernet_with_ddp(tiny_spec):
    """`distributed: {backend: ddp, nproc: 2}` trains the search's supernet in 2 gloo processes; the trials then
    score paths of the weights those processes saved."""
    tiny_spec["distributed"] = {"backend": "ddp", "nproc": 2}
    tiny_spec["search"]["trials"] = 3
    run = SearchRun(load_spec(tiny_spec))
    supernet = run.supernet()
    with open(run.path("search.log")) as f:
        assert "in 2 DDP processes" in f.read()
    saved = torch.load(run.path("supernet", "checkpoint.pt"), weights_only=True)
    assert saved["epoch"] == 2 and saved["step"] == 2 * (1257 // 128)
    for k, v in supernet.state_dict().items():
        assert torch.equal(v, saved["model"][k]), k
    assert run.run()["complete"] == 3

    # resumed, the finished supernet is loaded as saved: no processes are started for it again
    resumed = SearchRun(load_spec(tiny_spec), resume=True).supernet()
    with open(run.path("search.log")) as f:
        assert f.read().count("in 2 DDP processes") == 1
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, saved["model"][k]), k
