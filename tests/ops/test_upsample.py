"""Upsampling ops: transposed conv, bilinear resize + conv, pixel shuffle (output H*upsample)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ops import build_op, op_names, op_spec
from op_checks import OpContract, assert_elastic_kernel_monotone, build_error

# (op, c_in, c_out, hparams, closed-form parameter count as a function of c_in, c_out and the factor u)
CASES = [
    ("transposed", 8, 16, {}, lambda ci, co, u: 4 * 4 * ci * co + 2 * co),
    ("transposed", 8, 16, {"kernel": 3, "norm": "none"}, lambda ci, co, u: 3 * 3 * ci * co + co),
    ("transposed", 16, 8, {"kernel": 5, "norm": "gn", "act": "silu"}, lambda ci, co, u: 5 * 5 * ci * co + 2 * co),
    ("transposed", 8, 8, {"kernel": 8}, lambda ci, co, u: 8 * 8 * ci * co + 2 * co),
    ("bilinear_conv", 8, 16, {}, lambda ci, co, u: 3 * 3 * ci * co + 2 * co),
    ("bilinear_conv", 8, 16, {"kernel": 1, "norm": "none"}, lambda ci, co, u: ci * co + co),
    # the conv makes c_out*u^2 channels; the norm after the shuffle has c_out
    ("pixel_shuffle", 8, 16, {}, lambda ci, co, u: 3 * 3 * ci * co * u * u + 2 * co),
    ("pixel_shuffle", 8, 4, {"kernel": 5, "norm": "none", "act": "none"},
     lambda ci, co, u: 25 * ci * co * u * u + co * u * u),
]


class TestUpsampleContract(OpContract):
    cases = CASES
    scales = (2, 4)  # the upsample factor
    size = 7  # the input's H and W

    def build(self, case, up):
        name, ci, co, hp, _ = case
        return build_op(name, ci, co, upsample=up, **hp)

    def out_shape(self, case, up):
        return 2, case[2], self.size * up, self.size * up

    def count(self, case, up):
        return case[4](case[1], case[2], up)


def test_family():
    assert {"transposed", "bilinear_conv", "pixel_shuffle"} <= set(op_names("upsample"))


@pytest.mark.parametrize("size,s,p,k", [(7, 2, 0, 3), (7, 2, 1, 4), (5, 3, 1, 3), (10, 4, 2, 8), (6, 1, 1, 3),
                                        (4, 2, 0, 2), (9, 3, 2, 5)])
def test_transposed_output_size_formula(size, s, p, k):
    # (in - 1)*s - 2p + k, plus output_padding when it is given
    for q in range(s):
        conv = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=q)
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == (size - 1) * s - 2 * p + k + q


@pytest.mark.parametrize("up", [2, 3, 4])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 8])
def test_transposed_op_padding_gives_exactly_in_times_upsample(k, up):
    op = build_op("transposed", 2, 3, kernel=k, upsample=up)
    p, q = op.conv.padding[0], op.conv.output_padding[0]
    assert 0 <= q < up and p >= 0
    for size in (1, 4, 7):
        assert (size - 1) * up - 2 * p + k + q == size * up
        assert op(torch.randn(2, 2, size, size)).shape == (2, 3, size * up, size * up)


@pytest.mark.parametrize("k,up,p", [(4, 2, 1), (8, 4, 2), (4, 4, 0), (2, 2, 0)])
def test_transposed_uses_the_fcn_padding(k, up, p):
    # k = 2s with p = s/2 (and k = s with p = 0) need no output_padding
    op = build_op("transposed", 2, 2, kernel=k, upsample=up)
    assert (op.conv.padding[0], op.conv.output_padding[0]) == (p, 0)


def test_transposed_with_kernel_equal_to_factor_and_unit_weights_is_nearest_upsampling():
    op = build_op("transposed", 1, 1, kernel=4, upsample=4, norm="none", act="none")
    with torch.no_grad():
        op.conv.weight.fill_(1.0)
        op.conv.bias.zero_()
        x = torch.randn(1, 1, 5, 6)
        torch.testing.assert_close(op(x), F.interpolate(x, scale_factor=4, mode="nearest"))


def test_bilinear_conv_and_pixel_shuffle_compose_as_documented():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 5)
    op = build_op("bilinear_conv", 8, 4, upsample=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(op(x), op.conv(F.interpolate(x, scale_factor=2, mode="bilinear")))
    op = build_op("pixel_shuffle", 8, 4, upsample=2, norm="none", act="none")
    with torch.no_grad():
        y = op.conv(x)  # N x 4*2*2 x 5 x 5; output pixel (2i + a, 2j + b) of channel c is conv channel 4c + 2a + b
        out = op(x)
        assert torch.equal(out[:, 1, 2 * 3 + 1, 2 * 2 + 0], y[:, 4 * 1 + 2 * 1 + 0, 3, 2])


def test_elastic_kernel_shares_parameter_names_with_monotone_shapes():
    for name in ("transposed", "bilinear_conv", "pixel_shuffle"):
        assert op_spec(name).hparam("upsample").choices == (2, 4)
        assert_elastic_kernel_monotone(name)


@pytest.mark.parametrize("name,stride,hp,words", [
    ("transposed", 2, {}, ["'transposed'", "stride=2", "1"]),
    ("bilinear_conv", 2, {}, ["'bilinear_conv'", "stride=2"]),
    ("pixel_shuffle", 1, {"upsample": 1}, ["'pixel_shuffle'", "upsample=1"]),
    ("pixel_shuffle", 1, {"kernel": 4}, ["'pixel_shuffle'", "kernel=4"]),
    ("transposed", 1, {"kernel": 0}, ["'transposed'", "kernel=0"]),
    ("bilinear_conv", 1, {"norm": "batch"}, ["'bilinear_conv'", "norm='batch'"]),
])
def test_bad_arguments_name_op_and_argument(name, stride, hp, words):
    message = build_error(name, 8, 16, stride, **hp)
    for w in words:
        assert w in message
