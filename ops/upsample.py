"""Learned upsampling for dense prediction: transposed conv, bilinear resize + conv, pixel shuffle.

Each op maps N x c_in x H x W to N x c_out x (H*upsample) x (W*upsample); `stride` must be 1.
"""
import torch.nn.functional as F
from torch import nn

from .layers import KERNEL, ConvNormAct, check_common, check_int, kernel_hparam, make_act, make_norm
from .registry import ACT, NORM, HParam, op_error, register_op

UPSAMPLE = HParam("upsample", 2, (2, 4), short="u", doc="integer scale factor of H and W")


def check_upsample(op, stride, upsample, kernel=None, norm="bn", act="relu"):
    """The checks every upsampling op shares: `check_common`'s, then stride == 1 and an integer `upsample` >= 2."""
    check_common(op, 1, kernel, norm, act)
    if stride != 1:
        raise op_error(op, f"stride={stride}", "is not supported (an upsampling op scales by `upsample`)",
                       "stride=1")
    return check_int(op, "upsample", upsample, minimum=2)


def transposed_padding(kernel, upsample):
    """Padding p and output_padding q with (H-1)*s - 2p + k + q = H*s for s = upsample (0 <= q < s).

    p = max(0, ceil((k - s)/2)) and q = s - k + 2p: q is 0 or 1 when k >= s, and s - k when k < s.
    """
    p = max(0, -(-(kernel - upsample) // 2))
    return p, upsample - kernel + 2 * p


@register_op("transposed", family="upsample", hparams=(
        kernel_hparam((3, 4, 5, 8), 4, doc="kernel k; k = 2*upsample (4 for x2, 8 for x4) is the FCN choice, "
                      "k < upsample leaves output pixels no input reaches"),
        UPSAMPLE, NORM, ACT))
class Transposed(nn.Module):
    """Transposed ("fractionally strided") k x k convolution with stride = upsample, then norm + act.

    Output size (in-1)*s - 2p + k + output_padding; p and output_padding are chosen by
    `transposed_padding` so that it is exactly in*s.
    """

    def __init__(self, c_in, c_out, stride=1, kernel=4, upsample=2, norm="bn", act="relu"):
        check_upsample("transposed", stride, upsample, norm=norm, act=act)
        check_int("transposed", "kernel", kernel)
        super().__init__()
        self.padding, self.output_padding = transposed_padding(kernel, upsample)
        self.conv = nn.ConvTranspose2d(c_in, c_out, kernel, upsample, self.padding, self.output_padding,
                                       bias=norm == "none")
        self.norm = make_norm(norm, c_out)
        self.act = make_act(act)
        self.c_in, self.c_out, self.stride, self.kernel, self.upsample = c_in, c_out, stride, kernel, upsample

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


@register_op("bilinear_conv", family="upsample", hparams=(KERNEL, UPSAMPLE, NORM, ACT))
class BilinearConv(nn.Module):
    """Bilinear resize by `upsample` (align_corners=False), then a k x k Conv -> Norm -> Act."""

    def __init__(self, c_in, c_out, stride=1, kernel=3, upsample=2, norm="bn", act="relu"):
        check_upsample("bilinear_conv", stride, upsample, kernel, norm, act)
        super().__init__()
        self.conv = ConvNormAct(c_in, c_out, kernel, norm=norm, act=act, op="bilinear_conv")
        self.c_in, self.c_out, self.stride, self.kernel, self.upsample = c_in, c_out, stride, kernel, upsample

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False))


@register_op("pixel_shuffle", family="upsample", hparams=(KERNEL, UPSAMPLE, NORM, ACT))
class PixelShuffle(nn.Module):
    """Sub-pixel convolution (ESPCN): k x k conv to c_out*r^2 channels, PixelShuffle(r), then norm + act."""

    def __init__(self, c_in, c_out, stride=1, kernel=3, upsample=2, norm="bn", act="relu"):
        check_upsample("pixel_shuffle", stride, upsample, kernel, norm, act)
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out * upsample * upsample, kernel, 1, (kernel - 1) // 2, bias=norm == "none")
        self.shuffle = nn.PixelShuffle(upsample)
        self.norm = make_norm(norm, c_out)
        self.act = make_act(act)
        self.c_in, self.c_out, self.stride, self.kernel, self.upsample = c_in, c_out, stride, kernel, upsample

    def forward(self, x):
        return self.act(self.norm(self.shuffle(self.conv(x))))
