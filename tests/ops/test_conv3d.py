"""conv3d: a 3-D conv sliding along the channel axis too, then a 1x1 projection to c_out."""
import pytest
import torch
import torch.nn.functional as F

from ops import build_op
from op_checks import OpContract, assert_elastic_kernel_monotone, build_error

# (op, c_in, c_out, hparams, closed-form parameter count): Conv3d(1 -> m, k_c x k x k) + BN3d(m)
# + 1x1 conv (m*c_in -> c_out) + BN(c_out); without norm each conv has a bias instead
CASES = [
    ("conv3d", 8, 16, {}, lambda ci, co: 2 * 3 * 3 * 3 + 2 * 2 + 2 * ci * co + 2 * co),
    ("conv3d", 8, 16, {"kernel": 5, "depth_kernel": 5, "filters": 4},
     lambda ci, co: 4 * 5 * 5 * 5 + 2 * 4 + 4 * ci * co + 2 * co),
    ("conv3d", 6, 4, {"kernel": 1, "norm": "none", "act": "silu"}, lambda ci, co: 2 * 3 + 2 + 2 * ci * co + co),
    ("conv3d", 8, 8, {"filters": 4, "norm": "gn"}, lambda ci, co: 4 * 27 + 2 * 4 + 4 * ci * co + 2 * co),
]


class TestConv3dContract(OpContract):
    cases = CASES
    convert_module = False  # Module.to(memory_format=channels_last) rejects the 5-D Conv3d weight


@pytest.mark.parametrize("stride,kc,k,m", [(1, 3, 3, 2), (2, 5, 3, 2), (1, 3, 5, 4)])
def test_channel_sliding_equals_a_banded_2d_conv(stride, kc, k, m):
    # the 3-D conv's output channel f*C + c is a 2-D conv of input channels c - kc//2 .. c + kc//2 with the
    # k x k slices of filter f: the same weights at every channel position, zero beyond the channel ends
    torch.manual_seed(0)
    c = 6
    op = build_op("conv3d", c, 4, stride, kernel=k, depth_kernel=kc, filters=m, norm="none", act="none")
    w3 = op.conv.weight.detach()  # m x 1 x kc x k x k
    w2 = torch.zeros(m * c, c, k, k)
    for f in range(m):
        for out_c in range(c):
            for j in range(kc):
                in_c = out_c + j - kc // 2
                if 0 <= in_c < c:
                    w2[f * c + out_c, in_c] = w3[f, 0, j]
    x = torch.randn(2, c, 11, 11)
    with torch.no_grad():
        y = op.conv(x.unsqueeze(1))
        assert y.shape == (2, m, c, -(-11 // stride), -(-11 // stride))  # C' = C
        expected = F.conv2d(x, w2, op.conv.bias.repeat_interleave(c), stride, k // 2)
        torch.testing.assert_close(y.reshape(2, m * c, *y.shape[-2:]), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(op(x), op.project(expected), rtol=1e-4, atol=1e-5)


def test_elastic_kernel_shares_parameter_names_with_monotone_shapes():
    assert_elastic_kernel_monotone("conv3d")


@pytest.mark.parametrize("hp,words", [
    ({"kernel": 4}, ["'conv3d'", "kernel=4"]),
    ({"depth_kernel": 2}, ["'conv3d'", "depth_kernel=2"]),
    ({"filters": 0}, ["'conv3d'", "filters=0"]),
    ({"norm": "batch"}, ["'conv3d'", "norm='batch'"]),
])
def test_bad_arguments_name_op_and_argument(hp, words):
    message = build_error("conv3d", 8, 16, **hp)
    for w in words:
        assert w in message
