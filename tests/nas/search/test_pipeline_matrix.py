"""Every combination a user takes, end to end on tiny data: {classification, segmentation} x {one_shot,
multi_trial} x {in-process, Ray}, and a DDP-trained supernet for each task. Each run must finish with the
requested complete trials, a front on disk with the task's quality column, and a best/ that runs standalone."""
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from tiny_space import tiny_spec_in
from nas.latency import stage as latency_stage
from nas.search.runner import SearchRun
from nas.spec.resolve import load_space, load_splits
from nas.spec.sections import load_spec
from nas.tasks import get_task
from tiny_space import TINY_SEG_SPACE, TINY_SPACE

TRIALS = 3
QUALITY = {"classification": "accuracy", "segmentation": "miou"}

# runs a generated model.py as a script (its smoke test: weights loaded, one forward pass) with convnas and any
# user module unimportable
STANDALONE = """
import runpy, sys
path, blocked = sys.argv[1], set(sys.argv[2].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} must not be needed by the exported file")
sys.meta_path.insert(0, Block())
sys.argv = [path]
runpy.run_path(path, run_name="__main__")
"""


def spec_for(folder, task: str, **changes) -> dict:
    """The tiny spec of `task` in `folder/run` with 3 trials and one supernet epoch."""
    if task == "classification":
        spec = tiny_spec_in(folder, "tiny", TINY_SPACE)
    else:
        spec = tiny_spec_in(
            folder, "tiny_seg", TINY_SEG_SPACE,
            data={"name": "synthetic_segmentation", "input_size": 16, "batch_size": 64},
            supernet={"epochs": 1, "optimizer": "adamw", "lr": 0.01, "warmup_epochs": 0, "label_smoothing": 0.0},
            hardware={"kind": "cpu", "threads": 1, "calibration_archs": 4, "warmup": 2, "repeats": 10},
            objectives=[{"metric": "miou", "direction": "maximize"},
                        {"metric": "latency_ms", "direction": "minimize"}])
    spec["supernet"]["epochs"] = 1
    spec["search"].update({"trials": TRIALS, "population": 2, "trial_epochs": 1})
    spec["tracking"]["wandb"]["enabled"] = False
    for key, value in changes.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    return spec


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """Each task's latency folder, measured once for the module and copied into every run."""
    out = {}
    for task in QUALITY:
        folder = tmp_path_factory.mktemp(task)
        spec = load_spec(spec_for(folder, task))
        space = load_space(spec, load_splits(spec))
        latency_stage.prepare(space, spec.hardware, str(folder / "latency"), progress=False)
        out[task] = folder / "latency"
    return out


@pytest.fixture(scope="module")
def ray_address():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def run_search(spec: dict, tables) -> dict:
    task = "segmentation" if spec["name"] == "tiny_seg" else "classification"
    shutil.copytree(tables[task], os.path.join(spec["run_dir"], "latency"))
    return SearchRun(load_spec(spec), progress=False).run()


def assert_finished(spec: dict, summary: dict, task: str, blocked=("nas", "ops", "search_spaces")) -> None:
    """The requested complete trials, the front with the task's quality column, a standalone best/."""
    run_dir, quality = spec["run_dir"], QUALITY[task]
    assert summary["complete"] == TRIALS and summary["task"] == task
    with open(os.path.join(run_dir, "pareto.csv")) as f:
        front = list(csv.DictReader(f))
    assert front and all(0 <= float(r[quality]) <= 1 for r in front)
    saved = json.load(open(os.path.join(run_dir, "summary.json")))
    assert saved["best"]["trial"] in {int(r["trial"]) for r in front}
    out = subprocess.run([sys.executable, "-c", STANDALONE, os.path.join(run_dir, "best", "model.py"),
                          ",".join(blocked)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("Net: ") and "output (1, " in out.stdout, out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("task", list(QUALITY))
@pytest.mark.parametrize("mode", ["one_shot", "multi_trial"])
def test_in_process(tmp_path, tables, task, mode):
    spec = spec_for(tmp_path, task, search={"mode": mode, "trials": TRIALS, "population": 2, "trial_epochs": 1})
    assert_finished(spec, run_search(spec, tables), task)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(QUALITY))
@pytest.mark.parametrize("mode", ["one_shot", "multi_trial"])
def test_on_ray(tmp_path, tables, ray_address, task, mode):
    spec = spec_for(tmp_path, task, search={
        "mode": mode, "executor": "ray", "trials": TRIALS, "population": 2, "trial_epochs": 1,
        "ray": {"address": ray_address, "cpus_per_trial": 1, "max_concurrent": 2}})
    assert_finished(spec, run_search(spec, tables), task)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(QUALITY))
def test_ddp_trained_supernet(tmp_path, tables, task):
    spec = spec_for(tmp_path, task, distributed={"backend": "ddp", "nproc": 2})
    summary = run_search(spec, tables)
    assert_finished(spec, summary, task)
    with open(os.path.join(spec["run_dir"], "search.log")) as f:
        assert "in 2 DDP processes" in f.read()


def test_every_task_names_its_quality_metrics():
    assert get_task("classification").quality == ("accuracy",)
    assert get_task("segmentation").quality[0] == "miou" and get_task("segmentation").ignore_index == 255
