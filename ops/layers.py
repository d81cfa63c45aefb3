"""Small building pieces shared by the ops: argument checks, the kernel hparam, norm/act factories, Conv-Norm-Act."""
import math

from torch import nn

from .registry import ACT, NORM, HParam, op_error


def kernel_hparam(choices=(1, 3, 5, 7), default=3, doc="kernel size k (a k x k window)"):
    """The elastic `kernel` hparam: candidates differing only in k share one centre-cropped weight."""
    return HParam("kernel", default, tuple(choices), elastic=True, short="k", doc=doc)


KERNEL = kernel_hparam()
KERNEL_357 = kernel_hparam((3, 5, 7))


def check_int(op, arg, value, minimum=1):
    """Raise unless `value` is an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise op_error(op, f"{arg}={value!r}", "is invalid", f"integers >= {minimum}")
    return value


def check_kernel(op, kernel, arg="kernel"):
    """Raise unless `kernel` is odd and positive (only odd kernels have a symmetric 'same' padding)."""
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise op_error(op, f"{arg}={kernel!r}", "has no symmetric padding that keeps the size",
                       "odd integers 1, 3, 5, 7, ...")
    return kernel


def check_choice(op, arg, value, choices):
    """Raise unless `value` is one of `choices`."""
    if value not in choices:
        raise op_error(op, f"{arg}={value!r}", "is unknown", ", ".join(map(str, choices)))
    return value


def check_common(op, stride, kernel=None, norm="bn", act="relu"):
    """The checks every conv type shares: stride, an odd kernel (when it has one), known norm and act."""
    check_int(op, "stride", stride)
    if kernel is not None:
        check_kernel(op, kernel)
    check_choice(op, "norm", norm, NORM.choices)
    check_choice(op, "act", act, ACT.choices)


def check_same_channels(op, c_in, c_out):
    """Raise unless c_out == c_in (the op cannot change the channel count)."""
    if c_out != c_in:
        raise op_error(op, f"c_out={c_out}", f"differs from c_in={c_in} (this op keeps the channel count)",
                       f"c_out={c_in}")


def check_stride_one(op, stride):
    """Raise unless stride == 1 (the op keeps the spatial size)."""
    if stride != 1:
        raise op_error(op, f"stride={stride}", "is not supported (this op keeps the spatial size)", "stride=1")


def divisors(n):
    """The positive divisors of `n`, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def check_divides(op, arg, value, c_in):
    """Raise unless `value` (a group count, already checked to be >= 1) divides c_in."""
    if c_in % value:
        raise op_error(op, f"{arg}={value}", f"must divide c_in={c_in}", ", ".join(map(str, divisors(c_in))))
    return value


def check_groups(op, c_in, c_out, groups, arg="groups"):
    """Raise unless `groups` divides both channel counts."""
    if groups < 1 or c_in % groups or c_out % groups:
        valid = [g for g in divisors(min(c_in, c_out)) if c_in % g == 0 and c_out % g == 0]
        raise op_error(op, f"{arg}={groups}", f"must divide c_in={c_in} and c_out={c_out}",
                       ", ".join(map(str, valid)))
    return groups


def make_divisible(v, divisor=8, min_value=None):
    """Round `v` to the nearest multiple of `divisor`, never dropping more than 10% (as in MobileNet)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def make_act(kind, inplace=True):
    """Activation module by name: relu | relu6 | hswish | silu | hsigmoid | sigmoid | none."""
    acts = {
        "relu": lambda: nn.ReLU(inplace=inplace),
        "relu6": lambda: nn.ReLU6(inplace=inplace),
        "hswish": lambda: nn.Hardswish(inplace=inplace),
        "silu": lambda: nn.SiLU(inplace=inplace),
        "hsigmoid": lambda: nn.Hardsigmoid(inplace=inplace),
        "sigmoid": lambda: nn.Sigmoid(),
        "none": lambda: nn.Identity(),
    }
    if kind is None:
        return nn.Identity()
    if kind not in acts:
        raise ValueError(f"act '{kind}' is unknown; valid: {', '.join(acts)}")
    return acts[kind]()


def gn_groups(c):
    """The largest group count <= 32 that divides `c` (GroupNorm needs an exact division)."""
    for g in (32, 16, 8, 4, 2, 1):
        if c % g == 0:
            return g
    return 1


def make_norm(kind, c, dims=2):
    """Normalisation by name over `c` channels: bn | gn | ln (GroupNorm with one group) | none; dims=3 for 5-D maps."""
    if kind == "bn":
        return nn.BatchNorm3d(c) if dims == 3 else nn.BatchNorm2d(c)
    if kind == "gn":
        return nn.GroupNorm(gn_groups(c), c)
    if kind == "ln":
        return nn.GroupNorm(1, c)
    if kind in ("none", None):
        return nn.Identity()
    raise ValueError(f"norm '{kind}' is unknown; valid: bn, gn, ln, none")


def same_padding(op, kernel, dilation=1):
    """Symmetric padding that keeps the size at stride 1; even kernels cannot have one."""
    return (check_kernel(op, kernel) - 1) // 2 * check_int(op, "dilation", dilation)


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> activation; the conv has a bias only when there is no norm."""

    def __init__(self, c_in, c_out, kernel=3, stride=1, dilation=1, groups=1, norm="bn", act="relu",
                 padding=None, op="conv"):
        if padding is None:
            padding = same_padding(op, kernel, dilation) if isinstance(kernel, int) else tuple(
                same_padding(op, k, dilation) for k in kernel)
        layers = [nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, groups=groups,
                            bias=norm in ("none", None))]
        if norm not in ("none", None):
            layers.append(make_norm(norm, c_out))
        if act not in ("none", None):
            layers.append(make_act(act))
        super().__init__(*layers)
        self.c_in, self.c_out, self.stride = c_in, c_out, stride


def channel_shuffle(x, groups):
    """Reshape (g, C/g) -> transpose -> flatten: the ShuffleNet channel permutation."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def out_size(size, stride):
    """ceil(size / stride): the spatial size every strided op must produce."""
    return int(math.ceil(size / stride))


class SqueezeExcite(nn.Module):
    """Squeeze (global average pool) -> 1x1 reduce -> act -> 1x1 expand -> gate -> channel reweighting."""

    def __init__(self, channels, squeeze_channels, act="relu", gate="sigmoid"):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = make_act(act)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = make_act(gate, inplace=False)

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))
