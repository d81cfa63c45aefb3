"""Spatial plug-ins (stn, blurpool, gdc, channel_shuffle) and the stem pools (maxpool, avgpool)."""
import pytest
import torch
import torch.nn.functional as F

from ops import build_op, op_spec
from op_checks import (assert_all_params_get_grad, assert_arch_string_round_trips, assert_channels_last_matches,
                       assert_eval_deterministic, assert_param_dims_non_decreasing, backward_weighted, build_error,
                       ceil_div, n_params, randn)

C = 8


def x_in(c=C, n=2, h=9, w=8, seed=0):
    return randn(n, c, h, w, seed=seed)


def stn_params(c):
    # conv 3x3 c->8, conv 3x3 8->8 (both with bias), FC 8*4*4 -> 32, FC 32 -> 6
    return (9 * c * 8 + 8) + (9 * 8 * 8 + 8) + (8 * 16 * 32 + 32) + (32 * 6 + 6)


# (op, stride, hparams, input size h x w, expected parameter count); the output size is ceil(h/s) x ceil(w/s)
CASES = [
    ("stn", 1, {}, (9, 8), stn_params(C)),
    ("blurpool", 1, {}, (9, 8), 0),
    ("blurpool", 2, {}, (9, 8), 0),
    ("blurpool", 2, {"filter_size": 5}, (7, 10), 0),
    ("blurpool", 2, {"max": True}, (9, 8), 0),
    ("blurpool", 3, {"max": True, "filter_size": 5}, (11, 7), 0),
    ("channel_shuffle", 1, {"groups": 4}, (5, 6), 0),
    ("maxpool", 1, {}, (9, 8), 0),
    ("maxpool", 2, {}, (9, 8), 0),
    ("maxpool", 2, {}, (32, 33), 0),
    ("avgpool", 2, {}, (9, 8), 0),
    ("avgpool", 4, {}, (9, 8), 0),
]
IDS = [f"{op}-s{s}-{hp}-{h}x{w}" for op, s, hp, (h, w), _ in CASES]


def prepared(op, stride, hp):
    m = build_op(op, C, C, stride, **hp)
    if op == "stn":  # the zero last FC blocks gradients to the localisation net: move it off zero
        with torch.no_grad():
            m.theta.weight.normal_(0, 0.1)
    return m


@pytest.mark.parametrize("op,stride,hp,size,count", CASES, ids=IDS)
def test_shape_family_and_param_count(op, stride, hp, size, count):
    m = build_op(op, C, C, stride, **hp)
    assert op_spec(op).family == ("pool" if op in ("maxpool", "avgpool") else "plugin")
    h, w = size
    assert m(x_in(h=h, w=w)).shape == (2, C, ceil_div(h, stride), ceil_div(w, stride))
    assert n_params(m) == count


@pytest.mark.parametrize("op,stride,hp,size,count", CASES, ids=IDS)
def test_grads_eval_and_channels_last(op, stride, hp, size, count):
    m = prepared(op, stride, hp)
    x = x_in(h=size[0], w=size[1]).requires_grad_()
    assert_all_params_get_grad(m, (x,))
    assert x.grad is not None and x.grad.abs().sum() > 0  # also the ops without parameters pass gradients
    x = x.detach()
    assert_eval_deterministic(m, (x,))
    assert_channels_last_matches(m, (x,))


@pytest.mark.parametrize("op,hp", [("stn", {}), ("blurpool", {"filter_size": 5, "max": True}),
                                   ("gdc", {"size": 4}), ("channel_shuffle", {"groups": 4}), ("maxpool", {})])
def test_arch_string_round_trips(op, hp):
    assert_arch_string_round_trips(op, 16, hp, stride=2 if op in ("blurpool", "maxpool") else 1)


def test_stn_is_identity_at_init_and_its_zero_fc_gets_gradient():
    m = build_op("stn", 3, 3)
    assert torch.equal(m.theta.weight, torch.zeros(6, 32))
    x = x_in(3, h=12, w=10)
    for mode in (True, False):
        m.train(mode)
        assert (m(x) - x).abs().max() < 1e-5
        torch.testing.assert_close(m.affine(x), torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(2, 2, 3))
    backward_weighted(m, (x,))
    assert m.theta.weight.grad.abs().sum() > 0 and m.theta.bias.grad.abs().sum() > 0
    assert_param_dims_non_decreasing(lambda c: build_op("stn", c, c), range(1, 17))


def test_stn_follows_its_affine():
    """With the bias set to a horizontal flip, the output is the flipped input."""
    m = build_op("stn", 2, 2)
    with torch.no_grad():
        m.theta.bias.copy_(torch.tensor([-1.0, 0, 0, 0, 1, 0]))
    x = x_in(2, h=6, w=7)
    torch.testing.assert_close(m(x), x.flip(-1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size,row", [(3, [1, 2, 1]), (5, [1, 4, 6, 4, 1])])
def test_blurpool_filter_is_the_normalised_binomial_buffer(size, row):
    m = build_op("blurpool", C, C, 2, filter_size=size)
    r = torch.tensor(row, dtype=torch.float32)
    expected = torch.outer(r, r) / r.sum() ** 2
    assert dict(m.named_buffers())["filt"].shape == (C, 1, size, size)
    for c in range(C):
        torch.testing.assert_close(m.filt[c, 0], expected)
    assert n_params(m) == 0


@pytest.mark.parametrize("stride,hp", [(1, {}), (2, {}), (2, {"filter_size": 5}), (2, {"max": True}),
                                       (3, {"max": True, "filter_size": 5})])
def test_blurpool_keeps_a_constant_image_constant(stride, hp):
    m = build_op("blurpool", 3, 3, stride, **hp)
    for h, w in [(7, 9), (8, 8), (2, 3), (1, 1)]:  # the last two are too small to reflect-pad a 5-filter
        x = torch.full((1, 3, h, w), 2.5)
        y = m(x)
        assert y.shape == (1, 3, ceil_div(h, stride), ceil_div(w, stride))
        torch.testing.assert_close(y, torch.full_like(y, 2.5))


def test_blurpool_is_blur_then_subsample():
    x = x_in(h=9, w=8)
    blur = build_op("blurpool", C, C, 1)
    down = build_op("blurpool", C, C, 2)
    torch.testing.assert_close(down(x), blur(x)[..., ::2, ::2])
    # the blur at stride 1: reflect padding, then the depthwise binomial filter
    ref = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), blur.filt, groups=C)
    torch.testing.assert_close(blur(x), ref)


def test_maxblurpool_is_max_then_blur_away_from_the_bottom_right_border():
    x = x_in(h=8, w=8)
    m = build_op("blurpool", C, C, 2, max=True)
    ref = build_op("blurpool", C, C, 2)(F.max_pool2d(x, 2, stride=1))  # the paper's 7x7 intermediate
    torch.testing.assert_close(m(x)[..., :3, :3], ref[..., :3, :3])


def test_gdc_reduces_the_map_to_one_weighted_sum_per_channel():
    m = build_op("gdc", C, C, size=4)
    assert n_params(m) == C * 4 * 4 + 2 * C  # depthwise 4x4 without bias, BatchNorm
    x = x_in(n=3, h=4, w=4)
    assert m(x).shape == (3, C, 1, 1)
    m.eval()
    weighted = (x * m.conv.weight[:, 0]).sum(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(m(x), m.bn(weighted))
    assert_all_params_get_grad(m, (x,))
    assert_eval_deterministic(m, (x,))
    assert_channels_last_matches(m, (x,))
    assert_param_dims_non_decreasing(lambda c: build_op("gdc", c, c, size=4), range(1, 17))
    assert op_spec("gdc").hparam("size").short == "sz"


@pytest.mark.parametrize("c,groups,order", [(6, 2, [0, 3, 1, 4, 2, 5]), (6, 3, [0, 2, 4, 1, 3, 5]),
                                            (8, 4, [0, 2, 4, 6, 1, 3, 5, 7])])
def test_channel_shuffle_permutation(c, groups, order):
    x = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1).expand(2, c, 3, 2)
    y = build_op("channel_shuffle", c, c, groups=groups)(x)
    assert y[0, :, 0, 0].tolist() == order
    assert torch.equal(y[1, :, 2, 1], y[0, :, 0, 0])


def test_pools_match_torch_and_keep_constants():
    x = x_in(h=10, w=7)
    torch.testing.assert_close(build_op("maxpool", C, C, 2)(x), F.max_pool2d(x, 3, 2, 1))
    # padded cells are not counted, so a constant image stays constant at the border too
    y = build_op("avgpool", C, C, 2)(torch.full((1, C, 7, 6), 3.0))
    torch.testing.assert_close(y, torch.full((1, C, 4, 3), 3.0))
    assert op_spec("maxpool").hparams == () and op_spec("avgpool").hparams == ()


@pytest.mark.parametrize("op,kwargs,message", [
    ("channel_shuffle", {"c_in": 6, "c_out": 6, "groups": 4},
     "op 'channel_shuffle': groups=4 must divide c_in=6 and c_out=6; valid: 1, 2, 3, 6"),
    ("channel_shuffle", {"c_out": 16}, "op 'channel_shuffle': c_out=16 differs from c_in=8"),
    ("stn", {"stride": 2}, "op 'stn': stride=2 is not supported (this op keeps the spatial size); valid: stride=1"),
    ("stn", {"c_out": 3}, "op 'stn': c_out=3 differs from c_in=8 (this op keeps the channel count); valid: c_out=8"),
    ("blurpool", {"c_out": 16, "stride": 2}, "op 'blurpool': c_out=16 differs from c_in=8"),
    ("blurpool", {"filter_size": 4}, "op 'blurpool': filter_size=4 has no symmetric padding"),
    ("blurpool", {"stride": 0}, "op 'blurpool': stride=0 is invalid; valid: integers >= 1"),
    ("gdc", {"c_out": 4}, "op 'gdc': c_out=4 differs from c_in=8"),
    ("gdc", {"stride": 2}, "op 'gdc': stride=2 is not supported"),
    ("gdc", {"size": 0}, "op 'gdc': size=0 is invalid; valid: integers >= 1"),
    ("maxpool", {"c_out": 16}, "op 'maxpool': c_out=16 differs from c_in=8"),
    ("avgpool", {"stride": 0}, "op 'avgpool': stride=0 is invalid; valid: integers >= 1"),
])
def test_bad_arguments_name_the_op_and_what_is_valid(op, kwargs, message):
    assert message in build_error(op, **{"c_in": C, "c_out": C, **kwargs})


def test_gdc_rejects_a_map_of_the_wrong_size_with_a_clear_message():
    with pytest.raises(ValueError, match=r"op 'gdc': input is 5x5 but size=7; valid: size=5"):
        build_op("gdc", C, C, size=7)(x_in(h=5, w=5))
