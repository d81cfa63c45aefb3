"""`nas export RUN_DIR [--trial N]`: any trial of a finished search, weights from the run's supernet."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import optuna
import pytest
import torch

from nas.cli import main
from nas.spec.sections import load_spec
from nas.spec.resolve import load_space
from nas.export.run import recalibrated_path, run_supernet
from nas.search.runner import SearchRun
from search_spaces.arch import Arch


@pytest.fixture(scope="module")
def run_dir(tiny_spec_module):
    """One finished tiny search (6 trials), shared by the tests of this module."""
    tiny_spec_module["tracking"] = {"wandb": {"enabled": False}}
    SearchRun(load_spec(tiny_spec_module), progress=False).run()
    return tiny_spec_module["run_dir"]


def _study(run_dir):
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the copied ops include dataclasses, which look their module up
    spec.loader.exec_module(module)
    return module


def test_export_trial_matches_supernet_path_and_runs_standalone(run_dir, capsys):
    best = json.load(open(os.path.join(run_dir, "summary.json")))["best"]["trial"]
    trial = next(t for t in _study(run_dir).trials if t.number != best)  # not the point search already exported
    assert main(["export", run_dir, "--trial", str(trial.number)]) == 0
    out = os.path.join(run_dir, "trials", str(trial.number))
    printed = capsys.readouterr().out
    assert printed.startswith(f"trial {trial.number}: ") and f"wrote {out}/model.py" in printed
    assert sorted(os.listdir(out)) == ["arch.yaml", "model.py", "weights.pt"]

    arch = Arch.from_string(trial.user_attrs["arch"])
    assert Arch.from_yaml(open(os.path.join(out, "arch.yaml")).read()) == arch
    spec = load_spec(os.path.join(run_dir, "spec.yaml"))
    space = load_space(spec, arch)
    reference = recalibrated_path(spec, run_supernet(run_dir, spec, space), arch)  # BN as the trial was scored
    net = _import(os.path.join(out, "model.py"), f"trial_{trial.number}").load_net()
    x = torch.randn(8, arch.in_channels, arch.input_size, arch.input_size)
    with torch.no_grad():
        expected, got = reference(x), net(x)
    assert expected.shape == (8, 10)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()

    done = subprocess.run([sys.executable, "-I", os.path.join(out, "model.py")], capture_output=True, text=True,
                          cwd=out, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "output (1, 10)" in done.stdout


def test_export_without_trial_rewrites_the_chosen_point(run_dir, tmp_path, capsys):
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    out = tmp_path / "chosen"
    assert main(["export", run_dir, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"trial {summary['best']['trial']}: ")
    assert Arch.from_yaml((out / "arch.yaml").read_text()) == Arch.from_string(summary["best"]["arch"])
    # the same weights the search exported into best/
    mine = torch.load(out / "weights.pt", weights_only=True)
    theirs = torch.load(os.path.join(run_dir, "best", "weights.pt"), weights_only=True)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    # and the same picture and model card
    for name in ("arch.svg", "README.md"):
        assert (out / name).read_text() == open(os.path.join(run_dir, "best", name)).read(), name
    assert (out / "arch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_a_trial_of_the_run(run_dir, capsys):
    """`nas show RUN --trial N`: the trial's picture in RUN/pictures/, latency shares from the run's own table."""
    trial = next(t for t in _study(run_dir).trials if t.number != 0)
    assert main(["show", run_dir, "--trial", str(trial.number)]) == 0
    out = capsys.readouterr().out
    svg = os.path.join(run_dir, "pictures", f"trial_{trial.number}.svg")
    assert f"wrote {svg}\nwrote {svg[:-4]}.png" in out
    assert f"tiny: trial {trial.number} (tiny)" in out and "latency: cpu-t1-b1-float32 table" in out
    assert "calibration for tiny@1x16)" in out
    text = open(svg).read()
    assert "predicted latency share" in text
    arch = Arch.from_string(trial.user_attrs["arch"])
    assert all(f">{layer.op}<" in text for layer in arch.layers())
    # without --trial: the chosen point
    best = json.load(open(os.path.join(run_dir, "summary.json")))["best"]["trial"]
    assert main(["show", run_dir, "--quiet", "--no-png"]) == 0
    assert capsys.readouterr().out == f"wrote {run_dir}/pictures/trial_{best}.svg\n"
    assert main(["show", run_dir, "--trial", "99"]) == 2
    assert capsys.readouterr().err == f"nas show: error: --trial 99: no such trial in {run_dir}; valid: 0..5\n"


def test_export_trial_onnx_runs_in_onnxruntime(run_dir, tmp_path):
    import numpy as np
    import onnxruntime

    out = tmp_path / "t0"
    assert main(["export", run_dir, "--trial", "0", "--out", str(out), "--onnx"]) == 0
    net = _import(out / "model.py", "trial_0_onnx").load_net()
    x = torch.randn(3, 1, 16, 16)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(got - net(x).numpy()).max() < 1e-4


def test_bad_trial_and_bad_folder_are_one_line(run_dir, tmp_path, capsys):
    assert main(["export", run_dir, "--trial", "99"]) == 2
    err = capsys.readouterr().err
    assert err == f"nas export: error: --trial 99: no such trial in {run_dir}; valid: 0..5\n"
    assert not os.path.exists(os.path.join(run_dir, "trials", "99"))

    assert main(["export", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"nas export: error: {tmp_path}: not a search run folder (no spec.yaml, study.db; a run written "
                   f"by `nas search` holds spec.yaml, study.db, supernet/, summary.json)\n")

    assert main(["export", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == (f"nas export: error: {tmp_path}/missing does not exist (expected a search run "
                                       f"folder or an Arch YAML file)\n")
    assert main(["export", "resnet18", "--trial", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nas export: error: --trial: needs a search run folder; resnet18 is not a folder"
    assert main(["export", "resnet18"]) == 2
    assert "--out: required when exporting an architecture" in capsys.readouterr().err


def test_checkpoint_of_another_supernet_layout_is_one_line(run_dir, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    ck_path = copy / "supernet" / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    first = next(iter(ck["model"]))
    ck["model"]["renamed." + first] = ck["model"].pop(first)  # as if the code now named a tensor differently
    torch.save(ck, ck_path)
    assert main(["export", str(copy), "--trial", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"nas export: error: {ck_path} does not fit the supernet of space "
                                                    f"'tiny' as the code builds it now")
    assert err.endswith(f"nas export {copy}/trials/1/arch.yaml --out model.py\n")
