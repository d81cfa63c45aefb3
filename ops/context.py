"""Context modules (family "plugin"): ASPP (DeepLab v3) and the Receptive Field Block (RFBNet)."""
import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormAct, check_stride_one
from .registry import HParam, op_error, register_op


@register_op("aspp", family="plugin", hparams=(
    HParam("rates", (6, 12, 18), ((6, 12, 18), (3, 6, 9), (1, 2, 3)),
           doc="dilation rates of the three 3x3 branches; (1, 2, 3) suits small feature maps"),
))
class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3); maps c_in to c_out channels at stride 1.

    Five parallel branches, each c_out wide: a 1x1 ConvBNReLU, three dilated 3x3 ConvBNReLUs, and
    image-level pooling (global average pool -> 1x1 conv with bias -> ReLU -> bilinear upsample).
    They are concatenated and fused by a 1x1 ConvBNReLU to c_out. The pooling branch has no norm:
    BatchNorm over a 1x1 map fails in train mode at batch 1, and GroupNorm with one channel per
    group would zero it. DeepLab's dropout after the fuse is left to the caller.
    """

    def __init__(self, c_in, c_out, stride=1, rates=(6, 12, 18)):
        super().__init__()
        check_stride_one("aspp", stride)
        rates = tuple(rates) if isinstance(rates, (list, tuple)) else (rates,)
        if len(rates) != 3 or not all(isinstance(r, int) and r >= 1 for r in rates):
            raise op_error("aspp", f"rates={rates}", "is invalid", "three integers >= 1, e.g. (6, 12, 18) or (1, 2, 3)")
        self.rates = rates
        self.branches = nn.ModuleList(
            [ConvNormAct(c_in, c_out, 1, op="aspp")]
            + [ConvNormAct(c_in, c_out, 3, dilation=r, op="aspp") for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1), nn.ReLU(inplace=True))
        self.fuse = ConvNormAct(5 * c_out, c_out, 1, op="aspp")

    def forward(self, x):
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))


def rfb_widths(c_in):
    """RFBNet's branch widths for c_in channels: inter = max(2, c_in // 8) and the 3/2 * inter middle width."""
    inter = max(2, c_in // 8)
    return inter, inter // 2 * 3


@register_op("rfb", family="plugin")
class RFB(nn.Module):
    """Receptive Field Block (RFBNet's basic RFB): three branches ending in dilated 3x3s of rate 1, 3, 5.

    With i = max(2, c_in // 8) (RFBNet: c_in // 8) and every conv a ConvBNReLU:
      branch 0: 1x1 c_in->2i, 3x3 rate 1 2i->2i (no ReLU)
      branch 1: 1x1 c_in->i, 3x3 i->2i, 3x3 rate 3 2i->2i (no ReLU)
      branch 2: 1x1 c_in->i, 3x3 i->3i/2, 3x3 3i/2->2i, 3x3 rate 5 2i->2i (no ReLU)
    concatenated (6i), fused by 1x1 ConvBN to c_out, scaled by 0.1 (as RFBNet's code) and added to
    the shortcut (identity, or 1x1 ConvBN when c_out != c_in), then ReLU. Stride 1 only.
    """

    residual_scale = 0.1

    def __init__(self, c_in, c_out, stride=1):
        super().__init__()
        check_stride_one("rfb", stride)
        i, mid = rfb_widths(c_in)

        def conv(a, b, k=1, rate=1, act="relu"):
            return ConvNormAct(a, b, k, dilation=rate, act=act, op="rfb")

        self.branches = nn.ModuleList([
            nn.Sequential(conv(c_in, 2 * i), conv(2 * i, 2 * i, 3, 1, "none")),
            nn.Sequential(conv(c_in, i), conv(i, 2 * i, 3), conv(2 * i, 2 * i, 3, 3, "none")),
            nn.Sequential(conv(c_in, i), conv(i, mid, 3), conv(mid, 2 * i, 3), conv(2 * i, 2 * i, 3, 5, "none")),
        ])
        self.fuse = conv(6 * i, c_out, act="none")
        self.shortcut = nn.Identity() if c_out == c_in else conv(c_in, c_out, act="none")
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        return self.relu(out * self.residual_scale + self.shortcut(x))
