"""The distributed primitives of training: rank/world, process-group start, gradient and BN-statistics averaging.

Every rank draws the same path at a step, so the gradients of the parameters that path used are averaged
with one all-reduce per dtype (`average_gradients`) instead of DDP's all-reduce of every candidate's weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_context() -> DistContext:
    """Rank and world size of the initialised process group (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistContext()


def init_distributed() -> DistContext:
    """Join the process group that torchrun describes in the environment (nccl on CUDA, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist_context()


def training_device(ctx: DistContext) -> torch.device:
    return torch.device("cuda", ctx.local_rank % torch.cuda.device_count()) if torch.cuda.is_available() \
        else torch.device("cpu")


def _flat_all_reduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    """Average `tensors` in place over all ranks with one all-reduce per dtype."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def average_gradients(params, world: int) -> None:
    """Average the gradients that exist (the sampled path's; the same set on every rank) across ranks."""
    if world > 1:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            _flat_all_reduce_mean(grads, world)


def average_bn_stats(model: nn.Module, world: int) -> None:
    """Average BatchNorm running statistics across ranks, so every rank (and the checkpoint) holds the same."""
    if world > 1:
        stats = [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and
                 m.running_mean is not None for b in (m.running_mean, m.running_var)]
        if stats:
            _flat_all_reduce_mean(stats, world)


def broadcast_state(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, 0)
