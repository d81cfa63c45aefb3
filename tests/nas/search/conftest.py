"""A tiny search space and spec so that whole searches run in seconds in the test suite."""
import pytest
import torch

from tiny_space import TINY_SPACE



@pytest.fixture
def tiny_spec(tmp_path):
    """A spec dict for a few-second search on digits at 16x16 in `tmp_path/run`."""
    torch.set_num_threads(1)
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    return {
        "name": "tiny", "seed": 0, "run_dir": str(tmp_path / "run"),
        "data": {"name": "digits", "input_size": 16, "batch_size": 128},
        "space": {"name": str(space)},
        "supernet": {"epochs": 2, "lr": 0.1, "warmup_epochs": 0},
        "hardware": {"kind": "cpu", "threads": 1, "calibration_archs": 3, "warmup": 2, "repeats": 10},
        "search": {"trials": 6, "population": 4, "bn_batches": 1},
        "tracking": {"wandb": {"mode": "offline"}},
    }
