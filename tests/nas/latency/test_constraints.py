import itertools

import pytest

from nas.latency.predictor import Calibration, LatencyModel
from nas.latency.table import LatencyTable
from nas.latency.units import space_units
from nas.spec.schema import SpecError
from nas.latency.minimum import exact_minimum as minimum_achievable
from nas.search.constraints import Constraint, check_achievable
from nas.tasks import get_task


def every_arch(space):
    ds = space.decisions()
    for combo in itertools.product(*(d.choices for d in ds)):
        yield space.decode(dict(zip((d.key for d in ds), combo)))


def test_feasible_and_violation_follow_optunas_sign():
    c = Constraint("latency_ms", 2.0)
    assert c.feasible(1.5) and c.feasible(2.0) and not c.feasible(2.5)
    assert c.violation(1.0) < 0 and c.violation(2.0) == 0 and c.violation(3.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown constraint"):
        Constraint("flops", 1.0)
    with pytest.raises(ValueError, match="positive"):
        Constraint("params", -1)


def test_minimum_params_and_macs_are_exact(tiny):
    from nas.cost import count_arch

    archs = list({a.to_string(): a for a in every_arch(tiny)}.values())
    costs = [count_arch(a) for a in archs]
    assert minimum_achievable(tiny, "params") == min(c.params for c in costs)
    assert minimum_achievable(tiny, "macs") == min(c.macs for c in costs)
    assert minimum_achievable(tiny, "peak_activation_mb") == pytest.approx(
        min(c.peak_activation_bytes for c in costs) / 2 ** 20)


def test_minimum_latency_is_the_least_prediction(tiny, fast, fake_clock):
    table = LatencyTable(fast)
    table.build(space_units(tiny), progress=False)
    model = LatencyModel(table, Calibration("linear", {"*": 1.4}, 0.003, 0.05))
    least = min(model.predict(a) for a in every_arch(tiny))
    assert minimum_achievable(tiny, "latency_ms", latency_model=model) == pytest.approx(least)


def test_unmeetable_constraint_is_one_line_before_training(tiny, fast, fake_clock):
    table = LatencyTable(fast)
    table.build(space_units(tiny), progress=False)
    model = LatencyModel(table, Calibration.identity())
    low = minimum_achievable(tiny, "latency_ms", latency_model=model)
    with pytest.raises(SpecError) as e:
        check_achievable(tiny, [Constraint("latency_ms", low / 2)], get_task("classification"), model)
    assert str(e.value) == (f"constraints.latency_ms: {low / 2:g} ms cannot be met by any architecture of space "
                            f"'tiny' (minimum {low:.4g} ms)")
    check_achievable(tiny, [Constraint("latency_ms", low * 1.01), Constraint("params", 1e9)],
                     get_task("classification"), model)


def test_an_estimated_minimum_warns_and_never_refuses():
    """Segmentation's minimum is a greedy upper bound: a limit below it is searched with a warning, not refused."""
    import search_spaces

    space = search_spaces.load("dense_prediction", input_size=16, num_classes=3)
    task = get_task("segmentation")
    low, exact = task.minimum(space, "params")
    assert not exact and low > 0
    warnings = check_achievable(space, [Constraint("params", low / 2)], task)
    assert len(warnings) == 1 and "may be below every architecture" in warnings[0] and "upper bound" in warnings[0]
    assert check_achievable(space, [Constraint("params", low * 2)], task) == []
