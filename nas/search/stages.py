"""The stages of a search after set-up: supernet, trials, front, tracking, export, retraining."""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import numpy as np

from nas.io import atomic_write_text
from nas.spec.schema import to_dict

from nas.search.objectives import QUALITY, ArchEvaluator
from nas.search.pareto import hypervolume, knee_point, non_dominated, to_minimisation

log = logging.getLogger("nas.search")


def say(run, msg: str) -> None:
    """A progress line for the user (stderr), also kept in the run folder's log."""
    import sys

    print(f"[nas] {msg}", file=sys.stderr, flush=True)
    with open(run.path("search.log"), "a") as f:
        f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")


def loaders(run):
    from nas.data.datasets import make_loaders

    return make_loaders(run.splits, run.spec.data.batch_size, seed=run.spec.seed,
                        num_workers=run.spec.data.num_workers)


def train_config(run, epochs: int | None = None):
    from nas.training.loop import TrainConfig

    return TrainConfig.from_spec(run.spec, epochs=epochs)


def trained_supernet(run):
    """The run's supernet, trained for spec.supernet.epochs (resuming a partial training) in this process, in N
    DDP processes or on Ray Train, as `spec.distributed` says."""
    from nas.launch import train_supernet_from_spec

    d = run.spec.distributed
    if d.backend != "none":
        ck = supernet_checkpoint(run.dir)
        if ck is not None and ck["epoch"] >= run.spec.supernet.epochs:
            return supernet_with(run.space, ck)  # no processes or workers to start for nothing
    where = {"none": "", "ddp": f" in {d.nproc} DDP processes", "ray": f" on {d.num_workers} Ray Train workers"}
    say(run, f"supernet: {run.spec.supernet.epochs} epochs on {run.spec.data.name}{where[d.backend]}")
    result = train_supernet_from_spec(run.spec, resume=True, progress=run.progress is not False, splits=run.splits)
    supernet = result["supernet"] if "supernet" in result else load_trained_supernet(run.space, run.dir)
    say(run, f"supernet: {sum(p.numel() for p in supernet.parameters()) / 1e6:.2f} M shared parameters trained")
    return supernet


def supernet_checkpoint(run_dir: str):
    """The run's last supernet checkpoint (a dict with "model" and "epoch"), or None when there is none."""
    import torch

    from nas.training.loop import CHECKPOINT

    path = os.path.join(run_dir, "supernet", CHECKPOINT)
    return torch.load(path, map_location="cpu", weights_only=True) if os.path.exists(path) else None


def supernet_with(space, checkpoint: dict):
    """The space's supernet holding the checkpoint's weights, in eval mode."""
    from nas.supernet.segmentation import supernet_for

    supernet = supernet_for(space)
    supernet.load_state_dict(checkpoint["model"])
    return supernet.eval()


def load_trained_supernet(space, run_dir: str):
    """The supernet with the weights of the run's last checkpoint (for Ray workers and export)."""
    from nas.training.loop import CHECKPOINT

    ck = supernet_checkpoint(run_dir)
    if ck is None:
        expected = os.path.join(run_dir, "supernet", CHECKPOINT)
        raise FileNotFoundError(f"no trained supernet in {run_dir}: expected {expected}")
    return supernet_with(space, ck)


def one_shot_scorer(run, supernet):
    """Accuracy (mIoU for segmentation) of a path with inherited weights, BN recalibrated, on the val split."""
    from nas.evaluation.classification import score_arch

    train_loader, val_loader, _ = loaders(run)
    if run.space.task == "segmentation":
        from nas.evaluation.segmentation import score_seg_arch

        def score_seg(arch) -> dict[str, float]:
            out = score_seg_arch(supernet, arch, train_loader, val_loader, run.spec.search.bn_batches)
            return {"miou": float(out["miou"]), "pixel_accuracy": float(out["pixel_accuracy"])}

        return score_seg

    def score(arch) -> dict[str, float]:
        return {"accuracy": float(score_arch(supernet, arch, train_loader, val_loader, run.spec.search.bn_batches))}

    return score


def reference_point(run, evaluator: ArchEvaluator) -> list[float]:
    """Hypervolume reference: 0 for quality metrics, 1.1x the largest architecture's cost for cost metrics."""
    big = evaluator.cost(run.space.largest())
    if evaluator.latency_model is not None:
        # the most parameters need not be the slowest (an STN, a decoder's upsampling or a max-pool costs time, not
        # parameters): take the slowest architecture's latency where it is higher
        slowest = evaluator.latency_model.predict(run.space.largest(score=evaluator.latency_model.predict))
        big["latency_ms"] = max(big.get("latency_ms", 0.0), slowest)
    ref = []
    for name, direction in zip(run.objectives, run.directions):
        v = 0.0 if name in QUALITY else 1.1 * big.get(name, 1.0)
        ref.append(-v if direction == "maximize" else v)
    return ref


def trial_rows(study, objectives, directions) -> list[dict[str, Any]]:
    """One row per finished trial, with on_front marked among feasible completed trials."""
    import optuna

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
        if r["ok"] and r["feasible"] and all(_finite(r.get(o)) for o in objectives) and key not in seen:
            cand.append(r)
            seen.add(key)
    if not cand:
        return
    pts = to_minimisation([[r[o] for o in objectives] for r in cand], directions)
    for i in non_dominated(pts):
        cand[i]["on_front"] = True


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def choose(rows, objectives, directions, how: str) -> dict[str, Any] | None:
    """The exported point of the front: its knee, or its best-accuracy / lowest-latency end."""
    front = [r for r in rows if r["on_front"]]
    if not front:
        return None
    if how == "accuracy":
        q = next((o for o in objectives if o in QUALITY), objectives[0])
        return max(front, key=lambda r: r[q])
    if how == "latency":
        c = next((o for o in objectives if o not in QUALITY), objectives[-1])
        return min(front, key=lambda r: r[c])
    pts = to_minimisation([[r[o] for o in objectives] for r in front], directions)
    return front[knee_point(pts)]


def axes(objectives, directions) -> tuple[str, str]:
    y = next((o for o, d in zip(objectives, directions) if d == "maximize"), objectives[0])
    x = next((o for o in objectives if o != y), "latency_ms")
    return x, y


def search_and_report(run, latency_model, constraints, t0: float) -> dict[str, Any]:
    from search_spaces import Arch

    from nas.search.study import completed_cache, finished_count, make_objective, make_sampler, open_study, run_study
    from nas.search.spread import enqueue_first_trials

    spec = run.spec
    if spec.search.executor == "ray":
        from nas.search.executors.ray_tune import connect

        connect(spec.search.ray)  # before any training: a runtime that cannot hold one trial fails here
    if spec.search.mode == "one_shot":
        supernet = trained_supernet(run)
        score = one_shot_scorer(run, supernet)
    else:
        from nas.search.multi_trial import MultiTrialScorer

        supernet, score = None, MultiTrialScorer(run)
    evaluator = ArchEvaluator(score, latency_model, constraints)
    ref = reference_point(run, evaluator)
    tracker = start_tracker(run)
    sampler = make_sampler(spec.search.sampler, spec.seed, spec.search.population)
    study = open_study(run.dir, spec.name, run.directions, sampler)
    spread, metric = enqueue_first_trials(run, study, evaluator)
    if spread:
        say(run, f"search: the first {spread} trials spread over the space's {metric} range")
    front_pts: list[list[float]] = [list(p) for p in _study_points(study, run.objectives, run.directions)]

    def on_trial(trial, arch, metrics):
        vals = [metrics.get(o) for o in run.objectives]
        if metrics.get("feasible") and all(_finite(v) for v in vals):
            front_pts.append(list(to_minimisation([vals], run.directions)[0]))
        if tracker:
            row = {"trial": trial.number, **{k: v for k, v in metrics.items() if _finite(v)}}
            tracker.log_trial(row, hypervolume(np.array(front_pts), ref) if front_pts else 0.0)

    done = f"{finished_count(study)} already done in {os.path.join(run.dir, 'study.db')}"
    if spec.search.executor == "ray":
        from nas.search.executors.ray_tune import run_ray_search

        say(run, f"search: {spec.search.trials} trials on Ray Tune ({spec.search.sampler}, {done})")
        study = run_ray_search(run, evaluator, on_trial=on_trial)
    else:
        evaluator.cache.update(completed_cache(study))
        objective = make_objective(run.space, evaluator, run.objectives, on_trial=on_trial)
        say(run, f"search: {spec.search.trials} trials with {spec.search.sampler} ({done})")
        run_study(study, objective, spec.search.trials, spec.search.timeout_s, run.progress)

    rows = trial_rows(study, run.objectives, run.directions)
    from nas.tracking import write_local

    x, y = axes(run.objectives, run.directions)
    best_row = choose(rows, run.objectives, run.directions, spec.export.choose)
    summary: dict[str, Any] = {
        "name": spec.name, "space": run.space.name, "trials": len(rows),
        "complete": sum(r["ok"] for r in rows), "front": [r for r in rows if r["on_front"]],
        "hypervolume": _hv(rows, run.objectives, run.directions, ref), "reference_point": ref,
    }
    baseline = None
    if best_row is not None:
        best_arch = Arch.from_string(best_row["arch"])
        export_best(run, best_arch, supernet, best_row)
        summary["best"] = best_row
    if spec.retrain.top_k > 0:
        from nas.search.retrain import retrain_front

        summary["retrain"], baseline = retrain_front(run, rows, latency_model)
    write_local(run.dir, rows, x=x, y=y, reference=baseline, title=f"{spec.name}: {y} vs {x} ({run.space.name})")
    if tracker:
        tracker.log_front(rows, x=x, y=y)
        tracker.run.summary["hypervolume"] = summary["hypervolume"]
        tracker.finish()
    summary["seconds"] = round(time.time() - t0, 1)
    from nas.search.runner import save_summary

    save_summary(run, summary)
    return summary


def _study_points(study, objectives, directions):
    for t in study.get_trials(deepcopy=False):
        m = t.user_attrs.get("metrics")
        if m and m.get("feasible") and all(_finite(m.get(o)) for o in objectives):
            yield to_minimisation([[m[o] for o in objectives]], directions)[0]


def _hv(rows, objectives, directions, ref) -> float:
    pts = [r for r in rows if r["on_front"]]
    if not pts:
        return 0.0
    return hypervolume(to_minimisation([[r[o] for o in objectives] for r in pts], directions), ref)


def start_tracker(run):
    w = run.spec.tracking.wandb
    if not w.enabled or w.mode == "disabled" or os.environ.get("WANDB_MODE") == "disabled":
        return None
    from nas.tracking import WandbTracker

    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbTracker(run.dir, run.spec.name, to_dict(run.spec), mode=w.mode, project=w.project, entity=w.entity)


def export_best(run, arch, supernet, row) -> None:
    """best/: arch.yaml, model.py (readable PyTorch), weights.pt (inherited or trained), optional ONNX."""
    from nas.export.code import save_weights, write_code

    best = run.path("best")
    os.makedirs(best, exist_ok=True)
    atomic_write_text(os.path.join(best, "arch.yaml"), arch.to_yaml())
    weights = None
    if supernet is not None:
        from nas.export.code import recalibrated_path

        model = recalibrated_path(run.spec, supernet, arch)  # BN statistics as the trial was scored with
        weights = os.path.join(best, "weights.pt")
        save_weights(model, weights)
    write_code(arch, os.path.join(best, "model.py"), weights=weights)
    if run.spec.export.onnx and supernet is not None:
        from nas.export.code import write_onnx

        write_onnx(model, arch, os.path.join(best, "model.onnx"))
    say(run, f"best (trial {row['trial']}, {run.spec.export.choose}): "
             + ", ".join(f"{k}={row[k]:.4g}" for k in run.objectives if _finite(row.get(k))) + f" -> {best}/")
