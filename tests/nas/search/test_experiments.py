"""Every spec shipped in experiments/ loads, and those on embedded data pass every check a search runs first."""
import glob
import os

import pytest

from nas.search.runner import SearchRun
from nas.spec.sections import load_spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPECS = sorted(glob.glob(os.path.join(REPO, "experiments", "*.yaml")))
EMBEDDED = ("digits", "digits_distorted", "synthetic_segmentation")


def test_the_specs_are_found():
    assert {"quickstart.yaml", "all_ops.yaml", "all_ops_cpu.yaml"} <= {os.path.basename(p) for p in SPECS}


@pytest.mark.parametrize("path", SPECS, ids=os.path.basename)
def test_shipped_spec_loads_and_passes_the_checks(path, tmp_path):
    spec = load_spec(path, [f"run_dir={tmp_path / 'run'}"])
    if spec.data.name not in EMBEDDED or getattr(spec.hardware, "kind", "cpu") == "cuda":
        return  # a dataset folder or a GPU this machine lacks: loading the spec is what can be checked here
    run = SearchRun(spec, progress=False)  # data, space, task, objectives, hardware, constraints: all checked
    assert run.space.num_classes == run.ctx.splits.num_classes
    assert os.path.isfile(tmp_path / "run" / "spec.yaml")
