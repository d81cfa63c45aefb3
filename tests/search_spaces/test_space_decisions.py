"""decisions() / decode() / encode() / sample() / size() / smallest() / largest()."""
import itertools
import math
import random

import numpy as np
import pytest

import search_spaces
from search_spaces import SpaceError

TINY = {"name": "tiny", "input": {"channels": 2, "size": 8}, "num_classes": 3,
        "stem": [{"ops": {"none": {}, "stn": {}}}, {"op": "conv", "c_out": [4, 8]}],
        "stages": [{"depth": [1, 2], "width": [4, 8], "ops": {"conv": {"kernel": [1, 3]}, "skip": {}},
                    "plugins": ["none", "se"]},
                   {"depth": {"min": 1, "max": 2}, "width": 8, "stride": 2, "downsample": ["stride", "blurpool"],
                    "ops": ["conv", "dw_separable"]}],
        "head": [{"ops": {"none": {}, "pointwise": {}}, "c_out": [16, 32]}]}


def brute_force_size(space) -> int:
    """Distinct architectures among all assignments."""
    ds = space.decisions()
    return len({space.decode(dict(zip([d.key for d in ds], combo))) for combo in
                itertools.product(*(d.choices for d in ds))})


def test_size_is_the_number_of_distinct_architectures():
    space = search_spaces.load(TINY, **{"stem.1.c_out": 8, "stages.0.width": 4})  # fewer assignments to try
    assert space.size() == brute_force_size(space)


def test_size_is_the_product_of_choices_accounting_for_depth(spaces, space_name):
    space = spaces[space_name]
    ds = {d.key: len(d.choices) for d in space.decisions()}
    expected = 1
    for pos in space.positions():
        if pos.section != "stage":
            real = sum(1 for v in pos.candidates if not v.is_none)
            none = len(pos.candidates) - real
            expected *= real * ds.get(f"{pos.key}.width", 1) * ds.get(f"{pos.key}.plugin", 1) + none
    for k in range(len(space.spec.stages)):
        per = [ds.get(f"s{k}.l{j}.op", 1) * ds.get(f"s{k}.l{j}.plugin", 1)
               for j in range(max(space.spec.stages[k].depths))]
        expected *= ds.get(f"s{k}.width", 1) * ds.get(f"s{k}.downsample", 1) * sum(
            math.prod(per[:d]) for d in space.spec.stages[k].depths)
    for f in ("upsample", "context", "fusion", "stn", "channels"):
        expected *= ds.get(f"decoder.{f}", 1)
    assert space.size() == expected


def test_decision_keys_are_readable():
    space = search_spaces.load(TINY)
    assert [d.key for d in space.decisions()] == [
        "stem.l0.op", "stem.l1.width", "s0.depth", "s0.width", "s0.l0.op", "s0.l0.plugin", "s0.l1.op",
        "s0.l1.plugin", "s1.depth", "s1.downsample", "s1.l0.op", "s1.l1.op", "head.l0.op", "head.l0.width"]
    ops = dict((d.key, d.choices) for d in space.decisions())["s0.l0.op"]
    assert ops == ("conv_k1", "conv_k3", "skip")


def test_decode_builds_the_arch():
    space = search_spaces.load(TINY)
    a = {"stem.l0.op": "stn", "stem.l1.width": 8, "s0.depth": 1, "s0.width": 4, "s0.l0.op": "conv_k1",
         "s0.l0.plugin": "se", "s1.depth": 2, "s1.downsample": "blurpool", "s1.l0.op": "dw_separable",
         "s1.l1.op": "conv", "head.l0.op": "none", "head.l0.width": 16}
    arch = space.decode(a)
    assert arch.to_string() == ("in2x8;space:tiny;stem:stn_c2,conv_c8;s:conv_c4_k1+se_c4;"
                                "s:dw_separable_c8_s2_ds=blurpool,conv_c8;cls:n3_h-_a=relu_d0.0")
    assert space.encode(arch) == {k: v for k, v in a.items() if k not in ("s0.l1.op", "s0.l1.plugin",
                                                                           "head.l0.width")}


def test_decode_errors_name_the_key_and_the_choices():
    space = search_spaces.load(TINY)
    full = space.sample_assignment(0)
    for bad, pattern in [
        ({k: v for k, v in full.items() if k != "s0.width"}, r"^decode: missing decision 's0.width'; choices: 4, 8$"),
        ({**full, "s0.width": 5}, r"^decode: s0.width=5 is not a choice; choices: 4, 8$"),
        ({**full, "s0.l0.op": "conv_k5"}, r"^decode: s0.l0.op='conv_k5' is not a choice; choices: conv_k1, conv_k3, skip$"),
        ({**full, "s0.widht": 4}, r"^decode: unknown decision 's0.widht'; did you mean 's0.width'\?"),
    ]:
        with pytest.raises(SpaceError, match=pattern):
            space.decode(bad)


def test_decode_accepts_values_as_text_and_ignores_inactive_layers():
    space = search_spaces.load(TINY)
    a = space.sample_assignment(3)
    text = {k: str(v) for k, v in a.items()}
    assert space.decode(text) == space.decode(a)
    a["s1.depth"] = 1
    a.pop("s1.l1.op")
    assert len(space.decode(a).stages[1]) == 1


def test_sample_is_seeded_and_accepts_every_rng_kind(spaces, space_name):
    space = spaces[space_name]
    assert space.sample(5) == space.sample(random.Random(5)) == space.sample(5)
    assert space.sample(np.random.default_rng(1)) == space.sample(np.random.default_rng(1))
    archs = {space.sample(seed) for seed in range(10)}
    assert len(archs) > 5
    for arch in archs:
        assert space.decode(space.encode(arch)) == arch


def test_smallest_and_largest_bound_random_samples(spaces, space_name):
    space = spaces[space_name]
    small, large = space.smallest(), space.largest()
    lo, hi = space.params(small), space.params(large)
    assert lo < hi
    for seed in range(20):
        assert lo <= space.params(space.sample(seed)) <= hi
    assert small.space == large.space == space_name


def test_params_equals_the_built_module(spaces):
    space = spaces["mobile"]
    for seed in range(3):
        arch = space.sample(seed)
        assert space.params(arch) == sum(p.numel() for p in space.build(arch).parameters())


def test_encode_rejects_foreign_archs(spaces):
    arch = spaces["resnet"].sample(0)
    with pytest.raises(SpaceError, match=r"^arch: "):
        spaces["mobile"].encode(arch)
