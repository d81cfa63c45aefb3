"""Retrain chosen Pareto architectures from scratch, beside a hand-designed baseline, on the same budget."""
from __future__ import annotations

import os
from typing import Any

from nas.io import atomic_write_json

from nas.search.stages import QUALITY, loaders, say, train_config


def spread(front: list[dict[str, Any]], k: int, key: str) -> list[dict[str, Any]]:
    """k points of the front evenly spread along `key` (always both ends when k >= 2)."""
    front = sorted(front, key=lambda r: r[key])
    if k >= len(front):
        return front
    if k == 1:
        return [front[len(front) // 2]]
    idx = sorted({round(i * (len(front) - 1) / (k - 1)) for i in range(k)})
    return [front[i] for i in idx]


def measure_side_by_side(run, results: list[dict[str, Any]], latency_model) -> None:
    """Measure every retrained network (and the baseline) end to end in one interleaved session, at the latency
    table's machine speed (drift correction beside the space's reference network), and store the figures.

    Timed one by one after each training, the networks would be compared across minutes of a shared machine's
    drift; timed side by side their ratios hold, and the figures are on the scale of the predicted latencies."""
    from nas.latency.predictor import measure_archs, reference_arch
    from search_spaces import Arch

    if all("measured_latency_ms" in r for r in results):
        return
    archs = [Arch.from_string(r["arch"]) for r in results]
    say(run, f"retrain: measuring {len(archs)} networks side by side")
    ms = measure_archs(archs, latency_model.table, chunk=len(archs), reference=reference_arch(run.space))
    for r, m in zip(results, ms):
        r["measured_latency_ms"] = float(m)
        cache = run.path("retrain", r["tag"], "result.json")
        atomic_write_json(cache, {**_load(cache), "measured_latency_ms": float(m)})


def _load(path: str) -> dict[str, Any]:
    import json

    with open(path) as f:
        return json.load(f)


def train_and_test(run, arch, tag: str, label: str) -> dict[str, Any]:
    """Train `arch` from scratch for retrain.epochs (resumable) and evaluate on the test split (its latency is
    measured later, beside the others: `measure_side_by_side`)."""
    from nas.evaluation.classification import evaluate
    from nas.training.loop import train_model
    from search_spaces import build_model

    cache = run.path("retrain", tag, "result.json")
    if os.path.exists(cache):
        return _load(cache)
    say(run, f"retrain: {label} from scratch for {run.spec.retrain.epochs} epochs")
    model = build_model(arch)
    train_loader, val_loader, test_loader = loaders(run)
    train_model(model, (train_loader, val_loader, test_loader), train_config(run, run.spec.retrain.epochs),
                run.path("retrain", tag), resume=True, progress=run.progress is not False)
    model.eval()
    result = {"tag": tag, "arch": arch.to_string(), "test_accuracy": float(evaluate(model, test_loader)["accuracy"]),
              "params": int(sum(p.numel() for p in model.parameters()))}
    atomic_write_json(cache, result)
    return result


def retrain_front(run, rows, latency_model) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Retrain top_k front points (and the baseline preset); say whether one beats the baseline."""
    from search_spaces import Arch

    spec = run.spec
    front = [r for r in rows if r["on_front"]]
    cost_key = next((o for o in run.objectives if o not in QUALITY), "latency_ms")
    results = []
    for r in spread(front, spec.retrain.top_k, cost_key):
        res = train_and_test(run, Arch.from_string(r["arch"]), f"trial{r['trial']}", f"trial {r['trial']}")
        results.append({**res, "trial": r["trial"], "predicted_latency_ms": r.get("latency_ms")})
    base = None
    if spec.retrain.baseline:
        from search_spaces.presets import load_preset

        arch = load_preset(spec.retrain.baseline, num_classes=run.space.num_classes,
                           input_size=run.space.input_size, in_channels=run.space.in_channels,
                           width_mult=spec.retrain.baseline_width)
        base = train_and_test(run, arch, "baseline", f"baseline {spec.retrain.baseline}")
    measure_side_by_side(run, results + ([base] if base else []), latency_model)
    out: dict[str, Any] = {"epochs": spec.retrain.epochs, "archs": results}
    if base is None:
        return out, None
    out["baseline"] = {**base, "name": spec.retrain.baseline}
    winners = [r for r in results if beats(r, base)]
    out["beats_baseline"] = [r["trial"] for r in winners]
    out["verdict"] = (f"front vs {spec.retrain.baseline} ({base['test_accuracy']:.3f} acc, "
                      f"{base['measured_latency_ms']:.3f} ms): "
                      + (f"trial(s) {', '.join(str(r['trial']) for r in winners)} match or beat it on both "
                         f"test accuracy and measured latency, strictly on one" if winners else
                         "no retrained front architecture beats it on both"))
    say(run, out["verdict"])
    return out, {"name": spec.retrain.baseline, "accuracy": base["test_accuracy"],
                 "latency_ms": base["measured_latency_ms"]}


def beats(r: dict[str, Any], base: dict[str, Any]) -> bool:
    """At least as good on test accuracy and measured latency, strictly better on one."""
    acc, lat = r["test_accuracy"], r["measured_latency_ms"]
    b_acc, b_lat = base["test_accuracy"], base["measured_latency_ms"]
    return acc >= b_acc and lat <= b_lat and (acc > b_acc or lat < b_lat)
