"""Path samplers for single-path supernet training: uniform, fair and sandwich.

A sampler is a pure function of the training step: `paths(step)` draws from a `random.Random`
seeded by (seed, step), so every DDP rank (and a resumed run) draws the same paths at a step
without any communication or saved state.
"""
from __future__ import annotations

import random
from typing import Any

SAMPLERS = ("uniform", "fair", "sandwich")


def step_rng(seed: int, step: int, salt: str = "") -> random.Random:
    """A `random.Random` determined by (seed, step, salt) alone (string seeds hash with SHA-512, not hash())."""
    return random.Random(f"{salt}:{int(seed)}:{int(step)}")


class PathSampler:
    """Base: `paths(step)` -> the architectures trained at that step (their gradients are summed)."""

    name = "base"

    def __init__(self, space, seed: int = 0):
        self.space, self.seed = space, int(seed)
        self.decisions = list(space.decisions())

    def paths(self, step: int) -> list:
        raise NotImplementedError

    def _uniform(self, rng: random.Random):
        return self.space.decode({d.key: rng.choice(list(d.choices)) for d in self.decisions})


class UniformSampler(PathSampler):
    """One path per step, each decision drawn uniformly (SPOS)."""

    name = "uniform"

    def paths(self, step: int) -> list:
        return [self._uniform(step_rng(self.seed, step, self.name))]


class FairSampler(PathSampler):
    """One path per step; every decision walks a fresh random permutation of its choices per round.

    For a decision with n choices, round r covers steps [r*n, (r+1)*n) and visits each choice exactly
    once (FairNAS's strict fairness, spread over consecutive steps instead of accumulated in one).
    """

    name = "fair"

    def choice(self, index: int, step: int) -> Any:
        d = self.decisions[index]
        choices = list(d.choices)
        n = len(choices)
        perm = list(range(n))
        step_rng(self.seed, step // n, f"{self.name}:{d.key}").shuffle(perm)
        return choices[perm[step % n]]

    def paths(self, step: int) -> list:
        return [self.space.decode({d.key: self.choice(i, step) for i, d in enumerate(self.decisions)})]


class SandwichSampler(PathSampler):
    """Three paths per step: the largest, the smallest and a uniform random one (BigNAS's sandwich rule)."""

    name = "sandwich"

    def __init__(self, space, seed: int = 0):
        super().__init__(space, seed)
        self.largest, self.smallest = space.largest(), space.smallest()

    def paths(self, step: int) -> list:
        return [self.largest, self.smallest, self._uniform(step_rng(self.seed, step, self.name))]


def make_sampler(name: str, space, seed: int = 0) -> PathSampler:
    """The sampler called `name` (uniform | fair | sandwich) over `space`."""
    classes = {c.name: c for c in (UniformSampler, FairSampler, SandwichSampler)}
    if name not in classes:
        raise ValueError(f"supernet.sampler: unknown sampler '{name}'; valid: {', '.join(SAMPLERS)}")
    return classes[name](space, seed)
