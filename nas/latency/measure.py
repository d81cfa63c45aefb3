"""Measure the latency of modules under a `DeviceProfile`: warm-up, interleaved rounds of timed runs, medians.

The machines this runs on are noisy (shared cores), so every figure is a median over many runs, and
`measure_many` times several modules in interleaved rounds (A B C A B C ...) so that a slow spell of the
machine spreads over all of them instead of inflating one.
"""
from __future__ import annotations

import contextlib
import copy
import gc
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from nas.latency.profile import DeviceProfile

DEFAULT_ROUNDS = 6


@dataclass(frozen=True)
class Measurement:
    """Latency of one module in milliseconds: median, 10th/90th percentile, inter-quartile range, sample count."""

    median_ms: float
    p10: float
    p90: float
    iqr: float
    n: int

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> "Measurement":
        s = sorted(float(x) for x in samples_ms)
        if not s:
            raise ValueError("measurement: no samples")

        def q(p: float) -> float:  # linear interpolation between order statistics
            i = p * (len(s) - 1)
            lo = int(i)
            hi = min(lo + 1, len(s) - 1)
            return s[lo] + (s[hi] - s[lo]) * (i - lo)

        return cls(statistics.median(s), q(0.1), q(0.9), q(0.75) - q(0.25), len(s))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Measurement":
        return cls(float(d["median_ms"]), float(d["p10"]), float(d["p90"]), float(d["iqr"]), int(d["n"]))


@contextlib.contextmanager
def fixed_threads(n: int):
    """Run the block with `torch.set_num_threads(n)`, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_gc():
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _clock(profile: DeviceProfile) -> Callable[[], int]:
    """The clock timing a CPU run: the thread's CPU time for one thread (immune to other processes taking
    the cores in turns, equal to the wall time on an idle machine), else the wall clock."""
    timer = getattr(profile, "timer", "auto")
    if timer == "thread_cpu" or (timer == "auto" and profile.kind == "cpu" and profile.threads == 1):
        return time.thread_time_ns
    return time.perf_counter_ns


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class _Runner:
    """One module prepared for timing under a profile; `time(k)` runs it k times and returns k samples in ms."""

    def __init__(self, module: nn.Module, input_shape: Sequence[int], profile: DeviceProfile, seed: int = 0):
        self.profile = profile
        shape = (profile.batch, *tuple(input_shape)[1:]) if len(input_shape) == 4 else tuple(input_shape)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(*shape, generator=gen)
        self._cleanup: Callable[[], None] = lambda: None
        kind = profile.kind
        if kind == "onnxruntime-cpu":
            self._setup_onnxruntime(module, x)
            return
        dtype = _DTYPES[profile.dtype]
        device = torch.device("cuda" if kind == "cuda" else "cpu")
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("profile kind 'cuda' needs a CUDA device, and torch sees none")
        needs_copy = device.type != "cpu" or dtype != torch.float32 or profile.channels_last
        mod = copy.deepcopy(module) if needs_copy else module
        was_training = mod.training
        mod.eval()
        if not needs_copy:
            self._cleanup = lambda: module.train(was_training)
        mod = mod.to(device=device, dtype=dtype)
        x = x.to(device=device, dtype=dtype)
        if profile.channels_last and x.dim() == 4:
            mod = mod.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        self.module, self.x = mod, x
        self.clock = _clock(profile)
        self.time = self._time_cuda if kind == "cuda" else self._time_cpu

    # --- torch on the CPU: wall clock around each call
    def _time_cpu(self, k: int) -> list[float]:
        out, mod, x, clock = [], self.module, self.x, self.clock
        for _ in range(k):
            t0 = clock()
            mod(x)
            out.append((clock() - t0) * 1e-6)
        return out

    # --- torch on a GPU: CUDA events around each call, one synchronize per batch of calls
    def _time_cuda(self, k: int) -> list[float]:
        mod, x = self.module, self.x
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(k)]
        torch.cuda.synchronize()
        for start, end in events:
            start.record()
            mod(x)
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in events]

    # --- onnxruntime on the CPU: export with the dynamo exporter, time InferenceSession.run
    def _setup_onnxruntime(self, module: nn.Module, x: torch.Tensor) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeError("profile kind 'onnxruntime-cpu' needs onnxruntime, onnx and onnxscript: "
                               "pip install 'convnas[export]'") from e
        fd, path = tempfile.mkstemp(suffix=".onnx")
        os.close(fd)
        was_training = module.training
        module.eval()
        try:
            with contextlib.redirect_stdout(open(os.devnull, "w")):
                torch.onnx.export(module, (x,), path, dynamo=True, input_names=["x"], output_names=["y"],
                                  verbose=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.profile.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        finally:
            module.train(was_training)
            for p in (path, path + ".data"):
                with contextlib.suppress(OSError):
                    os.remove(p)
        self.feed = {self.session.get_inputs()[0].name: x.numpy()}
        self.time = self._time_onnxruntime

    def _time_onnxruntime(self, k: int) -> list[float]:
        out, run, feed, clock = [], self.session.run, self.feed, time.perf_counter_ns
        for _ in range(k):
            t0 = clock()
            run(None, feed)
            out.append((clock() - t0) * 1e-6)
        return out

    def close(self) -> None:
        self._cleanup()


def measure_rounds(items: Iterable[tuple[nn.Module, Sequence[int]]], profile: DeviceProfile,
                   rounds: int = DEFAULT_ROUNDS) -> list[list[list[float]]]:
    """The raw samples (ms) of several (module, input_shape) pairs timed in interleaved rounds:
    `out[item][round]` is the list of that item's timed runs in that round.

    Each module is warmed up (`profile.warmup` runs), then `rounds` times in turn every module gets one
    untimed run (its weights back in cache) and `profile.repeats / rounds` timed runs. Threads are fixed to
    `profile.threads` (restored afterwards), autograd is off (`torch.inference_mode`), modules are in eval.
    `input_shape` is N x C x H x W; its batch is replaced by `profile.batch`.
    """
    items = list(items)
    if not items:
        return []
    rounds = max(1, min(int(rounds), profile.repeats))
    per_round = [profile.repeats // rounds + (1 if r < profile.repeats % rounds else 0) for r in range(rounds)]
    samples: list[list[list[float]]] = [[] for _ in items]
    with fixed_threads(profile.threads), torch.inference_mode():
        runners = []
        try:
            for i, (module, shape) in enumerate(items):
                runners.append(_Runner(module, shape, profile, seed=i))
            with _quiet_gc():
                for r in runners:
                    if profile.warmup:
                        r.time(profile.warmup)
                for k in per_round:
                    for i, r in enumerate(runners):
                        r.time(1)
                        samples[i].append(r.time(k))
        finally:
            for r in runners:
                r.close()
    return samples


def measure_many(items: Iterable[tuple[nn.Module, Sequence[int]]], profile: DeviceProfile,
                 rounds: int = DEFAULT_ROUNDS) -> list[Measurement]:
    """Measure several (module, input_shape) pairs in interleaved rounds (`measure_rounds`); one
    `Measurement` (median and spread over all timed runs) each."""
    return [Measurement.from_samples([x for rnd in item for x in rnd])
            for item in measure_rounds(items, profile, rounds)]


def measure(module: nn.Module, input_shape: Sequence[int], profile: DeviceProfile,
            rounds: int = DEFAULT_ROUNDS) -> Measurement:
    """The latency of `module` on an input of `input_shape` (N x C x H x W; N := profile.batch)."""
    return measure_many([(module, input_shape)], profile, rounds)[0]


# --- drift correction ----------------------------------------------------------------------------------
# A shared machine changes speed over seconds and minutes: neighbours' jobs evict the shared caches and
# take memory bandwidth, which slows even the thread's own CPU time, and slows memory-heavy work more.
# A fixed reference is timed in every round beside the work (a small conv stack at the work's spatial
# size beside table entries; a fixed network of the space beside whole networks, see LatencyTable.measure);
# each round's samples are scaled by baseline / the reference's median in that round. Measurements of
# one table (and of the networks it is checked against) are so expressed at one machine speed, the
# baseline's, and predicted latencies are at that speed too.


def reference_shape(size: int = 32) -> tuple[int, int, int, int]:
    return (1, 8, int(size), int(size))


def reference_module() -> nn.Module:
    """A small fixed conv stack (3x3 conv 8->16, depthwise 3x3, 1x1 conv, BN + ReLU) timed beside the work."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        m = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
    finally:
        torch.random.set_rng_state(gen_state)
    return m.eval()


def measure_corrected(items: Iterable[tuple[nn.Module, Sequence[int]]], profile: DeviceProfile,
                      baseline_ms: float | None, size: int = 32, rounds: int = DEFAULT_ROUNDS,
                      reference: tuple[nn.Module, Sequence[int]] | None = None) -> tuple[list[Measurement], float]:
    """Measure with a reference (default: `reference_module` at `size` x `size`) in the same rounds, every
    round's samples scaled by baseline / the reference's median in that round.

    Returns (the scaled measurements, the reference's median over the call). With `baseline_ms=None`
    the baseline is that median (the caller keeps it as the baseline of later calls)."""
    items = list(items) + [reference or (reference_module(), reference_shape(size))]
    *out, ref = measure_rounds(items, profile, rounds)
    ref_all = statistics.median(x for rnd in ref for x in rnd)
    base = ref_all if baseline_ms is None else float(baseline_ms)
    factors = [base / statistics.median(rnd) for rnd in ref]
    return [Measurement.from_samples([x * f for rnd, f in zip(item, factors) for x in rnd]) for item in out], ref_all
