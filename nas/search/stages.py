"""The stages of a search after set-up: supernet, trials, front, retraining, export, tracking."""
from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from nas.errors import SearchFailed
from nas.evaluation.classification import recalibrate_bn
from nas.export.code import save_weights, write_code, write_onnx
from nas.io import atomic_write_json, atomic_write_text
from nas.launch import train_supernet_from_spec
from nas.search.context import RunContext
from nas.search.executors.local import run_local
from nas.search.front import (
    axes,
    choose,
    finite,
    front_hypervolume,
    mark_front,
    reference_point,
    study_points,
    trial_rows,
)
from nas.search.multi_trial import MultiTrialScorer
from nas.search.objectives import ArchEvaluator
from nas.search.pareto import dominates, hypervolume, non_dominated, to_minimisation
from nas.search.pictures import best_card, front_pictures
from nas.search.retrain import retrain_front
from nas.search.spread import enqueue_first_trials
from nas.search.study import finished_count, make_sampler, open_study
from nas.spec.schema import to_dict
from nas.storage import local_file, masked, resolve
from nas.tracking import WandbTracker, write_local
from nas.training.checkpoint import read_checkpoint
from search_spaces import Arch


def trained_supernet(ctx: RunContext):
    """The run's supernet, trained for spec.supernet.epochs (resuming a partial training) in this process, in N
    DDP processes or on Ray Train, as `spec.distributed` says."""
    d, folder = ctx.spec.distributed, ctx.path("supernet")
    if d.backend != "none":
        ck = read_checkpoint(folder)
        if ck is not None and ck["epoch"] >= ctx.spec.supernet.epochs:
            return supernet_with(ctx, ck)  # no processes or workers to start for nothing
    where = {"none": "", "ddp": f" in {d.nproc} DDP processes", "ray": f" on {d.num_workers} Ray Train workers"}
    ctx.say(f"supernet: {ctx.spec.supernet.epochs} epochs on {ctx.spec.data.name}{where[d.backend]}")
    result = train_supernet_from_spec(ctx.spec, resume=True, progress=ctx.progress is not False, splits=ctx.splits)
    supernet = result.get("supernet")
    if supernet is None:
        supernet = supernet_with(ctx, read_checkpoint(folder))
    ctx.say(f"supernet: {sum(p.numel() for p in supernet.parameters()) / 1e6:.2f} M shared parameters trained")
    warning = untrained_warning(result.get("history") or [], ctx.task.chance(ctx.space))
    if warning:
        ctx.say(f"warning: {warning}")
    return supernet.eval()


MIN_EPOCHS_TO_JUDGE = 5  # fewer epochs (a smoke run) may well end near chance


def untrained_warning(history: list[dict[str, Any]], chance: float | None) -> str | None:
    """Why the one-shot scores will be noise, when the supernet's paths ended training near chance accuracy.

    Spaces with many op types per layer (resnet, all_ops: a weight per op type) hardly train as a supernet: drawing
    each layer's op type independently leaves the paths near chance even with two residual block types, where one
    type with elastic widths and depths trains (bench/supernet_mixing.py, bench/RESULTS.md)."""
    last = history[-1] if history else {}
    accuracy, epoch = last.get("accuracy"), last.get("epoch", 0)
    if chance is None or not isinstance(accuracy, float) or epoch < MIN_EPOCHS_TO_JUDGE or accuracy > 1.5 * chance:
        return None
    return (f"supernet: training accuracy of its paths {accuracy:.3f} after {epoch} epochs is near chance "
            f"({chance:.3f}): one-shot scores will rank architectures by noise; train longer (supernet.epochs), keep "
            f"retrain on so the front's accuracies are measured, or search a space of many op types with "
            f"search.mode: multi_trial")


def supernet_with(ctx: RunContext, checkpoint: dict):
    """The run's supernet holding a checkpoint's weights, in eval mode."""
    supernet = ctx.task.build_supernet(ctx.space)
    supernet.load_state_dict(checkpoint["model"])
    return supernet.eval()


def one_shot_scorer(ctx: RunContext, supernet):
    """The task's quality metrics of a path with inherited weights, BN recalibrated, on the val split."""
    train_loader, val_loader, _ = ctx.loaders()

    def score(arch) -> dict[str, float]:
        return ctx.task.score(supernet, arch, train_loader, val_loader, ctx.spec.search.bn_batches)

    return score


def search_and_report(ctx: RunContext, latency_model, constraints, t0: float, lock=None) -> dict[str, Any]:
    """Score trials until the study holds `search.trials` (`nas search --worker` processes may join while this
    process holds the run folder's `lock`), then the front, retraining, export and tracking."""
    spec = ctx.spec
    url = resolve(spec.search.storage, ctx.dir)
    ray = spec.search.executor == "ray"
    if ray:
        from nas.search.executors.ray_tune import connect, run_ray_search  # ray: a heavy optional dependency

        connect(spec.search.ray)  # before any training: a runtime that cannot hold one trial fails here
    if spec.search.mode == "one_shot":
        supernet = trained_supernet(ctx)
        score = one_shot_scorer(ctx, supernet)
    else:
        supernet, score = None, None
    evaluator = ArchEvaluator(score, latency_model, constraints, quality=ctx.task.quality)
    if score is None:  # the pareto rule ranks candidates on their costs too: the evaluator's (cached)
        evaluator.score = MultiTrialScorer(ctx, cost=evaluator.cost)
    ref = reference_point(ctx, evaluator)
    tracker = start_tracker(ctx)
    study = open_study(ctx.dir, spec.name, ctx.directions,
                       make_sampler(spec.search.sampler, spec.seed, spec.search.population), storage=url)
    spread, metric = enqueue_first_trials(ctx, study, evaluator)
    if spread:
        ctx.say(f"search: the first {spread} trials spread over the space's {metric} range")
    on_trial = running_front(ctx, study, ref, tracker)
    done = f"{finished_count(study)} already done in {study_place(ctx)}"
    if ray:
        ctx.say(f"search: {spec.search.trials} trials on Ray Tune ({spec.search.sampler}, {done})")
        study = run_ray_search(ctx, evaluator, on_trial=on_trial)
    else:
        ctx.say(f"search: {spec.search.trials} trials with {spec.search.sampler} ({done})")
        run_local(ctx, study, evaluator, on_trial=on_trial, lock=lock, url=url)

    rows = trial_rows(study, ctx.objectives, ctx.directions)
    complete = sum(r["ok"] for r in rows)
    if not complete:
        raise SearchFailed(no_result_message(ctx, rows))
    summary: dict[str, Any] = {
        "name": spec.name, "space": ctx.space.name, "task": ctx.task.name, "trials": len(rows),
        "complete": complete, "front": [r for r in rows if r["on_front"]],
        "hypervolume": front_hypervolume(rows, ctx.objectives, ctx.directions, ref), "reference_point": ref,
    }
    baseline = None
    if spec.retrain.top_k > 0:
        summary["retrain"], baseline, retrained = retrain_front(ctx, rows, latency_model)
        best = choose_retrained(ctx, retrained)
        if best is not None:
            row, model = best
            export_best(ctx, Arch.from_string(row["arch"]), model, row)
            summary["best"], summary["best_from"] = row, "retrained"
    if "best" not in summary:
        row = choose(rows, ctx.objectives, ctx.directions, spec.export.choose)
        if row is not None:
            arch = Arch.from_string(row["arch"])
            model = None
            if supernet is not None:  # BN statistics re-estimated as the trial was scored
                model = recalibrate_bn(supernet, ctx.loaders()[0], spec.search.bn_batches, arch=arch)
            export_best(ctx, arch, model, row)
            summary["best"], summary["best_from"] = row, "one_shot"
    if "best" in summary:
        best_card(ctx, summary, latency_model)
    pictures = front_pictures(ctx, rows, latency_model)
    x, y = axes(ctx.objectives, ctx.directions)
    write_local(ctx.dir, rows, x=x, y=y, reference=baseline, title=f"{spec.name}: {y} vs {x} ({ctx.space.name})",
                pictures={t: svg for t, (svg, _) in pictures.items()})
    if tracker:
        tracker.log_front(rows, x=x, y=y, pictures={t: png for t, (_, png) in pictures.items()})
        tracker.run.summary["hypervolume"] = summary["hypervolume"]
        tracker.finish()
    summary["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(ctx.path("summary.json"), summary)
    return summary


def running_front(ctx: RunContext, study, ref, tracker, device: str | None = None):
    """The per-trial hook that keeps the study's running front (minimisation form, pruned: its hypervolume equals
    that of every point so far) and logs each trial with it to wandb (under `@device` for one of several)."""
    seen = [list(p) for p in study_points(study, ctx.objectives, ctx.directions)]
    front_pts: list[list[float]] = [seen[i] for i in non_dominated(np.array(seen))] if seen else []

    def on_trial(trial, arch, metrics):
        vals = [metrics.get(o) for o in ctx.objectives]
        if metrics.get("feasible") and all(finite(v) for v in vals):
            p = to_minimisation([vals], ctx.directions)[0]
            if not any(dominates(np.array(q), p) for q in front_pts):
                front_pts[:] = [q for q in front_pts if not dominates(p, np.array(q))] + [list(p)]
        if tracker:
            row = {"trial": trial.number, **{k: v for k, v in metrics.items() if finite(v)}}
            tracker.log_trial(row, hypervolume(np.array(front_pts), ref) if front_pts else 0.0,
                              front_size=len(front_pts), device=device)

    return on_trial


def no_result_message(ctx: RunContext, rows) -> str:
    """Why a search has nothing to report: how many trials ran and what became of them."""
    if not rows:
        return (f"search: no trial finished (search.trials={ctx.spec.search.trials}, "
                f"search.timeout_s={ctx.spec.search.timeout_s}); raise the budget and run again with --resume")
    states = {}
    for r in rows:
        states[r["state"].lower()] = states.get(r["state"].lower(), 0) + 1
    scored = [r for r in rows if "params" in r or any(q in r for q in ctx.task.quality)]  # NaN quality: not stored
    why = (f"no trial reported {ctx.quality_objective} (task '{ctx.task.name}' measures "
           f"{', '.join(ctx.task.quality)})" if not scored else
           "every scored trial's objectives were NaN (training diverged: lower supernet.lr?)")
    return (f"search: none of {len(rows)} trials completed ({', '.join(f'{n} {s}' for s, n in states.items())}): "
            f"{why}; see {ctx.path('search.log')} and {study_place(ctx)}")


def study_place(ctx: RunContext) -> str:
    """Where the run's study lies: its file, or the database URL without password."""
    url = resolve(ctx.spec.search.storage, ctx.dir)
    return local_file(url) or masked(url)


def choose_retrained(ctx: RunContext, retrained: list[dict[str, Any]]):
    """The exported point of the retrained front (test quality vs latency measured side by side), and its
    trained network; None when nothing was retrained."""
    if not retrained:
        return None
    q, c = ctx.task.primary, ctx.cost_objective
    measured = "measured_latency_ms" if c == "latency_ms" else c
    rows = [{"trial": r["trial"], "arch": r["arch"], "ok": True, "feasible": True, "on_front": False,
             q: r[f"test_{q}"], c: r[measured], "test_quality": r[f"test_{q}"]} for r in retrained]
    objectives, directions = [q, c], ["maximize", "minimize"]
    mark_front(rows, objectives, directions)
    row = choose(rows, objectives, directions, ctx.spec.export.choose)
    model = next(r["model"] for r in retrained if r["trial"] == row["trial"])
    return {k: v for k, v in row.items() if k not in ("ok", "on_front")}, model


def start_tracker(ctx: RunContext):
    w = ctx.spec.tracking.wandb
    if not w.enabled or w.mode == "disabled" or os.environ.get("WANDB_MODE") == "disabled":
        return None

    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbTracker(ctx.dir, ctx.spec.name, to_dict(ctx.spec), mode=w.mode, project=w.project, entity=w.entity)


def export_best(ctx: RunContext, arch, model, row, folder: str | None = None) -> None:
    """best/ (or `folder`): arch.yaml, model.py (readable PyTorch), weights.pt (inherited or retrained), optional
    ONNX (its picture and README.md model card follow once the summary is complete: `best_card`)."""
    best = folder or ctx.path("best")
    os.makedirs(best, exist_ok=True)
    atomic_write_text(os.path.join(best, "arch.yaml"), arch.to_yaml())
    weights = None
    if model is not None:
        weights = os.path.join(best, "weights.pt")
        save_weights(model, weights)
    write_code(arch, os.path.join(best, "model.py"), weights=weights)
    if ctx.spec.export.onnx and model is not None:
        write_onnx(model, arch, os.path.join(best, "model.onnx"))
    shown = [k for k in (*ctx.objectives, "test_quality") if finite(row.get(k))]
    ctx.say(f"best (trial {row['trial']}, {ctx.spec.export.choose}): "
            + ", ".join(f"{k}={row[k]:.4g}" for k in shown) + f" -> {best}/")
