import random

import pytest
import torch
from torch import nn

import search_spaces
from nas.supernet.sampling import FairSampler, SandwichSampler, UniformSampler, make_sampler
from nas.supernet.supernet import Supernet, SupernetError
from train_helpers import space_file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return search_spaces.load(space_file(tmp_path_factory.mktemp("space")))


@pytest.mark.parametrize("name", ["mobile", "all_ops", "resnet"])
def test_extract_equals_supernet_path(name):
    """20 random paths per shipped classification space: extract(arch) in eval mode == supernet(x, arch)."""
    torch.manual_seed(0)
    space = search_spaces.load(name, input_size=16)
    supernet = Supernet(space)
    rng = random.Random(0)
    x = torch.randn(2, space.spec.in_channels, 16, 16)
    worst = 0.0
    for _ in range(20):
        arch = space.sample(rng)
        supernet.train()
        supernet(x, arch).square().mean().backward()  # train mode: BN batch statistics, gradients flow
        supernet.eval()
        model = supernet.extract(arch).eval()
        assert type(model) is type(space.build(arch))
        with torch.no_grad():
            worst = max(worst, float((supernet(x, arch) - model(x)).abs().max()))
    assert worst <= 1e-5
    used = [p for p in supernet.parameters() if p.grad is not None]
    assert used and all(torch.isfinite(p.grad).all() for p in used)


def test_elastic_variants_share_one_sliced_weight(tiny):
    supernet = Supernet(tiny)
    groups = supernet.ops["s0_l0"]
    assert sorted(groups) == ["conv_s1", "mbconv_s1"]  # 4 mbconv variants (k x e) share one store, so do 2 convs
    assert sorted(supernet.ops["s1_l0"]) == ["dw_separable_s1", "dw_separable_s2", "mbconv_s1", "mbconv_s2"]
    store = groups["mbconv_s1"]
    dw = getattr(store, "dw__0__weight")
    assert dw.shape == (12 * 3, 1, 5, 5)  # widest hidden = widest c_in (12) x expand 3, largest kernel 5
    arch = tiny.decode({**{d.key: d.choices[0] for d in tiny.decisions()}, "s0.width": 16,
                        "s0.l0.op": "mbconv_k3_e3"})
    model = supernet.extract(arch)
    small = model.stages[0][0][0].dw[0].weight
    c_in = arch.stem[0].c_out
    assert small.shape == (c_in * 3, 1, 3, 3)
    assert torch.equal(small, dw[:c_in * 3, :, 1:4, 1:4])  # leading channels, centre crop of the kernel


def test_bn_statistics_update_the_shared_buffers(tiny):
    torch.manual_seed(0)
    supernet = Supernet(tiny).train()
    arch = tiny.sample(random.Random(3))
    reference = supernet.extract(arch).train()
    x = torch.randn(4, 1, 8, 8)
    supernet(x, arch)
    reference(x)
    after = supernet.extract(arch)
    bns = [(n, m) for n, m in reference.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for name, bn in bns:
        got = after.get_submodule(name)
        assert torch.allclose(got.running_mean, bn.running_mean, atol=1e-6), name
        assert torch.allclose(got.running_var, bn.running_var, atol=1e-6), name
        assert int(got.num_batches_tracked) >= 1


def test_every_candidate_binds_within_its_shared_tensors(tiny):
    assert Supernet(tiny).check() > 20


def test_non_monotone_op_is_named(tmp_path):
    from ops.registry import _REGISTRY, HParam, register_op

    @register_op("shrinking_conv_test", family="conv", hparams=(HParam("kernel", 3, (3, 5), elastic=True),))
    class ShrinkingConv(nn.Conv2d):  # a larger `kernel` builds a smaller weight: not monotone
        def __init__(self, c_in, c_out, stride=1, kernel=3):
            super().__init__(c_in, c_out, 9 - 2 * kernel + 2, stride, padding=(9 - 2 * kernel + 2) // 2)

    try:
        path = tmp_path / "bad.yaml"
        path.write_text("name: bad\ninput: {channels: 1, size: 8}\nnum_classes: 10\nstages:\n"
                        "  - {depth: 1, width: 8, stride: 1, ops: {shrinking_conv_test: {kernel: [3, 5]}}}\n"
                        "classifier: {}\n")
        supernet = Supernet(search_spaces.load(str(path)))
        with pytest.raises(SupernetError, match=r"shrinking_conv_test.*kernel=3.*larger than.*kernel=5.*not monotone"):
            supernet.check()
    finally:
        _REGISTRY.pop("shrinking_conv_test")


def test_dense_prediction_space_is_refused():
    with pytest.raises(SupernetError, match="dense-prediction"):
        Supernet(search_spaces.load("dense_prediction"))


def test_samplers_are_functions_of_seed_and_step(tiny):
    for cls in (UniformSampler, FairSampler, SandwichSampler):
        a, b = cls(tiny, seed=7), cls(tiny, seed=7)
        assert [a.paths(s) for s in range(5)] == [b.paths(s) for s in range(5)]  # what every DDP rank draws
        assert a.paths(3) != cls(tiny, seed=8).paths(3) or cls is SandwichSampler
    assert len(UniformSampler(tiny).paths(0)) == 1


def test_fair_sampler_visits_each_choice_once_per_round(tiny):
    sampler = FairSampler(tiny, seed=1)
    for i, d in enumerate(sampler.decisions):
        n = len(d.choices)
        for r in range(3):
            seen = [sampler.choice(i, s) for s in range(r * n, (r + 1) * n)]
            assert sorted(map(str, seen)) == sorted(map(str, d.choices))
    sampler.paths(5)  # decodes


def test_sandwich_sampler_trains_largest_smallest_and_one_random(tiny):
    paths = make_sampler("sandwich", tiny, seed=0).paths(4)
    assert paths[0] == tiny.largest() and paths[1] == tiny.smallest() and len(paths) == 3
    with pytest.raises(ValueError, match="valid: uniform, fair, sandwich"):
        make_sampler("greedy", tiny)


def test_training_one_path_equals_training_its_extracted_subnet(tiny):
    """Plain SGD on one path moves exactly the slices its subnet would move (gradients reach the shared tensors
    through the cached views, also after load_state_dict(assign=True) replaced them)."""
    torch.manual_seed(0)
    supernet = Supernet(tiny).train()
    arch = tiny.sample(random.Random(5))
    subnet = supernet.extract(arch).train()
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    for step in range(3):
        if step == 2:
            supernet.load_state_dict({k: v.clone() for k, v in supernet.state_dict().items()}, assign=True)
        for net, args in ((supernet, (x, arch)), (subnet, (x,))):
            opt = torch.optim.SGD(net.parameters(), lr=0.1)
            opt.zero_grad()
            nn.functional.cross_entropy(net(*args), y).backward()
            opt.step()
    trained = supernet.extract(arch)
    for (name, a), b in zip(subnet.state_dict().items(), trained.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
