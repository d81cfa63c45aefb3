"""Mobile blocks: the inverted residual (MBConv: MobileNetV2/V3, MnasNet, EfficientNet) and ShuffleNet v1/v2 units."""
import dataclasses

import torch
from torch import nn

from .layers import (
    ConvNormAct,
    SqueezeExcite,
    channel_shuffle,
    check_choice,
    check_groups,
    check_kernel,
    kernel_hparam,
    make_act,
    make_divisible,
    make_norm,
)
from .registry import ACT, NORM, HParam, op_error, register_op
from .residual import plain_conv


@register_op("mbconv", family="block", hparams=(
        kernel_hparam((3, 5, 7), doc="depthwise kernel"),
        HParam("expand", 6, (1, 3, 4, 6), elastic=True, short="e", doc="expansion ratio (float allowed)"),
        HParam("hidden", 0, short="h", doc="expanded channels; 0 = round(c_in * expand), as MobileNetV2"),
        HParam("se", 0.0, (0.0, 0.25), elastic=True, short="se", doc="squeeze-excite ratio; 0 = no SE"),
        HParam("se_base", "hidden", ("hidden", "input"),
               doc="SE width: hidden = make_divisible(int(hidden*se), 8) (MobileNetV3); "
                   "input = max(1, int(c_in*se)) (EfficientNet)"),
        HParam("se_gate", "sigmoid", ("sigmoid", "hsigmoid"), doc="SE gate"),
        HParam("se_act", "relu", ("relu", "silu", "hswish"), doc="activation inside the SE"),
        NORM, dataclasses.replace(ACT, default="relu6")))
class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk (strided) -> optional SE -> linear 1x1 project, residual.

    The expand conv exists only when the expanded width differs from c_in (torchvision's MobileNetV3 and
    EfficientNet rule, equal to MobileNetV2's `expand_ratio != 1`). Submodules are named, not numbered,
    so variants with and without the expand conv or the SE share their parameter names.
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, expand=6, hidden=0, se=0.0, se_base="hidden",
                 se_gate="sigmoid", se_act="relu", norm="bn", act="relu6"):
        super().__init__()
        op = self.op_name
        if hidden < 0:
            raise op_error(op, f"hidden={hidden}", "is invalid", "0 (= round(c_in * expand)) or an integer >= 1")
        if hidden == 0 and expand <= 0:
            raise op_error(op, f"expand={expand}", "gives no expanded width (hidden=0 derives it from expand)",
                           "expand > 0, or an explicit hidden >= 1")
        hidden = int(hidden) or max(1, int(round(c_in * expand)))
        if se < 0:
            raise op_error(op, f"se={se}", "is invalid", "0 (no SE) or a ratio > 0, e.g. 0.25")
        check_choice(op, "se_base", se_base, ("hidden", "input"))
        check_kernel(op, kernel)
        self.expand = ConvNormAct(c_in, hidden, 1, norm=norm, act=act) if hidden != c_in else None
        self.dw = ConvNormAct(hidden, hidden, kernel, stride, groups=hidden, norm=norm, act=act, op=op)
        if se > 0:
            squeeze = make_divisible(int(hidden * se), 8) if se_base == "hidden" else max(1, int(c_in * se))
            self.se = SqueezeExcite(hidden, squeeze, act=se_act, gate=se_gate)
        else:
            self.se = None
        self.project = ConvNormAct(hidden, c_out, 1, norm=norm, act="none")
        self.hidden = hidden
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x):
        out = x if self.expand is None else self.expand(x)
        out = self.dw(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.use_residual else out


@register_op("shuffle_v1", family="block", hparams=(
        HParam("groups", 3, (2, 3, 4, 8), short="g", doc="groups of the 1x1 group convs"), NORM, ACT))
class ShuffleV1(nn.Module):
    """1x1 group conv -> channel shuffle -> depthwise 3x3 -> 1x1 group conv; stride 2: avg-pool shortcut, concat.

    Bottleneck width = c_out // 4 rounded down to a multiple of `groups` (ShuffleNet's 1/4). At stride 1
    the unit is residual (c_in == c_out); strided, the branch makes c_out - c_in channels beside the pooled input.
    """

    def __init__(self, c_in, c_out, stride=1, groups=3, norm="bn", act="relu"):
        super().__init__()
        op = self.op_name
        if stride == 1 and c_in != c_out:
            raise op_error(op, f"c_out={c_out}", f"differs from c_in={c_in} at stride 1 (residual add)",
                           f"c_out = {c_in} at stride 1, or stride 2 with c_out > c_in")
        if stride > 1 and c_out <= c_in:
            raise op_error(op, f"c_out={c_out}", f"must exceed c_in={c_in} when strided (pooled input is concatenated)",
                           f"c_out > {c_in}")
        check_groups(op, c_in, c_out, groups)  # then groups also divides the branch's c_out - c_in
        branch = c_out - c_in if stride > 1 else c_out
        mid = max(groups, c_out // 4 // groups * groups)
        self.gconv1 = ConvNormAct(c_in, mid, 1, groups=groups, norm=norm, act=act)
        self.dw = ConvNormAct(mid, mid, 3, stride, groups=mid, norm=norm, act="none")
        self.gconv2 = ConvNormAct(mid, branch, 1, groups=groups, norm=norm, act="none")
        self.pool = nn.AvgPool2d(3, stride, 1) if stride > 1 else None
        self.act = make_act(act)
        self.groups = groups

    def forward(self, x):
        out = self.gconv2(self.dw(channel_shuffle(self.gconv1(x), self.groups)))
        if self.pool is None:
            return self.act(x + out)
        return self.act(torch.cat((self.pool(x), out), 1))


@register_op("shuffle_v2", family="block", hparams=(
        kernel_hparam((3, 5, 7), doc="depthwise kernel"), NORM, ACT))
class ShuffleV2(nn.Module):
    """ShuffleNet v2 unit (torchvision's InvertedResidual): split, 1x1 -> dw -> 1x1 on one half, concat, shuffle.

    Strided, both branches see the whole input (branch1: dw -> 1x1; branch2: 1x1 -> dw -> 1x1), each making
    c_out // 2 channels.
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, norm="bn", act="relu"):
        super().__init__()
        op = self.op_name
        if c_out % 2:
            raise op_error(op, f"c_out={c_out}", "is odd (two branches of c_out // 2)", "even c_out")
        if stride == 1 and c_in != c_out:
            raise op_error(op, f"c_out={c_out}",
                           f"differs from c_in={c_in} at stride 1 (half the input passes through)",
                           f"c_out = {c_in} at stride 1, or stride 2")
        check_kernel(op, kernel)
        bf = c_out // 2

        if stride > 1:
            self.branch1 = nn.Sequential(
                plain_conv(c_in, c_in, kernel, stride, c_in, norm), make_norm(norm, c_in),
                plain_conv(c_in, bf, 1, norm=norm), make_norm(norm, bf), make_act(act))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            plain_conv(c_in if stride > 1 else bf, bf, 1, norm=norm), make_norm(norm, bf), make_act(act),
            plain_conv(bf, bf, kernel, stride, bf, norm), make_norm(norm, bf),
            plain_conv(bf, bf, 1, norm=norm), make_norm(norm, bf), make_act(act))
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)
