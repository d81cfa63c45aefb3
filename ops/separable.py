"""Factorised convolutions: depthwise-separable (both orders), spatially separable and flattened.

Each piece is a Conv -> Norm -> Act (`ConvNormAct`); the stride is taken by the spatial convs so
that the output is N x c_out x ceil(H/stride) x ceil(W/stride).
"""
from torch import nn

from .layers import KERNEL_357, ConvNormAct, check_choice, check_common
from .registry import ACT, NORM, HParam, register_op

DW_ACT = HParam("dw_act", "same", ("same", *ACT.choices),
                doc="activation after the depthwise conv; 'same' uses `act` (MobileNetV1), 'none' leaves it linear")


@register_op("dw_separable", family="conv", hparams=(KERNEL_357, DW_ACT, NORM, ACT))
class DWSeparable(nn.Module):
    """Depthwise k x k (norm, optional act) then pointwise 1x1 (norm, act): the MobileNetV1 unit.

    Multiply-adds at stride 1 on a D_F x D_F map: k^2*M*D_F^2 + M*N*D_F^2 against k^2*M*N*D_F^2 for a
    standard conv, a ratio of 1/N + 1/k^2 (M = c_in, N = c_out).
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, dw_act="same", norm="bn", act="relu"):
        check_common("dw_separable", stride, kernel, norm, act)
        check_choice("dw_separable", "dw_act", dw_act, DW_ACT.choices)
        super().__init__()
        self.dw = ConvNormAct(c_in, c_in, kernel, stride, groups=c_in, norm=norm,
                              act=act if dw_act == "same" else dw_act, op="dw_separable")
        self.pw = ConvNormAct(c_in, c_out, 1, norm=norm, act=act, op="dw_separable")
        self.c_in, self.c_out, self.stride, self.kernel = c_in, c_out, stride, kernel

    def forward(self, x):
        return self.pw(self.dw(x))


@register_op("xception_separable", family="conv", hparams=(KERNEL_357, NORM, ACT))
class XceptionSeparable(nn.Module):
    """The Xception ordering: pointwise 1x1 (c_in -> c_out) first, then depthwise k x k over c_out channels."""

    def __init__(self, c_in, c_out, stride=1, kernel=3, norm="bn", act="relu"):
        check_common("xception_separable", stride, kernel, norm, act)
        super().__init__()
        self.pw = ConvNormAct(c_in, c_out, 1, norm=norm, act=act, op="xception_separable")
        self.dw = ConvNormAct(c_out, c_out, kernel, stride, groups=c_out, norm=norm, act=act, op="xception_separable")
        self.c_in, self.c_out, self.stride, self.kernel = c_in, c_out, stride, kernel

    def forward(self, x):
        return self.dw(self.pw(x))


@register_op("spatial_separable", family="conv", hparams=(KERNEL_357, NORM, ACT))
class SpatialSeparable(nn.Module):
    """k x 1 convolution (c_in -> c_out) then 1 x k (c_out -> c_out): Inception-v3 asymmetric factorisation.

    The stride is split: the k x 1 conv strides along H with (s, 1), the 1 x k conv along W with (1, s).
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, norm="bn", act="relu"):
        check_common("spatial_separable", stride, kernel, norm, act)
        super().__init__()
        self.vertical = ConvNormAct(c_in, c_out, (kernel, 1), (stride, 1), norm=norm, act=act, op="spatial_separable")
        self.horizontal = ConvNormAct(c_out, c_out, (1, kernel), (1, stride), norm=norm, act=act,
                                      op="spatial_separable")
        self.c_in, self.c_out, self.stride, self.kernel = c_in, c_out, stride, kernel

    def forward(self, x):
        return self.horizontal(self.vertical(x))


@register_op("flattened", family="conv", hparams=(KERNEL_357, NORM, ACT))
class Flattened(nn.Module):
    """Three 1-D filters in sequence (Jin et al. 2014): 1x1 across channels, k x 1 depthwise, 1 x k depthwise.

    The lateral 1x1 maps c_in -> c_out; the vertical (k x 1, stride (s, 1)) and horizontal (1 x k,
    stride (1, s)) filters are depthwise over the c_out channels. Each is Conv -> Norm -> Act.
    """

    def __init__(self, c_in, c_out, stride=1, kernel=3, norm="bn", act="relu"):
        check_common("flattened", stride, kernel, norm, act)
        super().__init__()
        self.lateral = ConvNormAct(c_in, c_out, 1, norm=norm, act=act, op="flattened")
        self.vertical = ConvNormAct(c_out, c_out, (kernel, 1), (stride, 1), groups=c_out, norm=norm, act=act,
                                    op="flattened")
        self.horizontal = ConvNormAct(c_out, c_out, (1, kernel), (1, stride), groups=c_out, norm=norm, act=act,
                                      op="flattened")
        self.c_in, self.c_out, self.stride, self.kernel = c_in, c_out, stride, kernel

    def forward(self, x):
        return self.horizontal(self.vertical(self.lateral(x)))
