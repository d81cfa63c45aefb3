"""Attention plug-ins: squeeze-and-excitation, CBAM and the non-local block (family "plugin").

All three keep the shape (c_in == c_out, stride 1) and are inserted after a block.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .layers import SqueezeExcite, check_int, check_kernel, check_same_channels, check_stride_one
from .registry import HParam, op_error, register_op


def reduced(c, ratio):
    """Hidden width of a bottleneck MLP: max(1, int(c * ratio)); non-decreasing in c and in ratio."""
    return max(1, int(c * ratio))


def check_ratio(op, ratio):
    """Raise unless 0 < ratio <= 1."""
    if not 0 < ratio <= 1:
        raise op_error(op, f"ratio={ratio}", "is out of range", "0 < ratio <= 1, e.g. 0.25 or 0.125")


@register_op("se", family="plugin", hparams=(
    HParam("ratio", 0.25, (0.25, 0.125), short="r", doc="squeeze width = max(1, int(c * ratio))"),
))
class SE(SqueezeExcite):
    """Squeeze-and-excitation (SENet): global average pool -> FC reduce -> ReLU -> FC -> sigmoid gate.

    The squeeze width is max(1, int(c * ratio)), not rounded with make_divisible, so that it is
    non-decreasing in c and the supernet can slice one max-size weight.
    """

    def __init__(self, c_in, c_out, stride=1, ratio=0.25):
        check_same_channels("se", c_in, c_out)
        check_stride_one("se", stride)
        check_ratio("se", ratio)
        super().__init__(c_in, reduced(c_in, ratio), act="relu", gate="sigmoid")

    def scale(self, x):
        """The per-channel gate in (0, 1), N x C x 1 x 1."""
        return self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))

    def forward(self, x):
        return x * self.scale(x)


@register_op("cbam", family="plugin", hparams=(
    HParam("ratio", 0.0625, (0.0625, 0.125, 0.25), short="r", doc="shared-MLP width = max(1, int(c * ratio))"),
    HParam("spatial_kernel", 7, (3, 7), short="sk", doc="kernel of the spatial-attention conv"),
))
class CBAM(nn.Module):
    """CBAM: channel attention (avg- and max-pooled descriptors through a shared MLP) then spatial attention.

    Channel: sigmoid(MLP(avgpool x) + MLP(maxpool x)), MLP = 1x1 (bias) -> ReLU -> 1x1 (bias).
    Spatial: sigmoid(conv_k([mean_c x, max_c x])), one k x k conv 2 -> 1 with bias and no norm
    (the paper's formulation; a BatchNorm over one channel would fail on 1x1 maps at batch 1).
    Default ratio 1/16 is the paper's r = 16.
    """

    def __init__(self, c_in, c_out, stride=1, ratio=0.0625, spatial_kernel=7):
        super().__init__()
        check_same_channels("cbam", c_in, c_out)
        check_stride_one("cbam", stride)
        check_ratio("cbam", ratio)
        check_kernel("cbam", spatial_kernel, "spatial_kernel")
        hidden = reduced(c_in, ratio)
        self.mlp = nn.Sequential(nn.Conv2d(c_in, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, c_in, 1))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def channel_scale(self, x):
        """Channel gate in (0, 1), N x C x 1 x 1."""
        return torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))

    def spatial_scale(self, x):
        """Spatial gate in (0, 1), N x 1 x H x W."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.spatial(pooled))

    def forward(self, x):
        x = x * self.channel_scale(x)
        return x * self.spatial_scale(x)


@register_op("non_local", family="plugin", hparams=(
    HParam("reduction", 2, (2, 4), short="r", doc="embedding width = max(1, c // reduction)"),
))
class NonLocal(nn.Module):
    """Non-local block, embedded Gaussian: z = x + BN(W(softmax(theta(x)^T phi(x)) g(x))).

    theta, phi, g are 1x1 convs (with bias) to c // reduction channels; W is a 1x1 conv back to c
    followed by BatchNorm whose weight starts at zero, so the block starts as the identity (the
    paper's initialisation). Attention is over all H*W positions: memory grows as (H*W)^2.
    """

    def __init__(self, c_in, c_out, stride=1, reduction=2):
        super().__init__()
        check_same_channels("non_local", c_in, c_out)
        check_stride_one("non_local", stride)
        check_int("non_local", "reduction", reduction)
        inter = max(1, c_in // reduction)
        self.theta = nn.Conv2d(c_in, inter, 1)
        self.phi = nn.Conv2d(c_in, inter, 1)
        self.g = nn.Conv2d(c_in, inter, 1)
        self.w = nn.Conv2d(inter, c_in, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_in)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x):
        n, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # N x HW x C'
        phi = self.phi(x).flatten(2)  # N x C' x HW
        g = self.g(x).flatten(2).transpose(1, 2)  # N x HW x C'
        attn = torch.softmax(theta @ phi, dim=-1)  # N x HW x HW
        y = (attn @ g).transpose(1, 2).reshape(n, -1, h, w)
        return x + self.bn(self.w(y))
