"""dw_separable, xception_separable, spatial_separable, flattened; MobileNet's multiply-add counts."""
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ops import build_op
from op_checks import OpContract, assert_elastic_kernel_monotone, build_error

# (op, c_in, c_out, hparams, closed-form parameter count); BN: 2 per channel, no norm: a bias per channel
CASES = [
    ("dw_separable", 8, 16, {}, lambda ci, co: 9 * ci + 2 * ci + ci * co + 2 * co),
    ("dw_separable", 8, 16, {"kernel": 5, "dw_act": "none", "norm": "none"},
     lambda ci, co: 25 * ci + ci + ci * co + co),
    ("xception_separable", 8, 16, {}, lambda ci, co: ci * co + 2 * co + 9 * co + 2 * co),
    ("xception_separable", 16, 8, {"kernel": 7, "act": "relu6"}, lambda ci, co: ci * co + 2 * co + 49 * co + 2 * co),
    ("spatial_separable", 8, 16, {}, lambda ci, co: 3 * ci * co + 2 * co + 3 * co * co + 2 * co),
    ("spatial_separable", 8, 16, {"kernel": 7, "norm": "gn"},
     lambda ci, co: 7 * ci * co + 2 * co + 7 * co * co + 2 * co),
    ("flattened", 8, 16, {}, lambda ci, co: ci * co + 2 * co + 3 * co + 2 * co + 3 * co + 2 * co),
    ("flattened", 8, 16, {"kernel": 5, "norm": "none"}, lambda ci, co: ci * co + co + 5 * co + co + 5 * co + co),
]


class TestSeparableContract(OpContract):
    cases = CASES


@pytest.mark.parametrize("name", ["dw_separable", "xception_separable", "spatial_separable", "flattened"])
def test_elastic_kernel_shares_parameter_names_with_monotone_shapes(name):
    assert_elastic_kernel_monotone(name)


def macs(module, x):
    """Multiply-adds of the convolutions (and matmuls) in one forward: FlopCounterMode counts 2 per MAC."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module.eval()(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("m_ch,n_ch,dk,stride", [(16, 32, 3, 1), (8, 24, 5, 1), (16, 64, 3, 2)])
def test_mobilenet_multiply_add_counts(m_ch, n_ch, dk, stride):
    # Howard et al. 2017, eq. 2, 4, 5 with D_F the output map size: standard D_K^2*M*N*D_F^2,
    # depthwise separable D_K^2*M*D_F^2 + M*N*D_F^2, their ratio 1/N + 1/D_K^2
    size = 12
    x = torch.randn(1, m_ch, size, size)
    d_f = -(-size // stride)
    standard = macs(build_op("conv", m_ch, n_ch, stride, kernel=dk), x)
    depthwise = macs(build_op("depthwise", m_ch, m_ch, stride, kernel=dk), x)
    separable = macs(build_op("dw_separable", m_ch, n_ch, stride, kernel=dk), x)
    assert standard == dk * dk * m_ch * n_ch * d_f * d_f
    assert depthwise == dk * dk * m_ch * d_f * d_f
    assert separable == dk * dk * m_ch * d_f * d_f + m_ch * n_ch * d_f * d_f
    assert Fraction(separable, standard) == Fraction(1, n_ch) + Fraction(1, dk * dk)
    # Xception's order computes the same two convs, the depthwise one over N channels
    assert macs(build_op("xception_separable", m_ch, n_ch, stride, kernel=dk), x) == \
        m_ch * n_ch * size * size + dk * dk * n_ch * d_f * d_f


def test_dw_act_choices():
    sep = build_op("dw_separable", 8, 16, act="hswish")  # dw_act 'same' follows act
    assert isinstance(sep.dw[2], nn.Hardswish) and isinstance(sep.pw[2], nn.Hardswish)
    sep = build_op("dw_separable", 8, 16, dw_act="none")
    assert len(sep.dw) == 2 and isinstance(sep.pw[2], nn.ReLU)
    sep = build_op("dw_separable", 8, 16, dw_act="relu6", act="silu")
    assert isinstance(sep.dw[2], nn.ReLU6) and isinstance(sep.pw[2], nn.SiLU)


@pytest.mark.parametrize("name", ["spatial_separable", "flattened"])
def test_stride_is_split_between_vertical_and_horizontal(name):
    op = build_op(name, 8, 16, 2)
    assert op.vertical[0].stride == (2, 1) and op.horizontal[0].stride == (1, 2)
    assert op.vertical[0].kernel_size == (3, 1) and op.horizontal[0].kernel_size == (1, 3)
    x = torch.randn(1, 8, 9, 11)
    mid = op.vertical(op.lateral(x) if name == "flattened" else x)
    assert mid.shape[-2:] == (5, 11) and op.horizontal(mid).shape[-2:] == (5, 6)


def test_flattened_is_a_rank_one_factorisation_of_a_full_conv():
    # without norm, act and biases the three 1-D filters L (c_out x c_in), V (k), H (k) per output channel
    # compute a k x k conv whose filter for output o is W[o, i, y, x] = L[o, i] * V[o, y] * H[o, x]
    torch.manual_seed(0)
    k = 5
    op = build_op("flattened", 6, 4, kernel=k, norm="none", act="none")
    with torch.no_grad():
        for part in (op.lateral, op.vertical, op.horizontal):
            part[0].bias.zero_()
        lat = op.lateral[0].weight[:, :, 0, 0]  # c_out x c_in
        ver, hor = op.vertical[0].weight[:, 0, :, 0], op.horizontal[0].weight[:, 0, 0, :]  # c_out x k each
        w = lat[:, :, None, None] * ver[:, None, :, None] * hor[:, None, None, :]
        x = torch.randn(2, 6, 10, 10)
        torch.testing.assert_close(op(x), F.conv2d(x, w, padding=k // 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,hp,words", [
    ("dw_separable", {"kernel": 4}, ["'dw_separable'", "kernel=4"]),
    ("dw_separable", {"dw_act": "gelu"}, ["'dw_separable'", "dw_act='gelu'", "relu6"]),
    ("xception_separable", {"kernel": 0}, ["'xception_separable'", "kernel=0"]),
    ("spatial_separable", {"kernel": 6}, ["'spatial_separable'", "kernel=6"]),
    ("flattened", {"norm": "batch"}, ["'flattened'", "norm='batch'"]),
])
def test_bad_arguments_name_op_and_argument(name, hp, words):
    message = build_error(name, 8, 16, **hp)
    for w in words:
        assert w in message
