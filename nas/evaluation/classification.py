"""Evaluation of a network or of one supernet path: BN recalibration, accuracy/loss, one-shot scores."""
from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_CALIBRATION: "weakref.WeakKeyDictionary[Any, list]" = weakref.WeakKeyDictionary()


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _is_supernet(model) -> bool:
    return hasattr(model, "extract") and hasattr(model, "space")


def calibration_batches(loader, batches: int) -> list:
    """The first `batches` batches of `loader`, drawn once and cached per loader, so that every path is
    recalibrated on the same images (a score must not depend on the order in which paths are scored)."""
    try:
        cached = _CALIBRATION.get(loader)
    except TypeError:  # not weak-referenceable: draw afresh
        cached = None
    if cached is None or len(cached) < batches:
        cached = []
        for x, *_ in loader:
            cached.append(x)
            if len(cached) >= batches:
                break
        try:
            _CALIBRATION[loader] = cached
        except TypeError:
            pass
    return cached[:batches]


@torch.no_grad()
def recalibrate_bn(model_or_supernet, loader, batches: int, arch=None) -> nn.Module:
    """Reset BatchNorm running statistics and re-estimate them (cumulative average) on `batches` batches.

    For a supernet, `arch` names the path: it is extracted first (`supernet.extract(arch)`) and the
    extracted network is recalibrated, so the supernet's shared statistics stay untouched. Returns the
    recalibrated network in eval mode.
    """
    model = model_or_supernet
    if _is_supernet(model):
        if arch is None:
            raise ValueError("recalibrate_bn: a supernet needs `arch`, the path whose statistics to re-estimate")
        model = model.extract(arch)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or batches <= 0:
        return model.eval()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the calibration batches
    device = _device(model)
    model.train()
    for x in calibration_batches(loader, batches):
        model(x.to(device))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, loader, arch=None) -> dict[str, float]:
    """Accuracy (pixel accuracy for dense outputs) and mean cross-entropy of `model` (or of a supernet path)."""
    was_training = model.training
    model.eval()
    device = _device(model)
    loss_sum, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x) if arch is None else model(x, arch)
        loss_sum += float(F.cross_entropy(out.float(), y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        count += y.numel()
    model.train(was_training)
    return {"accuracy": correct / max(count, 1), "loss": loss_sum / max(count, 1)}


def score_arch(supernet, arch, train_loader, val_loader, bn_batches: int) -> float:
    """One-shot score: validation accuracy of `arch` with inherited weights, BN recalibrated on training batches."""
    model = recalibrate_bn(supernet, train_loader, bn_batches, arch=arch)
    return float(evaluate(model, val_loader)["accuracy"])
