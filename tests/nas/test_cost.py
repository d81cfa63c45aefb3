import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from nas.cost import Cost, count, count_arch, count_op, count_with_output, op_example
from ops import build_op
from search_spaces import Arch, Classifier, Layer

F32 = 4


def conv_macs(k, c_in, c_out, h, w, groups=1):
    return k * k * (c_in // groups) * c_out * h * w


@pytest.mark.parametrize("name,c_in,c_out,stride,hp", [("mbconv", 16, 24, 2, {}),
                                                      ("deform_conv", 8, 8, 1, {"modulated": True}),
                                                      ("dense", 8, 16, 1, {})])
def test_params_are_the_parameter_count(name, c_in, c_out, stride, hp):
    module = build_op(name, c_in, c_out, stride, **hp)
    assert count(module, (1, c_in, 12, 12)).params == sum(p.numel() for p in module.parameters())


def test_params_of_a_sequential():
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 5))
    assert count(seq, (1, 3, 8, 8)).params == 3 * 8 * 9 + 8 + 16 + 8 * 5 + 5


@pytest.mark.parametrize("k,stride,groups,bias", [(3, 1, 1, False), (5, 2, 1, True), (3, 1, 4, False), (1, 1, 1, True)])
def test_conv_macs_are_exact(k, stride, groups, bias):
    conv = nn.Conv2d(8, 16, k, stride, padding=k // 2, groups=groups, bias=bias)
    h_out = (14 + 2 * (k // 2) - k) // stride + 1
    assert count(conv, (1, 8, 14, 14)).macs == conv_macs(k, 8, 16, h_out, h_out, groups)


def test_registered_conv_and_batch():
    cost = count(build_op("conv", 8, 16, kernel=3), (2, 8, 10, 10))
    assert cost.macs == 2 * conv_macs(3, 8, 16, 10, 10)


def test_linear_macs():
    assert count(nn.Linear(32, 10), (4, 32)).macs == 4 * 32 * 10
    assert count(nn.Linear(32, 10, bias=False), (1, 32)).macs == 320


def deform_formula(c_in, c_out, k, h, w, mask):
    """Our documented formula for torchvision::deform_conv2d: conv part + 4 MACs per sampled value
    (bilinear) + 1 per sampled value for the DCNv2 mask."""
    sampled = c_in * k * k * h * w
    return conv_macs(k, c_in, c_out, h, w) + 4 * sampled + (sampled if mask else 0)


def test_deform_conv2d_counted_by_formula():
    x, w = torch.randn(1, 8, 10, 10), torch.randn(16, 8, 3, 3)
    offset, mask = torch.randn(1, 18, 10, 10), torch.rand(1, 9, 10, 10)

    class Plain(nn.Module):
        def forward(self, x):
            return torchvision.ops.deform_conv2d(x, offset, w, padding=1)

    class Modulated(nn.Module):
        def forward(self, x):
            return torchvision.ops.deform_conv2d(x, offset, w, padding=1, mask=mask)

    assert count(Plain(), (1, 8, 10, 10)).macs == deform_formula(8, 16, 3, 10, 10, False)
    assert count(Modulated(), (1, 8, 10, 10)).macs == deform_formula(8, 16, 3, 10, 10, True)


@pytest.mark.parametrize("modulated", [False, True])
def test_deform_conv_op_counts_more_than_its_plain_conv(modulated):
    c, k, s = 16, 3, 12
    deform = count_op("deform_conv", c, c, s, kernel=k, modulated=modulated).macs
    plain = count_op("conv", c, c, s, kernel=k).macs
    assert plain == conv_macs(k, c, c, s, s)
    offset_conv = conv_macs(k, c, 2 * k * k, s, s)  # the parallel conv that predicts the offsets
    mask_conv = conv_macs(k, c, k * k, s, s) if modulated else 0
    assert deform == offset_conv + mask_conv + deform_formula(c, c, k, s, s, modulated)
    assert deform > plain


def test_grid_sample_counted_for_stn():
    stn = build_op("stn", 4, 4)
    c, h = 4, 16
    whole = count(stn, (1, c, h, h)).macs
    localisation = count(nn.Sequential(stn.localization, stn.theta), (1, c, h, h)).macs
    affine_grid = 3 * (1 * h * h * 2)  # theta (2x3) times (x, y, 1) per grid point
    bilinear = 4 * c * h * h  # 4 MACs per output value per channel
    assert localisation > 0
    assert whole == localisation + affine_grid + bilinear


def test_bilinear_resize_counted_nearest_not():
    class Up(nn.Module):
        def __init__(self, mode):
            super().__init__()
            self.mode = mode

        def forward(self, x):
            return F.interpolate(x, scale_factor=2, mode=self.mode)

    assert count(Up("bilinear"), (1, 3, 5, 5)).macs == 4 * 3 * 10 * 10
    assert count(Up("nearest"), (1, 3, 5, 5)).macs == 0


def test_involution_core_is_counted():
    c, k, s = 16, 3, 12
    module, x = op_example("involution", c, c, s, kernel=k)
    counted = count(module, inputs=x).macs
    reduce_span = conv_macs(1, c, c // 4, s, s) + conv_macs(1, c // 4, k * k, s, s)
    assert counted == reduce_span + c * k * k * s * s


def test_memory_traffic_of_a_conv_is_input_weight_output_bytes():
    conv = nn.Conv2d(8, 16, 3, padding=1, bias=False)
    cost = count(conv, (1, 8, 10, 10))
    inp, weight, out = 8 * 100, 16 * 8 * 9, 16 * 100
    assert cost.memory_traffic_bytes == (inp + weight + out) * F32
    assert cost.activation_bytes == out * F32
    assert cost.peak_activation_bytes == (inp + out) * F32

    with_bias = count(nn.Conv2d(8, 16, 3, padding=1), (1, 8, 10, 10))
    assert with_bias.memory_traffic_bytes == (inp + weight + 16 + out) * F32

    double = count(nn.Conv2d(8, 16, 3, padding=1, bias=False).double(), (1, 8, 10, 10))
    assert double.memory_traffic_bytes == (inp + weight + out) * 8  # the model's dtype, not float32


def test_memory_traffic_equals_leaf_module_sum():
    """For leaf modules that each run one tensor op, traffic = sum of input + weights + output bytes."""
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                          nn.Conv2d(8, 8, 1))
    shape = (1, 4, 9, 9)
    expected = 0
    x = torch.randn(shape)
    model.eval()
    with torch.no_grad():
        for m in model:
            y = m(x.clone())
            weights = sum(t.numel() for t in list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()])
            expected += (x.numel() + weights + y.numel()) * F32
            x = y
    cost = count(model, shape)
    assert cost.memory_traffic_bytes == expected
    # new tensors: conv, bn, conv outputs (the in-place relu allocates nothing)
    assert cost.activation_bytes == (8 * 81 * 3) * F32


def test_functional_ops_add_traffic():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1, bias=False)

        def forward(self, x):
            return x + self.conv(x)

    n = 4 * 36
    cost = count(Residual(), (1, 4, 6, 6))
    assert cost.memory_traffic_bytes == ((n + 16 + n) + (n + n + n)) * F32  # the conv, then the add


def test_multi_input_module_via_list():
    module, inputs = op_example("asff", 8, 8, 16, level=1)
    assert [tuple(t.shape[-2:]) for t in inputs] == [(32, 32), (16, 16), (8, 8)]
    cost, out = count_with_output(module, inputs=inputs)
    assert out.shape == (1, 8, 16, 16)
    assert cost == count(module, [tuple(t.shape) for t in inputs])
    assert cost.macs > 0 and cost.params == sum(p.numel() for p in module.parameters())


def test_count_restores_mode_and_needs_input():
    m = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
    m.train()
    count(m, (1, 3, 4, 4))
    assert m.training
    with pytest.raises(ValueError):
        count(m)
    assert isinstance(count(m, (1, 3, 4, 4)), Cost)


def test_count_arch_small_hand_made_arch():
    arch = Arch(stages=((Layer("conv", 8, hparams={"kernel": 3}), Layer("conv", 16, stride=2)),),
                classifier=Classifier(10), in_channels=3, input_size=16)
    cost = count_arch(arch)
    expected = conv_macs(3, 3, 8, 16, 16) + conv_macs(3, 8, 16, 8, 8) + 16 * 10
    assert cost.macs == expected
    from search_spaces import build_model

    assert cost.params == sum(p.numel() for p in build_model(arch).parameters())
    assert cost.memory_traffic_bytes > cost.activation_bytes > 0
