"""Presets reproduce torchvision's models: parameters, MACs, state-dict layout and output shapes."""
import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from search_spaces import build_model
from search_spaces.arch import Arch
from search_spaces.presets import load_preset, preset_names

TORCHVISION = ["mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "resnet18", "resnext50_32x4d"]


def macs(model, size, channels=3):
    """Multiply-accumulates of one forward at batch 1 (FlopCounterMode's FLOPs / 2), and the output."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model.eval()(torch.randn(1, channels, size, size))
    return counter.get_total_flops() // 2, out


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", TORCHVISION)
def test_preset_equals_torchvision(name):
    arch = load_preset(name)
    ours, theirs = build_model(arch), getattr(torchvision.models, name)(weights=None)
    assert (arch.input_size, arch.num_classes) == (224, 1000)
    assert n_params(ours) == n_params(theirs)
    (ours_macs, out), (their_macs, _) = macs(ours, 224), macs(theirs, 224)
    assert ours_macs == their_macs
    assert out.shape == (1, 1000)
    # the same tensors in the same order: torchvision's weights map onto the preset one to one ...
    assert [v.shape for v in ours.state_dict().values()] == [v.shape for v in theirs.state_dict().values()]
    # ... and then the two compute the same function (random BN statistics, so that every tensor counts)
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(dict(zip(ours.state_dict(), theirs.state_dict().values())))
    if name == "mobilenet_v3_small":  # torchvision's BN eps there is 1e-3 (noted in the preset's YAML)
        for m in ours.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eps = 1e-3
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours.eval()(x) - theirs.eval()(x)).abs().max().item() <= 1e-6


def test_preset_names_and_round_trip():
    names = preset_names()
    assert set(TORCHVISION) | {"mobilenet_v2_digits"} <= set(names)
    for name in names:
        arch = load_preset(name)
        assert Arch.from_yaml(arch.to_yaml()) == arch
        assert Arch.from_string(arch.to_string()) == arch


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'mobilenetv2'; did you mean 'mobilenet_v2'\? valid: .*resnet18"):
        load_preset("mobilenetv2")
    with pytest.raises(ValueError, match=r"preset 'resnet18': num_classes=0 is invalid; valid: an integer >= 1"):
        load_preset("resnet18", num_classes=0)
    with pytest.raises(ValueError, match=r"width_mult=-1 is invalid"):
        load_preset("resnet18", width_mult=-1)


def test_width_mult_is_torchvisions_mobilenet_v2_rule():
    ours = build_model(load_preset("mobilenet_v2", width_mult=0.5))
    assert n_params(ours) == n_params(torchvision.models.mobilenet_v2(weights=None, width_mult=0.5))


@pytest.mark.parametrize("size, total_stride", [(32, 8), (64, 16), (128, 32), (224, 32)])
def test_small_inputs_reduce_the_earliest_strides(size, total_stride):
    arch = load_preset("resnet18", input_size=size, num_classes=10, in_channels=1)
    strides = [layer.stride for layer in arch.layers()]
    assert arch.input_size == size and torch.tensor(strides).prod().item() == total_stride
    assert [layer.stride for layer in arch.stem] == ([1, 1] if total_stride == 8 else [1, 2] if total_stride == 16
                                                     else [2, 2])  # the stem conv, then its pool, go first


def test_reduced_preset_runs_at_its_size():
    model = build_model(load_preset("resnet18", input_size=32, num_classes=10, in_channels=1, width_mult=0.25)).eval()
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 1, 32, 32)).shape[-2:] == (4, 4)
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_digits_baseline():
    arch = load_preset("mobilenet_v2_digits")
    assert (arch.in_channels, arch.input_size, arch.num_classes) == (1, 32, 10)
    assert arch.stem[0].c_out == 16 and arch.stem[0].stride == 1  # width 0.5, CIFAR-style stem
    assert arch == load_preset("mobilenet_v2", num_classes=10, input_size=32, in_channels=1, width_mult=0.5)
    n_macs, out = macs(build_model(arch), 32, channels=1)
    assert out.shape == (1, 10) and n_macs < 50e6
    assert load_preset("mobilenet_v2_digits", num_classes=3).num_classes == 3


@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "mobilenet_v3_small", "resnext50_32x4d"])
def test_every_preset_builds_at_16x16(name):
    # ShuffleNet v2's downsampling unit changes channels, so it cannot lose its stride: the stem's go instead
    arch = load_preset(name, input_size=16, num_classes=10, in_channels=1, width_mult=0.25)
    with torch.device("meta"):
        model = build_model(arch)
    assert model(torch.empty(1, 1, 16, 16, device="meta")).shape == (1, 10)
    if name.startswith("shufflenet"):
        assert [layer.stride for layer in arch.stem] == [1, 1]
        assert all(s[0].stride == 2 for s in arch.stages)
