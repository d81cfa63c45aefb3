"""Training loops: the weight-sharing supernet (sampled paths per step) and standalone subnets.

Both run one loop: cosine learning rate with per-step linear warm-up, SGD or AdamW (no weight
decay on norms and biases), label smoothing, gradient clipping, AMP and channels_last on CUDA,
and a checkpoint after every epoch, written atomically, from which `resume=True` continues
exactly (weights, optimizer, schedule, step, RNG and data-order state).

Under torch.distributed (torchrun or Ray Train) every rank draws the same path at a step (the
sampler is a function of the step), and the gradients of the parameters that path used are
averaged with one all-reduce: a supernet leaves most candidates unused at a step, which
`DistributedDataParallel` could only handle with `find_unused_parameters` and an all-reduce of
every candidate's weights. BatchNorm statistics stay per rank during an epoch (unless `sync_bn`)
and are averaged over ranks at the end of each epoch, before the checkpoint.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import nn

from nas.errors import UserError
from nas.evaluation.classification import evaluate as evaluate_accuracy
from nas.io import atomic_torch_save
from nas.io import say as print_progress
from nas.spec.schema import to_dict
from nas.supernet.sampling import make_sampler
from nas.training.checkpoint import CHECKPOINT, read_checkpoint
from nas.training.distributed import average_bn_stats, average_gradients, dist_context, training_device


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """How a supernet (or a standalone subnet) is trained; fields mirror the spec's `supernet` section."""

    epochs: int = 10
    batch_size: int = 64  # the global batch: under N processes each rank takes batch_size // N
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5  # not applied to norm weights and biases
    warmup_epochs: float = 1
    label_smoothing: float = 0.1
    grad_clip: float = 5.0  # max gradient norm; 0 = off
    amp: str = "none"  # none | bf16 | fp16 (CUDA only; ignored on CPU with a note)
    channels_last: bool = False  # CUDA only
    sampler: str = "fair"  # uniform | fair | sandwich (supernet only)
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA only)
    seed: int = 0

    def __post_init__(self):
        choices = {"optimizer": ("sgd", "adamw"), "amp": ("none", "bf16", "fp16"),
                   "sampler": ("uniform", "fair", "sandwich")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise UserError(f"supernet.{key}: '{getattr(self, key)}' is not allowed; valid: {', '.join(valid)}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise UserError(f"supernet: epochs >= 0, batch_size >= 1 and lr > 0 are needed (got epochs={self.epochs}, "
                             f"batch_size={self.batch_size}, lr={self.lr})")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"train config: unknown key '{unknown[0]}'; valid: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def from_spec(cls, spec, epochs: Optional[int] = None) -> "TrainConfig":
        """The spec's `supernet` section, with data.batch_size and the spec's seed."""
        d = to_dict(spec.supernet)
        d.update(batch_size=spec.data.batch_size, seed=spec.seed)
        if epochs is not None:
            d["epochs"] = epochs
        return cls.from_dict(d)


def as_config(cfg) -> TrainConfig:
    return cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(dict(cfg))


# --- optimisation pieces ---------------------------------------------------------------------------------------------

@torch.no_grad()
def to_channels_last(model: nn.Module) -> nn.Module:
    """Put the 4-D parameters and buffers of `model` in channels_last, in place; other ranks stay as they are.

    `Module.to(memory_format=channels_last)` raises on any 5-D tensor (conv3d weights), so it cannot be used
    on a network that holds a 3-D convolution among 2-D ones.
    """
    for t in [*model.parameters(), *model.buffers()]:
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or AdamW; weight decay on weight matrices and kernels only, not on norms and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor at a step: linear warm-up to 1 over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
    return factor


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _set_epoch(loader, epoch: int) -> None:
    for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: order = f(seed, epoch)
            sampler.set_epoch(epoch)



# --- the loop --------------------------------------------------------------------------------------------------------

def train_supernet(supernet, loaders, cfg, run_dir: str, resume: bool = False, progress: bool = True,
                   on_epoch_end: Callable[[dict, str], None] | None = None,
                   criterion: nn.Module | None = None, sampler=None) -> list[dict]:
    """Train `supernet` with one (or, for sandwich, three) sampled paths per step; returns the epoch history.
    `criterion`: the task's loss (default: cross-entropy with the config's label smoothing); `sampler`: any object
    with `paths(step)` and a `name` (default: the config's sampler)."""
    cfg = as_config(cfg)
    sampler = sampler if sampler is not None else make_sampler(cfg.sampler, supernet.space, cfg.seed)
    return _fit(supernet, sampler, loaders, cfg, run_dir, resume, progress, on_epoch_end, criterion, None)


def train_model(model: nn.Module, loaders, cfg, run_dir: str, resume: bool = False, progress: bool = True,
                on_epoch_end: Callable[[dict, str], None] | None = None, criterion: nn.Module | None = None,
                evaluate: Callable[[nn.Module, Any], dict] | None = None) -> list[dict]:
    """Train a standalone network (e.g. an extracted subnet); after each epoch `evaluate(model, val_loader)`
    (default: accuracy and loss) goes into the record as `val_<metric>`."""
    return _fit(model, None, loaders, as_config(cfg), run_dir, resume, progress, on_epoch_end, criterion,
                evaluate or evaluate_accuracy)


def _fit(model, sampler, loaders, cfg: TrainConfig, run_dir: str, resume: bool, progress: bool,
         on_epoch_end, criterion, evaluate) -> list[dict]:
    ctx = dist_context()
    device = training_device(ctx)
    cuda = device.type == "cuda"
    say = print_progress if (progress and ctx.main) else (lambda msg: None)
    if cfg.amp != "none" and not cuda:
        say(f"amp: {cfg.amp} runs on CUDA only; training in float32 on CPU")
    if cfg.channels_last and not cuda:
        say("channels_last: CUDA only; ignored on CPU")
    if cfg.sync_bn:
        if not cuda:
            raise UserError("supernet.sync_bn: SyncBatchNorm runs on CUDA only (on CPU torch raises 'expected input "
                             "tensor to be on GPU'); set sync_bn: false")
        if sampler is None:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            model.use_sync_bn(True)
    model.to(device)
    if cfg.channels_last and cuda:
        to_channels_last(model)
    if isinstance(loaders, (tuple, list)):
        train_loader, val_loader = loaders[0], (loaders[1] if len(loaders) > 1 else None)
    else:
        train_loader, val_loader = loaders, None
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"data.batch_size: {cfg.batch_size} leaves no full training batch; use a smaller batch")
    total = cfg.epochs * steps_per_epoch
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(int(round(cfg.warmup_epochs * steps_per_epoch)), total))
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp == "fp16")
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if cuda else None
    criterion = criterion if criterion is not None else nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    params = [p for p in model.parameters() if p.requires_grad]
    data_rng = getattr(train_loader, "generator", None)

    epoch, step, history = 0, 0, []
    path = os.path.join(run_dir, CHECKPOINT)
    if resume and os.path.exists(path):
        ck = read_checkpoint(run_dir)  # a truncated or foreign file: one line naming it
        _check_resumable(ck, cfg, path)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        epoch, step, history = ck["epoch"], ck["step"], list(ck["history"])
        _set_rng_state(ck["rng"])
        if data_rng is not None and ck.get("data_rng") is not None:
            data_rng.set_state(ck["data_rng"])
        say(f"resumed {path} at epoch {epoch}/{cfg.epochs}")

    for epoch in range(epoch, cfg.epochs):
        _set_epoch(train_loader, epoch)
        model.train()
        stats = _train_epoch(model, sampler, train_loader, optimizer, scheduler, scaler, criterion, params, cfg, ctx,
                             device, autocast_dtype, step, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                             bar=progress and ctx.main and sys.stderr.isatty())
        step += steps_per_epoch
        average_bn_stats(model, ctx.world)
        record = {"epoch": epoch + 1, "step": step, "lr": scheduler.get_last_lr()[0], **stats}
        if evaluate is not None and val_loader is not None and ctx.main:
            record.update({f"val_{k}": v for k, v in evaluate(model, val_loader).items()})
        history.append(record)
        if ctx.main:
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                               "epoch": epoch + 1, "step": step, "history": history, "config": asdict(cfg),
                               "sampler": {"name": getattr(sampler, "name", None), "seed": cfg.seed},
                               "rng": _rng_state(), "data_rng": data_rng.get_state() if data_rng is not None else None},
                              path)
        say(" ".join([f"epoch {epoch + 1}/{cfg.epochs}: loss {record['loss']:.4f}",
                      f"train acc {record['accuracy']:.3f}",
                      *([f"val acc {record['val_accuracy']:.3f}"] if "val_accuracy" in record else []),
                      f"{record['img_per_s']:.0f} img/s, {record['seconds']:.1f} s"]))
        if ctx.world > 1:
            dist.barrier()
        if on_epoch_end is not None:
            on_epoch_end(record, path)
    return history


def _check_resumable(ck: dict, cfg: TrainConfig, path: str) -> None:
    """A checkpoint continues only the same training: same batch, optimizer, sampler and seed."""
    old = ck.get("config", {})
    for key in ("batch_size", "optimizer", "sampler", "seed"):
        if key in old and old[key] != getattr(cfg, key):
            raise UserError(f"--resume: {path} was trained with {key}={old[key]!r}, the spec now says "
                             f"{getattr(cfg, key)!r}; use another run folder to train with a different {key}")


def divergence_message(loss: float, step: int, cfg: TrainConfig) -> str:
    """Why training stopped and what to change: a lower lr, and a gradient clip (a tighter one when it is set)."""
    clip = (f"lower supernet.grad_clip (now {cfg.grad_clip:g})" if cfg.grad_clip and cfg.grad_clip > 0
            else "set supernet.grad_clip (e.g. 5.0)")
    return f"training diverged: loss is {loss} at step {step}; lower supernet.lr (now {cfg.lr:g}) or {clip}"


@contextmanager
def used_parameters_only(optimizer):
    """Let the optimizer see only parameters that have a gradient (a path uses a few of a supernet's thousands
    of tensors; torch's optimizers skip the others anyway, but only after a Python loop over all of them)."""
    groups = [g["params"] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g["params"] = [p for p in g["params"] if p.grad is not None]
    try:
        yield
    finally:
        for g, params in zip(optimizer.param_groups, groups):
            g["params"] = params


def _train_epoch(model, sampler, loader, optimizer, scheduler, scaler, criterion, params, cfg, ctx, device,
                 autocast_dtype, step, desc, bar) -> dict:
    from tqdm import tqdm

    loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
    pbar = tqdm(total=len(loader), desc=desc, disable=not bar, leave=False, dynamic_ncols=True)
    channels_last = cfg.channels_last and device.type == "cuda"
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        paths = sampler.paths(step) if sampler is not None else [None]
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for arch in paths:  # sandwich: gradients of the three paths are summed
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                out = model(x) if arch is None else model(x, arch)
                loss = criterion(out.float(), y)
            scaler.scale(loss).backward()
            step_loss += float(loss.detach())
        if not math.isfinite(step_loss):
            pbar.close()
            raise TrainingDiverged(divergence_message(step_loss, step, cfg))
        average_gradients(params, ctx.world)
        with used_parameters_only(optimizer):
            if cfg.grad_clip and cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
            scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        counted = y != getattr(criterion, "ignore_index", -100)  # labels the loss counts (segmentation: not 255)
        n = int(counted.sum())
        loss_sum += step_loss / len(paths) * n
        correct += int(((out.argmax(1) == y) & counted).sum())  # of the last path
        seen += n
        elapsed = time.perf_counter() - t0
        pbar.update(1)
        pbar.set_postfix(loss=f"{loss_sum / seen:.3f}", img_s=f"{seen * ctx.world / max(elapsed, 1e-9):.0f}")
    pbar.close()
    elapsed = time.perf_counter() - t0
    if ctx.world > 1:  # the epoch's figures over every rank's shard
        totals = torch.tensor([loss_sum, correct, seen], dtype=torch.float64)
        dist.all_reduce(totals)
        loss_sum, correct, seen = totals.tolist()
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1),
            "img_per_s": seen / max(elapsed, 1e-9), "seconds": elapsed}
