"""Semantic segmentation: per-pixel cross-entropy ignoring label 255 (VOC's boundary), mIoU and pixel accuracy."""
from __future__ import annotations

from nas.evaluation.segmentation import IGNORE_INDEX, evaluate_segmentation
from nas.supernet.segmentation import SegSupernet
from nas.tasks.base import Task, register_task


@register_task
class Segmentation(Task):
    """A class per pixel; quality is validation mIoU (VOC protocol), then pixel accuracy."""

    name = "segmentation"
    kind = "segmentation"
    quality = ("miou", "pixel_accuracy")
    ignore_index = IGNORE_INDEX

    def evaluate(self, model, loader) -> dict[str, float]:
        return evaluate_segmentation(model, loader, ignore_index=self.ignore_index)

    def build_supernet(self, space):
        return SegSupernet(space)
