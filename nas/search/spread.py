"""First trials spread over the space's cost range, so the front reaches its small and large ends from the start.

Uniform samples of a layered space cluster at its middle: the latency of a network is a sum over many
independent choices, so 60 uniform draws of the `mobile` space at 16x16 span 5.1-9.7 ms of its 3.8-15.8 ms
(1-thread CPU).
An evolutionary sampler grows its front from that first generation and rarely walks out to the corners in a
few generations. Here the first trials are enqueued at evenly spaced quantiles of the cost of samples that
lean, by a random amount, to the first (small) or the last (large) choice of every decision.
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable

import optuna

from nas.search.objectives import ArchEvaluator
from nas.spec.sections import COST_METRICS
from search_spaces import Arch

POOL = 600  # samples whose cost quantiles the enqueued trials take (costs must be cheap: table lookups)


def corner_assignment(space, rng: random.Random) -> dict[str, Any]:
    """One assignment whose choices lean, by a random amount, to the first or the last of each choice list."""
    lean = math.exp(rng.uniform(-2.5, 2.5))  # < 1: towards the last choices, > 1: towards the first
    return {d.key: d.choices[min(len(d.choices) - 1, int(len(d.choices) * rng.random() ** lean))]
            for d in space.decisions()}


def spread_assignments(space, n: int, cost: Callable[[Arch], float], seed: int,
                       feasible: Callable[[Arch], bool] | None = None, pool: int = POOL) -> list[dict[str, Any]]:
    """`n` assignments of distinct architectures at evenly spaced quantiles of `cost` over the feasible ones of
    `pool` corner samples: the cheapest and the costliest first, then ever finer midpoints (a search stopped early
    has still spanned the range)."""
    rng = random.Random(seed)
    found: dict[Arch, dict[str, Any]] = {}
    for _ in range(pool):
        a = corner_assignment(space, rng)
        found.setdefault(space.decode(a), a)
    ranked = sorted((arch for arch in found if feasible is None or feasible(arch)), key=cost)
    picks: list[Arch] = []
    for i in range(min(n, len(ranked))):
        arch = ranked[round(i * (len(ranked) - 1) / max(1, n - 1))]
        if arch not in picks:
            picks.append(arch)
    return [found[picks[i]] for i in coarse_to_fine(len(picks))]


def coarse_to_fine(n: int) -> list[int]:
    """0 .. n-1 ordered ends first, then the midpoints of the gaps, level by level: 0, n-1, (n-1)//2, ..."""
    if n <= 2:
        return list(range(n))
    order, gaps = [0, n - 1], [(0, n - 1)]
    while gaps:
        order += [(lo + hi) // 2 for lo, hi in gaps if hi - lo > 1]
        gaps = [g for lo, hi in gaps if hi - lo > 1 for g in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]
    return order


def enqueue_spread(study: optuna.Study, space, n: int, cost: Callable[[Arch], float], seed: int,
                   feasible: Callable[[Arch], bool] | None = None, pool: int = POOL) -> int:
    """Enqueue the spread trials into a study that has none yet (a resumed study is left as it is); returns how
    many were enqueued."""
    if n <= 0 or study.get_trials(deepcopy=False):
        return 0
    picks = spread_assignments(space, n, cost, seed, feasible, pool)
    for a in picks:
        study.enqueue_trial(a, skip_if_exists=True)
    return len(picks)


def spread_metric(ctx, evaluator: ArchEvaluator) -> str:
    """The cost the first trials spread over: the first minimised cost objective, else latency (or params)."""
    for name, direction in zip(ctx.objectives, ctx.directions):
        if name in COST_METRICS and direction == "minimize":
            return name
    return "latency_ms" if evaluator.latency_model is not None else "params"


def metric_of(ctx, evaluator: ArchEvaluator, name: str) -> tuple[Callable[[Arch], float], bool]:
    """`arch -> value` of a cost metric, and whether it is cheap (a table lookup, not a counting pass)."""
    if name == "latency_ms" and evaluator.latency_model is not None:
        return evaluator.latency_model.predict, True
    if name.startswith("latency_ms@") and name[len("latency_ms@"):] in evaluator.device_models:
        return evaluator.device_models[name[len("latency_ms@"):]].predict, True
    cheap = ctx.task.cheap_cost(ctx.space, name)
    if cheap is not None:
        return cheap, True
    return (lambda arch: evaluator.cost(arch)[name]), False


def enqueue_first_trials(ctx, study: optuna.Study, evaluator: ArchEvaluator) -> tuple[int, str]:
    """Enqueue `search.spread_trials` (default: one population) feasible trials spread over the cost range;
    returns how many, and the metric they spread over."""
    s = ctx.spec.search
    n = min(s.population if s.spread_trials is None else s.spread_trials, s.trials)
    metric = spread_metric(ctx, evaluator)
    cost, cheap = metric_of(ctx, evaluator, metric)
    checks = [(c, *metric_of(ctx, evaluator, c.metric)) for c in evaluator.constraints]
    feasible = (lambda arch: all(c.violation(value(arch)) <= 0 for c, value, _ in checks)) if checks else None
    pool = POOL if cheap and all(ok for *_, ok in checks) else max(4 * n, 40)  # counting costs ~0.2 s a network
    return enqueue_spread(study, ctx.space, n, cost, ctx.spec.seed, feasible, pool), metric
