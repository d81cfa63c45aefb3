"""Steps 1-3 of bench/gpu_check.py (latency profile, step-time ratios, throughput and memory) and what they share.

Every step takes a `Plan` (sizes for the device: full on CUDA, tiny with --quick or on CPU) and returns a
`Result`: figures (for the JSON), one line of text (for the table), the goal and whether it was met. A
correctness check that does not hold (a non-finite loss, DDP off by more than 1e-5, ...) raises `CheckFailed`.
"""
from __future__ import annotations

import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


class CheckFailed(RuntimeError):
    """A correctness check of a step did not hold."""


@dataclass
class Result:
    figures: dict[str, Any]
    text: str
    goal: str = ""
    goal_met: bool | None = None


@dataclass
class Plan:
    """What each step runs, sized for the device (see `make_plan`)."""

    device: str
    quick: bool
    work: str  # scratch folder (tables, checkpoints, run folders)
    lat_size: int = 224
    lat_batches: tuple[int, ...] = (1, 64)
    lat_cal: int = 24
    lat_val: int = 30
    lat_warmup: int = 10
    lat_repeats: int = 30
    lat_all_units: bool = True  # the whole space's table, as `nas latency build`; else the checked networks' units
    step_size: int = 32
    step_batch: int = 64
    paths: int = 5
    rounds: int = 10
    train_batches: int = 10  # batches per epoch of the timed trainings (2 epochs; the second is reported)
    tp_sizes: tuple[int, ...] = (32, 224)
    mem_steps: int = 4
    small_size: int = 16  # the small space of steps 4 and 5 (digits)
    ddp_batch: int = 64
    ray_trials: int = 8
    ray_concurrent: int = 4
    cifar_per_file: int = 512
    search_size: int = 32
    search_batch: int = 128
    search_trials: int = 12
    search_cal: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"


def make_plan(device: str, quick: bool, work: str) -> Plan:
    """Full sizes on CUDA; tiny ones (16x16/32x32, few networks and batches) with --quick or on the CPU."""
    if device == "cuda" and not quick:
        return Plan(device, quick, work)
    return Plan(device, True, work, lat_size=16, lat_batches=(1,), lat_cal=6, lat_val=8, lat_warmup=1,
                lat_repeats=6, lat_all_units=False, step_size=16, step_batch=16, paths=2, rounds=3,
                train_batches=2, tp_sizes=(16, 32), mem_steps=2, small_size=8, ddp_batch=128, ray_trials=4,
                ray_concurrent=2, cifar_per_file=32, search_size=16, search_batch=32, search_trials=4, search_cal=4)


def log(msg: str) -> None:
    print(f"[gpu_check] {msg}", file=sys.stderr, flush=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def batches(p: Plan, size: int, batch: int, n: int, channels: int = 3, classes: int = 10, distinct: int = 2):
    """`n` synthetic (x, y) batches on the device (a plain list: nas.train takes any sized iterable of
    batches), `distinct` different ones repeated: the timings are of training, not of data loading."""
    g = torch.Generator().manual_seed(0)
    made = [(torch.randn(batch, channels, size, size, generator=g).to(p.device),
             torch.randint(0, classes, (batch,), generator=g).to(p.device)) for _ in range(distinct)]
    return [made[i % distinct] for i in range(n)]


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


# --- 1: the latency profile --------------------------------------------------------------------------------------

def step_latency(p: Plan) -> Result:
    """The `mobile` space's table on the device profile, calibrated and validated as `nas latency build` /
    `nas latency validate` do, beside a re-measurement of the same networks and the MACs proxy."""
    import search_spaces
    from nas.latency.predictor import LatencyModel, calibration_archs, fit_calibration, space_signature
    from nas.latency.profile import DeviceProfile
    from nas.latency.table import LatencyTable
    from nas.latency.units import arch_units, space_units
    from nas.latency.validate import validate, validation_archs

    space = search_spaces.load("mobile", in_channels=3, input_size=p.lat_size)
    folder = os.path.join(p.work, "latency")
    figures: dict[str, Any] = {"size": p.lat_size}
    parts, met = [], True
    for batch in p.lat_batches:
        profile = DeviceProfile(kind=p.device, threads=1, batch=batch, dtype="float16" if p.cuda else "float32",
                                channels_last=p.cuda, warmup=p.lat_warmup, repeats=p.lat_repeats)
        t0 = time.time()
        table = LatencyTable.open(folder, profile)
        if p.lat_all_units:
            units = space_units(space)
        else:  # --quick: only the units of the networks calibrated on and validated
            cal = calibration_archs(space, p.lat_cal, seed=0)
            val = validation_archs(space, p.lat_val, seed=1, exclude=[a.to_string() for a in cal])
            units = [u for a in cal + val for u in arch_units(a)]
        log(f"latency: {profile.key()}: measuring {len(table.missing(units))} table entries at {p.lat_size}x{p.lat_size}")
        table.spaces = [space_signature(space)]
        table.build(units, size=p.lat_size, progress=False)
        table.save()
        t_table = time.time() - t0
        fit_calibration(space, table, n=p.lat_cal, seed=0, progress=False)
        model = LatencyModel.for_space(table, space)
        log(f"latency: {profile.key()}: validating on {p.lat_val} networks (measured twice)")
        report = validate(space, model, n=p.lat_val, seed=1, repeat=True, progress=False)
        f = {k: {m: report[k][m] for m in ("n", "mape", "within_10", "kendall_tau")}
             for k in ("model", "remeasure", "macs_proxy", "table_sum") if k in report}
        f.update(profile=profile.key(), entries=len(table), calibration=report["calibration"],
                 table_s=round(t_table, 1), total_s=round(time.time() - t0, 1))
        figures[f"b{batch}"] = f
        m, r, x = f["model"], f["remeasure"], f.get("macs_proxy", {})
        met &= m["within_10"] >= 0.9 and m["kendall_tau"] >= 0.85
        parts.append(f"{profile.key()}: predictor {pct(m['within_10'])} within ±10%, MAPE {m['mape']:.1f}%, "
                     f"tau {m['kendall_tau']:.2f} (re-measure {pct(r['within_10'])}, tau {r['kendall_tau']:.2f}; "
                     f"MACs proxy {pct(x.get('within_10', math.nan))}, tau {x.get('kendall_tau', math.nan):.2f})")
    text = f"{p.lat_size}x{p.lat_size}, {p.lat_val} nets; " + "; ".join(parts)
    return Result(figures, text, ">= 90% within ±10%, tau >= 0.85", met)


# --- 2: supernet vs subnet step, AMP, channels_last --------------------------------------------------------------

def _timed(device: str, fn) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def supernet_ratio(p: Plan, space) -> list[float]:
    """Per path: median supernet step / median extracted-subnet step, interleaved (bench/supernet_overhead.py)."""
    from nas.supernet import Supernet
    from supernet_overhead import sgd_step  # the step as nas.train takes it; timed here around a synchronize

    torch.manual_seed(0)
    supernet = Supernet(space).to(p.device).train()
    (x, y), = batches(p, p.step_size, p.step_batch, 1, distinct=1)
    rng, ratios = random.Random(0), []
    for _ in range(p.paths):
        arch = space.sample(rng)
        sub = supernet.extract(arch).to(p.device).train()
        o_sup = torch.optim.SGD(supernet.parameters(), lr=1e-3, momentum=0.9)
        o_sub = torch.optim.SGD(sub.parameters(), lr=1e-3, momentum=0.9)
        run_sup = lambda: sgd_step(supernet, o_sup, x, y, arch)  # noqa: E731
        run_sub = lambda: sgd_step(sub, o_sub, x, y)  # noqa: E731
        for _ in range(2):  # warm-up: templates, allocator, kernels
            run_sup(), run_sub()
        t_sup, t_sub = [], []
        for r in range(p.rounds):
            for fn, out in ((run_sub, t_sub), (run_sup, t_sup))[::(-1) ** r]:
                out.append(_timed(p.device, fn))
        ratios.append(statistics.median(t_sup) / statistics.median(t_sub))
    return ratios


def train_figures(p: Plan, model, data, run_dir: str, supernet: bool = True, **cfg) -> dict[str, float]:
    """Train with nas.train's loop for 2 epochs on `data`; the second epoch's ms/step, img/s and loss."""
    from nas.training.loop import TrainConfig, train_model, train_supernet

    config = TrainConfig(**{"epochs": 2, "batch_size": len(data[0][1]), "lr": 0.05, "warmup_epochs": 0,
                            "sampler": "fair", "seed": 0, **cfg})
    fit = train_supernet if supernet else train_model
    # (data,): nas.train reads a list or tuple as (train, val) loaders; raises TrainingDiverged on a non-finite loss
    last = fit(model, (data,), config, run_dir, progress=False)[-1]
    if not math.isfinite(last["loss"]):
        raise CheckFailed(f"loss {last['loss']} in {run_dir}")
    return {"ms_per_step": 1e3 * last["seconds"] / len(data), "img_per_s": last["img_per_s"], "loss": last["loss"]}


def step_overhead(p: Plan) -> Result:
    import search_spaces
    from nas.supernet import Supernet

    space = search_spaces.load("mobile", in_channels=3, input_size=p.step_size)
    log(f"overhead: supernet vs subnet step, {p.paths} paths x {p.rounds} rounds, "
        f"{p.step_size}x{p.step_size} batch {p.step_batch}")
    ratios = supernet_ratio(p, space)
    ratio = statistics.median(ratios)
    data = batches(p, p.step_size, p.step_batch, p.train_batches)
    variants = {"fp32": dict(amp="none")}
    if p.cuda:  # nas.train ignores amp and channels_last on the CPU
        variants.update(bf16=dict(amp="bf16"), fp16=dict(amp="fp16"), bf16_channels_last=dict(amp="bf16",
                                                                                             channels_last=True))
    runs = {}
    for name, cfg in variants.items():
        log(f"overhead: supernet training, {name}")
        torch.manual_seed(0)
        runs[name] = train_figures(p, Supernet(space), data, os.path.join(p.work, "amp", name), **cfg)
    ms = {k: v["ms_per_step"] for k, v in runs.items()}
    figures = {"size": p.step_size, "batch": p.step_batch, "supernet_subnet_ratio": ratio, "ratios": ratios,
               "train": runs}
    text = f"supernet/subnet step {ratio:.3f} (median of {len(ratios)} paths); training step ms: fp32 {ms['fp32']:.1f}"
    if p.cuda:
        figures.update(bf16_speedup=ms["fp32"] / ms["bf16"], fp16_speedup=ms["fp32"] / ms["fp16"],
                       channels_last_speedup=ms["bf16"] / ms["bf16_channels_last"])
        text += (f", bf16 {ms['bf16']:.1f}, fp16 {ms['fp16']:.1f}, bf16+channels_last {ms['bf16_channels_last']:.1f} "
                 f"(channels_last x{figures['channels_last_speedup']:.2f})")
    else:
        text += " (AMP, channels_last: CUDA only)"
    text += "; losses finite"
    return Result(figures, text, "ratio <= 1.05; losses finite", ratio <= 1.05)


# --- 3: throughput and memory ------------------------------------------------------------------------------------

class FixedPath(nn.Module):
    """The supernet on one path as a plain module, so nas.train.train_model trains it as it trains the subnet."""

    def __init__(self, supernet, arch):
        super().__init__()
        self.supernet, self.arch = supernet, arch

    def forward(self, x):
        return self.supernet(x, self.arch)


def step_throughput(p: Plan) -> Result:
    import search_spaces
    from nas.supernet import Supernet

    amp = dict(amp="bf16", channels_last=True) if p.cuda else {}
    figures: dict[str, Any] = {"batch": p.step_batch, "amp": amp.get("amp", "none")}
    parts = []
    for size in p.tp_sizes:
        space = search_spaces.load("mobile", in_channels=3, input_size=size)
        data = batches(p, size, p.step_batch, p.train_batches)
        arch = space.sample(random.Random(0))
        work = os.path.join(p.work, f"throughput{size}")
        log(f"throughput: {size}x{size}: supernet (sampled paths), supernet on one path, that subnet standalone")
        torch.manual_seed(0)
        supernet = Supernet(space)
        f = {"supernet_sampled": train_figures(p, supernet, data, f"{work}/sampled", **amp)}
        f["supernet_path"] = train_figures(p, FixedPath(supernet, arch), data, f"{work}/path", False, **amp)
        f["subnet"] = train_figures(p, supernet.extract(arch), data, f"{work}/subnet", False, **amp)
        f["path_over_subnet"] = f["supernet_path"]["img_per_s"] / f["subnet"]["img_per_s"]
        figures[f"s{size}"] = f
        parts.append(f"{size}x{size}: supernet {f['supernet_sampled']['img_per_s']:.0f} img/s sampled, "
                     f"{f['supernet_path']['img_per_s']:.0f} on one path vs subnet {f['subnet']['img_per_s']:.0f} "
                     f"({f['path_over_subnet']:.2f}x)")
        del supernet
    if p.cuda:
        import gc

        from nas.training.loop import TrainConfig, train_supernet

        log("throughput: all_ops supernet peak memory (32x32, batch 64, sandwich: the largest path each step)")
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        space = search_spaces.load("all_ops", in_channels=3, input_size=32)
        cfg = TrainConfig(epochs=1, batch_size=64, warmup_epochs=0, sampler="sandwich", **amp)
        train_supernet(Supernet(space), (batches(p, 32, 64, p.mem_steps),), cfg, f"{p.work}/memory", progress=False)
        figures["all_ops_peak_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        parts.append(f"all_ops peak GPU memory {figures['all_ops_peak_mb']:.0f} MB")
    else:
        figures["all_ops_peak_mb"] = None
        parts.append("all_ops peak GPU memory n/a (CPU)")
    return Result(figures, f"batch {p.step_batch}: " + "; ".join(parts))
