"""Residual-family blocks: basic_residual, bottleneck, resnext, pyramid, vgg, skip."""
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ops import build_op
from op_checks import assert_same_block, build_error, check_monotone, check_op, conv_norm, n_params, randomize_norms


# ---------------------------------------------------------------- closed-form counts

def proj(ci, co, s, norm="bn"):
    return conv_norm(ci, co, 1, norm=norm) if s != 1 or ci != co else 0


def basic_params(ci, co, s, norm="bn"):
    return conv_norm(ci, co, 3, norm=norm) + conv_norm(co, co, 3, norm=norm) + proj(ci, co, s, norm)


def bottleneck_params(ci, co, s, width, groups=1, norm="bn"):
    return (conv_norm(ci, width, 1, norm=norm) + conv_norm(width, width, 3, groups, norm=norm)
            + conv_norm(width, co, 1, norm=norm) + proj(ci, co, s, norm))


def pyramid_params(ci, co):  # bn1 on the input, then 3x3-bn2, 3x3-bn3
    return 2 * ci + conv_norm(ci, co, 3) + conv_norm(co, co, 3)


CASES = [
    ("basic_residual", 8, 8, 1, basic_params(8, 8, 1), {}),
    ("basic_residual", 8, 16, 1, basic_params(8, 16, 1), {}),
    ("basic_residual", 8, 16, 2, basic_params(8, 16, 2), {}),
    ("basic_residual", 8, 8, 2, basic_params(8, 8, 2, "gn"), {"norm": "gn", "act": "silu"}),
    ("basic_residual", 8, 16, 2, basic_params(8, 16, 2, "none"), {"norm": "none"}),
    ("bottleneck", 16, 16, 1, bottleneck_params(16, 16, 1, 4), {}),
    ("bottleneck", 8, 32, 2, bottleneck_params(8, 32, 2, 8), {}),
    ("bottleneck", 8, 32, 1, bottleneck_params(8, 32, 1, 12), {"width": 12}),
    ("bottleneck", 8, 32, 2, bottleneck_params(8, 32, 2, 8, norm="none"), {"norm": "none"}),
    # resnext width = int(c_out // 4 * base_width / 64) * cardinality
    ("resnext", 32, 32, 1, bottleneck_params(32, 32, 1, 2 * 8, 8), {"cardinality": 8, "base_width": 16}),
    ("resnext", 16, 64, 2, bottleneck_params(16, 64, 2, 4 * 8, 8), {"cardinality": 8, "base_width": 16}),
    ("resnext", 16, 64, 2, bottleneck_params(16, 64, 2, 1 * 16, 16), {"cardinality": 16, "base_width": 4}),
    ("pyramid", 8, 8, 1, pyramid_params(8, 8), {}),
    ("pyramid", 8, 12, 1, pyramid_params(8, 12), {}),
    ("pyramid", 8, 12, 2, pyramid_params(8, 12), {}),
    ("vgg", 4, 8, 1, conv_norm(4, 8, 3) + conv_norm(8, 8, 3), {}),
    ("vgg", 4, 8, 2, conv_norm(4, 8, 3) + 2 * conv_norm(8, 8, 3), {"layers": 3}),
    ("vgg", 4, 8, 2, conv_norm(4, 8, 3, norm="none"), {"layers": 1, "norm": "none", "act": "relu6"}),
    ("skip", 8, 8, 1, 0, {}),
    ("skip", 8, 8, 2, conv_norm(8, 8, 1), {}),
    ("skip", 8, 16, 1, conv_norm(8, 16, 1), {}),
    ("skip", 8, 16, 2, conv_norm(8, 16, 1), {}),
]


@pytest.mark.parametrize("name,c_in,c_out,stride,params,hp", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-s{c[3]}-{c[5]}" for c in CASES])
def test_block_contract(name, c_in, c_out, stride, params, hp):
    check_op(name, c_in, c_out, stride, params, **hp)


def test_skip_is_identity_when_shapes_allow():
    m = build_op("skip", 8, 8, 1)
    x = torch.randn(1, 8, 5, 5)
    assert m(x) is x


def test_pyramid_shortcut_zero_pads_new_channels():
    m = build_op("pyramid", 4, 6, 2).eval()
    for p in m.bn3.parameters():  # residual branch output := bn3's bias = 0, weight = 0
        p.data.zero_()
    x = torch.randn(1, 4, 5, 5)
    y = m(x)
    torch.testing.assert_close(y[:, :4], nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True))
    assert torch.all(y[:, 4:] == 0)


@pytest.mark.parametrize("name,hp", [("basic_residual", {}), ("bottleneck", {}), ("pyramid", {}), ("vgg", {}),
                                     ("skip", {}), ("resnext", {"cardinality": 8, "base_width": 16})])
def test_params_non_decreasing_in_channels(name, hp):
    for stride in (1, 2):
        check_monotone(build_op(name, 16, 32, stride, **hp), build_op(name, 32, 64, stride, **hp))
        check_monotone(build_op(name, 32, 32, stride, **hp), build_op(name, 32, 64, stride, **hp))


@pytest.mark.parametrize("name,c_in,c_out,stride,hp,message", [
    ("bottleneck", 8, 2, 1, {}, "op 'bottleneck': c_out=2 leaves no inner width"),
    ("bottleneck", 8, 16, 1, {"width": -1}, "op 'bottleneck': width=-1 is invalid"),
    ("resnext", 16, 32, 1, {"cardinality": 8, "base_width": 4}, "op 'resnext': base_width=4 gives"),
    ("resnext", 16, 32, 1, {"cardinality": 0}, "op 'resnext': cardinality=0 is invalid"),
    ("pyramid", 16, 8, 1, {}, "op 'pyramid': c_out=8 is below c_in=16"),
    ("vgg", 8, 8, 1, {"layers": 0}, "op 'vgg': layers=0 is invalid"),
])
def test_bad_arguments(name, c_in, c_out, stride, hp, message):
    error = build_error(name, c_in, c_out, stride, **hp)
    assert message in error
    assert "valid:" in error


def test_resnext_error_names_the_base_width_that_works():
    with pytest.raises(ValueError, match=r"valid: base_width >= 8 at this c_out"):
        build_op("resnext", 16, 32, 1, cardinality=8, base_width=4)


# ---------------------------------------------------------------- torchvision equivalence

tv = torchvision.models.resnet


def tv_downsample(ci, co, s):
    return nn.Sequential(tv.conv1x1(ci, co, s), nn.BatchNorm2d(co)) if s != 1 or ci != co else None


@pytest.mark.parametrize("ci,planes,s", [(64, 64, 1), (64, 128, 2), (32, 64, 1), (128, 128, 2)])
def test_basic_residual_is_torchvision_basicblock(ci, planes, s):
    ref = tv.BasicBlock(ci, planes, s, tv_downsample(ci, planes, s))
    assert_same_block(build_op("basic_residual", ci, planes, s), ref, ci)


@pytest.mark.parametrize("ci,planes,s,groups,bw", [
    (64, 64, 1, 1, 64), (256, 128, 2, 1, 64), (256, 64, 1, 1, 64),  # ResNet-50
    (64, 64, 1, 32, 4), (256, 128, 2, 32, 4), (512, 128, 1, 32, 4),  # ResNeXt-50 32x4d
    (64, 32, 2, 8, 16),
])
def test_bottleneck_and_resnext_are_torchvision_bottleneck(ci, planes, s, groups, bw):
    co = planes * 4
    ref = tv.Bottleneck(ci, planes, s, tv_downsample(ci, co, s), groups=groups, base_width=bw)
    ours = (build_op("bottleneck", ci, co, s) if groups == 1 and bw == 64
            else build_op("resnext", ci, co, s, cardinality=groups, base_width=bw))
    assert_same_block(ours, ref, ci, size=7)


class SplitTransformMerge(nn.Module):
    """ResNeXt form (a): C parallel paths 1x1 (d) -> 3x3 (d) -> 1x1 (c_out), summed, then BN, shortcut, ReLU."""

    def __init__(self, ci, co, stride, cardinality, d):
        super().__init__()
        self.paths = nn.ModuleList(nn.Sequential(
            nn.Conv2d(ci, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(),
            nn.Conv2d(d, d, 3, stride, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(),
            nn.Conv2d(d, co, 1, bias=False)) for _ in range(cardinality))
        self.bn3 = nn.BatchNorm2d(co)
        self.downsample = tv_downsample(ci, co, stride)

    def forward(self, x):
        out = self.bn3(sum(p(x) for p in self.paths))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    def load_from_grouped(self, m):
        """Path i takes group i's slice of the grouped block's weights and norm statistics."""
        d = m.group_width
        for i, p in enumerate(self.paths):
            sl = slice(i * d, (i + 1) * d)
            p[0].weight.data = m.conv1.weight.data[sl].clone()
            p[3].weight.data = m.conv2.weight.data[sl].clone()
            p[6].weight.data = m.conv3.weight.data[:, sl].clone()
            for bn, src in ((p[1], m.bn1), (p[4], m.bn2)):
                for k in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn, k).data = getattr(src, k).data[sl].clone()
        self.bn3.load_state_dict(m.bn3.state_dict())
        if self.downsample is not None:
            self.downsample.load_state_dict(m.downsample.state_dict())


@pytest.mark.parametrize("ci,co,stride,cardinality,bw", [(64, 128, 1, 4, 32), (32, 64, 2, 8, 32), (64, 64, 1, 8, 16)])
def test_resnext_grouped_form_equals_split_transform_merge(ci, co, stride, cardinality, bw):
    grouped = build_op("resnext", ci, co, stride, cardinality=cardinality, base_width=bw)
    d = grouped.group_width
    assert d == int(co // 4 * bw / 64)
    split = SplitTransformMerge(ci, co, stride, cardinality, d)
    # parameters: form (a) C * (ci*d + 2d + 9d^2 + 2d + d*co) + 2co + projection == form (c)
    per_path = ci * d + 2 * d + 9 * d * d + 2 * d + d * co
    expected = cardinality * per_path + 2 * co + proj(ci, co, stride)
    assert n_params(grouped) == n_params(split) == expected
    x = torch.randn(2, ci, 8, 8)
    flops = []
    for m in (grouped, split):
        with FlopCounterMode(display=False) as counter:
            m(x)
        flops.append(counter.get_total_flops())
    assert flops[0] == flops[1] > 0
    randomize_norms(grouped)
    split.load_from_grouped(grouped)
    with torch.no_grad():
        torch.testing.assert_close(split.eval()(x), grouped.eval()(x), atol=1e-4, rtol=1e-4)
