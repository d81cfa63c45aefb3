"""`Task`: everything that differs between classification, segmentation and a user's own task, in one object.

The search never branches on the task: it asks the run's `Task` for the data it accepts, the loss (with
`ignore_index`), the metrics (its quality objectives), the model and supernet builders, the one-shot
scorer, the from-scratch trainer, baselines and the least cost a space can reach (exact or an estimate).
A task searches architectures of one `kind`, the head of `Arch` ("classification": a classifier,
"segmentation": a decoder). What depends on the head alone is registered per kind in its own room (the
module class in search_spaces.builder, the code writer in nas.export.code, the latency units in
nas.latency.units), so a user task that keeps a built-in kind only says what it measures and how it learns.
"""
from __future__ import annotations

import difflib
from typing import Callable

from torch import nn

from nas.errors import UserError
from nas.evaluation.classification import recalibrate_bn
from nas.latency.minimum import greedy_minimum
from nas.training.loop import train_model, train_supernet
from search_spaces import build_model

TASKS: dict[str, "Task"] = {}


def register_task(cls: type["Task"]) -> type["Task"]:
    """Class decorator: register an instance of `cls` under `cls.name` (what a spec's `task:` names)."""
    if not cls.name or not cls.quality:
        raise TypeError(f"{cls.__name__}: a task needs a `name` and at least one `quality` metric")
    TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> "Task":
    """The registered task `name`; an unknown name is one line with close matches."""
    if name not in TASKS:
        close = difflib.get_close_matches(str(name), list(TASKS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"task: unknown task '{name}'; {hint}registered: {', '.join(TASKS)} (a user task is "
                        f"registered with @nas.tasks.register_task in a module named under `imports:`)")
    return TASKS[name]


def task_names() -> list[str]:
    return list(TASKS)


class Task:
    """What a search learns and measures; subclass, set the class attributes and decorate with `@register_task`."""

    name: str = ""
    kind: str = "classification"  # the Arch head it searches: "classification" (classifier) | "segmentation"
    quality: tuple[str, ...] = ()  # the metrics `evaluate` returns that are maximised; the first is the primary
    ignore_index: int = -100  # label value that neither the loss nor the metrics count
    label_smoothing: bool = True  # whether supernet.label_smoothing applies to this task's loss

    @property
    def primary(self) -> str:
        return self.quality[0]

    # --- data ---
    def accepts(self, splits) -> bool:
        """Whether a loaded dataset fits this task (by default: the dataset's `task` is this task's kind)."""
        return getattr(splits, "task", "classification") == self.kind

    # --- learning ---
    def loss(self, label_smoothing: float = 0.0) -> nn.Module:
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing if self.label_smoothing else 0.0,
                                   ignore_index=self.ignore_index)

    def evaluate(self, model: nn.Module, loader) -> dict[str, float]:
        """The task's metrics (every name of `quality`, plus "loss") of `model` on `loader`."""
        raise NotImplementedError

    def build_model(self, arch) -> nn.Module:
        return build_model(arch)

    def build_supernet(self, space) -> nn.Module:
        raise NotImplementedError

    def score(self, supernet, arch, train_loader, val_loader, bn_batches: int) -> dict[str, float]:
        """One-shot score of a path: inherited weights, BN recalibrated on training batches, metrics on val."""
        model = recalibrate_bn(supernet, train_loader, bn_batches, arch=arch)
        out = self.evaluate(model, val_loader)
        return {q: float(out[q]) for q in self.quality}

    def train_supernet(self, supernet, loaders, cfg, run_dir: str, resume: bool = False, progress: bool = True,
                       on_epoch_end: Callable | None = None) -> list[dict]:
        return train_supernet(supernet, loaders, cfg, run_dir, resume=resume, progress=progress,
                              on_epoch_end=on_epoch_end, criterion=self.loss(cfg.label_smoothing))

    def train(self, model: nn.Module, loaders, cfg, run_dir: str, resume: bool = False, progress: bool = True,
              on_epoch_end: Callable | None = None) -> list[dict]:
        """Train a standalone network from scratch; each epoch's record holds `val_<metric>` for the task's metrics."""
        return train_model(model, loaders, cfg, run_dir, resume=resume, progress=progress, on_epoch_end=on_epoch_end,
                           criterion=self.loss(cfg.label_smoothing), evaluate=self.evaluate)

    # --- comparison, export, cost ---
    def baseline(self, name: str, space, width_mult: float | None = None):
        """The `Arch` of a hand-designed network to retrain beside the front (retrain.baseline)."""
        raise UserError(f"retrain.baseline: task '{self.name}' has no baseline presets; remove retrain.baseline")

    def chance(self, space) -> float | None:
        """The training accuracy of a network that has learned nothing (None: the task has no such level)."""
        return None

    def cheap_cost(self, space, metric: str) -> Callable | None:
        """`arch -> value` of a cost metric that needs no counting pass, where the space has one (else None)."""
        return None

    def minimum(self, space, metric: str, latency_model=None) -> tuple[float, bool]:
        """The least value of a cost metric over `space`, and whether it is exact (an estimate never refuses a
        constraint: it only warns)."""
        return greedy_minimum(space, metric, latency_model), False
