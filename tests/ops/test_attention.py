"""Attention plug-ins: se, cbam, non_local."""
import pytest
import torch

from ops import build_op, op_spec
from ops.layers import SqueezeExcite
from op_checks import (assert_all_params_get_grad, assert_arch_string_round_trips, assert_channels_last_matches,
                       assert_eval_deterministic, assert_param_dims_non_decreasing, backward_weighted, build_error,
                       n_params, randn)

C, H, W = 16, 6, 5


def x_in(c=C, n=2, seed=0):
    return randn(n, c, H, W, seed=seed)


def se_params(c, ratio):
    s = max(1, int(c * ratio))
    return (c * s + s) + (s * c + c)  # fc1, fc2 (1x1 convs with bias)


def cbam_params(c, ratio, k):
    h = max(1, int(c * ratio))
    return (c * h + h) + (h * c + c) + (2 * k * k + 1)  # shared MLP; spatial k x k conv 2 -> 1 with bias


def non_local_params(c, reduction):
    i = max(1, c // reduction)
    return 3 * (c * i + i) + i * c + 2 * c  # theta, phi, g (bias); W (no bias); BN


CASES = [
    ("se", {}, se_params(C, 0.25)),
    ("se", {"ratio": 0.125}, se_params(C, 0.125)),
    ("cbam", {}, cbam_params(C, 0.0625, 7)),
    ("cbam", {"ratio": 0.25, "spatial_kernel": 3}, cbam_params(C, 0.25, 3)),
    ("non_local", {}, non_local_params(C, 2)),
    ("non_local", {"reduction": 4}, non_local_params(C, 4)),
]
IDS = [f"{op}-{hp}" for op, hp, _ in CASES]


def perturbed(m):
    """non_local starts as the identity (zero BN weight), which blocks gradients to its convs."""
    if m.op_name == "non_local":
        with torch.no_grad():
            m.bn.weight.fill_(1.0)
    return m


@pytest.mark.parametrize("op,hp,count", CASES, ids=IDS)
def test_shape_family_and_param_count(op, hp, count):
    m = build_op(op, C, C, **hp)
    assert op_spec(op).family == "plugin"
    assert m(x_in()).shape == (2, C, H, W)
    assert n_params(m) == count


@pytest.mark.parametrize("op,hp,count", CASES, ids=IDS)
def test_grads_eval_and_channels_last(op, hp, count):
    m = perturbed(build_op(op, C, C, **hp))
    assert_all_params_get_grad(m, (x_in(n=8),))
    assert_eval_deterministic(m, (x_in(),))
    assert_channels_last_matches(m, (x_in(),))


@pytest.mark.parametrize("op,hp,count", CASES, ids=IDS)
def test_arch_string_and_monotone_dims(op, hp, count):
    assert_arch_string_round_trips(op, C, hp)
    assert_param_dims_non_decreasing(lambda c: build_op(op, c, c, **hp), range(1, 41))


def test_se_is_the_shared_squeeze_excite():
    m = build_op("se", 24, 24, ratio=0.125)
    assert isinstance(m, SqueezeExcite)
    assert (m.fc1.out_channels, m.fc2.out_channels) == (3, 24)
    assert build_op("se", 3, 3).fc1.out_channels == 1  # never zero-width


def test_se_and_cbam_scales_lie_in_open_unit_interval():
    x = x_in()
    se, cbam = build_op("se", C, C), build_op("cbam", C, C)
    for s, shape in [(se.scale(x), (2, C, 1, 1)), (cbam.channel_scale(x), (2, C, 1, 1)),
                     (cbam.spatial_scale(x), (2, 1, H, W))]:
        assert s.shape == shape
        assert ((s > 0) & (s < 1)).all()
    torch.testing.assert_close(se(x), x * se.scale(x))
    xc = x * cbam.channel_scale(x)
    torch.testing.assert_close(cbam(x), xc * cbam.spatial_scale(xc))


def test_cbam_spatial_conv_matches_kernel():
    conv = build_op("cbam", C, C, spatial_kernel=3).spatial
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (2, 1, (3, 3), (1, 1))


def test_non_local_is_identity_at_init_and_zero_init_param_gets_gradient():
    m = build_op("non_local", C, C)
    x = x_in()
    assert torch.equal(m.bn.weight, torch.zeros(C))
    for mode in (True, False):
        m.train(mode)
        assert torch.equal(m(x), x)
    backward_weighted(m, (x,))
    assert m.bn.weight.grad is not None and m.bn.weight.grad.abs().sum() > 0


def test_non_local_attends_over_all_positions():
    m = perturbed(build_op("non_local", C, C)).eval()
    x = x_in()
    x2 = x.clone()
    x2[:, :, 0, 0] += 5.0  # one far corner changes ...
    with torch.no_grad():
        d = (m(x2) - m(x))[:, :, H - 1, W - 1]  # ... and the opposite corner's output moves
    assert d.abs().max() > 1e-4


@pytest.mark.parametrize("op,kwargs,message", [
    ("se", {"c_out": 8}, "op 'se': c_out=8 differs from c_in=16 (this op keeps the channel count); valid: c_out=16"),
    ("cbam", {"stride": 2}, "op 'cbam': stride=2 is not supported (this op keeps the spatial size); valid: stride=1"),
    ("non_local", {"c_out": 32}, "op 'non_local': c_out=32 differs from c_in=16"),
    ("se", {"ratio": 0}, "op 'se': ratio=0 is out of range; valid: 0 < ratio <= 1"),
    ("cbam", {"spatial_kernel": 4},
     "op 'cbam': spatial_kernel=4 has no symmetric padding that keeps the size; valid: odd"),
    ("non_local", {"reduction": 0}, "op 'non_local': reduction=0 is invalid; valid: integers >= 1"),
    ("se", {"r": 0.5}, "op 'se': hparam 'r' is unknown"),
])
def test_bad_arguments_name_the_op_and_what_is_valid(op, kwargs, message):
    kwargs = {"c_in": C, "c_out": C, **kwargs}
    assert message in build_error(op, **kwargs)
