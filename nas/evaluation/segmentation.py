"""Segmentation metrics (confusion matrix, mIoU, pixel accuracy), evaluation and one-shot scoring.

The confusion matrix is K x K with rows the target class and columns the predicted class; pixels
whose target is `ignore_index` (VOC's 255 boundary) are left out. mIoU follows the VOC protocol:
IoU_k = TP / (TP + FP + FN), averaged over the classes that occur in the target or the prediction
(a class absent from both has no IoU and is excluded).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.evaluation.classification import recalibrate_bn

IGNORE_INDEX = 255


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """K x K int64 counts (rows: target, columns: prediction); `pred` holds labels or N x K x H x W logits."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(1)
    if pred.shape != target.shape:
        raise ValueError(f"confusion_matrix: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ; "
                         f"valid: equal label shapes, or logits N x K x H x W for an N x H x W target")
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        bad = int(t.max()) if int(t.max()) >= num_classes else int(t.min())
        raise ValueError(f"confusion_matrix: target label {bad} is outside 0..{num_classes - 1}; valid: class "
                         f"indices or ignore_index={ignore_index}")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: predicted label outside 0..{num_classes - 1}")
    return torch.bincount(t * num_classes + p, minlength=num_classes * num_classes).view(num_classes, num_classes)


def class_iou(conf: torch.Tensor) -> torch.Tensor:
    """Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from both target and prediction."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))


def mean_iou(conf: torch.Tensor) -> float:
    """Mean IoU over the classes present in the target or the prediction (NaN when there are none)."""
    iou = class_iou(conf)
    present = ~torch.isnan(iou)
    return float(iou[present].mean()) if bool(present.any()) else math.nan


def pixel_accuracy(conf: torch.Tensor) -> float:
    """Correctly labelled pixels over all counted pixels (NaN when there are none)."""
    total = int(conf.sum())
    return float(conf.diag().sum()) / total if total else math.nan


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, loader, arch=None, ignore_index: int = IGNORE_INDEX) -> dict[str, float]:
    """mIoU, pixel accuracy and mean cross-entropy (over counted pixels) of `model`, or of a supernet path."""
    was_training = model.training
    model.eval()
    device = _device(model)
    conf, loss_sum = None, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device).long()
        out = (model(x) if arch is None else model(x, arch)).float()
        if conf is None:
            conf = torch.zeros(out.shape[1], out.shape[1], dtype=torch.long, device=device)
        loss_sum += float(F.cross_entropy(out, y, ignore_index=ignore_index, reduction="sum"))
        conf += confusion_matrix(out, y, out.shape[1], ignore_index)
    model.train(was_training)
    if conf is None:
        raise ValueError("evaluate_segmentation: the loader yielded no batch")
    counted = int(conf.sum())
    return {"miou": mean_iou(conf.cpu()), "pixel_accuracy": pixel_accuracy(conf.cpu()),
            "loss": loss_sum / counted if counted else math.nan}


def score_seg_arch(supernet_or_model, arch, train_loader, val_loader, bn_batches: int,
                   ignore_index: int = IGNORE_INDEX) -> dict[str, float]:
    """One-shot score of a segmentation path: BN recalibrated on training batches, then mIoU, pixel
    accuracy and loss on the validation split (`{"miou", "pixel_accuracy", "loss"}`).

    A supernet (anything with `extract` and `space`, e.g. `SegSupernet`) is extracted at `arch` first;
    a plain model is recalibrated and evaluated as it is (`arch` is then only informative).
    """
    model = recalibrate_bn(supernet_or_model, train_loader, bn_batches, arch=arch)
    return evaluate_segmentation(model, val_loader, ignore_index=ignore_index)

