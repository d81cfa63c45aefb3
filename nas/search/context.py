"""`RunContext`: what every stage of one search reads (spec, run folder, data, space, task, objectives)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from nas.data import Splits, make_loaders
from nas.io import say
from nas.spec.sections import COST_METRICS, Spec
from nas.tasks import Task
from nas.training.loop import TrainConfig
from search_spaces import SearchSpace


@dataclass
class RunContext:
    """One search run, resolved: the stages take this instead of reaching into a runner object."""

    spec: Spec
    dir: str
    splits: Splits
    space: SearchSpace
    task: Task
    progress: bool | None = None
    log: bool = True  # keep progress lines in RUN/search.log (a worker writes nothing in the run folder)

    @property
    def objectives(self) -> list[str]:
        return [o.metric for o in self.spec.objectives]

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.spec.objectives]

    @property
    def cost_objective(self) -> str:
        """The first cost objective (what the front is spread along), latency when there is none."""
        return next((o for o in self.objectives if o in COST_METRICS), "latency_ms")

    @property
    def quality_objective(self) -> str:
        """The first quality objective, the task's primary metric when there is none."""
        return next((o for o in self.objectives if o not in COST_METRICS), self.task.primary)

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def say(self, msg: str) -> None:
        """A progress line for the user (stderr), also kept in the run folder's search.log."""
        say(msg)
        if not self.log:
            return
        with open(self.path("search.log"), "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    def loaders(self):
        """Train, val and test loaders of the run's data at the spec's batch size."""
        return make_loaders(self.splits, self.spec.data.batch_size, seed=self.spec.seed,
                            num_workers=self.spec.data.num_workers)

    def train_config(self, epochs: int | None = None) -> TrainConfig:
        return TrainConfig.from_spec(self.spec, epochs=epochs)
