"""Residual-family blocks: ResNet basic and bottleneck, ResNeXt, PyramidNet, a VGG stack and skip.

`basic_residual`, `bottleneck` and `resnext` use torchvision's attribute names (conv1, bn1, ...,
downsample) and structure, so a torchvision ResNet's state dict loads into them unchanged.
"""
import torch.nn.functional as F
from torch import nn

from .layers import ConvNormAct, make_act, make_norm
from .registry import ACT, NORM, HParam, op_error, register_op


def plain_conv(c_in, c_out, kernel, stride=1, groups=1, norm="bn"):
    """A bare conv with 'same' padding (k // 2, torchvision's); it has a bias only when no norm follows."""
    return nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=norm in ("none", None))


def projection(c_in, c_out, stride, norm):
    """torchvision's ResNet `downsample`: 1x1 strided conv + norm."""
    return nn.Sequential(plain_conv(c_in, c_out, 1, stride, norm=norm), make_norm(norm, c_out))


def needs_projection(c_in, c_out, stride):
    return stride != 1 or c_in != c_out


@register_op("basic_residual", family="block", hparams=(NORM, ACT))
class BasicResidual(nn.Module):
    """Two 3x3 convs with identity (or 1x1 projection) shortcut: torchvision's ResNet BasicBlock."""

    def __init__(self, c_in, c_out, stride=1, norm="bn", act="relu"):
        super().__init__()
        self.conv1 = plain_conv(c_in, c_out, 3, stride, norm=norm)
        self.bn1 = make_norm(norm, c_out)
        self.act = make_act(act)
        self.conv2 = plain_conv(c_out, c_out, 3, norm=norm)
        self.bn2 = make_norm(norm, c_out)
        self.downsample = projection(c_in, c_out, stride, norm) if needs_projection(c_in, c_out, stride) else None

    def forward(self, x):
        out = self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.act(out + identity)


@register_op("bottleneck", family="block", hparams=(
        HParam("width", 0, short="w", doc="channels of the inner 1x1/3x3 convs; 0 = c_out // 4 (expansion 4)"),
        NORM, ACT))
class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided, ResNet v1.5) -> 1x1 expand, residual: torchvision's ResNet Bottleneck."""

    def __init__(self, c_in, c_out, stride=1, width=0, norm="bn", act="relu", groups=1):
        super().__init__()
        if width == 0:
            width = c_out // 4
            if width < 1:
                raise op_error(self.op_name, f"c_out={c_out}", "leaves no inner width (c_out // 4 = 0)",
                               "c_out >= 4, or an explicit width >= 1")
        if width < 1:
            raise op_error(self.op_name, f"width={width}", "is invalid", "0 (= c_out // 4) or an integer >= 1")
        self.conv1 = plain_conv(c_in, width, 1, norm=norm)
        self.bn1 = make_norm(norm, width)
        self.conv2 = plain_conv(width, width, 3, stride, groups=groups, norm=norm)
        self.bn2 = make_norm(norm, width)
        self.conv3 = plain_conv(width, c_out, 1, norm=norm)
        self.bn3 = make_norm(norm, c_out)
        self.act = make_act(act)
        self.downsample = projection(c_in, c_out, stride, norm) if needs_projection(c_in, c_out, stride) else None
        self.width = width

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.act(out + identity)


@register_op("resnext", family="block", hparams=(
        HParam("cardinality", 32, (8, 16, 32), short="g", doc="groups of the 3x3 conv (C)"),
        HParam("base_width", 4, (4,), short="bw", doc="width of each group at c_out = 256 (d)"),
        NORM, ACT))
class ResNeXt(Bottleneck):
    """Bottleneck whose 3x3 is a grouped conv; width = int(c_out/4 * base_width/64) * cardinality (form (c))."""

    def __init__(self, c_in, c_out, stride=1, cardinality=32, base_width=4, norm="bn", act="relu"):
        if cardinality < 1 or base_width < 1:
            bad, val = ("cardinality", cardinality) if cardinality < 1 else ("base_width", base_width)
            raise op_error(self.op_name, f"{bad}={val}", "is invalid", "integers >= 1")
        planes = c_out // 4
        group_width = int(planes * (base_width / 64.0))  # torchvision: int(planes * (base_width / 64.))
        if group_width < 1:
            raise op_error(self.op_name, f"base_width={base_width}",
                           f"gives int(c_out//4 * base_width/64) = 0 channels per group at c_out={c_out}",
                           f"base_width >= {-(-64 // planes)} at this c_out" if planes else "c_out >= 4")
        super().__init__(c_in, c_out, stride, width=group_width * cardinality, norm=norm, act=act, groups=cardinality)
        self.cardinality, self.group_width = cardinality, group_width


@register_op("pyramid", family="block", hparams=(NORM, ACT))
class PyramidBlock(nn.Module):
    """PyramidNet basic block: BN-3x3-BN-ReLU-3x3-BN; shortcut (2x2 avg-pool if strided) zero-pads new channels."""

    def __init__(self, c_in, c_out, stride=1, norm="bn", act="relu"):
        super().__init__()
        if c_out < c_in:
            raise op_error(self.op_name, f"c_out={c_out}", f"is below c_in={c_in} (the shortcut only zero-pads)",
                           f"c_out >= {c_in}")
        self.bn1 = make_norm(norm, c_in)
        self.conv1 = plain_conv(c_in, c_out, 3, stride, norm=norm)
        self.bn2 = make_norm(norm, c_out)
        self.act = make_act(act)
        self.conv2 = plain_conv(c_out, c_out, 3, norm=norm)
        self.bn3 = make_norm(norm, c_out)
        self.stride, self.pad = stride, c_out - c_in

    def forward(self, x):
        out = self.bn3(self.conv2(self.act(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x
        if self.stride > 1:
            shortcut = F.avg_pool2d(shortcut, self.stride, self.stride, ceil_mode=True)
        if self.pad:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.pad))
        return out + shortcut


@register_op("vgg", family="block", hparams=(
        HParam("layers", 2, (1, 2, 3), short="l", doc="number of 3x3 convs"), NORM, ACT))
class VGGStack(nn.Sequential):
    """A stack of `layers` 3x3 Conv-Norm-Act, the first one strided."""

    def __init__(self, c_in, c_out, stride=1, layers=2, norm="bn", act="relu"):
        if layers < 1:
            raise op_error(self.op_name, f"layers={layers}", "is invalid", "integers >= 1 (1, 2, 3)")
        super().__init__(*(ConvNormAct(c_in if i == 0 else c_out, c_out, 3, stride if i == 0 else 1, norm=norm,
                                       act=act, op=self.op_name) for i in range(layers)))


@register_op("skip", family="block", hparams=(NORM,))
class Skip(nn.Module):
    """Identity where shapes allow, else the cheapest projection (1x1 strided conv + norm): searchable depth."""

    def __init__(self, c_in, c_out, stride=1, norm="bn"):
        super().__init__()
        self.proj = projection(c_in, c_out, stride, norm) if needs_projection(c_in, c_out, stride) else None

    def forward(self, x):
        return x if self.proj is None else self.proj(x)
