import random

import numpy as np
import pytest

from nas.latency.predictor import (Calibration, LatencyModel, arch_point, fit_calibration, fit_from_points,
                                   measure_archs, reference_arch, space_signature)
from nas.latency.table import LatencyTable, MissingEntriesError
from nas.latency.units import arch_units, space_units


def test_identity_calibration_predicts_the_sum_of_entries(tiny, fast, fake_clock):
    table = LatencyTable(fast)
    table.build(space_units(tiny), progress=False)
    model = LatencyModel(table, Calibration.identity())
    for seed in range(10):
        arch = tiny.sample(seed)
        total = sum(table.ms(u) for u in arch_units(arch))
        assert model.predict(arch) == pytest.approx(total) == pytest.approx(model.raw(arch))
        assert sum(ms for _, ms in model.breakdown(arch)) == pytest.approx(total)


def test_missing_calibration_or_entries_say_what_to_run(tiny, fast, fake_clock):
    table = LatencyTable(fast)
    with pytest.raises(MissingEntriesError, match="no calibration for space 'tiny@3x8'.*nas latency build"):
        LatencyModel.for_space(table, tiny)
    with pytest.raises(MissingEntriesError, match="nas latency build"):
        LatencyModel(table).predict(tiny.sample(0))


def test_fit_recovers_a_known_affine_correction():
    rng = random.Random(0)
    points = []
    for _ in range(20):
        block, conv, n = rng.uniform(1, 5), rng.uniform(0.2, 1), rng.randint(8, 20)
        measured = 1.3 * block + 2.0 * conv + 0.05 * n + 0.4
        points.append({"measured_ms": measured * rng.uniform(0.99, 1.01), "n_units": n,
                       "family_ms": {"block": block, "conv": conv}})
    cal = fit_from_points(points)
    assert cal.form == "family" and cal.loo_mape < 0.02
    assert cal.scale["block"] == pytest.approx(1.3, rel=0.05) and cal.scale["conv"] == pytest.approx(2.0, rel=0.1)
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_calibration_reduces_the_error_on_held_out_networks(tiny, tmp_path, fake_clock):
    """With a deterministic clock (whole networks are not the sum of their layers under `fake_ms` either): a timed
    version of this check is noise-bound on a shared box and lives in bench/latency_fidelity.py."""
    from nas.latency.profile import DeviceProfile

    profile = DeviceProfile(warmup=2, repeats=18)
    table = LatencyTable.open(str(tmp_path), profile)
    table.build(space_units(tiny), progress=False)
    cal = fit_calibration(tiny, table, n=10, seed=0, progress=False)
    assert space_signature(tiny) in LatencyTable.load(table.path).calibrations
    model = LatencyModel.for_space(table, tiny)
    used = {p["arch"] for p in cal.points}
    held = [a for a in (tiny.sample(100 + i) for i in range(40)) if a.to_string() not in used][:8]
    measured = np.array(measure_archs(held, table, reference=reference_arch(tiny)))
    calibrated = np.mean([abs(model.predict(a) / m - 1) for a, m in zip(held, measured)])
    naive = np.mean([abs(model.raw(a) / m - 1) for a, m in zip(held, measured)])
    assert calibrated < min(naive, 0.2), (calibrated, naive, cal.form)  # the fitted map must beat the plain sum


def test_arch_point_sums_by_family(tiny, fast, fake_clock):
    table = LatencyTable(fast)
    arch = tiny.sample(3)
    table.build(arch_units(arch), progress=False)
    p = arch_point(arch, table, 1.0)
    assert sum(p["family_ms"].values()) == pytest.approx(LatencyModel(table).raw(arch))
    assert p["n_units"] == len(arch_units(arch)) and p["macs"] > 0


def test_fidelity_figures():
    from nas.latency.validate import fidelity

    f = fidelity([1.0, 2.08, 2.76, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert f["n"] == 4 and f["within_5"] == 0.75 and f["within_10"] == 1.0 and f["kendall_tau"] == 1.0
    assert f["mape"] == pytest.approx(100 * (0.04 + 0.08) / 4)
