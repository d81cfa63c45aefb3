"""Fixtures of the op tests; the checks they share are in op_checks.py."""
import pytest
import torch


@pytest.fixture(autouse=True)
def seed_rng():
    """Seed torch before each test: weight init and random inputs are reproducible."""
    torch.manual_seed(0)


