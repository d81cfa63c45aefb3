"""Supernet training from a spec: in this process, in N processes under torch's elastic launcher, or on Ray Train.

All three run `train_from_spec` in every worker; the launchers only differ in how the process group
comes to exist (torchrun's environment, or Ray's TorchConfig). `data.batch_size` is the global
batch: each of N ranks takes batch_size / N, so the hyper-parameters mean the same at any N.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import Any, Callable

import torch

from nas.data import make_loaders
from nas.errors import UserError
from nas.spec.resolve import load_space, load_splits
from nas.spec.schema import to_dict
from nas.spec.sections import load_spec
from nas.tasks import task_for
from nas.training.checkpoint import CHECKPOINT
from nas.training.distributed import broadcast_state, init_distributed
from nas.training.loop import TrainConfig


def supernet_dir(spec) -> str:
    """Where a spec's supernet is trained (the same folder `nas search` uses)."""
    return os.path.join(spec.out_dir, "supernet")


def check_batch(batch_size: int, world: int) -> None:
    """The global batch must split evenly over the processes."""
    if batch_size % world:
        raise UserError(f"data.batch_size: {batch_size} does not split evenly over {world} processes; "
                         f"use a multiple of {world}")


def train_from_spec(spec, run_dir: str | None = None, resume: bool = False, progress: bool = True,
                    on_epoch_end: Callable[[dict, str], None] | None = None, splits=None) -> dict[str, Any]:
    """Train the spec's supernet (one worker of a distributed run, or the only one); returns the trained supernet,
    its history and checkpoint path. `splits`: the spec's dataset when the caller has it loaded already."""
    ctx = init_distributed()
    cfg = TrainConfig.from_spec(spec)
    check_batch(cfg.batch_size, ctx.world)
    run_dir = run_dir or supernet_dir(spec)
    splits = splits if splits is not None else load_splits(spec)
    space = load_space(spec, splits)
    task = task_for(spec.task, space)
    torch.manual_seed(spec.seed)
    supernet = task.build_supernet(space)
    broadcast_state(supernet)
    loaders = make_loaders(splits, cfg.batch_size // ctx.world, seed=spec.seed, distributed=ctx.world > 1,
                           num_workers=spec.data.num_workers)
    history = task.train_supernet(supernet, loaders, cfg, run_dir, resume=resume, progress=progress,
                                  on_epoch_end=on_epoch_end)
    return {"supernet": supernet, "history": history, "checkpoint": os.path.join(run_dir, CHECKPOINT),
            "world_size": ctx.world}


# --- torch's elastic launcher ----------------------------------------------------------------------------------------

def _ddp_worker(spec_dict: dict, run_dir: str, resume: bool, progress: bool, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    try:
        result = train_from_spec(load_spec(spec_dict), run_dir, resume, progress)
        result.pop("supernet")  # the launcher returns what the worker returns, pickled: weights are in the checkpoint
        return result
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def launch_ddp(spec, nproc: int, resume: bool = False, progress: bool = True, run_dir: str | None = None
               ) -> dict[str, Any]:
    """Train the supernet in `nproc` processes on this machine (torch.distributed.launcher, c10d rendezvous on a
    free local port; gloo on CPU, nccl on CUDA); returns rank 0's result."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise UserError(f"--nproc: {nproc} is not a process count; valid: integers >= 1")
    check_batch(spec.data.batch_size, nproc)
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise UserError(f"--nproc: {nproc} processes but {torch.cuda.device_count()} GPUs; one process per GPU")
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"nas-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2,
                          start_method="spawn")
    threads = max(1, (os.cpu_count() or 1) // nproc)
    run_dir = os.path.abspath(run_dir or supernet_dir(spec))
    try:
        results = elastic_launch(config, _ddp_worker)(to_dict(spec), run_dir, resume, progress, threads)
    except ChildFailedError as e:
        rank, failure = next(iter(sorted(e.failures.items())))
        raise RuntimeError(f"distributed training failed on rank {rank}: {_failure_message(failure)}") from None
    return results[0]


def _failure_message(failure) -> str:
    """The child's exception message (torch's error file), else its exit code."""
    import json

    msg = getattr(failure, "message", "")
    if isinstance(msg, dict):
        msg = msg.get("message", "")
    try:
        msg = json.loads(msg)["message"] if str(msg).startswith("{") else msg
    except (ValueError, KeyError, TypeError):
        pass
    lines = [l for l in str(msg).strip().splitlines() if l.strip()]
    return lines[-1] if lines else f"exit code {failure.exitcode}"


# --- Ray Train -------------------------------------------------------------------------------------------------------

def _ray_worker(config: dict) -> None:
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    # a folder per rank: ranks may sit on other machines, and none reads a file another is writing
    run_dir = os.path.join(config["run_dir"], "ray", f"rank{rank}")
    os.makedirs(run_dir, exist_ok=True)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # every rank resumes from the same checkpoint
        with checkpoint.as_directory() as d:
            shutil.copy(os.path.join(d, CHECKPOINT), os.path.join(run_dir, CHECKPOINT))

    def report(record: dict, path: str) -> None:
        if rank == 0:  # metrics persist only with a checkpoint (Ray 2.60 deprecates free-floating metrics)
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copy(path, os.path.join(tmp, CHECKPOINT))
                ray.train.report(record, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(record)

    train_from_spec(load_spec(config["spec"]), run_dir, checkpoint is not None, config["progress"],
                    on_epoch_end=report)


def launch_ray(spec, num_workers: int, use_gpu: bool = False, resume: bool = False, progress: bool = True,
               run_dir: str | None = None, address: str | None = None) -> dict[str, Any]:
    """Train the supernet on Ray Train (TorchTrainer, `num_workers` workers); the last checkpoint is copied back
    into the run folder. Connects to `address` (or a running Ray), else starts a local Ray."""
    import ray
    from ray.train import Checkpoint, CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if num_workers < 1:
        raise UserError(f"distributed.num_workers: {num_workers} is not a worker count; valid: integers >= 1")
    check_batch(spec.data.batch_size, num_workers)
    run_dir = os.path.abspath(run_dir or supernet_dir(spec))
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=progress)
    previous = os.path.join(run_dir, CHECKPOINT)
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"spec": to_dict(spec), "run_dir": run_dir, "progress": progress},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(name=f"supernet-{uuid.uuid4().hex[:8]}", storage_path=os.path.join(run_dir, "ray"),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
        resume_from_checkpoint=Checkpoint.from_directory(run_dir) if resume and os.path.exists(previous) else None)
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"Ray Train failed: {str(result.error).strip().splitlines()[-1]}")
    if result.checkpoint is None:
        raise RuntimeError("Ray Train finished without a checkpoint (no epoch completed)")
    with result.checkpoint.as_directory() as d:
        os.makedirs(run_dir, exist_ok=True)
        tmp = previous + ".ray.tmp"
        shutil.copy(os.path.join(d, CHECKPOINT), tmp)
        os.replace(tmp, previous)
    return {"metrics": result.metrics, "checkpoint": previous, "ray_checkpoint": result.checkpoint.path,
            "world_size": num_workers}


def train_supernet_from_spec(spec, resume: bool = False, progress: bool = True, nproc: int | None = None,
                             splits=None) -> dict[str, Any]:
    """Dispatch on `spec.distributed.backend` (none | ddp | ray); `nproc` > 1 forces DDP with that many processes.
    The result holds the trained `supernet` when it was trained in this process (else load its checkpoint)."""
    d = spec.distributed
    n = nproc if nproc is not None else (d.nproc if d.backend == "ddp" else 1)
    if n > 1:
        return launch_ddp(spec, n, resume, progress)
    if d.backend == "ray" and nproc is None:
        return launch_ray(spec, d.num_workers, d.use_gpu, resume, progress, address=spec.search.ray.address)
    return train_from_spec(spec, resume=resume, progress=progress, splits=splits)
