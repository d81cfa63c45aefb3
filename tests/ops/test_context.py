"""Context modules: aspp, rfb."""
import pytest
import torch

from ops import build_op, op_spec
from op_checks import (assert_all_params_get_grad, assert_arch_string_round_trips, assert_channels_last_matches,
                       assert_eval_deterministic, assert_param_dims_non_decreasing, build_error, conv_norm, n_params,
                       randn)

H, W = 9, 8


def x_in(c, n=2, h=H, w=W, seed=0):
    return randn(n, c, h, w, seed=seed)


def aspp_params(ci, co):
    # 1x1 branch, three dilated 3x3 branches, pooling branch (1x1 conv with bias, no norm), 1x1 fuse of 5 branches
    return conv_norm(ci, co) + 3 * conv_norm(ci, co, 3) + (ci * co + co) + conv_norm(5 * co, co)


def rfb_params(ci, co):
    i = max(2, ci // 8)
    mid = i // 2 * 3
    b0 = conv_norm(ci, 2 * i) + conv_norm(2 * i, 2 * i, 3)
    b1 = conv_norm(ci, i) + conv_norm(i, 2 * i, 3) + conv_norm(2 * i, 2 * i, 3)
    b2 = conv_norm(ci, i) + conv_norm(i, mid, 3) + conv_norm(mid, 2 * i, 3) + conv_norm(2 * i, 2 * i, 3)
    shortcut = 0 if ci == co else conv_norm(ci, co)
    return b0 + b1 + b2 + conv_norm(6 * i, co) + shortcut


CASES = [
    ("aspp", 8, 12, {}, aspp_params(8, 12)),
    ("aspp", 16, 8, {"rates": (1, 2, 3)}, aspp_params(16, 8)),
    ("rfb", 16, 16, {}, rfb_params(16, 16)),
    ("rfb", 32, 24, {}, rfb_params(32, 24)),
    ("rfb", 4, 4, {}, rfb_params(4, 4)),  # below 16 channels the branch width stays at 2
]
IDS = [f"{op}-{ci}-{co}-{hp}" for op, ci, co, hp, _ in CASES]


@pytest.mark.parametrize("op,ci,co,hp,count", CASES, ids=IDS)
def test_shape_and_param_count(op, ci, co, hp, count):
    m = build_op(op, ci, co, **hp)
    assert op_spec(op).family == "plugin"
    assert m(x_in(ci)).shape == (2, co, H, W)
    assert n_params(m) == count


@pytest.mark.parametrize("op,ci,co,hp,count", CASES, ids=IDS)
def test_grads_eval_and_channels_last(op, ci, co, hp, count):
    m = build_op(op, ci, co, **hp)
    assert_all_params_get_grad(m, (x_in(ci, n=4),))
    assert_eval_deterministic(m, (x_in(ci),))
    assert_channels_last_matches(m, (x_in(ci),))


@pytest.mark.parametrize("op,hp", [("aspp", {"rates": (1, 2, 3)}), ("rfb", {})])
def test_arch_string_and_monotone_dims(op, hp):
    assert_arch_string_round_trips(op, 16, hp)
    assert_param_dims_non_decreasing(lambda c: build_op(op, c, c, **hp), range(1, 41))


def test_aspp_branch_dilations_and_default_rates():
    assert op_spec("aspp").defaults() == {"rates": (6, 12, 18)}
    for rates in [(6, 12, 18), (1, 2, 3)]:
        m = build_op("aspp", 4, 4, rates=rates)
        convs = [b[0] for b in m.branches]
        assert [c.kernel_size for c in convs] == [(1, 1)] + [(3, 3)] * 3
        assert [c.dilation[0] for c in convs[1:]] == list(rates)
        assert [c.padding[0] for c in convs[1:]] == list(rates)  # 'same' padding keeps the size


def test_aspp_accepts_rates_as_a_list_from_yaml():
    assert build_op("aspp", 4, 4, rates=[2, 4, 6]).rates == (2, 4, 6)


def test_aspp_trains_at_batch_one():
    """The pooling branch has no BatchNorm: a 1x1 pooled map at batch 1 would break it in train mode."""
    m = build_op("aspp", 8, 8, rates=(1, 2, 3)).train()
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.pool)
    assert m(x_in(8, n=1)).shape == (1, 8, H, W)


def test_aspp_pooling_branch_is_spatially_constant():
    m = build_op("aspp", 8, 8, rates=(1, 2, 3)).eval()
    x = x_in(8)
    pooled = torch.nn.functional.interpolate(m.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(pooled, m.pool(x).expand_as(pooled))


def test_rfb_branch_rates_and_residual():
    m = build_op("rfb", 16, 16)
    last = [b[-1][0] for b in m.branches]
    assert [c.dilation[0] for c in last] == [1, 3, 5]
    assert [c.kernel_size for c in last] == [(3, 3)] * 3
    assert isinstance(m.shortcut, torch.nn.Identity)
    assert isinstance(build_op("rfb", 16, 24).shortcut[0], torch.nn.Conv2d)
    # with the fuse output zeroed, the block is ReLU(x): the residual path is the identity
    with torch.no_grad():
        m.fuse[1].weight.zero_()
        m.fuse[1].bias.zero_()
    x = x_in(16)
    torch.testing.assert_close(m.eval()(x), torch.relu(x))


@pytest.mark.parametrize("op,kwargs,message", [
    ("aspp", {"stride": 2}, "op 'aspp': stride=2 is not supported (this op keeps the spatial size); valid: stride=1"),
    ("aspp", {"rates": (1, 2)}, "op 'aspp': rates=(1, 2) is invalid; valid: three integers >= 1"),
    ("aspp", {"rates": (1, 0, 3)}, "op 'aspp': rates=(1, 0, 3) is invalid"),
    ("rfb", {"stride": 2}, "op 'rfb': stride=2 is not supported"),
    ("rfb", {"rates": (1, 3, 5)}, "op 'rfb': hparam 'rates' is unknown; valid: no hparams"),
])
def test_bad_arguments_name_the_op_and_what_is_valid(op, kwargs, message):
    assert message in build_error(op, **{"c_in": 8, "c_out": 8, **kwargs})
