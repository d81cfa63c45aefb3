"""Multi-level fusion (family "plugin"): adaptively spatial feature fusion (ASFF, YOLOv3)."""
import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormAct, check_choice, check_int, check_stride_one
from .registry import HParam, op_error, register_op


@register_op("asff", family="plugin", hparams=(
    HParam("level", 0, (0, 1, 2), short="l", doc="the pyramid level fused into (0 = finest)"),
    HParam("in_channels", None, doc="channels of the three levels, finest first; default (c_in,) * 3"),
    HParam("compress", 8, (8, 16), short="cp", doc="width of each level's weight embedding"),
))
class ASFF(nn.Module):
    """ASFF: fuse three pyramid levels into level `level` with learned per-pixel softmax weights.

    `forward(features)` takes three maps, finest first, each half the size of the one before
    (ceil-halved: the sizes a stride-2 network produces). Each is resized to the target level:
    down by 2 with a stride-2 3x3 ConvBNReLU, down by 4 with a 3x3 stride-2 max-pool then that
    conv, up with a 1x1 ConvBNReLU then nearest upsampling to the target size; the target level
    itself passes unchanged. Per-level 1x1 ConvBNReLUs to `compress` channels are concatenated,
    a 1x1 conv gives 3 logits, softmax over the levels gives weights summing to 1 per pixel, and
    the weighted sum goes through a 3x3 ConvBNReLU to c_out. c_in is the target level's channel
    count (in_channels[level]); stride 1. `forward(features, return_weights=True)` also returns
    the N x 3 x H x W weights.
    """

    def __init__(self, c_in, c_out, stride=1, level=0, in_channels=None, compress=8):
        super().__init__()
        check_stride_one("asff", stride)
        check_choice("asff", "level", level, (0, 1, 2))
        chans = (c_in,) * 3 if in_channels is None else in_channels
        if not isinstance(chans, (list, tuple)) or len(chans) != 3 or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in chans):
            raise op_error("asff", f"in_channels={in_channels}", "is invalid",
                           "three positive channel counts, finest first")
        if chans[level] != c_in:
            raise op_error("asff", f"c_in={c_in}", f"differs from in_channels[{level}]={chans[level]}",
                           f"c_in={chans[level]}")
        check_int("asff", "compress", compress)
        self.level, self.in_channels = level, tuple(chans)
        self.resize = nn.ModuleList(self._resizer(j, c) for j, c in enumerate(chans))
        self.embed = nn.ModuleList(ConvNormAct(c_in, compress, 1, op="asff") for _ in range(3))
        self.logits = nn.Conv2d(3 * compress, 3, 1)
        self.out = ConvNormAct(c_in, c_out, 3, op="asff")

    def _resizer(self, j, c):
        c_t = self.in_channels[self.level]
        if j == self.level:
            return nn.Identity()
        if j > self.level:  # coarser: project, then upsampled in forward
            return ConvNormAct(c, c_t, 1, op="asff")
        conv = ConvNormAct(c, c_t, 3, stride=2, op="asff")
        return conv if self.level - j == 1 else nn.Sequential(nn.MaxPool2d(3, 2, 1), conv)

    def forward(self, features, return_weights=False):
        if len(features) != 3:
            raise ValueError(f"op 'asff': got {len(features)} feature maps; valid: 3, finest first")
        size = features[self.level].shape[-2:]
        xs = []
        for j, (x, resize) in enumerate(zip(features, self.resize)):
            x = resize(x)
            if j > self.level:
                x = F.interpolate(x, size=size, mode="nearest")
            if x.shape[-2:] != size:
                raise ValueError(f"op 'asff': level {j} resizes to {tuple(x.shape[-2:])}, not the target "
                                 f"{tuple(size)}; valid: levels each ceil-half the size of the one before")
            xs.append(x)
        weights = torch.softmax(self.logits(torch.cat([e(x) for e, x in zip(self.embed, xs)], dim=1)), dim=1)
        fused = sum(weights[:, j:j + 1] * x for j, x in enumerate(xs))
        out = self.out(fused)
        return (out, weights) if return_weights else out
