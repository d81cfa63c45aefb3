"""Multi-branch and dense blocks: inception, inception_factorized, xception, dense."""
import pytest
import torch
from torch import nn
from torchvision.models import densenet, inception as tv_inception
from torchvision.models.googlenet import Inception as GoogLeNetInception

from ops import build_op
from search_spaces.arch import Layer
from op_checks import (assert_round_trips, assert_same_block, build_error, check_monotone, check_op, conv_norm,
                       n_params)


def inception_params(ci, widths, norm="bn"):
    b1, r3, b3, r5, b5, bp = widths
    return (conv_norm(ci, b1, norm=norm) + conv_norm(ci, r3, norm=norm) + conv_norm(r3, b3, 3, norm=norm)
            + conv_norm(ci, r5, norm=norm) + conv_norm(r5, b5, 5, norm=norm) + conv_norm(ci, bp, norm=norm))


def factorized_params(ci, n, widths):
    b1, r2, b2, r3, b3, bp = widths
    nxn = conv_norm(ci, r2) + conv_norm(r2, r2, (1, n)) + conv_norm(r2, b2, (n, 1))
    double = conv_norm(ci, r3) + 3 * conv_norm(r3, r3, (n, 1)) + conv_norm(r3, b3, (1, n))
    return conv_norm(ci, b1) + nxn + double + conv_norm(ci, bp)


def xception_params(ci, co, s, norm="bn"):
    def sep(a, b):  # depthwise 3x3 (no bias) + pointwise 1x1 + norm
        return 9 * a + conv_norm(a, b, 1, norm=norm)
    proj = conv_norm(ci, co, 1, norm=norm) if s != 1 or ci != co else 0
    return sep(ci, co) + 2 * sep(co, co) + proj


def dense_params(ci, co, layers, growth, norm="bn"):
    total, c = 0, ci
    for _ in range(layers):  # norm(c) - 1x1 to 4k - norm(4k) - 3x3 to k (no bias)
        total += (2 * c if norm != "none" else 0) + conv_norm(c, 4 * growth, 1, norm=norm) + 9 * 4 * growth * growth
        c += growth
    return total + (2 * c if norm != "none" else 0) + c * co  # transition: norm - 1x1 (no bias)


# default inception widths: 1x1 c/4, 3x3 reduce 3c/8, 3x3 c/2, 5x5 reduce max(1, c/16), 5x5 c/8, pool c/8
# default factorized widths: c/4 per branch, reduces max(1, 3/4 of that)
CASES = [
    ("inception", 8, 16, 1, inception_params(8, (4, 6, 8, 1, 2, 2)), {}),
    ("inception", 8, 32, 2, inception_params(8, (8, 12, 16, 2, 4, 4)), {}),
    ("inception", 8, 16, 2, inception_params(8, (3, 4, 5, 2, 6, 2)), {"widths": (3, 4, 5, 2, 6, 2)}),
    ("inception", 8, 16, 1, inception_params(8, (4, 6, 8, 1, 2, 2), "gn"), {"norm": "gn", "act": "relu6"}),
    ("inception_factorized", 8, 16, 1, factorized_params(8, 3, (4, 3, 4, 3, 4, 4)), {}),
    ("inception_factorized", 8, 16, 2, factorized_params(8, 5, (4, 3, 4, 3, 4, 4)), {"n": 5}),
    ("inception_factorized", 8, 12, 2, factorized_params(8, 7, (2, 3, 4, 2, 3, 3)),
     {"n": 7, "widths": [2, 3, 4, 2, 3, 3]}),
    ("xception", 8, 8, 1, xception_params(8, 8, 1), {}),
    ("xception", 8, 16, 1, xception_params(8, 16, 1), {}),
    ("xception", 8, 16, 2, xception_params(8, 16, 2), {}),
    ("xception", 8, 8, 2, xception_params(8, 8, 2, "none"), {"norm": "none"}),
    ("dense", 8, 16, 1, dense_params(8, 16, 3, 12), {}),
    ("dense", 8, 16, 2, dense_params(8, 16, 2, 8), {"layers": 2, "growth": 8}),
    ("dense", 8, 8, 2, dense_params(8, 8, 4, 4, "none"), {"layers": 4, "growth": 4, "norm": "none"}),
]


@pytest.mark.parametrize("name,c_in,c_out,stride,params,hp", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-s{c[3]}-{c[5]}" for c in CASES])
def test_block_contract(name, c_in, c_out, stride, params, hp):
    check_op(name, c_in, c_out, stride, params, **hp)


def test_default_inception_is_googlenet_3a():
    """inception(192, 256) has GoogLeNet 3a's widths: 64 | 96 -> 128 | 16 -> 32 | pool -> 32."""
    m = build_op("inception", 192, 256)
    widths = (m.branch1[0].out_channels, m.branch2[0][0].out_channels, m.branch2[1][0].out_channels,
              m.branch3[0][0].out_channels, m.branch3[1][0].out_channels, m.branch4[1][0].out_channels)
    assert widths == (64, 96, 128, 16, 32, 32)
    assert m.branch3[1][0].kernel_size == (5, 5)
    # torchvision's GoogLeNet uses a 3x3 where the paper has the 5x5 (a known bug): 16 * 32 * (25 - 9) apart
    ref = GoogLeNetInception(192, 64, 96, 128, 16, 32, 32)
    assert n_params(m) == n_params(ref) + 16 * 32 * (25 - 9)


def test_inception_factorized_is_torchvision_inception_c():
    ours = build_op("inception_factorized", 64, 768, n=7, widths=(192, 32, 192, 32, 192, 192))
    for m in ours.modules():  # Inception-v3's BN eps; it changes neither parameters nor MACs
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 0.001
    assert_same_block(ours, tv_inception.InceptionC(64, channels_7x7=32), 64, size=5)


@pytest.mark.parametrize("ci,co,layers,growth,stride", [(16, 24, 2, 8, 2), (24, 12, 3, 12, 1)])
def test_dense_is_torchvision_dense_block_and_transition(ci, co, layers, growth, stride):
    block = densenet._DenseBlock(layers, ci, bn_size=4, growth_rate=growth, drop_rate=0.0)
    transition = densenet._Transition(ci + layers * growth, co)
    if stride == 1:
        del transition.pool
    ref = nn.Sequential(block, transition)
    ours = build_op("dense", ci, co, stride, layers=layers, growth=growth)
    assert_same_block(ours, ref, ci, size=8)


def test_dense_odd_size_pools_with_ceil():
    m = build_op("dense", 4, 4, 2, layers=2, growth=4).eval()
    assert m(torch.randn(1, 4, 5, 5)).shape == (1, 4, 3, 3)


def test_xception_shortcut_is_identity_when_shapes_allow():
    m = build_op("xception", 8, 8, 1).eval()
    nn.init.zeros_(m.sep3[3].weight)
    nn.init.zeros_(m.sep3[3].bias)
    x = torch.randn(1, 8, 5, 5)
    assert torch.equal(m(x), x)


def test_params_non_decreasing_in_channels():
    for stride in (1, 2):
        for name, hp in (("inception", {}), ("inception_factorized", {}), ("xception", {}), ("dense", {})):
            check_monotone(build_op(name, 16, 16, stride, **hp), build_op(name, 16, 32, stride, **hp))
            check_monotone(build_op(name, 16, 32, stride, **hp), build_op(name, 32, 48, stride, **hp))


@pytest.mark.parametrize("layer", [
    Layer("dense", 64, 2, {"layers": 4, "growth": 32}),
    Layer("inception_factorized", 64, 1, {"n": 7, "widths": (16, 8, 16, 8, 16, 16)}),
    Layer("inception", 64, 2, {"widths": (16, 24, 32, 4, 8, 8)}),
])
def test_compact_strings_round_trip(layer):
    assert_round_trips(layer)


@pytest.mark.parametrize("name,c_in,c_out,hp,message", [
    ("inception", 8, 12, {}, "op 'inception': c_out=12 cannot be split into the default branch widths; "
                             "valid: c_out divisible by 8"),
    ("inception", 8, 16, {"widths": (4, 6, 8, 1, 2, 3)},
     "op 'inception': widths=(4, 6, 8, 1, 2, 3) gives branch outputs summing to 17, not c_out=16"),
    ("inception", 8, 16, {"widths": (8, 8)}, "op 'inception': widths=(8, 8) is invalid; valid: 6 positive ints"),
    ("inception_factorized", 8, 10, {}, "valid: c_out divisible by 4"),
    ("inception_factorized", 8, 16, {"n": 4}, "op 'inception_factorized': n=4 has no symmetric padding"),
    ("dense", 8, 16, {"layers": 0}, "op 'dense': layers=0 is invalid"),
    ("dense", 8, 16, {"growth": 0}, "op 'dense': growth=0 is invalid"),
])
def test_bad_arguments(name, c_in, c_out, hp, message):
    error = build_error(name, c_in, c_out, 1, **hp)
    assert message in error
    assert "valid:" in error
