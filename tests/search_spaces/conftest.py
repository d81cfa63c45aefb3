"""Fixtures for the search-space tests: every shipped space, loaded once per session."""
import pytest
import torch

import search_spaces


@pytest.fixture(scope="session")
def spaces():
    torch.set_num_threads(1)
    return {name: search_spaces.load(name) for name in search_spaces.shipped_spaces()}


def pytest_generate_tests(metafunc):
    if "space_name" in metafunc.fixturenames:
        metafunc.parametrize("space_name", search_spaces.shipped_spaces())


@pytest.fixture(scope="session")
def encoder():
    """arch -> the classification `Net` of its layers (a dense-prediction arch without its decoder)."""
    from search_spaces import Classifier
    from search_spaces.builder import Net

    return lambda arch: Net(arch.replace(decoder=None, classifier=Classifier(arch.num_classes)))
