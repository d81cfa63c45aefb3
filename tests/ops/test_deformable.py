"""deform_conv (DCN v1) and its modulated form (DCN v2)."""
import pytest
import torch
import torch.nn.functional as F

from ops import build_op, op_spec
from op_checks import OpContract, assert_elastic_kernel_monotone, build_error


def dcn_params(ci, co, k, og=1, modulated=False, norm=True):
    """Weight k^2*ci*co, BN 2*co (or a bias co), offset conv ci -> 2*og*k^2 (k x k, bias), mask conv ci -> og*k^2."""
    n = k * k * ci * co + (2 * co if norm else co) + ci * 2 * og * k * k * k * k + 2 * og * k * k
    return n + (ci * og * k * k * k * k + og * k * k if modulated else 0)


CASES = [
    ("deform_conv", 8, 16, {}, lambda ci, co: dcn_params(ci, co, 3)),
    ("deform_conv", 8, 16, {"modulated": True, "offset_groups": 2}, lambda ci, co: dcn_params(ci, co, 3, 2, True)),
    ("deform_conv", 8, 8, {"kernel": 5, "norm": "none", "act": "silu"},
     lambda ci, co: dcn_params(ci, co, 5, norm=False)),
    ("deform_conv", 8, 16, {"kernel": 1, "offset_groups": 4, "modulated": True},
     lambda ci, co: dcn_params(ci, co, 1, 4, True)),
]


class TestDeformableContract(OpContract):
    """The offset (and mask) convs start at zero, yet their gradients are not zero: the bilinear sampler's
    derivative with respect to a sampling position is the difference of neighbouring pixels."""

    cases = CASES

    def perturb(self, m):
        with torch.no_grad():  # move the offsets and the mask away from their zero initialisation
            for p in m.offset.parameters():
                p.normal_(0, 0.1)


@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("stride,k,og", [(1, 3, 1), (2, 3, 2), (1, 5, 1), (2, 1, 4)])
def test_zero_offsets_equal_an_ordinary_conv(modulated, stride, k, og):
    # at initialisation the offsets are 0 and the DCNv2 mask is sigmoid(0) = 0.5 at every sampling point
    torch.manual_seed(0)
    op = build_op("deform_conv", 8, 6, stride, kernel=k, modulated=modulated, offset_groups=og, norm="none",
                  act="none")
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        if modulated:
            assert torch.equal(torch.sigmoid(op.mask(x)), torch.full_like(op.mask(x), 0.5))
        scale = 0.5 if modulated else 1.0
        expected = scale * F.conv2d(x, op.weight, None, stride, k // 2) + op.bias[:, None, None]
        torch.testing.assert_close(op(x), expected, rtol=1e-4, atol=1e-5)


def test_integer_offset_samples_the_shifted_input():
    # every tap displaced by dx = +1 (channel 2i+1 of the offsets holds tap i's x offset, 2i its y offset)
    # reads the input one column to the right: a plain conv over the zero-padded input shifted left by one
    torch.manual_seed(0)
    k, p = 3, 1
    op = build_op("deform_conv", 4, 5, kernel=k, norm="none", act="none")
    with torch.no_grad():
        op.offset.bias[1::2] = 1.0
        x = torch.randn(1, 4, 8, 8)
        shifted = F.pad(x, (p, p + 1, p, p))[..., 1:]
        torch.testing.assert_close(op(x), F.conv2d(shifted, op.weight, op.bias), rtol=1e-4, atol=1e-5)


def test_offset_and_mask_convs_follow_the_kernel():
    for k in op_spec("deform_conv").hparam("kernel").choices:
        op = build_op("deform_conv", 8, 16, 2, kernel=k, modulated=True, offset_groups=2)
        assert op.offset.out_channels == 2 * 2 * k * k and op.mask.out_channels == 2 * k * k
        assert op.offset.stride == (2, 2) and op.offset.kernel_size == (k, k)


def test_elastic_kernel_shares_parameter_names_with_monotone_shapes():
    for hp in ({}, {"modulated": True}):
        assert_elastic_kernel_monotone("deform_conv", **hp)


@pytest.mark.parametrize("hp,words", [
    ({"offset_groups": 3}, ["'deform_conv'", "offset_groups=3", "c_in=8", "1, 2, 4, 8"]),
    ({"kernel": 2}, ["'deform_conv'", "kernel=2"]),
    ({"modulated": "yes"}, ["'deform_conv'", "modulated='yes'"]),
])
def test_bad_arguments_name_op_and_argument(hp, words):
    message = build_error("deform_conv", 8, 16, **hp)
    for w in words:
        assert w in message
