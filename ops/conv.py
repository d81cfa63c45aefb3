"""Convolution types: vanilla, pointwise, grouped, depthwise and dilated (each Conv -> Norm -> Act).

Every op maps N x c_in x H x W to N x c_out x ceil(H/stride) x ceil(W/stride): the padding is the
symmetric 'same' padding (k-1)/2 * d, so the output size floor((H + 2p - d(k-1) - 1)/s) + 1 equals
ceil(H/s) for every odd kernel k, dilation d and stride s.

The argument checks and the `kernel` hparam they share with the other families live in `layers`.
"""
from .layers import KERNEL, KERNEL_357, ConvNormAct, check_common, check_groups, check_int
from .registry import ACT, NORM, HParam, op_error, register_op

DILATION = HParam("dilation", 1, (1, 2), short="d", doc="dilation rate of the kernel")


@register_op("conv", family="conv", hparams=(KERNEL, DILATION, NORM, ACT))
class Conv(ConvNormAct):
    """Vanilla k x k convolution over all input channels (LeNet/AlexNet/VGG)."""

    def __init__(self, c_in, c_out, stride=1, kernel=3, dilation=1, norm="bn", act="relu"):
        check_common("conv", stride, kernel, norm, act)
        check_int("conv", "dilation", dilation)
        super().__init__(c_in, c_out, kernel, stride, dilation, norm=norm, act=act, op="conv")
        self.kernel, self.dilation = kernel, dilation


@register_op("pointwise", family="conv", hparams=(NORM, ACT))
class Pointwise(ConvNormAct):
    """1x1 convolution: cross-channel mixing, channel up/down projection (Network-in-Network, GoogLeNet)."""

    def __init__(self, c_in, c_out, stride=1, norm="bn", act="relu"):
        check_common("pointwise", stride, None, norm, act)
        super().__init__(c_in, c_out, 1, stride, norm=norm, act=act, op="pointwise")
        self.kernel = 1


@register_op("group_conv", family="conv", hparams=(
        KERNEL, HParam("groups", 2, (2, 4, 8), short="g", doc="groups; each sees c_in/groups channels"),
        NORM, ACT))
class GroupConv(ConvNormAct):
    """k x k convolution split into g groups, each seeing c_in/g input channels (AlexNet, ResNeXt)."""

    def __init__(self, c_in, c_out, stride=1, kernel=3, groups=2, norm="bn", act="relu"):
        check_common("group_conv", stride, kernel, norm, act)
        check_int("group_conv", "groups", groups)
        check_groups("group_conv", c_in, c_out, groups)
        super().__init__(c_in, c_out, kernel, stride, groups=groups, norm=norm, act=act, op="group_conv")
        self.kernel, self.groups = kernel, groups


def depthwise_multiplier(op, c_in, c_out):
    """The channel multiplier m = c_out / c_in of a depthwise conv; a ValueError unless it is an integer."""
    if c_out % c_in:
        valid = ", ".join(str(m * c_in) for m in range(1, 5))
        raise op_error(op, f"c_out={c_out}", f"is not an integer multiple of c_in={c_in} (groups = c_in, "
                       f"channel multiplier m = c_out/c_in)", f"c_out = m*c_in: {valid}, ...")
    return c_out // c_in


@register_op("depthwise", family="conv", hparams=(KERNEL_357, DILATION, NORM, ACT))
class Depthwise(ConvNormAct):
    """One k x k filter per input channel (groups = c_in); c_out = m * c_in (MobileNet, Xception)."""

    def __init__(self, c_in, c_out, stride=1, kernel=3, dilation=1, norm="bn", act="relu"):
        check_common("depthwise", stride, kernel, norm, act)
        check_int("depthwise", "dilation", dilation)
        multiplier = depthwise_multiplier("depthwise", c_in, c_out)
        super().__init__(c_in, c_out, kernel, stride, dilation, groups=c_in, norm=norm, act=act, op="depthwise")
        self.kernel, self.dilation, self.multiplier = kernel, dilation, multiplier


@register_op("dilated", family="conv", hparams=(
        KERNEL_357, HParam("dilation", 2, (2, 3, 4), short="d", doc="atrous rate d; receptive field (k-1)*d+1"),
        NORM, ACT))
class Dilated(ConvNormAct):
    """Atrous k x k convolution with dilation d: receptive field (k-1)*d+1 at the cost of a k x k conv (DeepLab)."""

    def __init__(self, c_in, c_out, stride=1, kernel=3, dilation=2, norm="bn", act="relu"):
        check_common("dilated", stride, kernel, norm, act)
        check_int("dilated", "dilation", dilation)
        super().__init__(c_in, c_out, kernel, stride, dilation, norm=norm, act=act, op="dilated")
        self.kernel, self.dilation = kernel, dilation

    @property
    def receptive_field(self):
        return (self.kernel - 1) * self.dilation + 1
