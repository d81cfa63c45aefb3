"""Checks shared by the plug-in op tests (test_attention, test_context, test_spatial, test_fusion).

`inputs` is always a tuple of positional arguments; a tensor argument may also be a list of
tensors (ASFF takes one). The checks set train/eval mode themselves; only the channels_last
check works on a copy.
"""
import copy

import pytest
import torch

from search_spaces.arch import Layer


@pytest.fixture(autouse=True)
def seed_rng():
    """Import into a test module to seed torch before each test: weight init is then reproducible."""
    torch.manual_seed(0)


def _map(fn, inputs):
    return tuple([fn(t) for t in a] if isinstance(a, (list, tuple)) else fn(a) for a in inputs)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def backward_weighted(module, inputs, seed=0):
    """Train-mode forward and backward of a random weighting of the output.

    A plain `.sum()` would give zero gradients upstream of a final BatchNorm (its output sums to
    the bias times the batch), so the loss weights every output element by a fixed random number.
    """
    module.train()
    module.zero_grad(set_to_none=True)
    out = _first(module(*inputs))
    g = torch.Generator().manual_seed(seed)
    (out * torch.randn(out.shape, generator=g)).sum().backward()
    return out


def assert_all_params_get_grad(module, inputs):
    """Every parameter receives a finite, non-zero gradient."""
    backward_weighted(module, inputs)
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def assert_eval_deterministic(module, inputs):
    module.eval()
    with torch.no_grad():
        a, b = _first(module(*inputs)), _first(module(*inputs))
    assert torch.equal(a, b)


def assert_channels_last_matches(module, inputs, atol=1e-5):
    """The module in channels_last on channels_last inputs gives the contiguous result (eval mode)."""
    module.eval()
    with torch.no_grad():
        ref = _first(module(*inputs))
        cl = copy.deepcopy(module).to(memory_format=torch.channels_last)
        out = _first(cl(*_map(lambda t: t.contiguous(memory_format=torch.channels_last), inputs)))
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=atol, rtol=1e-5)


def assert_param_dims_non_decreasing(build, channels):
    """Each parameter's shape grows (weakly, per dim) with the channel count: supernet weights slice."""
    prev = None
    for c in channels:
        shapes = {n: p.shape for n, p in build(c).named_parameters()}
        if prev is not None:
            assert shapes.keys() == prev.keys()
            for n, s in shapes.items():
                assert all(a >= b for a, b in zip(s, prev[n])), f"c={c}: {n} {tuple(s)} < {tuple(prev[n])}"
        prev = shapes


def assert_arch_string_round_trips(op, c_out, hparams, stride=1):
    """A layer with these hparams survives Layer.to_string -> from_string (the hparam shorts parse)."""
    layer = Layer(op, c_out, stride, hparams)
    assert Layer.from_string(layer.to_string()) == layer, layer.to_string()
