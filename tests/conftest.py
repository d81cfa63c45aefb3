"""Suite-wide fixtures."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small models and batches: one intra-op thread is faster, far faster on a busy machine (restored after)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
