"""bench/supernet_mixing.py: each scenario's sampler varies exactly what the scenario names (no training here)."""
import pytest
from bench_helpers import load_bench

from nas.spec.resolve import load_space, load_splits
from nas.spec.sections import load_spec


@pytest.fixture(scope="module")
def bench():
    return load_bench("supernet_mixing")


@pytest.fixture(scope="module")
def space():
    spec = load_spec({"name": "t", "data": {"name": "digits_distorted", "input_size": 8}, "space": {"name": "resnet"}})
    return load_space(spec, load_splits(spec))


def ops_of(arch):
    return [layer.op for stage in arch.stages for layer in stage]


def test_fixed_is_one_architecture_and_all_varies(bench, space):
    fixed = bench.ScenarioSampler(space, "fixed", 0)
    assert len({fixed.path(s).to_string() for s in range(20)}) == 1
    assert set(ops_of(fixed.path(0))) == {fixed.types[0]}
    every = bench.ScenarioSampler(space, "all", 0)
    assert len({every.path(s).to_string() for s in range(20)}) == 20


def test_mixing_scenarios_keep_to_their_op_types(bench, space):
    mixed = bench.ScenarioSampler(space, "two-types-mixed", 0)
    per_net = bench.ScenarioSampler(space, "two-types-per-net", 0)
    mixed_ops = [ops_of(mixed.path(s)) for s in range(30)]
    assert all(set(ops) <= set(mixed.types) for ops in mixed_ops)
    assert any(len(set(ops)) == 2 for ops in mixed_ops)  # types mix within one network
    per_net_ops = [ops_of(per_net.path(s)) for s in range(30)]
    assert all(len(set(ops)) == 1 for ops in per_net_ops)
    assert {ops[0] for ops in per_net_ops} == set(per_net.types)


def test_one_position_and_anchor_change_at_most_one_op(bench, space):
    for name in ("one-position", "anchor-1"):
        sampler = bench.ScenarioSampler(space, name, 0)
        for s in range(30):
            ops = ops_of(sampler.path(s))
            assert sum(o != sampler.types[0] for o in ops) <= 1, (name, ops)


def test_zero_init_zeroes_the_last_norm_of_residual_branches(bench, space):
    from nas.supernet.supernet import Supernet

    net = Supernet(space)
    assert bench.zero_init_residual_branches(net) > 0
    basic = next(s for position in net.ops.values() for s in position.values()
                 if s.where.startswith("'basic_residual'"))
    assert float(basic.bn2__weight.detach().abs().sum()) == 0.0
    assert float(basic.bn1__weight.detach().abs().sum()) > 0.0
