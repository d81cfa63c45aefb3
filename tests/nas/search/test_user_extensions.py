"""A user's own op (a module outside the repository, named under `imports:`) is searched and exported like a
built-in one, and the exported file runs without it; a user's own task registered from Python runs a search."""
import csv
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tiny_space import tiny_spec_in
from nas.evaluation.classification import evaluate
from nas.search.runner import SearchRun
from nas.spec.schema import SpecError
from nas.spec.sections import load_spec
from nas.tasks import TASKS, get_task, register_task
from nas.tasks.classification import Classification
from test_pipeline_matrix import STANDALONE

USER_OPS = textwrap.dedent('''
    """A user's op library: one registered op built from convnas's layers."""
    import torch
    from torch import nn

    from ops import register_op
    from ops.layers import ConvNormAct

    SCALE = 0.5


    def halve(x):
        return x * SCALE


    @register_op("user_gated_conv", family="conv")
    class GatedConv(nn.Module):
        """A 3x3 conv whose output is gated by a 1x1 conv's sigmoid (a user's own op)."""

        def __init__(self, c_in, c_out, stride=1):
            super().__init__()
            self.conv = ConvNormAct(c_in, c_out, 3, stride)
            self.gate = nn.Conv2d(c_in, c_out, 1, stride)

        def forward(self, x):
            return self.conv(x) * torch.sigmoid(halve(self.gate(x)))
''')

USER_SPACE = """
name: user_space
input: {channels: 1, size: 16}
num_classes: 10
stem:
  - {op: conv, c_out: 8, stride: 2, kernel: 3}
stages:
  - {depth: [1], width: [8, 16], stride: 1, ops: {user_gated_conv: {}}}
  - {depth: [1, 2], width: [16], stride: 2, ops: {user_gated_conv: {}, mbconv: {kernel: 3, expand: 3}}}
classifier: {dropout: 0.0}
"""


@pytest.mark.slow
def test_a_user_op_from_imports_is_searched_and_exported(tmp_path):
    module_dir = tmp_path / "elsewhere"  # outside the repository, not on sys.path
    module_dir.mkdir()
    (module_dir / "my_gated_ops.py").write_text(USER_OPS)
    spec = tiny_spec_in(tmp_path, "user", USER_SPACE, imports=[str(module_dir / "my_gated_ops.py")])
    spec["search"].update({"trials": 3, "population": 2})
    spec["supernet"]["epochs"] = 1
    spec["tracking"]["wandb"]["enabled"] = False
    summary = SearchRun(load_spec(spec), progress=False).run()
    assert summary["complete"] == 3

    model_py = os.path.join(spec["run_dir"], "best", "model.py")
    code = open(model_py).read()
    assert "class GatedConv(nn.Module):" in code and "def halve(x):" in code and "SCALE = 0.5" in code
    out = subprocess.run([sys.executable, "-c", STANDALONE, model_py, "nas,ops,search_spaces,my_gated_ops"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and "Net: " in out.stdout, out.stderr


def test_imports_name_what_is_wrong(tmp_path):
    with pytest.raises(SpecError, match=r"imports\[0\]: no module named 'no_such_user_module'"):
        load_spec({"imports": ["no_such_user_module"]})
    with pytest.raises(SpecError, match=r"imports\[1\]: file '.*missing.py' does not exist"):
        load_spec({"imports": ["json", str(tmp_path / "missing.py")]})


class TopTwo(Classification):
    """Classification scored by top-2 accuracy (a user's task: its own metric, the built-in model kind)."""

    name = "top_two"
    quality = ("top2_accuracy", "accuracy")

    @torch.no_grad()
    def evaluate(self, model, loader):
        model.eval()
        hits = seen = 0
        for x, y in loader:
            hits += int((model(x).topk(2, dim=1).indices == y[:, None]).any(1).sum())
            seen += len(y)
        return {"top2_accuracy": hits / seen, **evaluate(model, loader)}


@pytest.fixture
def top_two():
    register_task(TopTwo)
    yield get_task("top_two")
    TASKS.pop("top_two")


@pytest.mark.slow
def test_a_user_task_registered_from_python_runs_a_search(tmp_path, top_two):
    spec = tiny_spec_in(tmp_path, task="top_two", objectives=[{"metric": "top2_accuracy"},
                                                              {"metric": "latency_ms", "direction": "minimize"}])
    spec["search"].update({"trials": 3, "population": 2, "mode": "multi_trial", "trial_epochs": 1})
    spec["tracking"]["wandb"]["enabled"] = False
    summary = SearchRun(load_spec(spec), progress=False).run()
    assert summary["task"] == "top_two" and summary["complete"] == 3
    with open(os.path.join(spec["run_dir"], "trials.csv")) as f:
        rows = list(csv.DictReader(f))
    assert all(float(r["accuracy"]) <= float(r["top2_accuracy"]) <= 1 for r in rows)
    assert os.path.isfile(os.path.join(spec["run_dir"], "best", "model.py"))


def test_an_objective_the_task_does_not_measure_is_one_line(tmp_path):
    spec = tiny_spec_in(tmp_path, objectives=[{"metric": "miou"}, {"metric": "latency_ms", "direction": "minimize"}])
    with pytest.raises(SpecError, match=r"objectives\[0\]\.metric: 'miou' is not measured by task 'classification'; "
                                        r"valid: accuracy, latency_ms"):
        SearchRun(load_spec(spec))
    assert not os.path.exists(spec["run_dir"])  # checked before the run folder is written
