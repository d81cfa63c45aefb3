import pytest
import torch
from torch import nn

from nas.latency.measure import Measurement, measure, measure_many
from nas.latency.profile import DeviceProfile, fingerprint_difference, machine_fingerprint
from nas.spec.schema import SpecError


class ThreadSpy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.seen = set()
        self.grad = set()

    def forward(self, x):
        self.seen.add(torch.get_num_threads())
        self.grad.add(torch.is_grad_enabled())
        return self.conv(x)


def test_measure_returns_positive_medians(fast):
    m = measure(nn.Conv2d(8, 16, 3, padding=1), (1, 8, 16, 16), fast)
    assert m.median_ms > 0 and m.n == fast.repeats
    assert m.p10 <= m.median_ms <= m.p90 and m.iqr >= 0


def test_measure_fixes_threads_and_restores_them(fast):
    torch.set_num_threads(1)
    spy = ThreadSpy().train()
    measure(spy, (1, 4, 8, 8), fast.with_(threads=2))
    assert spy.seen == {2} and spy.grad == {False}
    assert torch.get_num_threads() == 1 and spy.training  # restored


def test_measure_many_interleaves_and_uses_profile_batch(fast):
    seen = []

    class Shape(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x

    out = measure_many([(Shape(), (1, 2, 4, 4)), (nn.Identity(), (1, 2, 4, 4))], fast.with_(batch=3), rounds=2)
    assert len(out) == 2 and all(isinstance(m, Measurement) for m in out)
    assert set(seen) == {(3, 2, 4, 4)}


def test_measurement_quantiles():
    m = Measurement.from_samples([5, 1, 3, 2, 4])
    assert (m.median_ms, m.p10, m.p90, m.n) == (3, 1.4, 4.6, 5)
    assert Measurement.from_dict(m.to_dict()) == m


def test_profile_key_and_errors():
    p = DeviceProfile()
    assert p.key() == "cpu-t1-b1-float32"
    assert p.with_(repeats=5).key() == p.key()  # how carefully is not what
    assert DeviceProfile(kind="cuda", dtype="float16", channels_last=True, threads=4).key() == "cuda-t4-b1-float16-cl"
    hardware = {"kind": "onnxruntime", "threads": 2, "calibration_archs": 8}  # the spec's section, table keys too
    assert DeviceProfile.from_dict(hardware).kind == "onnxruntime-cpu"
    with pytest.raises(SpecError, match=r"hardware\.kind: 'gpu' is not allowed"):
        DeviceProfile.from_dict({"kind": "gpu"})
    with pytest.raises(SpecError, match=r"hardware\.threads: must be >= 1"):
        DeviceProfile.from_dict({"threads": 0})


def test_fingerprint():
    fp = machine_fingerprint(DeviceProfile())
    assert fp["cpu"] and fp["torch"] and fp["cpu_count"] >= 1
    assert fingerprint_difference(fp, dict(fp)) is None
    assert "cpu 'other'" in fingerprint_difference({**fp, "cpu": "other"}, fp)


def test_onnxruntime_profile_measures_an_exported_model():
    m = measure(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()), (1, 3, 8, 8),
                DeviceProfile(kind="onnxruntime-cpu", warmup=1, repeats=3))
    assert m.median_ms > 0 and m.n == 3
