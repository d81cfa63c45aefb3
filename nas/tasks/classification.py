"""Image classification: cross-entropy with label smoothing, top-1 accuracy, the torchvision presets as baselines."""
from __future__ import annotations

from nas.evaluation.classification import evaluate
from nas.latency.minimum import exact_minimum
from nas.supernet.supernet import Supernet
from nas.tasks.base import Task, register_task
from search_spaces.presets import load_preset


@register_task
class Classification(Task):
    """One label per image; quality is validation accuracy."""

    name = "classification"
    kind = "classification"
    quality = ("accuracy",)

    def evaluate(self, model, loader) -> dict[str, float]:
        return evaluate(model, loader)

    def build_supernet(self, space):
        return Supernet(space)

    def baseline(self, name: str, space, width_mult: float | None = None):
        return load_preset(name, num_classes=space.num_classes, input_size=space.input_size,
                           in_channels=space.in_channels, width_mult=width_mult)

    def chance(self, space) -> float:
        return 1.0 / space.num_classes

    def cheap_cost(self, space, metric: str):
        return space.params if metric == "params" else None

    def minimum(self, space, metric: str, latency_model=None) -> tuple[float, bool]:
        return exact_minimum(space, metric, latency_model), True
