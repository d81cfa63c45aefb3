"""A tiny search space and spec so that whole searches run in seconds in the test suite."""
import pytest

from tiny_space import TINY_SEG_SPACE, tiny_spec_in


@pytest.fixture
def tiny_spec(tmp_path):
    """A spec dict for a few-second search on digits at 16x16 in `tmp_path/run`."""
    return tiny_spec_in(tmp_path)


@pytest.fixture(scope="module")
def tiny_spec_module(tmp_path_factory):
    """tiny_spec for a module that shares one search run among its tests."""
    return tiny_spec_in(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_seg_spec(tmp_path):
    """A spec dict for a segmentation search of seconds on synthetic shapes at 16x16 in `tmp_path/run`."""
    return tiny_spec_in(
        tmp_path, "tiny_seg", TINY_SEG_SPACE,
        data={"name": "synthetic_segmentation", "input_size": 16, "batch_size": 64},
        supernet={"epochs": 2, "optimizer": "adamw", "lr": 0.01, "warmup_epochs": 0, "label_smoothing": 0.0},
        hardware={"kind": "cpu", "threads": 1, "calibration_archs": 4, "warmup": 2, "repeats": 10},
        objectives=[{"metric": "miou", "direction": "maximize"}, {"metric": "latency_ms", "direction": "minimize"}])
