"""conv, pointwise, group_conv, depthwise, dilated: shapes, gradients, determinism, layouts, parameter counts."""
import pytest
import torch
from torch import nn

from ops import build_op
from op_checks import OpContract, assert_elastic_kernel_monotone, build_error

# (op, c_in, c_out, hparams, closed-form parameter count written from the op's definition);
# BN has 2 parameters (gamma, beta) per channel, a conv without norm has a bias per output channel
CASES = [
    ("conv", 8, 16, {}, lambda ci, co: 3 * 3 * ci * co + 2 * co),
    ("conv", 8, 16, {"kernel": 1}, lambda ci, co: ci * co + 2 * co),
    ("conv", 8, 16, {"kernel": 5, "dilation": 2, "norm": "none", "act": "silu"}, lambda ci, co: 25 * ci * co + co),
    ("pointwise", 8, 16, {}, lambda ci, co: ci * co + 2 * co),
    ("group_conv", 8, 16, {"groups": 4}, lambda ci, co: 3 * 3 * (ci // 4) * co + 2 * co),
    ("group_conv", 8, 8, {"kernel": 5, "groups": 2, "norm": "gn"}, lambda ci, co: 25 * (ci // 2) * co + 2 * co),
    ("depthwise", 8, 16, {}, lambda ci, co: 3 * 3 * co + 2 * co),  # multiplier 2: one k x k filter per output
    ("depthwise", 8, 8, {"kernel": 5, "dilation": 2, "act": "hswish"}, lambda ci, co: 25 * co + 2 * co),
    ("dilated", 8, 16, {}, lambda ci, co: 3 * 3 * ci * co + 2 * co),
    ("dilated", 8, 16, {"kernel": 5, "dilation": 4, "norm": "ln"}, lambda ci, co: 25 * ci * co + 2 * co),
]


class TestConvContract(OpContract):
    cases = CASES


@pytest.mark.parametrize("name", ["conv", "group_conv", "depthwise", "dilated"])
def test_elastic_kernel_shares_parameter_names_with_monotone_shapes(name):
    assert_elastic_kernel_monotone(name)


@pytest.mark.parametrize("name,c_in,c_out,hp,words", [
    ("conv", 8, 16, {"kernel": 4}, ["'conv'", "kernel=4"]),
    ("dilated", 8, 16, {"kernel": 2}, ["'dilated'", "kernel=2"]),
    ("depthwise", 8, 12, {}, ["'depthwise'", "c_out=12", "c_in=8", "16"]),
    ("depthwise", 8, 4, {}, ["'depthwise'", "c_out=4"]),
    ("group_conv", 8, 16, {"groups": 3}, ["'group_conv'", "groups=3", "valid"]),
    ("group_conv", 8, 12, {"groups": 8}, ["'group_conv'", "groups=8"]),
    ("conv", 8, 16, {"norm": "batch"}, ["'conv'", "norm='batch'", "bn"]),
    ("pointwise", 8, 16, {"act": "gelu"}, ["'pointwise'", "act='gelu'"]),
    ("conv", 8, 16, {"dilation": 0}, ["'conv'", "dilation=0"]),
])
def test_bad_arguments_name_op_and_argument(name, c_in, c_out, hp, words):
    message = build_error(name, c_in, c_out, **hp)
    for w in words:
        assert w in message


def test_bad_stride_names_op_and_argument():
    with pytest.raises(ValueError, match=r"op 'conv'.*stride=0"):
        build_op("conv", 8, 16, 0)


@pytest.mark.parametrize("size,k,d,s", [(9, 3, 2, 1), (10, 3, 3, 2), (17, 5, 2, 2), (32, 3, 4, 3), (7, 7, 2, 1)])
def test_dilated_output_size_formula(size, k, d, s):
    # floor((in + 2p - d(k-1) - 1)/s) + 1, for an arbitrary padding and for the op's 'same' padding d(k-1)/2
    for p in (0, 1, d * (k - 1) // 2):
        if size + 2 * p < d * (k - 1) + 1:
            continue  # the dilated window does not fit
        out = nn.Conv2d(1, 1, k, s, p, dilation=d)(torch.zeros(1, 1, size, size)).shape[-1]
        assert out == (size + 2 * p - d * (k - 1) - 1) // s + 1
    op = build_op("dilated", 2, 2, s, kernel=k, dilation=d)
    assert op(torch.zeros(1, 2, size, size)).shape[-1] == (size + 2 * op[0].padding[0] - d * (k - 1) - 1) // s + 1
    assert op[0].padding[0] == d * (k - 1) // 2 and op(torch.zeros(1, 2, size, size)).shape[-1] == -(-size // s)


@pytest.mark.parametrize("name,k,d", [("dilated", 3, 2), ("dilated", 3, 4), ("dilated", 5, 3), ("conv", 5, 1)])
def test_receptive_field_is_impulse_response_support(name, k, d):
    op = build_op(name, 1, 1, kernel=k, dilation=d, norm="none", act="none")
    with torch.no_grad():
        op[0].weight.fill_(1.0)
        op[0].bias.zero_()
        x = torch.zeros(1, 1, 41, 41)
        x[..., 20, 20] = 1.0
        rows, cols = op(x)[0, 0].nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == (k - 1) * d + 1 == cols.max() - cols.min() + 1
    assert len(rows) == k * k  # the taps: k x k points spaced d apart
    if name == "dilated":
        assert op.receptive_field == (k - 1) * d + 1
