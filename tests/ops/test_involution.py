"""involution (Li et al. 2021): per-pixel kernels shared over the channels of each group."""
import pytest
import torch
import torch.nn.functional as F

from ops import build_op
from op_checks import OpContract, assert_elastic_kernel_monotone, build_error


def inv_params(ci, co, k, g, r, norm=True):
    """1x1 reduce ci -> ci/r (+ BN, or a bias), 1x1 span ci/r -> k^2*G with bias, then BN(ci) or a 1x1 ConvNormAct."""
    red = ci // r
    n = ci * red + (2 * red if norm else red) + red * k * k * g + k * k * g
    if co == ci:
        return n + (2 * ci if norm else 0)
    return n + ci * co + (2 * co if norm else co)


CASES = [
    ("involution", 8, 8, {}, lambda ci, co: inv_params(ci, co, 3, 1, 4)),
    ("involution", 8, 16, {"kernel": 5, "groups": 2}, lambda ci, co: inv_params(ci, co, 5, 2, 4)),
    ("involution", 16, 16, {"kernel": 7, "groups": 4, "reduction": 2, "norm": "gn"},
     lambda ci, co: inv_params(ci, co, 7, 4, 2)),
    ("involution", 8, 4, {"groups": 8, "norm": "none", "act": "silu"},
     lambda ci, co: inv_params(ci, co, 3, 8, 4, norm=False)),
]


class TestInvolutionContract(OpContract):
    cases = CASES


@pytest.mark.parametrize("stride,k,g", [(1, 3, 1), (1, 5, 2), (2, 3, 4), (2, 7, 2), (3, 3, 2)])
def test_matches_a_direct_per_pixel_sum(stride, k, g):
    # out[c, y, x] = sum_{a,b} kernel[group(c)*k^2 + a*k + b, y, x] * x_pad[c, s*y + a, s*x + b], where the
    # kernel comes from the (s x s average-pooled) input at that output pixel
    torch.manual_seed(0)
    c, size = 8, 11
    op = build_op("involution", c, c, stride, kernel=k, groups=g).eval()
    captured = {}
    op.post.register_forward_hook(lambda mod, inp, out: captured.update(y=inp[0]))
    x = torch.randn(2, c, size, size)
    with torch.no_grad():
        op(x)
        pooled = F.avg_pool2d(x, stride, stride, ceil_mode=True) if stride > 1 else x
        kernel = op.span(op.reduce(pooled))
        h = w = -(-size // stride)
        assert kernel.shape == (2, k * k * g, h, w)
        xp = F.pad(x, [k // 2] * 4)
        expected = torch.zeros(2, c, h, w)
        for a in range(k):
            for b in range(k):
                window = xp[:, :, a:a + stride * (h - 1) + 1:stride, b:b + stride * (w - 1) + 1:stride]
                tap = kernel[:, a * k + b::k * k]  # N x G x h x w: tap (a, b) of each group's kernel
                expected += window * tap.repeat_interleave(c // g, dim=1)
    torch.testing.assert_close(captured["y"], expected, rtol=1e-4, atol=1e-5)


def test_translation_equivariant_away_from_borders():
    # the kernel is generated from the features at each pixel, so it moves with them: shifting the input
    # shifts the output wherever the k x k neighbourhoods stay clear of the border and the wrap-around
    torch.manual_seed(0)
    op = build_op("involution", 4, 4, kernel=3, groups=2, norm="none", act="none").eval()
    x = torch.randn(1, 4, 12, 12)
    with torch.no_grad():
        shifted = torch.roll(x, 2, dims=-1)
        torch.testing.assert_close(op(shifted)[..., 4:-2], op(x)[..., 2:-4], rtol=1e-4, atol=1e-5)


def test_elastic_kernel_shares_parameter_names_with_monotone_shapes():
    assert_elastic_kernel_monotone("involution")


@pytest.mark.parametrize("hp,words", [
    ({"groups": 3}, ["'involution'", "groups=3", "c_in=8", "1, 2, 4, 8"]),
    ({"kernel": 4}, ["'involution'", "kernel=4"]),
    ({"reduction": 0}, ["'involution'", "reduction=0"]),
])
def test_bad_arguments_name_op_and_argument(hp, words):
    message = build_error("involution", 8, 16, **hp)
    for w in words:
        assert w in message
