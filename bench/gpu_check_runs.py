"""Steps 4-6 of bench/gpu_check.py: DDP (and sync_bn), a Ray Tune search, and `nas search` on the CIFAR spec."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import pickle
import socket
import subprocess
import sys

import numpy as np
import torch
from torch import nn

from gpu_check_steps import CheckFailed, Plan, Result, log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORLD = 2

# a small MBConv space (two stages of the `mobile` family) for the DDP and Ray checks: correctness and
# concurrency, not speed, are checked there, and its latency table takes seconds
SMALL_SPACE = """
name: gpu_check_small
input: {channels: 1, size: 16}
num_classes: 10
stem:
  - {op: conv, c_out: 16, stride: 1, kernel: 3, act: hswish}
stages:
  - {depth: [1, 2], width: [16, 24], stride: 1, ops: {mbconv: {kernel: [3, 5], expand: [3, 6], se: [0.0, 0.25]}}}
  - {depth: [1, 2], width: [24, 32], stride: 2, ops: {mbconv: {kernel: [3, 5], expand: [3, 6]}}}
head:
  - {op: pointwise, c_out: 64, act: hswish}
classifier: {}
"""


def small_spec(p: Plan, name: str, **sections) -> dict:
    os.makedirs(os.path.join(p.work, name), exist_ok=True)
    space = os.path.join(p.work, name, "small.yaml")
    with open(space, "w") as f:
        f.write(SMALL_SPACE)
    return {"name": name, "seed": 0, "run_dir": os.path.join(p.work, name, "run"),
            "data": {"name": "digits", "input_size": p.small_size, "batch_size": p.ddp_batch}, "space": {"name": space},
            "supernet": {"epochs": 1, "lr": 0.1, "warmup_epochs": 0, "sampler": "fair"}, **sections}


# --- 4: DDP ------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def exact_cuda():
    """cuDNN deterministic, no TF32: the two trainings compared must compute alike (restored afterwards)."""
    b = torch.backends
    saved = (b.cudnn.deterministic, b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
    b.cudnn.deterministic, b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = True, False, False, False
    try:
        yield
    finally:
        b.cudnn.deterministic, b.cudnn.benchmark, b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = saved


def _ddp_worker(rank: int, port: int, spec_dict: dict) -> None:
    """One rank: a gloo process group (nccl refuses two ranks on one GPU; gloo all-reduces CUDA tensors), then
    nas.distributed.train_from_spec, which finds the group initialised. LOCAL_RANK 0: both ranks on cuda:0."""
    import torch.distributed as dist

    from nas.spec.sections import load_spec
    from nas.launch import train_from_spec

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK="0")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        with exact_cuda():
            train_from_spec(load_spec(spec_dict), progress=False)
    finally:
        dist.destroy_process_group()


def launch(spec_dict: dict) -> dict:
    """Train `spec_dict`'s supernet in WORLD processes on this device; rank 0's checkpoint."""
    import torch.multiprocessing as mp

    from nas.training.checkpoint import CHECKPOINT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, spec_dict), nprocs=WORLD, join=True)
    return torch.load(os.path.join(spec_dict["run_dir"], "supernet", CHECKPOINT), map_location="cpu",
                      weights_only=True)


class Sharded(nn.Module):
    """Each rank's shard through the supernet on its own (per-shard BN statistics), as tests/nas/test_ddp.py."""

    def __init__(self, net):
        super().__init__()
        self.net, self.space = net, net.space

    def forward(self, x, arch):
        return torch.cat([self.net(shard, arch) for shard in x.chunk(WORLD)])


class RankBatches:
    """Per step: rank 0's batch then rank 1's, as the DistributedSamplers of the DDP run deal them."""

    def __init__(self, dataset, per_rank: int, seed: int):
        from torch.utils.data.distributed import DistributedSampler

        self.samplers = [DistributedSampler(dataset, WORLD, r, shuffle=True, seed=seed, drop_last=True)
                         for r in range(WORLD)]
        self.per_rank = per_rank

    def set_epoch(self, epoch: int) -> None:
        for s in self.samplers:
            s.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.samplers[0]) // self.per_rank

    def __iter__(self):
        ranks = [list(s) for s in self.samplers]
        for i in range(len(self)):
            yield [j for r in ranks for j in r[i * self.per_rank:(i + 1) * self.per_rank]]


def step_ddp(p: Plan) -> Result:
    from torch.utils.data import DataLoader

    from nas.spec.sections import load_spec
    from nas.data.datasets import load_dataset
    from nas.spec.resolve import load_space
    from nas.supernet import Supernet
    from nas.training.loop import TrainConfig, train_supernet

    spec_dict = small_spec(p, "ddp")
    log(f"ddp: {WORLD} gloo processes on {p.device}, then one process on the same shards")
    ddp = launch(spec_dict)
    spec = load_spec(spec_dict)
    splits = load_dataset("digits", input_size=p.small_size, seed=spec.seed)
    torch.manual_seed(spec.seed)
    reference = Sharded(Supernet(load_space(spec, splits)))
    cfg = TrainConfig.from_spec(spec)
    loader = DataLoader(splits.train, batch_sampler=RankBatches(splits.train, cfg.batch_size // WORLD, spec.seed))
    with exact_cuda():
        train_supernet(reference, loader, cfg, os.path.join(p.work, "ddp", "reference"), progress=False)
    worst = max(float((ddp["model"][n] - t.detach().cpu()).abs().max()) for n, t in reference.net.named_parameters())
    figures = {"steps": ddp["step"], "max_abs_diff": worst, "loss": ddp["history"][-1]["loss"]}
    if ddp["step"] != len(loader) or not worst <= 1e-5:
        raise CheckFailed(f"DDP vs one process: max abs diff {worst:.2e} after {ddp['step']} steps (limit 1e-5)")
    text = f"{WORLD} processes = 1 process: max abs diff of the weights {worst:.1e} after {ddp['step']} steps"
    if p.cuda:
        log("ddp: sync_bn: true")
        sync = launch(small_spec(p, "sync_bn", supernet={**spec_dict["supernet"], "sync_bn": True}))
        figures["sync_bn_loss"] = loss = sync["history"][-1]["loss"]
        if not np.isfinite(loss):
            raise CheckFailed(f"sync_bn: loss {loss}")
        text += f"; sync_bn ran {sync['step']} steps, loss {loss:.3f}"
    else:
        figures["sync_bn_loss"] = None
        text += "; sync_bn skipped: CUDA only"
    return Result(figures, text, "max abs diff <= 1e-5", True)


# --- 5: Ray Tune -------------------------------------------------------------------------------------------------

def trial_spans(tune_dir: str) -> list[tuple[float, float, int | None]]:
    """(start, last result, actor pid) of each trial of a Tune experiment, from its experiment state (Tune's
    `start_time` and `last_result_time`; a one-shot trial reports once, when it ends)."""
    states = sorted(glob.glob(os.path.join(tune_dir, "experiment_state-*.json")))
    if not states:
        return []
    with open(states[-1]) as f:
        data = json.load(f)
    spans = []
    for _, run in data.get("trial_data", []):
        run = json.loads(run) if isinstance(run, str) else run
        if run.get("start_time") and run.get("last_result_time"):
            spans.append((run["start_time"], run["last_result_time"], (run.get("last_result") or {}).get("pid")))
    return spans


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s[0], 1) for s in spans] + [(s[1], -1) for s in spans])  # an end before a start at a tie
    now = best = 0
    for _, d in events:
        now += d
        best = max(best, now)
    return best


def step_ray(p: Plan) -> Result:
    import ray

    from nas.spec.sections import load_spec
    from nas.search.runner import SearchRun

    hardware = {"kind": p.device, "threads": 1, "calibration_archs": 4, "warmup": 2, "repeats": 10}
    ray_section = {"cpus_per_trial": 1, "gpus_per_trial": 0.25 if p.cuda else 0, "max_concurrent": p.ray_concurrent}
    spec = small_spec(p, "ray", hardware=hardware, tracking={"wandb": {"enabled": False}},
                      search={"executor": "ray", "trials": p.ray_trials, "population": 4, "bn_batches": 2,
                              "ray": ray_section})
    log(f"ray: one-shot search, {p.ray_trials} trials, {p.ray_concurrent} at once, {ray_section}")
    try:
        summary = SearchRun(load_spec(spec), progress=False).run()
        resources = ray.cluster_resources()
    finally:
        ray.shutdown()
    spans = trial_spans(os.path.join(spec["run_dir"], "ray", "tune-0"))
    at_once = max_overlap(spans)
    figures = {"trials": summary["trials"], "complete": summary["complete"], "max_concurrent": at_once,
               "actors": len({s[2] for s in spans if s[2] is not None}),
               "ray_cpus": resources.get("CPU"), "ray_gpus": resources.get("GPU", 0.0), **ray_section}
    if summary["complete"] < p.ray_trials or at_once < p.ray_concurrent:
        raise CheckFailed(f"{summary['complete']}/{p.ray_trials} trials complete, at most {at_once} at once "
                          f"(expected {p.ray_concurrent})")
    per = f"{ray_section['gpus_per_trial']} GPU" if p.cuda else f"{ray_section['cpus_per_trial']} CPU"
    return Result(figures, f"{summary['complete']} trials complete, {at_once} at once on {figures['actors']} actors "
                           f"({per} per trial)",
                  f"{p.ray_concurrent} trials at once", True)


# --- 6: nas search on the CIFAR-10 spec --------------------------------------------------------------------------

def write_cifar(root: str, per_file: int) -> str:
    """A CIFAR-10 folder in torchvision's python format (pickled dicts: uint8 N x 3072 "data", "labels") of
    random images, each class a tint of its own (so the supernet learns something)."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    tint = rng.integers(0, 128, (10, 3))
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels = rng.integers(0, 10, per_file)
        img = rng.integers(0, 128, (per_file, 3, 32 * 32)) + tint[labels][:, :, None]
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": img.reshape(per_file, 3072).astype(np.uint8), "labels": labels.tolist()}, f)
    return root


def step_search(p: Plan) -> Result:
    root = write_cifar(os.path.join(p.work, "cifar"), p.cifar_per_file)
    run_dir = os.path.join(p.work, "cifar_search")
    sets = [f"run_dir={run_dir}", f"data.root={root}", f"data.input_size={p.search_size}",
            f"data.batch_size={p.search_batch}", "data.num_workers=0", "supernet.epochs=1",
            "supernet.warmup_epochs=0", f"search.trials={p.search_trials}", "search.population=4",
            "search.bn_batches=2", f"hardware.calibration_archs={p.search_cal}", "hardware.repeats=20"]
    if p.cuda:
        sets += ["retrain.top_k=1", "retrain.epochs=1"]
    else:  # the spec's hardware is the GPU: measure on the CPU, and bound latency loosely there
        sets += ["hardware.kind=cpu", "hardware.dtype=float32", "hardware.channels_last=false", "hardware.batch=1",
                 "hardware.repeats=6", "hardware.warmup=1", "constraints.latency_ms=1000", "retrain.top_k=0",
                 "export.onnx=false"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "-m", "nas.cli", "search", "experiments/cifar10_mobile.yaml", "--quiet"]
    log(f"search: nas search experiments/cifar10_mobile.yaml --set {' --set '.join(sets)}")
    proc = subprocess.run(cmd + [a for s in sets for a in ("--set", s)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        raise CheckFailed(f"nas search exited {proc.returncode}: {tail[0]}")
    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    model = subprocess.run([sys.executable, os.path.join(run_dir, "best", "model.py")], cwd=p.work, env=env,
                           capture_output=True, text=True, timeout=300)
    if model.returncode != 0:
        raise CheckFailed(f"best/model.py exited {model.returncode}: {model.stderr.strip().splitlines()[-1:]}")
    best = summary.get("best") or {}
    figures = {"trials": summary["trials"], "complete": summary["complete"], "seconds": summary["seconds"],
               "best_accuracy": best.get("accuracy"), "best_latency_ms": best.get("latency_ms"),
               "onnx": os.path.exists(os.path.join(run_dir, "best", "model.onnx")),
               "model_py": model.stdout.strip().splitlines()[-1] if model.stdout.strip() else ""}
    return Result(figures, f"exit 0, {summary['complete']}/{summary['trials']} trials in {summary['seconds']:.0f} s, "
                           f"best latency {best.get('latency_ms', float('nan')):.3f} ms; best/model.py: "
                           f"{figures['model_py']}", "exit 0; best/model.py runs", True)
