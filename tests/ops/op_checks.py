"""Checks shared by the op tests; the seeding fixture is in conftest.py.

`inputs` is always a tuple of positional arguments; a tensor argument may also be a list of tensors
(ASFF takes one). The checks set train/eval mode themselves; only the channels_last check works on a copy.
"""
import copy

import pytest
import torch
from torch import nn

from ops import build_op, op_spec
from search_spaces.arch import Layer


# ---------------------------------------------------------------- small helpers

def ceil_div(a, b):
    return -(-a // b)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def randn(*shape, seed=0):
    """A reproducible random tensor that leaves torch's global generator alone."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def conv_norm(ci, co, k=1, groups=1, norm="bn"):
    """Parameters of a bias-free k x k conv (ci -> co, `groups`) followed by an affine norm (2 per channel);
    with norm 'none' the conv carries a bias instead. `k` may be (kh, kw)."""
    kh, kw = (k, k) if isinstance(k, int) else k
    return kh * kw * (ci // groups) * co + (co if norm == "none" else 2 * co)


def build_error(name, *args, **kwargs):
    """The message of the ValueError that `build_op(name, *args, **kwargs)` must raise."""
    with pytest.raises(ValueError) as err:
        build_op(name, *args, **kwargs)
    return str(err.value)


def _map(fn, inputs):
    return tuple([fn(t) for t in a] if isinstance(a, (list, tuple)) else fn(a) for a in inputs)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


# ---------------------------------------------------------------- the op contract

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
    """Every parameter receives a finite, non-zero gradient; returns the (train-mode) output."""
    out = backward_weighted(module, inputs)
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    return out


def assert_eval_deterministic(module, inputs):
    module.eval()
    with torch.no_grad():
        a, b = _first(module(*inputs)), _first(module(*inputs))
    assert torch.equal(a, b)


def assert_channels_last_matches(module, inputs, atol=1e-5, rtol=1e-5, convert_module=True):
    """Eval mode: channels_last inputs give the contiguous result, both to the module as it is and (unless
    `convert_module` is off: torch cannot convert 5-D weights) to a channels_last copy of it."""
    module.eval()
    cl_inputs = _map(lambda t: t.contiguous(memory_format=torch.channels_last), inputs)
    with torch.no_grad():
        ref = _first(module(*inputs))
        outs = [_first(module(*cl_inputs))]
        if convert_module:
            outs.append(_first(copy.deepcopy(module).to(memory_format=torch.channels_last)(*cl_inputs)))
    for out in outs:
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=atol, rtol=rtol)


def check_op(name, c_in, c_out, stride, expected_params, size=7, **hp):
    """Shape, gradient to every parameter, closed-form parameter count, eval determinism, channels_last."""
    torch.manual_seed(0)
    m = build_op(name, c_in, c_out, stride, **hp)
    x = torch.randn(2, c_in, size, size, requires_grad=True)  # so that an identity (skip) can backpropagate
    side = ceil_div(size, stride)
    assert assert_all_params_get_grad(m, (x,)).shape == (2, c_out, side, side)
    assert n_params(m) == expected_params
    x = x.detach()
    assert_eval_deterministic(m, (x,))
    assert_channels_last_matches(m, (x,), rtol=1e-4)
    return m


class OpContract:
    """The contract tests of one family, run for every case and scale; a test module subclasses it as `Test...`.

    A case is (op, c_in, c_out, hparams, count(c_in, c_out)) with the closed-form parameter count; the scale is
    the stride (an upsampling subclass makes it the upsample factor and overrides `build`, `out_shape`, `count`).
    """

    cases = ()
    scales = (1, 2)
    size = 9  # odd, so a stride-2 output must be ceil(9/2) = 5
    convert_module = True  # whether the channels_last check also converts the module

    def pytest_generate_tests(self, metafunc):
        ids = [f"{op}-{ci}to{co}-{'-'.join(f'{k}{v}' for k, v in hp.items()) or 'default'}"
               for op, ci, co, hp, _ in self.cases]
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", self.cases, ids=ids)
        if "scale" in metafunc.fixturenames:
            metafunc.parametrize("scale", self.scales)

    def build(self, case, scale):
        name, ci, co, hp, _ = case
        return build_op(name, ci, co, scale, **hp)

    def out_shape(self, case, scale):
        return 2, case[2], ceil_div(self.size, scale), ceil_div(self.size, scale)

    def count(self, case, scale):
        return case[4](case[1], case[2])

    def perturb(self, m):
        """Move parameters that start at a special value (zero offsets, say) before the eval checks."""

    def make(self, case, scale):
        torch.manual_seed(0)
        return self.build(case, scale), torch.randn(2, case[1], self.size, self.size)

    def test_shape_and_parameter_count(self, case, scale):
        m, x = self.make(case, scale)
        assert m(x).shape == self.out_shape(case, scale)
        assert n_params(m) == self.count(case, scale)

    def test_gradient_reaches_every_parameter(self, case, scale):
        m, x = self.make(case, scale)
        assert_all_params_get_grad(m, (x,))

    def test_eval_deterministic_and_channels_last(self, case, scale):
        m, x = self.make(case, scale)
        self.perturb(m)
        m.train()(x)  # move the BN running statistics away from their initial values
        assert_eval_deterministic(m, (x,))
        assert_channels_last_matches(m, (x,), rtol=1e-4, convert_module=self.convert_module)


# ---------------------------------------------------------------- weight sharing and arch strings

def check_monotone(small, big, same_names=False):
    """Every parameter of `small` exists in `big` under the same name with no larger dims (weight sharing);
    `same_names`: and `big` has no others."""
    sp, bp = dict(small.named_parameters()), dict(big.named_parameters())
    if same_names:
        assert sp.keys() == bp.keys()
    for k, v in sp.items():
        assert k in bp, f"parameter {k} disappears in the larger variant"
        assert v.dim() == bp[k].dim() and all(a <= b for a, b in zip(v.shape, bp[k].shape)), \
            f"{k}: {tuple(v.shape)} is not within {tuple(bp[k].shape)}"


def assert_param_dims_non_decreasing(build, values):
    """Each parameter's shape grows (weakly, per dim) along `values`, names unchanged: supernet weights slice."""
    prev = None
    for v in values:
        cur = build(v)
        if prev is not None:
            check_monotone(prev, cur, same_names=True)
        prev = cur


def assert_elastic_kernel_monotone(name, c_in=8, c_out=16, **hp):
    """`kernel` is elastic and every kernel choice shares the parameter names, with shapes growing in k."""
    kernel = op_spec(name).hparam("kernel")
    assert kernel.elastic
    assert_param_dims_non_decreasing(lambda k: build_op(name, c_in, c_out, kernel=k, **hp), sorted(kernel.choices))


def assert_round_trips(layer):
    """The layer survives Layer.to_string -> from_string (the hparam shorts parse)."""
    assert Layer.from_string(layer.to_string()) == layer, layer.to_string()


def assert_arch_string_round_trips(op, c_out, hparams, stride=1):
    assert_round_trips(Layer(op, c_out, stride, hparams))


# ---------------------------------------------------------------- equivalence with reference implementations

def randomize_norms(model):
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=g) + 0.5
            m.bias.data = torch.randn(c, generator=g)
            m.running_mean = torch.randn(c, generator=g) * 0.1
            m.running_var = torch.rand(c, generator=g) + 0.5
    return model


def copy_by_position(src, dst):
    """Load `src`'s state dict into `dst` tensor by tensor, in order; the shapes must line up."""
    s, d = src.state_dict(), dst.state_dict()
    assert [tuple(v.shape) for v in s.values()] == [tuple(v.shape) for v in d.values()]
    dst.load_state_dict(dict(zip(d.keys(), s.values())))


def assert_same_block(ours, ref, c_in, size=9):
    """Equal parameter counts, and equal eval outputs once the reference's weights are copied over."""
    assert n_params(ours) == n_params(ref)
    randomize_norms(ref)
    copy_by_position(ref, ours)
    x = torch.randn(2, c_in, size, size)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), ref.eval()(x), atol=1e-5, rtol=1e-4)
