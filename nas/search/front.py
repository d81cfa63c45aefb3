"""The Pareto front of a search: rows of finished trials, the front marked, the exported point chosen."""
from __future__ import annotations

import math
from typing import Any

import optuna

from nas.search.pareto import hypervolume, knee_point, non_dominated, to_minimisation
from nas.spec.sections import COST_METRICS


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def trial_rows(study, objectives, directions) -> list[dict[str, Any]]:
    """One row per finished trial, with on_front marked among feasible completed trials."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        m = t.user_attrs.get("metrics", {})
        feasible = all(v <= 0 for v in t.constraints.values())
        row = {"trial": t.number, "arch": t.user_attrs.get("arch", ""), "state": t.state.name,
               "feasible": feasible, "on_front": False}
        row.update({k: v for k, v in m.items() if k not in ("feasible", "cached")})
        if t.values:  # the objective values the sampler saw (the only metrics a Ray trial stores)
            row.update(zip(objectives, t.values))
        row["ok"] = t.state == optuna.trial.TrialState.COMPLETE
        rows.append(row)
    mark_front(rows, objectives, directions)
    return rows


def mark_front(rows, objectives, directions) -> None:
    """Mark the non-dominated rows among the feasible complete ones; an architecture the sampler proposed again
    is on the front once, as its first trial (the repeats were served from the cache)."""
    cand, seen = [], set()
    for r in rows:
        key = r.get("arch") or r["trial"]
        if r["ok"] and r["feasible"] and all(finite(r.get(o)) for o in objectives) and key not in seen:
            cand.append(r)
            seen.add(key)
    if not cand:
        return
    pts = to_minimisation([[r[o] for o in objectives] for r in cand], directions)
    for i in non_dominated(pts):
        cand[i]["on_front"] = True


def choose(rows, objectives, directions, how: str) -> dict[str, Any] | None:
    """The exported point of the front: its knee, or its best-quality / lowest-cost end."""
    front = [r for r in rows if r["on_front"]]
    if not front:
        return None
    if how == "accuracy":  # the spec's name for "best quality"
        q = next((o for o in objectives if o not in COST_METRICS), objectives[0])
        return max(front, key=lambda r: r[q])
    if how == "latency":
        c = next((o for o in objectives if o in COST_METRICS), objectives[-1])
        return min(front, key=lambda r: r[c])
    pts = to_minimisation([[r[o] for o in objectives] for r in front], directions)
    return front[knee_point(pts)]


def axes(objectives, directions) -> tuple[str, str]:
    """The (x, y) of a front plot: a cost on x, the first maximised metric on y."""
    y = next((o for o, d in zip(objectives, directions) if d == "maximize"), objectives[0])
    x = next((o for o in objectives if o != y), "latency_ms")
    return x, y


def front_hypervolume(rows, objectives, directions, ref) -> float:
    pts = [r for r in rows if r["on_front"]]
    if not pts:
        return 0.0
    return hypervolume(to_minimisation([[r[o] for o in objectives] for r in pts], directions), ref)


def reference_point(ctx, evaluator) -> list[float]:
    """Hypervolume reference: 0 for quality metrics, 1.1x the largest architecture's cost for cost metrics."""
    big = evaluator.cost(ctx.space.largest())
    if evaluator.latency_model is not None:
        # the most parameters need not be the slowest (an STN, a decoder's upsampling or a max-pool costs time, not
        # parameters): take the slowest architecture's latency where it is higher
        slowest = evaluator.latency_model.predict(ctx.space.largest(score=evaluator.latency_model.predict))
        big["latency_ms"] = max(big.get("latency_ms", 0.0), slowest)
    ref = []
    for name, direction in zip(ctx.objectives, ctx.directions):
        v = 1.1 * big.get(name, 1.0) if name in COST_METRICS else 0.0
        ref.append(-v if direction == "maximize" else v)
    return ref


def study_points(study, objectives, directions):
    """The feasible, finite objective points of a study's scored trials (minimisation form)."""
    for t in study.get_trials(deepcopy=False):
        m = t.user_attrs.get("metrics")
        if m and m.get("feasible") and all(finite(m.get(o)) for o in objectives):
            yield to_minimisation([[m[o] for o in objectives]], directions)[0]
