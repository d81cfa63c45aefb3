"""Deformable convolution (DCN v1) and its modulated form (DCN v2), through torchvision's deform_conv2d."""
import math

import torch
from torch import nn
from torchvision.ops import deform_conv2d

from .layers import KERNEL, check_common, check_divides, check_int, make_act, make_norm
from .registry import ACT, NORM, HParam, op_error, register_op


@register_op("deform_conv", family="conv", hparams=(
        KERNEL,
        HParam("modulated", False, (False, True), doc="DCNv2: also predict a sigmoid mask per sampling point"),
        HParam("offset_groups", 1, (1, 2, 4), short="og", doc="groups of input channels sharing one offset field"),
        NORM, ACT))
class DeformConv(nn.Module):
    """Deformable k x k convolution: a parallel conv predicts 2*G*k^2 offsets per output pixel, sampled bilinearly.

    The offset conv (k x k, same stride and padding as the main conv, so it yields one offset field per
    output pixel) is zero-initialised: the op starts as an ordinary convolution with `weight`.
    With `modulated: true` a second zero-initialised conv predicts G*k^2 mask logits, so the mask
    sigmoid(0) = 0.5 at initialisation, as in the DCNv2 reference code (the op then starts as 0.5 times
    the ordinary convolution, plus the bias when there is one). G = offset_groups must divide c_in.
    Then norm + act.
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, modulated=False, offset_groups=1, norm="bn", act="relu"):
        check_common("deform_conv", stride, kernel, norm, act)
        check_divides("deform_conv", "offset_groups", check_int("deform_conv", "offset_groups", offset_groups), c_in)
        if modulated not in (True, False):
            raise op_error("deform_conv", f"modulated={modulated!r}", "is not a boolean", "true, false")
        super().__init__()
        self.c_in, self.c_out, self.stride, self.kernel = c_in, c_out, stride, kernel
        self.modulated, self.offset_groups, self.padding = bool(modulated), offset_groups, (kernel - 1) // 2
        points = offset_groups * kernel * kernel
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(c_out)) if norm == "none" else None
        self.offset = nn.Conv2d(c_in, 2 * points, kernel, stride, self.padding)
        self.mask = nn.Conv2d(c_in, points, kernel, stride, self.padding) if self.modulated else None
        self.norm = make_norm(norm, c_out)
        self.act = make_act(act)
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Conv2d
        if self.bias is not None:
            bound = 1 / math.sqrt(self.c_in * self.kernel * self.kernel)
            nn.init.uniform_(self.bias, -bound, bound)
        for conv in (self.offset, self.mask):
            if conv is not None:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, x):
        offset = self.offset(x)
        mask = torch.sigmoid(self.mask(x)) if self.mask is not None else None
        y = deform_conv2d(x, offset, self.weight, self.bias, stride=self.stride, padding=self.padding, mask=mask)
        return self.act(self.norm(y))
