"""A 3-D convolution that also slides along the channel axis, projected back to c_out by a 1x1 conv."""
from torch import nn

from .layers import KERNEL, ConvNormAct, check_common, check_int, check_kernel, make_act, make_norm
from .registry import ACT, NORM, HParam, register_op


@register_op("conv3d", family="conv", hparams=(
        KERNEL,
        HParam("depth_kernel", 3, (3, 5), short="kc", doc="kernel extent k_c along the channel axis"),
        HParam("filters", 2, (2, 4), short="f", doc="number m of 3-D filters; the 1x1 projection sees m*c_in"),
        NORM, ACT))
class Conv3d(nn.Module):
    """3-D convolution over (channel, H, W): input viewed N x 1 x C x H x W, m filters of k_c x k x k.

    The channel axis is padded by k_c//2 and not strided, so C' = C; H and W are strided by `stride`.
    The N x m x C x H' x W' result (after norm + act) is reshaped to N x (m*C) x H' x W', filter-major
    (channel f*C + c is filter f at input channel c), and a 1x1 Conv -> Norm -> Act projects it to c_out.
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, depth_kernel=3, filters=2, norm="bn", act="relu"):
        check_common("conv3d", stride, kernel, norm, act)
        check_kernel("conv3d", depth_kernel, "depth_kernel")
        check_int("conv3d", "filters", filters)
        super().__init__()
        p = (kernel - 1) // 2
        self.conv = nn.Conv3d(1, filters, (depth_kernel, kernel, kernel), (1, stride, stride),
                              (depth_kernel // 2, p, p), bias=norm == "none")
        self.norm = make_norm(norm, filters, dims=3)
        self.act = make_act(act)
        self.project = ConvNormAct(filters * c_in, c_out, 1, norm=norm, act=act, op="conv3d")
        self.c_in, self.c_out, self.stride = c_in, c_out, stride
        self.kernel, self.depth_kernel, self.filters = kernel, depth_kernel, filters

    def forward(self, x):
        n, c = x.shape[:2]
        y = self.act(self.norm(self.conv(x.unsqueeze(1))))  # N x m x C x H' x W'
        return self.project(y.reshape(n, self.filters * c, y.shape[-2], y.shape[-1]))
