import os

import pytest
import ray
import torch

from nas.spec.sections import load_spec
from nas.data.datasets import load_dataset
from nas.launch import launch_ray
from nas.spec.resolve import load_space
from nas.supernet.supernet import Supernet
from train_helpers import spec_dict


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_train_two_cpu_workers_bring_the_weights_back(tmp_path, local_ray):
    spec = load_spec(spec_dict(tmp_path, epochs=1, distributed={"backend": "ray", "num_workers": 2}))
    result = launch_ray(spec, num_workers=2, progress=False)
    assert result["world_size"] == 2
    assert result["metrics"]["epoch"] == 1 and result["metrics"]["step"] == 19  # metrics travel with checkpoints
    assert os.path.isdir(result["ray_checkpoint"])
    ck = torch.load(result["checkpoint"], weights_only=True)
    supernet = Supernet(load_space(spec, load_dataset("digits", input_size=8)))
    fresh = {k: v.clone() for k, v in supernet.state_dict().items()}
    supernet.load_state_dict(ck["model"])  # every shared tensor came back
    assert any(not torch.equal(fresh[k], v) for k, v in supernet.state_dict().items())  # and was trained
