"""Early stopping in multi-trial mode: search.early_stopping pareto (MO-ASHA) vs scalar (ASHA on accuracy) vs none.

Each rule and seed runs an in-memory NSGA-II study of multi-trial candidates (each trained from scratch on
digits_distorted at 16x16 for at most --trial-epochs, pruned at the rungs 1, 2, 4, ... by the rule) until the
candidates have used --budget training epochs in all (a pruned candidate counts the epochs it trained, a repeated
architecture none; the last trial may overrun by up to trial_epochs - 1). The figure: the hypervolume of the final
front (complete trials: validation accuracy after the full budget, predicted latency), against one reference point
for all runs (front.reference_point: accuracy 0, 1.1x the slowest architecture's latency). Equal epochs, so a rule
that stops weak candidates early gets to try more of them; the question is whether it keeps the fast ones.

The latency table and its calibration are built once in WORK/run by the framework's own stage and reused; the
space is a small MBConv space written to WORK (--space mobile for the full-size one).

    python bench/early_stopping.py --quick         # tiny budget (< 5 min on 2 CPU cores); prints, no RESULTS.md
    python bench/early_stopping.py                 # 3 seeds x budget 120 epochs x 3 rules; appends to RESULTS.md
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

SMALL_SPACE = """
name: bench_small
input: {channels: 1, size: 16}
num_classes: 10
stem:
  - {op: conv, c_out: 8, stride: 1, kernel: 3}
stages:
  - {depth: [1, 2], width: [8, 16], stride: 2, ops: {mbconv: {kernel: [3, 5], expand: [1, 3]}}}
  - {depth: [1, 2], width: [16, 32], stride: 2, ops: {mbconv: {kernel: [3, 5], expand: [3, 6]}, dw_separable: {kernel: [3]}}}
  - {depth: [1, 2], width: [32, 48], stride: 2, ops: {mbconv: {kernel: [3, 5], expand: [3, 6]}}}
classifier: {dropout: 0.0}
"""
RULES = ("pareto", "scalar", "none")


def prepare(work: str, space: str, trial_epochs: int, quick: bool):
    """The base run in WORK/run (spec, data, space, task) and its latency model (built once, then loaded)."""
    from nas.search.runner import SearchRun
    from nas.spec.sections import load_spec

    if space == "small":
        space = os.path.join(work, "bench_small.yaml")
        with open(space, "w") as f:
            f.write(SMALL_SPACE)
    run_dir = os.path.join(work, "run")
    spec = load_spec({
        "name": "early_stopping", "seed": 0, "run_dir": run_dir,
        "data": {"name": "digits_distorted", "input_size": 16, "batch_size": 128},
        "space": {"name": space},
        "supernet": {"epochs": 1, "lr": 0.05, "warmup_epochs": 0},
        "hardware": {"kind": "cpu", "threads": 1, "batch": 1, "calibration_archs": 3 if quick else 12,
                     **({"warmup": 2, "repeats": 10} if quick else {})},
        "objectives": [{"metric": "accuracy", "direction": "maximize"},
                       {"metric": "latency_ms", "direction": "minimize"}],
        "search": {"mode": "multi_trial", "trial_epochs": trial_epochs, "population": 8, "trials": 1},
        "tracking": {"wandb": {"enabled": False}},
    })
    run = SearchRun(spec, resume=os.path.exists(os.path.join(run_dir, "spec.yaml")), progress=False)
    t0 = time.perf_counter()
    latency_model = run.latency_model()
    return run, latency_model, time.perf_counter() - t0


def one_search(run, latency_model, rule: str, seed: int, budget: int, work: str) -> dict:
    """One study under `rule` until `budget` training epochs are spent; its final front and figures."""
    import dataclasses

    import optuna

    from nas.search.context import RunContext
    from nas.search.front import reference_point
    from nas.search.multi_trial import MultiTrialScorer
    from nas.search.objectives import ArchEvaluator
    from nas.search.pareto import hypervolume, non_dominated, to_minimisation
    from nas.search.study import make_objective, make_sampler

    base = run.ctx
    spec = dataclasses.replace(base.spec, seed=seed,
                               search=dataclasses.replace(base.spec.search, early_stopping=rule))
    folder = os.path.join(work, f"{rule}-s{seed}")
    os.makedirs(folder, exist_ok=True)
    rungs = os.path.join(folder, "multi_trial_rungs.json")
    if os.path.exists(rungs):
        os.remove(rungs)  # a fresh history: the study is in memory
    ctx = RunContext(spec, folder, base.splits, base.space, base.task, progress=False)
    evaluator = ArchEvaluator(None, latency_model, (), quality=base.task.quality)
    evaluator.score = MultiTrialScorer(ctx, cost=evaluator.cost)
    ref = reference_point(ctx, evaluator)
    T = spec.search.trial_epochs
    used = {"epochs": 0}

    def count(study, trial):
        if trial.state == optuna.trial.TrialState.PRUNED:
            used["epochs"] += int(trial.user_attrs.get("metrics", {}).get("pruned_at_epoch", T))
        elif not trial.user_attrs.get("metrics", {}).get("cached"):
            used["epochs"] += T
        if used["epochs"] >= budget:
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=ctx.directions,
                                sampler=make_sampler("nsga2", seed, spec.search.population))
    t0 = time.perf_counter()
    study.optimize(make_objective(ctx.space, evaluator, ctx.objectives), callbacks=[count], gc_after_trial=False)
    seconds = time.perf_counter() - t0
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pts = to_minimisation([t.values for t in done], ctx.directions) if done else np.zeros((0, 2))
    front = pts[non_dominated(pts)] if len(pts) else pts
    fast = min((t.values[1] for t in done), default=float("nan"))
    return {"rule": rule, "seed": seed, "trials": len(trials), "complete": len(done),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials), "epochs": used["epochs"],
            "hypervolume": hypervolume(front, ref) if len(front) else 0.0, "front": len(front),
            "best_accuracy": max((t.values[0] for t in done), default=float("nan")),
            "fastest_ms": fast, "seconds": round(seconds, 1), "reference": ref}


def table(rows: list[dict]) -> str:
    out = [("| rule | seeds | trials (complete / pruned) | epochs | hypervolume mean ± sd | per seed | front size "
            "| best acc | fastest ms | s |"), "| --- | ---: | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    for rule in RULES:
        rs = [r for r in rows if r["rule"] == rule]
        if not rs:
            continue
        hv = np.array([r["hypervolume"] for r in rs])
        out.append(
            f"| {rule} | {len(rs)} | {np.mean([r['trials'] for r in rs]):.1f} "
            f"({np.mean([r['complete'] for r in rs]):.1f} / {np.mean([r['pruned'] for r in rs]):.1f}) "
            f"| {np.mean([r['epochs'] for r in rs]):.1f} | {hv.mean():.3f} ± {hv.std():.3f} "
            f"| {', '.join(f'{v:.3f}' for v in hv)} | {np.mean([r['front'] for r in rs]):.1f} "
            f"| {np.mean([r['best_accuracy'] for r in rs]):.3f} | {np.mean([r['fastest_ms'] for r in rs]):.3f} "
            f"| {sum(r['seconds'] for r in rs):.0f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budget: 3 seeds, 3-epoch trials, 15 epochs a search")
    ap.add_argument("--work", default=os.path.join(ROOT, "runs", "bench_early_stopping"))
    ap.add_argument("--space", default="small", help="'small' (written to WORK), or a space name or YAML path")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--trial-epochs", type=int, default=None)
    ap.add_argument("--budget", type=int, default=None, help="training epochs per search, all trials together")
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    ap.add_argument("--no-append", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)
    seeds = args.seeds or [0, 1, 2]
    trial_epochs = args.trial_epochs or (3 if args.quick else 8)
    budget = args.budget or (15 if args.quick else 120)
    torch.set_num_threads(1)
    os.makedirs(args.work, exist_ok=True)

    t0 = time.perf_counter()
    run, latency_model, lat_s = prepare(args.work, args.space, trial_epochs, args.quick)
    print(f"latency model: {lat_s:.1f} s; {len(run.ctx.splits.train)} training images; space {run.ctx.space.name}",
          file=sys.stderr)
    from nas.search.multi_trial import rungs

    rows = []
    for seed in seeds:
        for rule in args.rules:
            r = one_search(run, latency_model, rule, seed, budget, args.work)
            print(json.dumps({k: v for k, v in r.items() if k != "reference"}), file=sys.stderr)
            rows.append(r)
    total = time.perf_counter() - t0
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    head = (f"early stopping: {'QUICK run' if args.quick else 'full run'}, seeds {seeds}, trial_epochs "
            f"{trial_epochs}, budget {budget} epochs per search, rungs at "
            f"{rungs(trial_epochs)}, "
            f"space {run.ctx.space.name}, reference {rows[0]['reference'] if rows else None}, {total:.0f} s in all")
    text = head + "\n\n" + table(rows)
    print(text)
    if not args.quick and not args.no_append:
        from results import append_results

        append_results("Early stopping in multi-trial mode", "bench/early_stopping.py", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
