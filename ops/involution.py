"""Involution (Li et al., CVPR 2021): a spatial-specific, channel-agnostic kernel generated per pixel."""
import torch.nn.functional as F
from torch import nn

from .layers import KERNEL_357, ConvNormAct, check_common, check_divides, check_int, make_act, make_norm
from .registry import ACT, NORM, HParam, register_op


@register_op("involution", family="conv", hparams=(
        KERNEL_357,
        HParam("groups", 1, (1, 2, 4, 8), short="g", doc="G kernels per pixel, each shared by c_in/G channels"),
        HParam("reduction", 4, (2, 4), short="r", doc="channel reduction of the kernel generator"),
        NORM, ACT))
class Involution(nn.Module):
    """Per-pixel k x k kernels generated from the pixel's features, shared over the channels of each group.

    Kernel generation: (k_s x k_s average pool with stride s, ceil mode, when s > 1) -> 1x1 reduce to
    c_in/reduction (norm, act) -> 1x1 to k^2*G (with bias). The input is unfolded into k x k
    neighbourhoods (with stride s) and each output pixel is the sum over its neighbourhood of the
    generated weights times the input, one weight map per group of c_in/G channels. Then norm + act
    when c_out == c_in, else a 1x1 Conv -> Norm -> Act projection to c_out.
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, groups=1, reduction=4, norm="bn", act="relu"):
        check_common("involution", stride, kernel, norm, act)
        check_int("involution", "groups", groups)
        check_int("involution", "reduction", reduction)
        check_divides("involution", "groups", groups, c_in)
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.kernel, self.groups, self.reduction = kernel, groups, reduction
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.reduce = ConvNormAct(c_in, max(1, c_in // reduction), 1, norm=norm, act=act, op="involution")
        self.span = nn.Conv2d(max(1, c_in // reduction), kernel * kernel * groups, 1)
        if c_out == c_in:
            self.post = nn.Sequential(make_norm(norm, c_out), make_act(act))
        else:
            self.post = ConvNormAct(c_in, c_out, 1, norm=norm, act=act, op="involution")

    def forward(self, x):
        n, c = x.shape[:2]
        k, g = self.kernel, self.groups
        weight = self.span(self.reduce(self.pool(x)))  # N x k^2*G x H' x W'
        h, w = weight.shape[-2:]
        weight = weight.reshape(n, g, 1, k * k, h, w)
        patches = F.unfold(x, k, padding=(k - 1) // 2, stride=self.stride).reshape(n, g, c // g, k * k, h, w)
        return self.post((weight * patches).sum(dim=3).reshape(n, c, h, w))
