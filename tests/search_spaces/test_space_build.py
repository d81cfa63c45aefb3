"""Sampled architectures build and run; they round-trip through dict, YAML and the compact string."""
import pytest
import torch

from search_spaces import Arch


def test_sampled_archs_build_and_run(spaces, space_name):
    space = spaces[space_name]
    torch.manual_seed(0)
    for seed in range(5):
        arch = space.sample(seed)
        model = space.build(arch).eval()
        x = torch.randn(2, space.in_channels, space.input_size, space.input_size)
        with torch.no_grad():
            y = model(x)
        if space.task == "classification":
            assert y.shape == (2, space.num_classes), arch.to_string()
        else:
            assert y.shape == (2, space.num_classes, space.input_size, space.input_size), arch.to_string()
        assert torch.isfinite(y).all()


def test_smallest_and_largest_build_and_run(spaces, space_name, encoder):
    space = spaces[space_name]
    for arch in (space.smallest(), space.largest()):
        with torch.no_grad():
            encoder(arch).eval()(torch.randn(1, space.in_channels, space.input_size, space.input_size))


def test_archs_round_trip(spaces, space_name):
    space = spaces[space_name]
    for seed in range(20):
        a = space.sample(seed)
        assert Arch.from_dict(a.to_dict()) == a
        assert Arch.from_yaml(a.to_yaml()) == a
        assert Arch.from_string(a.to_string()) == a, a.to_string()
        assert hash(Arch.from_string(a.to_string())) == hash(a)


def test_every_candidate_of_all_ops_runs_at_each_of_its_shapes():
    """check="forward": each candidate at each position runs once and gives the expected output shape."""
    import search_spaces

    space = search_spaces.load("all_ops", check="forward")
    assert space.size() == search_spaces.load("all_ops").size()
