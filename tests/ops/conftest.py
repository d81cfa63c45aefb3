"""Fixtures of the op tests; the checks they share are in op_checks.py."""
import pytest
import torch


@pytest.fixture(autouse=True)
def seed_rng():
    """Seed torch before each test: weight init and random inputs are reproducible."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the ops are tiny, and spare threads only spin on a shared machine (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
