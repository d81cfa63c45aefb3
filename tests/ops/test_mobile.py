"""Mobile blocks: mbconv (MobileNetV2/V3, EfficientNet), shuffle_v1, shuffle_v2."""
from functools import partial

import pytest
import torch
from torch import nn
from torchvision.models import efficientnet, mobilenetv2, mobilenetv3, shufflenetv2

from ops import build_op
from search_spaces.arch import Layer
from op_checks import assert_round_trips, assert_same_block, build_error, check_monotone, check_op, conv_norm


def mbconv_params(ci, co, k, hidden, squeeze=0, norm="bn"):
    """expand 1x1 (absent when hidden == c_in) + depthwise k x k + SE (two 1x1 convs with bias) + project 1x1."""
    expand = conv_norm(ci, hidden, 1, norm=norm) if hidden != ci else 0
    se = 2 * hidden * squeeze + squeeze + hidden if squeeze else 0
    return expand + conv_norm(hidden, hidden, k, hidden, norm=norm) + se + conv_norm(hidden, co, 1, norm=norm)


def shuffle_v1_params(ci, co, stride, groups, mid):
    branch = co - ci if stride > 1 else co
    return conv_norm(ci, mid, 1, groups) + conv_norm(mid, mid, 3, mid) + conv_norm(mid, branch, 1, groups)


def shuffle_v2_params(ci, co, stride, k=3):
    bf = co // 2
    branch1 = k * k * ci + 2 * ci + ci * bf + 2 * bf if stride > 1 else 0
    branch2 = (ci if stride > 1 else bf) * bf + 2 * bf + k * k * bf + 2 * bf + bf * bf + 2 * bf
    return branch1 + branch2


CASES = [
    ("mbconv", 8, 8, 1, mbconv_params(8, 8, 3, 48), {}),
    ("mbconv", 8, 16, 2, mbconv_params(8, 16, 3, 48), {}),
    # SE on the hidden width: make_divisible(int(24 * 0.25) = 6, 8) = 8 squeeze channels
    ("mbconv", 8, 16, 2, mbconv_params(8, 16, 5, 24, 8), {"kernel": 5, "expand": 3, "se": 0.25}),
    ("mbconv", 8, 8, 1, mbconv_params(8, 8, 7, 8), {"kernel": 7, "expand": 1}),
    ("mbconv", 8, 8, 2, mbconv_params(8, 8, 3, 20), {"expand": 2.5}),
    # SE on the input width (EfficientNet): max(1, int(8 * 0.25)) = 2
    ("mbconv", 8, 12, 2, mbconv_params(8, 12, 3, 20, 2),
     {"hidden": 20, "se": 0.25, "se_base": "input", "act": "silu", "se_act": "silu"}),
    ("mbconv", 8, 8, 1, mbconv_params(8, 8, 3, 32, 8, "gn"), {"expand": 4, "se": 0.25, "norm": "gn", "act": "hswish",
                                                            "se_gate": "hsigmoid"}),
    ("mbconv", 8, 8, 2, mbconv_params(8, 8, 3, 24, norm="none"), {"expand": 3, "norm": "none"}),
    # bottleneck width: c_out // 4 rounded down to a multiple of groups, at least `groups`
    ("shuffle_v1", 12, 12, 1, shuffle_v1_params(12, 12, 1, 3, 3), {}),
    ("shuffle_v1", 12, 24, 2, shuffle_v1_params(12, 24, 2, 3, 6), {}),
    ("shuffle_v1", 16, 48, 2, shuffle_v1_params(16, 48, 2, 4, 12), {"groups": 4}),
    ("shuffle_v1", 8, 24, 2, shuffle_v1_params(8, 24, 2, 8, 8), {"groups": 8}),
    ("shuffle_v1", 32, 32, 1, shuffle_v1_params(32, 32, 1, 2, 8), {"groups": 2}),
    ("shuffle_v2", 8, 8, 1, shuffle_v2_params(8, 8, 1), {}),
    ("shuffle_v2", 8, 16, 2, shuffle_v2_params(8, 16, 2), {}),
    ("shuffle_v2", 8, 8, 1, shuffle_v2_params(8, 8, 1, 5), {"kernel": 5}),
    ("shuffle_v2", 6, 12, 2, shuffle_v2_params(6, 12, 2, 7), {"kernel": 7}),
]


@pytest.mark.parametrize("name,c_in,c_out,stride,params,hp", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-s{c[3]}-{c[5]}" for c in CASES])
def test_block_contract(name, c_in, c_out, stride, params, hp):
    check_op(name, c_in, c_out, stride, params, **hp)


def test_mbconv_residual_only_when_shapes_allow():
    for stride, co, residual in ((1, 8, True), (2, 8, False), (1, 16, False)):
        m = build_op("mbconv", 8, co, stride).eval()
        nn.init.zeros_(m.project[1].weight)
        nn.init.zeros_(m.project[1].bias)
        x = torch.randn(1, 8, 6, 6)
        y = m(x)
        assert torch.equal(y, x) if residual else torch.all(y == 0)


def test_shuffle_v1_concatenates_the_pooled_input_first():
    m = build_op("shuffle_v1", 12, 24, 2).eval()
    x = torch.randn(1, 12, 7, 7)
    torch.testing.assert_close(m(x)[:, :12], torch.relu(nn.functional.avg_pool2d(x, 3, 2, 1)))


def test_shuffle_v2_passes_half_the_input_through_to_even_channels():
    m = build_op("shuffle_v2", 8, 8, 1).eval()
    x = torch.randn(1, 8, 5, 5)
    torch.testing.assert_close(m(x)[:, 0::2], x[:, :4])


def test_params_non_decreasing_in_elastic_hparams_and_channels():
    for stride in (1, 2):
        for se in (0.0, 0.25):
            for k_small, k_big in ((3, 5), (5, 7)):
                check_monotone(build_op("mbconv", 16, 24, stride, kernel=k_small, se=se),
                               build_op("mbconv", 16, 24, stride, kernel=k_big, se=se))
            for e_small, e_big in ((1, 3), (3, 4), (4, 6)):
                check_monotone(build_op("mbconv", 16, 24, stride, expand=e_small, se=se),
                               build_op("mbconv", 16, 24, stride, expand=e_big, se=se))
            check_monotone(build_op("mbconv", 16, 24, stride, se=se), build_op("mbconv", 24, 32, stride, se=se))
        check_monotone(build_op("shuffle_v2", 16, 16 * stride, stride, kernel=3),
                       build_op("shuffle_v2", 16, 16 * stride, stride, kernel=5))
        check_monotone(build_op("shuffle_v2", 16, 16 * stride, stride), build_op("shuffle_v2", 32, 32 * stride, stride))
        check_monotone(build_op("shuffle_v1", 24, 24 * stride, stride), build_op("shuffle_v1", 48, 48 * stride, stride))


@pytest.mark.parametrize("layer", [
    Layer("mbconv", 24, 2, {"kernel": 5, "expand": 3, "se": 0.25, "hidden": 72, "se_gate": "hsigmoid",
                            "act": "hswish"}),
    Layer("mbconv", 16, 1, {"expand": 2.5, "se_base": "input", "act": "silu"}),
    Layer("mbconv", 16, 1, {"se_base": "input", "se_act": "silu"}),
    Layer("shuffle_v1", 48, 2, {"groups": 8}),
    Layer("shuffle_v2", 116, 2, {"kernel": 7}),
])
def test_compact_strings_round_trip(layer):
    assert_round_trips(layer)


@pytest.mark.parametrize("name,c_in,c_out,stride,hp,message", [
    ("mbconv", 8, 8, 1, {"kernel": 4}, "op 'mbconv': kernel=4 has no symmetric padding"),
    ("mbconv", 8, 8, 1, {"expand": 0}, "op 'mbconv': expand=0 gives no expanded width"),
    ("mbconv", 8, 8, 1, {"hidden": -1}, "op 'mbconv': hidden=-1 is invalid"),
    ("mbconv", 8, 8, 1, {"se": -0.5}, "op 'mbconv': se=-0.5 is invalid"),
    ("mbconv", 8, 8, 1, {"se": 0.25, "se_base": "output"}, "op 'mbconv': se_base='output' is unknown; valid: hidden"),
    ("shuffle_v1", 12, 24, 1, {}, "op 'shuffle_v1': c_out=24 differs from c_in=12 at stride 1"),
    ("shuffle_v1", 24, 24, 2, {}, "op 'shuffle_v1': c_out=24 must exceed c_in=24 when strided"),
    ("shuffle_v1", 10, 20, 2, {"groups": 3},
     "op 'shuffle_v1': groups=3 must divide c_in=10 and c_out=20; valid: 1, 2, 5, 10"),
    ("shuffle_v1", 12, 20, 2, {"groups": 3}, "op 'shuffle_v1': groups=3 must divide c_in=12 and c_out=20"),
    ("shuffle_v2", 8, 15, 2, {}, "op 'shuffle_v2': c_out=15 is odd"),
    ("shuffle_v2", 8, 16, 1, {}, "op 'shuffle_v2': c_out=16 differs from c_in=8 at stride 1"),
    ("shuffle_v2", 8, 8, 1, {"kernel": 2}, "op 'shuffle_v2': kernel=2 has no symmetric padding"),
])
def test_bad_arguments(name, c_in, c_out, stride, hp, message):
    error = build_error(name, c_in, c_out, stride, **hp)
    assert message in error
    assert "valid:" in error


# ---------------------------------------------------------------- torchvision equivalence

@pytest.mark.parametrize("ci,co,s,t", [(32, 16, 1, 1), (16, 24, 2, 6), (24, 24, 1, 6), (64, 96, 1, 6), (20, 20, 1, 2.5)])
def test_mbconv_is_mobilenet_v2_inverted_residual(ci, co, s, t):
    ref = mobilenetv2.InvertedResidual(ci, co, s, expand_ratio=t)
    assert_same_block(build_op("mbconv", ci, co, s, expand=t), ref, ci)


# (input, kernel, expanded, out, use_se, activation, stride) rows of torchvision's mobilenet_v3 tables
MBV3_ROWS = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
             (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
             (80, 3, 184, 80, False, "HS", 1), (112, 5, 672, 160, True, "HS", 2)]


@pytest.mark.parametrize("ci,k,exp,co,use_se,act,s", MBV3_ROWS)
def test_mbconv_is_mobilenet_v3_inverted_residual(ci, k, exp, co, use_se, act, s):
    cnf = mobilenetv3.InvertedResidualConfig(ci, k, exp, co, use_se, act, s, 1, 1.0)
    ref = mobilenetv3.InvertedResidual(cnf, partial(nn.BatchNorm2d, eps=0.001, momentum=0.01))
    ours = build_op("mbconv", ci, co, s, kernel=k, hidden=exp, se=0.25 if use_se else 0.0, se_gate="hsigmoid",
                    act="hswish" if act == "HS" else "relu")
    for m in ours.modules():  # MobileNetV3's eps; it changes neither parameters nor MACs
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 0.001
    assert_same_block(ours, ref, ci)


@pytest.mark.parametrize("t,k,s,ci,co", [(1, 3, 1, 32, 16), (6, 3, 2, 16, 24), (6, 5, 1, 40, 40), (6, 5, 2, 80, 112)])
def test_mbconv_is_efficientnet_mbconv(t, k, s, ci, co):
    ref = efficientnet.MBConv(efficientnet.MBConvConfig(t, k, s, ci, co, 1), 0.0, nn.BatchNorm2d)
    ours = build_op("mbconv", ci, co, s, kernel=k, expand=t, se=0.25, se_base="input", act="silu", se_act="silu")
    assert_same_block(ours, ref, ci)


@pytest.mark.parametrize("ci,co,s", [(24, 116, 2), (116, 116, 1), (232, 464, 2), (48, 48, 1)])
def test_shuffle_v2_is_torchvision_inverted_residual(ci, co, s):
    assert_same_block(build_op("shuffle_v2", ci, co, s), shufflenetv2.InvertedResidual(ci, co, s), ci)
