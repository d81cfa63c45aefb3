"""Retrain chosen Pareto architectures from scratch, beside a hand-designed baseline, on the same budget."""
from __future__ import annotations

import json
import os
from typing import Any

from nas.io import atomic_write_json
from nas.latency.predictor import measure_archs, reference_arch
from nas.search.context import RunContext
from nas.training.checkpoint import load_trained
from search_spaces import Arch


def spread(front: list[dict[str, Any]], k: int, key: str) -> list[dict[str, Any]]:
    """k points of the front evenly spread along `key` (always both ends when k >= 2)."""
    front = sorted(front, key=lambda r: r[key])
    if k >= len(front):
        return front
    if k == 1:
        return [front[len(front) // 2]]
    idx = sorted({round(i * (len(front) - 1) / (k - 1)) for i in range(k)})
    return [front[i] for i in idx]


def measure_side_by_side(ctx: RunContext, results: list[dict[str, Any]], latency_model) -> None:
    """Measure every retrained network (and the baseline) end to end in one interleaved session, at the latency
    table's machine speed (drift correction beside the space's reference network), and store the figures.

    Timed one by one after each training, the networks would be compared across minutes of a shared machine's
    drift; timed side by side their ratios hold, and the figures are on the scale of the predicted latencies."""
    if all("measured_latency_ms" in r for r in results):
        return
    archs = [Arch.from_string(r["arch"]) for r in results]
    ctx.say(f"retrain: measuring {len(archs)} networks side by side")
    ms = measure_archs(archs, latency_model.table, chunk=len(archs), reference=reference_arch(ctx.space))
    for r, m in zip(results, ms):
        r["measured_latency_ms"] = float(m)
        cache = ctx.path("retrain", r["tag"], "result.json")
        atomic_write_json(cache, {**_load(cache), "measured_latency_ms": float(m)})


def _load(path: str) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def train_and_test(ctx: RunContext, arch, tag: str, label: str) -> tuple[dict[str, Any], Any]:
    """Train `arch` from scratch for retrain.epochs (resumable) and evaluate it on the test split; returns the
    result (`test_<metric>` for each of the task's metrics) and the trained network. Its latency is measured
    later, beside the others (`measure_side_by_side`)."""
    folder, task = ctx.path("retrain", tag), ctx.task
    cache = os.path.join(folder, "result.json")
    if os.path.exists(cache):
        return _load(cache), load_trained(task.build_model(arch), folder)
    ctx.say(f"retrain: {label} from scratch for {ctx.spec.retrain.epochs} epochs")
    model = task.build_model(arch)
    loaders = ctx.loaders()
    task.train(model, loaders, ctx.train_config(ctx.spec.retrain.epochs), folder, resume=True,
               progress=ctx.progress is not False)
    model.eval()
    metrics = task.evaluate(model, loaders[2])
    result = {"tag": tag, "arch": arch.to_string(), **{f"test_{q}": float(metrics[q]) for q in task.quality},
              "params": int(sum(p.numel() for p in model.parameters()))}
    atomic_write_json(cache, result)
    return result, model


def retrain_front(ctx: RunContext, rows, latency_model):
    """Retrain top_k front points (and the baseline); say whether one beats the baseline. Returns the summary's
    `retrain` entry, the baseline point for the plots (or None), and the retrained results with their networks."""
    spec, q = ctx.spec, ctx.task.primary
    front = [r for r in rows if r["on_front"]]
    results, models = [], {}
    for r in spread(front, spec.retrain.top_k, ctx.cost_objective):
        res, models[r["trial"]] = train_and_test(ctx, Arch.from_string(r["arch"]), f"trial{r['trial']}",
                                                 f"trial {r['trial']}")
        results.append({**res, "trial": r["trial"], "predicted_latency_ms": r.get("latency_ms")})
    base = None
    if spec.retrain.baseline:
        arch = ctx.task.baseline(spec.retrain.baseline, ctx.space, spec.retrain.baseline_width)
        base = train_and_test(ctx, arch, "baseline", f"baseline {spec.retrain.baseline}")[0]
    measure_side_by_side(ctx, results + ([base] if base else []), latency_model)
    retrained = [{**r, "model": models[r["trial"]]} for r in results]
    out: dict[str, Any] = {"epochs": spec.retrain.epochs, "metric": q, "archs": results}
    if base is None:
        return out, None, retrained
    out["baseline"] = {**base, "name": spec.retrain.baseline}
    winners = [r for r in results if beats(r, base, q)]
    out["beats_baseline"] = [r["trial"] for r in winners]
    out["verdict"] = (f"front vs {spec.retrain.baseline} ({base[f'test_{q}']:.3f} {q}, "
                      f"{base['measured_latency_ms']:.3f} ms): "
                      + (f"trial(s) {', '.join(str(r['trial']) for r in winners)} match or beat it on both "
                         f"test {q} and measured latency, strictly on one" if winners else
                         "no retrained front architecture beats it on both"))
    ctx.say(out["verdict"])
    return out, {"name": spec.retrain.baseline, q: base[f"test_{q}"], "latency_ms": base["measured_latency_ms"]}, \
        retrained


def beats(r: dict[str, Any], base: dict[str, Any], metric: str) -> bool:
    """At least as good on test `metric` and measured latency, strictly better on one."""
    acc, lat = r[f"test_{metric}"], r["measured_latency_ms"]
    b_acc, b_lat = base[f"test_{metric}"], base["measured_latency_ms"]
    return acc >= b_acc and lat <= b_lat and (acc > b_acc or lat < b_lat)
