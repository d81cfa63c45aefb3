"""Helpers of the diagram tests: random architectures of every shipped space, a latency table without timing."""
import random

import search_spaces
from nas.latency.predictor import Calibration, LatencyModel
from nas.latency.profile import DeviceProfile
from nas.latency.table import LatencyTable
from nas.latency.units import arch_units
from search_spaces.presets import load_preset, preset_names

ARCHS_PER_SPACE = 3


def fake_ms(unit) -> float:
    """A deterministic stand-in latency (ms) from a unit's shape: no measurement."""
    return 0.01 + 1e-7 * unit.c_in * max(unit.c_out, 1) * unit.size ** 2


def fake_table(archs, path=None, calibrations=None) -> LatencyTable:
    entries = {u.key(): {"median_ms": fake_ms(u)} for a in archs for u in arch_units(a)}
    table = LatencyTable(DeviceProfile(), entries=entries, calibrations=calibrations)
    if path is not None:
        table.save(str(path))
    return table


def fake_model(archs, scale=1.2, intercept=0.05) -> LatencyModel:
    return LatencyModel(fake_table(archs), Calibration("ratio", {"*": scale}, 0.0, intercept))


def shipped_archs():
    """(id, arch): ARCHS_PER_SPACE random architectures of every shipped space, then every preset."""
    out = []
    for name in search_spaces.shipped_spaces():
        space = search_spaces.load(name)
        rng = random.Random(0)
        out += [(f"{name}-{i}", space.sample(rng)) for i in range(ARCHS_PER_SPACE)]
    return out + [(name, load_preset(name)) for name in preset_names()]
