"""Spatial plug-ins (STN, BlurPool, global depthwise conv, channel shuffle) and the stem pools."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import channel_shuffle, check_groups, check_int, check_kernel, check_same_channels, check_stride_one
from .registry import HParam, register_op


@register_op("stn", family="plugin")
class STN(nn.Module):
    """Spatial transformer: a localisation net regresses an affine theta; grid generator + bilinear sampler.

    Localisation: 3x3 conv c->8 + ReLU, 2x2 max-pool, 3x3 conv 8->8 + ReLU, adaptive average pool to
    4x4, FC 128->32 + ReLU, FC 32->6. The last FC starts with zero weight and the identity bias, so
    at initialisation the output equals the input (up to grid rounding, < 1e-5). Sampling is
    `affine_grid` + `grid_sample` (bilinear, zero padding, align_corners=False). Belongs in front
    of the stem. Shape-preserving: c_out == c_in, stride 1.
    """

    loc_channels, loc_pool, fc_hidden = 8, 4, 32

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        check_same_channels("stn", c_in, c_out)
        check_stride_one("stn", stride)
        m, p = self.loc_channels, self.loc_pool
        self.localization = nn.Sequential(
            nn.Conv2d(c_in, m, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(m, m, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(p), nn.Flatten(1),
            nn.Linear(m * p * p, self.fc_hidden), nn.ReLU(inplace=True),
        )
        self.theta = nn.Linear(self.fc_hidden, 6)
        nn.init.zeros_(self.theta.weight)
        with torch.no_grad():
            self.theta.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def affine(self, x):
        """The regressed affine matrices, N x 2 x 3."""
        return self.theta(self.localization(x)).view(-1, 2, 3)

    def forward(self, x):
        grid = F.affine_grid(self.affine(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def binomial_filter(size):
    """The normalised 2-D binomial low-pass filter: outer product of row `size - 1` of Pascal's triangle."""
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float32)
    filt = torch.outer(row, row)
    return filt / filt.sum()


@register_op("blurpool", family="plugin", hparams=(
    HParam("filter_size", 3, (3, 5), short="f", doc="binomial filter size ([1,2,1] or [1,4,6,4,1])"),
    HParam("max", False, (False, True), doc="MaxBlurPool: 2x2 max-pool at stride 1 before the blur"),
))
class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang 2019): binomial low-pass filter, then subsample by `stride`.

    A depthwise conv with a fixed filter (a buffer shaped c x 1 x f x f) over a reflect-padded input
    (replicate padding where the map is too small to reflect), output ceil(H / stride) for every H.
    `max=True` is MaxBlurPool: a 2x2 max-pool at stride 1 (input padded by one row/column on the
    bottom/right by replication so the size is kept) -> blur -> subsample. c_out == c_in.
    """

    def __init__(self, c_in, c_out, stride=1, filter_size=3, max=False):
        super().__init__()
        check_same_channels("blurpool", c_in, c_out)
        check_int("blurpool", "stride", stride)
        check_kernel("blurpool", filter_size, "filter_size")
        self.channels, self.stride, self.filter_size, self.max = c_in, stride, filter_size, bool(max)
        self.pad = (filter_size - 1) // 2
        self.register_buffer("filt", binomial_filter(filter_size).expand(c_in, 1, -1, -1).contiguous())

    def forward(self, x):
        if self.max:
            x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, stride=1)
        if self.pad:
            mode = "reflect" if min(x.shape[-2:]) > self.pad else "replicate"
            x = F.pad(x, (self.pad,) * 4, mode=mode)
        return F.conv2d(x, self.filt.to(x.dtype), stride=self.stride, groups=self.channels)


@register_op("gdc", family="plugin", hparams=(
    HParam("size", 7, (7, 4, 2), short="sz", doc="the spatial size of the input map (the kernel size)"),
))
class GDC(nn.Module):
    """Global depthwise conv (MobileFaceNet): a depthwise conv whose kernel equals the map, + BN, no act.

    A learned, per-channel weighted pooling that maps c x size x size to c x 1 x 1: it does not keep
    the spatial shape and belongs last, just before the classifier. c_out == c_in, stride 1; the
    input must be exactly size x size (checked in forward with a clear message). Its BatchNorm
    sees one value per channel and sample, so train mode needs a batch larger than 1.
    """

    def __init__(self, c_in, c_out, stride=1, size=7):
        super().__init__()
        check_same_channels("gdc", c_in, c_out)
        check_stride_one("gdc", stride)
        check_int("gdc", "size", size)
        self.size = size
        self.conv = nn.Conv2d(c_in, c_in, size, groups=c_in, bias=False)
        self.bn = nn.BatchNorm2d(c_in)

    def forward(self, x):
        if tuple(x.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"op 'gdc': input is {x.shape[-2]}x{x.shape[-1]} but size={self.size}; "
                             f"valid: size={x.shape[-2]} for a square input of that size")
        return self.bn(self.conv(x))


@register_op("channel_shuffle", family="plugin", hparams=(
    HParam("groups", 2, (2, 4, 8), short="g", doc="number of groups; must divide the channels"),
))
class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle: view channels as (groups, C/groups), transpose, flatten. No parameters."""

    def __init__(self, c_in, c_out, stride=1, groups=2):
        super().__init__()
        check_same_channels("channel_shuffle", c_in, c_out)
        check_stride_one("channel_shuffle", stride)
        check_groups("channel_shuffle", c_in, c_out, groups)
        self.groups = groups

    def forward(self, x):
        return channel_shuffle(x, self.groups)


class _Pool(nn.Module):
    """3x3 pool at `stride` with padding 1: output ceil(H / stride) for every H; c_out == c_in.

    ceil_mode stays off: with padding 1 the floor formula floor((H - 1) / s) + 1 already equals
    ceil(H / s), while ceil_mode=True would give 17 for H = 32 at stride 2.
    """

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        check_same_channels(self.op_name, c_in, c_out)
        self.stride = check_int(self.op_name, "stride", stride)


@register_op("maxpool", family="pool")
class MaxPool(_Pool):
    """3x3 max-pool, padding 1, at `stride` (the ResNet/ShuffleNet stem pool)."""

    def forward(self, x):
        return F.max_pool2d(x, 3, self.stride, 1)


@register_op("avgpool", family="pool")
class AvgPool(_Pool):
    """3x3 average pool, padding 1, at `stride`; padded cells are not counted (count_include_pad=False)."""

    def forward(self, x):
        return F.avg_pool2d(x, 3, self.stride, 1, count_include_pad=False)
