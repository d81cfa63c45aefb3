"""Fixtures for the latency tests: a tiny space (a few dozen networks), a fast profile, a fake clock."""
import pytest
import torch

import search_spaces
from nas.latency import measure as measure_mod
from nas.latency.measure import Measurement

TINY = """\
name: tiny
input: {channels: 3, size: 8}
num_classes: 4
stem:
  - {op: conv, c_out: 8, kernel: 3}
stages:
  - {depth: [1, 2], width: [8, 16], stride: 2, downsample: [stride, blurpool],
     ops: {mbconv: {kernel: 3, expand: [1, 3]}, dw_separable: {kernel: 3}}, plugins: [none, se]}
head:
  - {op: pointwise, c_out: [16, 24]}
classifier: {}
"""


@pytest.fixture
def tiny_path(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return str(path)


@pytest.fixture
def tiny(tiny_path):
    return search_spaces.load(tiny_path)


@pytest.fixture
def fast():
    from nas.latency.profile import DeviceProfile

    return DeviceProfile(warmup=1, repeats=4)


def fake_ms(module, shape) -> float:
    """A deterministic stand-in latency: parameters and input size, in ms."""
    return 0.01 + 1e-6 * sum(p.numel() for p in module.parameters()) + 1e-5 * shape[1] * shape[2] * shape[3]


@pytest.fixture
def fake_clock(monkeypatch):
    """Replace the measurement by `fake_ms`; records every batch of items measured."""
    calls = []

    def fake_measure_rounds(items, profile, rounds=6):
        items = list(items)
        calls.append(len(items))
        return [[[fake_ms(m, s)] * profile.repeats] for m, s in items]

    monkeypatch.setattr(measure_mod, "measure_rounds", fake_measure_rounds)
    return calls
