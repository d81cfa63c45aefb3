"""Multi-branch and densely connected blocks: Inception v1, Inception-v3 (factorized), Xception, DenseNet."""
import torch
from torch import nn

from .layers import ConvNormAct, check_kernel, make_act, make_norm
from .registry import ACT, NORM, HParam, op_error, register_op
from .residual import needs_projection, plain_conv, projection


def branch_widths(op, c_out, widths, derived, divisor, names):
    """Explicit widths (checked: six positive ints whose branch outputs sum to c_out) or the derived default."""
    if widths:
        widths = tuple(int(w) for w in widths)
        if len(widths) != len(names) or min(widths) < 1:
            raise op_error(op, f"widths={widths}", "is invalid", f"{len(names)} positive ints ({', '.join(names)})")
        total = sum(w for w, n in zip(widths, names) if not n.startswith("r"))
        if total != c_out:
            raise op_error(op, f"widths={widths}", f"gives branch outputs summing to {total}, not c_out={c_out}",
                           f"{', '.join(n for n in names if not n.startswith('r'))} summing to {c_out}")
        return widths
    if c_out % divisor:
        raise op_error(op, f"c_out={c_out}", "cannot be split into the default branch widths",
                       f"c_out divisible by {divisor}, or explicit widths")
    return derived(c_out)


def inception_v1_widths(c_out):
    """GoogLeNet 3a's proportions: 1x1 = 1/4, 3x3 = 1/2 (reduce 3/8), 5x5 = 1/8 (reduce 1/16), pool proj = 1/8."""
    return c_out // 4, 3 * c_out // 8, c_out // 2, max(1, c_out // 16), c_out // 8, c_out // 8


@register_op("inception", family="block", hparams=(
        HParam("widths", (), doc="(1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj); () = derived from c_out"),
        NORM, ACT))
class Inception(nn.Module):
    """GoogLeNet (v1) module with dimension reductions: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 max-pool->1x1, concatenated.

    Default widths are GoogLeNet inception (3a)'s proportions of c_out (c_out divisible by 8):
    1x1 c/4; 3x3 c/2 after a 3c/8 reduce; 5x5 c/8 after a c/16 reduce (at least 1); pool projection c/8.
    inception(192, 256) is exactly GoogLeNet's 3a with the paper's 5x5. Strided, the 1x1 branch, the 3x3
    and 5x5 convs and the pool stride.
    """

    def __init__(self, c_in, c_out, stride=1, widths=(), norm="bn", act="relu"):
        super().__init__()
        op = self.op_name
        b1, r3, b3, r5, b5, bp = branch_widths(op, c_out, widths, inception_v1_widths, 8,
                                               ("1x1", "r3x3", "3x3", "r5x5", "5x5", "pool"))

        def cna(ci, co, k, s=1):
            return ConvNormAct(ci, co, k, s, norm=norm, act=act, op=op)

        self.branch1 = cna(c_in, b1, 1, stride)
        self.branch2 = nn.Sequential(cna(c_in, r3, 1), cna(r3, b3, 3, stride))
        self.branch3 = nn.Sequential(cna(c_in, r5, 1), cna(r5, b5, 5, stride))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride, 1), cna(c_in, bp, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def factorized_widths(c_out):
    """Four equal branches of c/4 (as Inception-v3's 17x17 module); each 1x1 reduce is 3/4 of its branch."""
    b = c_out // 4
    r = max(1, 3 * b // 4)
    return b, r, b, r, b, b


@register_op("inception_factorized", family="block", hparams=(
        HParam("n", 3, (3, 5, 7), doc="the factorized n x n (1 x n then n x 1)"),
        HParam("widths", (), doc="(1x1, nxn reduce, nxn, double reduce, double, pool proj); () = derived"),
        NORM, ACT))
class InceptionFactorized(nn.Module):
    """Inception-v3 module (Fig. 6, torchvision's InceptionC): n x n factorized into 1 x n then n x 1.

    Branches: 1x1 | 1x1 -> 1xn -> nx1 | 1x1 -> nx1 -> 1xn -> nx1 -> 1xn (the 5x5 replaced by two stacked n x n,
    each factorized; torchvision's order) | 3x3 avg-pool -> 1x1. Default widths: c_out/4 per branch, reduces 3/4
    of that (c_out divisible by 4). Strided, the 1x1 branch, the last conv of each factorized branch and the
    pool stride. With widths (192, c7, 192, c7, 192, 192) and n = 7 it is torchvision's InceptionC(c_in, c7).
    """

    def __init__(self, c_in, c_out, stride=1, n=3, widths=(), norm="bn", act="relu"):
        super().__init__()
        op = self.op_name
        check_kernel(op, n, "n")
        b1, r2, b2, r3, b3, bp = branch_widths(op, c_out, widths, factorized_widths, 4,
                                               ("1x1", "r_nxn", "nxn", "r_double", "double", "pool"))

        def cna(ci, co, k, s=1):
            return ConvNormAct(ci, co, k, s, norm=norm, act=act, op=op)

        self.branch1 = cna(c_in, b1, 1, stride)
        self.branch2 = nn.Sequential(cna(c_in, r2, 1), cna(r2, r2, (1, n)), cna(r2, b2, (n, 1), stride))
        self.branch3 = nn.Sequential(cna(c_in, r3, 1), cna(r3, r3, (n, 1)), cna(r3, r3, (1, n)),
                                     cna(r3, r3, (n, 1)), cna(r3, b3, (1, n), stride))
        self.branch4 = nn.Sequential(nn.AvgPool2d(3, stride, 1), cna(c_in, bp, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def separable(c_in, c_out, norm, act, first):
    """Xception's separable conv unit: act -> depthwise 3x3 -> pointwise 1x1 -> norm."""
    return nn.Sequential(
        make_act(act, inplace=not first),  # the first act sees the block input, which the shortcut still needs
        nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=norm in ("none", None)),
        make_norm(norm, c_out))


@register_op("xception", family="block", hparams=(NORM, ACT))
class XceptionBlock(nn.Module):
    """Xception block: three separable convs (ReLU-dw3x3-pw-BN), the first to c_out, with a residual.

    Strided, a 3x3 max-pool closes the main path; the shortcut is the identity, or a 1x1 strided conv + norm
    when the shape changes (Xception's entry flow).
    """

    def __init__(self, c_in, c_out, stride=1, norm="bn", act="relu"):
        super().__init__()
        self.sep1 = separable(c_in, c_out, norm, act, first=True)
        self.sep2 = separable(c_out, c_out, norm, act, first=False)
        self.sep3 = separable(c_out, c_out, norm, act, first=False)
        self.pool = nn.MaxPool2d(3, stride, 1) if stride > 1 else None
        self.skip = projection(c_in, c_out, stride, norm) if needs_projection(c_in, c_out, stride) else None

    def forward(self, x):
        out = self.sep3(self.sep2(self.sep1(x)))
        if self.pool is not None:
            out = self.pool(out)
        return out + (x if self.skip is None else self.skip(x))


class DenseLayer(nn.Module):
    """DenseNet-B layer: norm-act-1x1 (4 * growth) -> norm-act-3x3 (growth); torchvision's _DenseLayer names."""

    def __init__(self, c_in, growth, norm, act):
        super().__init__()
        self.norm1 = make_norm(norm, c_in)
        self.relu1 = make_act(act)
        self.conv1 = plain_conv(c_in, 4 * growth, 1, norm=norm)
        self.norm2 = make_norm(norm, 4 * growth)
        self.relu2 = make_act(act)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


@register_op("dense", family="block", hparams=(
        HParam("layers", 3, (2, 3, 4), short="l", doc="dense layers in the block"),
        HParam("growth", 12, (8, 12, 16, 32), short="gr", doc="channels each layer adds (k)"),
        NORM, ACT))
class DenseBlock(nn.Module):
    """DenseNet block: layers of BN-ReLU-1x1-BN-ReLU-3x3 each adding `growth` channels, then a 1x1 transition.

    The transition is BN-ReLU-1x1 to c_out; strided, a ceil-mode avg-pool follows it, as DenseNet's transitions.
    """

    def __init__(self, c_in, c_out, stride=1, layers=3, growth=12, norm="bn", act="relu"):
        super().__init__()
        op = self.op_name
        if layers < 1:
            raise op_error(op, f"layers={layers}", "is invalid", "integers >= 1 (2, 3, 4)")
        if growth < 1:
            raise op_error(op, f"growth={growth}", "is invalid", "integers >= 1 (8, 12, 16, 32)")
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth, norm, act) for i in range(layers))
        c = c_in + layers * growth
        # an nn.Sequential, not the dict-like torchvision transition, so that the pool can be absent
        self.transition = nn.Sequential(make_norm(norm, c), make_act(act), nn.Conv2d(c, c_out, 1, bias=False))
        self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else None

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        out = self.transition(torch.cat(features, 1))
        return out if self.pool is None else self.pool(out)
