"""Sample efficiency of the search controllers: hypervolume after 25/50/100 trials, nsga2 vs tpe vs random.

One `mobile` supernet trained briefly on digits and one latency table (cpu, 1 thread, batch 1), both
built once by the framework's own stages (SearchRun: latency table + calibration, supernet training) in
--work and reused by later runs. Every sampler and seed then runs an in-memory Optuna study of the
largest budget against the same one-shot evaluator (accuracy with inherited weights, BN recalibrated on
fixed training batches, on the val split; predicted latency); the hypervolume after the first B trials of
a study is its value at budget B, against one common reference point (front.reference_point).

The evaluator is deterministic given the architecture, so its arch -> metrics cache is shared by all
studies and kept in WORK/metrics.json: a rerun scores nothing twice (delete the file to time from cold).

    python bench/search_efficiency.py                         # 3 samplers x 3 seeds x 100 trials, appends to RESULTS.md
    python bench/search_efficiency.py --budgets 10 20 --seeds 0 --no-append
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nas.search.objectives import ArchEvaluator  # noqa: E402


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name:"))
    except (OSError, subprocess.SubprocessError, StopIteration):
        return "unknown CPU"


def prepare(work: str, epochs: int, input_size: int, bn_batches: int):
    """The run in WORK/run: its latency model and trained supernet (built on the first call, loaded after)."""
    from nas.spec.sections import load_spec
    from nas.search.runner import SearchRun

    run_dir = os.path.join(work, "run")
    spec = load_spec(os.path.join(ROOT, "experiments", "quickstart.yaml"),
                     [f"run_dir={run_dir}", "search.trials=0", f"supernet.epochs={epochs}", "retrain.top_k=0",
                      f"data.input_size={input_size}", f"search.bn_batches={bn_batches}",
                      "tracking.wandb.enabled=false"])
    reused = os.path.exists(os.path.join(run_dir, "supernet", "checkpoint.pt"))
    run = SearchRun(spec, resume=os.path.exists(os.path.join(run_dir, "spec.yaml")), progress=False)
    t0 = time.perf_counter()
    latency_model = run.latency_model()
    t1 = time.perf_counter()
    supernet = run.supernet().eval()
    setup = {"latency_s": t1 - t0, "supernet_s": time.perf_counter() - t1, "reused": reused}
    return run, latency_model, supernet, setup


class TimedEvaluator(ArchEvaluator):
    """ArchEvaluator that also times the cost metrics (MACs, params, predicted latency) of new architectures."""

    cost_seconds = 0.0

    def cost(self, arch):
        t = time.perf_counter()
        try:
            return super().cost(arch)
        finally:
            self.cost_seconds += time.perf_counter() - t


class TimedScore:
    """The one-shot scorer, counting the architectures it scores and the seconds it takes."""

    def __init__(self, score):
        self.score, self.calls, self.seconds = score, 0, 0.0

    def __call__(self, arch):
        t = time.perf_counter()
        out = self.score(arch)
        self.calls += 1
        self.seconds += time.perf_counter() - t
        return out


def front_points(trials, objectives, directions) -> np.ndarray:
    """Minimisation vectors of the complete, feasible trials among `trials`."""
    import optuna

    from nas.search.pareto import to_minimisation

    vals = [t.values for t in trials if t.state == optuna.trial.TrialState.COMPLETE and
            t.user_attrs.get("metrics", {}).get("feasible", True)]
    return to_minimisation(vals, directions) if vals else np.zeros((0, len(objectives)))


def run_study(run, evaluator, sampler_name: str, seed: int, n_trials: int, population: int, bar) -> list:
    """One in-memory study of `n_trials` trials; returns its trials in order."""
    import optuna

    from nas.search.study import make_objective, make_sampler

    study = optuna.create_study(directions=run.ctx.directions, sampler=make_sampler(sampler_name, seed, population))
    objective = make_objective(run.ctx.space, evaluator, run.ctx.objectives)
    study.optimize(objective, n_trials=n_trials, callbacks=[lambda s, t: bar.update(1)], gc_after_trial=False)
    return study.get_trials(deepcopy=False)


def save_cache(path: str, cache: dict) -> None:
    from nas.io import atomic_write_json

    atomic_write_json(path, cache)


def table(results, budgets, samplers) -> list[str]:
    lines = ["| sampler | " + " | ".join(f"HV @ {b} trials" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for s in samplers:
        cells = []
        for b in budgets:
            v = np.array(results[s][b])
            std = v.std(ddof=1) if len(v) > 1 else 0.0
            cells.append(f"{v.mean():.4f} ± {std:.4f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=os.path.join("runs", "bench_search_efficiency"),
                        help="folder for the trained supernet, latency table and metrics cache (reused)")
    parser.add_argument("--budgets", nargs="+", type=int, default=[25, 50, 100])
    parser.add_argument("--samplers", nargs="+", default=["nsga2", "tpe", "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8, help="supernet training epochs (fixed per --work folder)")
    parser.add_argument("--input-size", type=int, default=16,
                        help="digits upscaled from 8x8 to this size (quickstart: 32; 16 scores 4x faster)")
    parser.add_argument("--bn-batches", type=int, default=2, help="BN recalibration batches (of 64) per score")
    parser.add_argument("--population", type=int, default=12, help="NSGA-II population (TPE: startup trials)")
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import optuna
    from tqdm import tqdm

    from nas.search.pareto import hypervolume, non_dominated
    from nas.search.front import reference_point
    from nas.search.stages import one_shot_scorer

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budgets = sorted(args.budgets)
    t_start = time.perf_counter()
    try:
        run, latency_model, supernet, setup = prepare(args.work, args.epochs, args.input_size, args.bn_batches)
    except RuntimeError as e:  # load_state_dict: the supernet's layout changed since WORK was built
        if "state_dict" not in str(e):
            raise
        raise SystemExit(f"{args.work}: its supernet checkpoint does not fit the current Supernet (the code changed "
                         f"since it was trained); delete the folder to rebuild it") from None
    cache_file = os.path.join(args.work, "metrics.json")
    cache = json.load(open(cache_file)) if os.path.exists(cache_file) else {}
    cached_before = len(cache)
    score = TimedScore(one_shot_scorer(run.ctx, supernet))
    evaluator = TimedEvaluator(score, latency_model, cache=cache)  # one instance: cost and metrics cached for all
    ref = reference_point(run.ctx, evaluator)

    # the cache is only sound if scoring is deterministic: score one architecture twice
    probe = run.ctx.space.sample(np.random.default_rng(12345))
    first, second = score(probe), score(probe)
    if first != second:
        raise SystemExit(f"one-shot score is not deterministic ({first} vs {second}); the shared cache is unsound")

    results = {s: {b: [] for b in budgets} for s in args.samplers}
    seconds = {s: {"study": 0.0, "scoring": 0.0, "scored": 0, "cost": 0.0} for s in args.samplers}
    all_points = []
    total = len(args.samplers) * len(args.seeds) * budgets[-1]
    with tqdm(total=total, desc="trials", disable=not sys.stderr.isatty()) as bar:
        for seed in args.seeds:
            for s in args.samplers:
                t0, sc0, calls0, c0 = time.perf_counter(), score.seconds, score.calls, evaluator.cost_seconds
                trials = run_study(run, evaluator, s, seed, budgets[-1], args.population, bar)
                seconds[s]["study"] += time.perf_counter() - t0
                seconds[s]["scoring"] += score.seconds - sc0
                seconds[s]["scored"] += score.calls - calls0
                seconds[s]["cost"] += evaluator.cost_seconds - c0
                for b in budgets:
                    results[s][b].append(hypervolume(front_points(trials[:b], run.ctx.objectives, run.ctx.directions), ref))
                all_points.append(front_points(trials, run.ctx.objectives, run.ctx.directions))
                save_cache(cache_file, evaluator.cache)
                print(f"{s} seed {seed}: " + ", ".join(f"HV@{b} {results[s][b][-1]:.4f}" for b in budgets), flush=True)
    pts = np.concatenate(all_points)
    best_known = hypervolume(pts, ref)
    front = pts[non_dominated(pts)]
    wall = time.perf_counter() - t_start
    usage = os.times()
    cpu = usage.user + usage.system

    lines = table(results, budgets, args.samplers)
    verdict = []
    for s in args.samplers:
        if s == "random" or "random" not in results:
            continue
        wins = [b for b in budgets if np.mean(results[s][b]) > np.mean(results["random"][b])]
        verdict.append(f"{s} beats random (mean) at {len(wins)}/{len(budgets)} budgets"
                       + (f" ({', '.join(map(str, wins))})" if wins else ""))
    overhead = ", ".join(f"{s} {(v['study'] - v['scoring'] - v['cost']) / (len(args.seeds) * budgets[-1]) * 1e3:.0f} ms"
                         for s, v in seconds.items())
    scored = sum(v["scored"] for v in seconds.values())
    notes = [
        f"- Reference point (accuracy negated, latency ms): {[round(r, 4) for r in ref]}; hypervolume of the union "
        f"of all {len(pts)} evaluated points (best known front, {len(front)} points): {best_known:.4f}.",
        f"- {'; '.join(verdict)}.",
        f"- Set-up: latency table + calibration {setup['latency_s']:.0f} s, supernet ({args.epochs} epochs) "
        f"{setup['supernet_s']:.0f} s ({'reused from --work' if setup['reused'] else 'trained now'}); "
        f"{scored} architectures scored ({cached_before} were in the cache before), "
        f"{score.seconds / max(score.calls, 1):.2f} s each (wall), cost metrics of new architectures "
        f"{evaluator.cost_seconds:.0f} s in all; sampler time per trial: {overhead}; total {wall / 60:.1f} min "
        f"wall, {cpu / 60:.1f} min CPU (user+sys of this process).",
    ]
    print("\n".join(["", *lines, "", *notes]))
    if not args.no_append:
        argv = " ".join(sys.argv[1:])
        head = [
            "", "## search efficiency (bench/search_efficiency.py)", "",
            f"{datetime.date.today().isoformat()}, {cpu_model()} (lscpu \"Model name\"; "
            f"2 vCPUs shared with other jobs), "
            f"1 thread, torch {torch.__version__}, optuna {optuna.__version__}.",
            f"`.venv/bin/python bench/search_efficiency.py{' ' + argv if argv else ''}`: the `mobile` space on digits "
            f"({args.input_size}x{args.input_size}), one supernet ({args.epochs} epochs, fair sampling, quickstart spec) and one latency table "
            f"(cpu, 1 thread, batch 1); objectives accuracy (one-shot, val split, BN recalibrated on {args.bn_batches} fixed batches of 64) "
            f"and predicted latency; no constraints. Hypervolume of the first B trials of one study per sampler and "
            f"seed (seeds {', '.join(map(str, args.seeds))}), mean ± std over seeds; NSGA-II population "
            f"{args.population}, TPE multivariate with {min(10, args.population)} startup trials.", "",
        ]
        with open(args.results, "a") as f:  # append: other benchmarks write their own sections
            f.write("\n".join(head + lines + [""] + notes) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
