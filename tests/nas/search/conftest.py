"""A tiny search space and spec so that whole searches run in seconds in the test suite."""
import pytest
import torch

from tiny_space import TINY_SEG_SPACE, TINY_SPACE


@pytest.fixture
def tiny_spec(tmp_path):
    """A spec dict for a few-second search on digits at 16x16 in `tmp_path/run`."""
    return tiny_spec_in(tmp_path)


@pytest.fixture(scope="module")
def tiny_spec_module(tmp_path_factory):
    """tiny_spec for a module that shares one search run among its tests."""
    return tiny_spec_in(tmp_path_factory.mktemp("tiny"))


def tiny_spec_in(folder, name: str = "tiny", space_text: str = TINY_SPACE, **sections) -> dict:
    """The tiny_spec dict for a run in `folder/run` (a space of its own and other sections when given)."""
    torch.set_num_threads(1)
    space = folder / f"{name}.yaml"
    space.write_text(space_text)
    return {
        "name": name, "seed": 0, "run_dir": str(folder / "run"),
        "data": {"name": "digits", "input_size": 16, "batch_size": 128},
        "space": {"name": str(space)},
        "supernet": {"epochs": 2, "lr": 0.1, "warmup_epochs": 0},
        "hardware": {"kind": "cpu", "threads": 1, "calibration_archs": 3, "warmup": 2, "repeats": 10},
        "search": {"trials": 6, "population": 4, "bn_batches": 1},
        "tracking": {"wandb": {"mode": "offline"}},
        **sections,
    }


@pytest.fixture
def tiny_seg_spec(tmp_path):
    """A spec dict for a segmentation search of seconds on synthetic shapes at 16x16 in `tmp_path/run`."""
    return tiny_spec_in(
        tmp_path, "tiny_seg", TINY_SEG_SPACE,
        data={"name": "synthetic_segmentation", "input_size": 16, "batch_size": 64},
        supernet={"epochs": 2, "optimizer": "adamw", "lr": 0.01, "warmup_epochs": 0, "label_smoothing": 0.0},
        hardware={"kind": "cpu", "threads": 1, "calibration_archs": 4, "warmup": 2, "repeats": 10},
        objectives=[{"metric": "miou", "direction": "maximize"}, {"metric": "latency_ms", "direction": "minimize"}])
