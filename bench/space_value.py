"""Benchmark: does every convolution type pay off? The measured fronts of the mobile, resnet and all_ops spaces
against each other and against hand designs (MobileNetV2, ShuffleNetV2, ResNet-18 scaled to the task).

For each space, the framework's own one-shot search runs in WORK/search_<space> (digits_distorted at --size,
CPU profile: 1 thread, batch 1) with the same supernet compute (the same epochs and batch: equal path-steps, one
path a step with the fair sampler), the same sampler and the same trial budget. The top --top of each one-shot
front (spread over predicted latency) and the presets are then trained from scratch with --seeds seeds, and every
one of them is timed side by side in one interleaved measurement (drift-corrected, at the mobile table's machine
speed). Printed and (with --record) appended to bench/RESULTS.md:

- per space: the hypervolume of its *measured* front (mean test accuracy, measured latency; one reference point
  for all: accuracy 0 and 1.1x the slowest network), every front network's accuracy / latency / params / ops;
- whether the all_ops front dominates the mobile front and every preset, and the latency ratio at equal accuracy
  (goal: >= 1.2x lower latency than mobile at equal test accuracy);
- the op types and plug-ins that survive on each front;
- the all_ops supernet's rank correlation: Kendall tau of --rank-archs latency-spread architectures, inherited
  (BN recalibrated) vs from scratch (held-out = val + test), beside the tau between two from-scratch seeds.

With --mode multi_trial every space is searched the other way (`search.mode: multi_trial`): each candidate trained
from scratch for at most --trial-epochs, weak ones pruned at the rungs (MO-ASHA), no supernet (and so no rank
correlation); its searches live in WORK/search_<space>_multi_trial_e<N>, its from-scratch trainings are shared.

Every training is kept in WORK and reused: a second run only trains what is missing (the searches resume too).

    .venv/bin/python bench/space_value.py --work /work/bench/space_value          # hours on 2 cores
    .venv/bin/python bench/space_value.py --quick --work /tmp/sv                   # smoke run, minutes
    .venv/bin/python bench/space_value.py --mode multi_trial --spaces all_ops --trials 60 --work WORK
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

ROOT = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

SPACES = ("mobile", "resnet", "all_ops")
# hand designs, each at a width that suits a 16x16 ten-class task (the stored presets are ImageNet-sized)
PRESETS = {"mobilenet_v2": 0.5, "shufflenet_v2_x1_0": 0.5, "resnet18": 0.25}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--work", default=os.path.join(ROOT, "runs", "bench_space_value"))
    p.add_argument("--spaces", nargs="+", default=list(SPACES))
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--supernet-epochs", type=int, default=30, help="supernet epochs, the same for every space")
    p.add_argument("--supernet-sampler", default="fair", choices=("uniform", "fair", "sandwich"))
    p.add_argument("--mode", default="one_shot", choices=("one_shot", "multi_trial"),
                   help="search.mode of every space's search: one_shot (the supernet scores candidates) or "
                        "multi_trial (each candidate trained from scratch for --trial-epochs, MO-ASHA pruning)")
    p.add_argument("--trial-epochs", type=int, default=6, help="multi_trial: a candidate's largest budget")
    p.add_argument("--trials", type=int, default=120, help="search trials per space (default: 120)")
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--top", type=int, default=4, help="front networks retrained per space (default: 4)")
    p.add_argument("--epochs", type=int, default=15, help="from-scratch epochs (default: 15)")
    p.add_argument("--seeds", type=int, default=3, help="from-scratch seeds of front networks and presets")
    p.add_argument("--rank-archs", type=int, default=12, help="all_ops archs for the rank correlation (0: skip)")
    p.add_argument("--rank-seeds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes, one thread each (default: 2)")
    p.add_argument("--quick", action="store_true", help="tiny budget: a smoke run of every phase")
    p.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: report the finished searches and trainings in WORK (the rest as pending)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.supernet_epochs, args.trials, args.population, args.top = 1, 8, 4, 2
        args.epochs, args.seeds, args.rank_archs, args.rank_seeds, args.trial_epochs = 1, 2, 4, 2, 2
    if args.mode == "multi_trial":
        args.rank_archs = 0  # no supernet to correlate
    return args


# --- jobs (each runs in a worker process with one thread) --------------------------------------------------

def search_dir(args, space: str) -> str:
    suffix = f"_multi_trial_e{args.trial_epochs}" if args.mode == "multi_trial" else ""
    return os.path.join(args.work, f"search_{space}{suffix}")


def search_spec(args, space: str) -> dict:
    return {
        "name": f"space_value_{space}", "seed": args.seed, "run_dir": search_dir(args, space),
        "data": {"name": "digits_distorted", "input_size": args.size, "batch_size": 64},
        "space": {"name": space},
        "supernet": {"epochs": args.supernet_epochs, "optimizer": "sgd", "lr": 0.1, "warmup_epochs": 1,
                     "sampler": args.supernet_sampler},
        "hardware": {"kind": "cpu", "threads": 1, "batch": 1, "calibration_archs": 4 if args.quick else 12,
                     **({"warmup": 2, "repeats": 6} if args.quick else {})},
        "objectives": [{"metric": "accuracy", "direction": "maximize"},
                       {"metric": "latency_ms", "direction": "minimize"}],
        "search": {"mode": args.mode, "sampler": "nsga2", "trials": args.trials, "population": args.population,
                   "bn_batches": 4, "trial_epochs": args.trial_epochs},
        "tracking": {"wandb": {"enabled": False}},
        "export": {"onnx": False},
    }


def open_run(args, space: str):
    from nas.search.runner import SearchRun
    from nas.spec.sections import load_spec

    spec = load_spec(search_spec(args, space))
    return SearchRun(spec, resume=os.path.exists(os.path.join(spec.run_dir, "summary.json"))
                     or os.path.exists(os.path.join(spec.run_dir, "spec.yaml")), progress=False)


def search_job(args, space: str) -> dict:
    """The space's search (resumed if begun); its front picks and, for all_ops, the rank archs."""
    import csv

    from nas.search.retrain import spread
    from nas.search.spread import spread_assignments

    torch.set_num_threads(1)
    t0 = time.time()
    run = open_run(args, space)
    if not os.path.exists(os.path.join(run.dir, "summary.json")):
        run.run()
    with open(os.path.join(run.dir, "trials.csv")) as f:
        rows = [r for r in csv.DictReader(f)]
    front = [{"arch": r["arch"], "trial": int(r["trial"]), "search_accuracy": float(r["accuracy"]),
              "predicted_ms": float(r["latency_ms"])} for r in rows if r["on_front"] == "True"]
    picks = spread(front, args.top, "predicted_ms")
    out = {"space": space, "front": front, "picks": picks, "seconds": time.time() - t0, "rank": []}
    if space == "all_ops" and args.rank_archs:
        lm = run.latency_model()
        out["rank"] = [run.space.decode(a).to_string()
                       for a in spread_assignments(run.space, args.rank_archs, lm.predict, args.seed)]
    return out


def load_splits(args):
    from nas.data.datasets import load_dataset

    return load_dataset("digits_distorted", input_size=args.size, seed=args.seed)


def job_dir(args, arch: str, seed: int) -> str:
    return os.path.join(args.work, "scratch", f"{hashlib.sha1(arch.encode()).hexdigest()[:12]}_s{seed}_e{args.epochs}")


def cached(args, arch_string: str, seed: int) -> dict | None:
    """The finished from-scratch result of `arch` with `seed`, if any."""
    path = os.path.join(job_dir(args, arch_string, seed), "result.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def scratch_job(args, arch_string: str, seed: int) -> dict:
    """`arch` trained from scratch with `seed`: test accuracy and held-out (val + test) accuracy, cached."""
    from torch.utils.data import ConcatDataset, DataLoader

    from nas.data.datasets import make_loaders
    from nas.evaluation.classification import evaluate
    from nas.training.loop import TrainConfig, train_model
    from search_spaces import Arch
    from search_spaces.builder import build_model

    folder = job_dir(args, arch_string, seed)
    cache = os.path.join(folder, "result.json")
    if (done := cached(args, arch_string, seed)) is not None:
        return done
    torch.set_num_threads(1)
    t0 = time.time()
    splits = load_splits(args)
    torch.manual_seed(args.seed + 1000 * seed)
    model = build_model(Arch.from_string(arch_string))
    cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=0.1, warmup_epochs=1, seed=args.seed + seed)
    loaders = make_loaders(splits, 64, seed=args.seed + seed)
    train_model(model, loaders, cfg, folder, resume=True, progress=False)
    held_out = DataLoader(ConcatDataset([splits.val, splits.test]), batch_size=256)
    result = {"arch": arch_string, "seed": seed, "test": evaluate(model, loaders[2])["accuracy"],
              "held_out": evaluate(model, held_out)["accuracy"], "seconds": time.time() - t0}
    from nas.io import atomic_write_json

    atomic_write_json(cache, result)
    return result


# --- the driver --------------------------------------------------------------------------------------------

def preset_archs(args) -> dict[str, str]:
    from search_spaces.presets import load_preset

    return {name: load_preset(name, num_classes=10, input_size=args.size, in_channels=1, width_mult=w).to_string()
            for name, w in PRESETS.items()}


def inherited_accuracy(args, archs: list[str]) -> list[float]:
    """Held-out accuracy of each arch with the all_ops supernet's weights (BN recalibrated, as the search does)."""
    from torch.utils.data import ConcatDataset, DataLoader

    from nas.data.datasets import make_loaders
    from nas.evaluation.classification import evaluate, recalibrate_bn
    from search_spaces import Arch

    run = open_run(args, "all_ops")
    supernet = run.supernet()
    splits = load_splits(args)
    train = make_loaders(splits, 64, seed=args.seed)[0]
    held_out = DataLoader(ConcatDataset([splits.val, splits.test]), batch_size=256)
    return [evaluate(recalibrate_bn(supernet, train, 8, arch=Arch.from_string(a)), held_out)["accuracy"]
            for a in archs]


def measure_side_by_side(args, archs: list[str]) -> list[float]:
    """Every network timed in one interleaved session on the mobile search's table (its profile and speed)."""
    from nas.latency.predictor import measure_archs, reference_arch
    from search_spaces import Arch

    run = open_run(args, args.spaces[0])
    table = run.latency_model().table
    return measure_archs([Arch.from_string(a) for a in archs], table, chunk=len(archs),
                         reference=reference_arch(run.space))


def ops_of(arch_string: str) -> tuple[set[str], set[str]]:
    from search_spaces import Arch

    arch = Arch.from_string(arch_string)
    layers = [layer for s in arch.stages for layer in s]
    return {layer.op for layer in layers}, {p.op for layer in layers for p in layer.plugins}


def main(argv=None) -> int:
    from scipy.stats import kendalltau

    args = parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    log = lambda msg: print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)  # noqa: E731
    presets = preset_archs(args)
    results: dict[tuple[str, int], dict] = {}
    searches: dict[str, dict] = {}
    searched = [s for s in args.spaces if not args.report_only
                or os.path.exists(os.path.join(search_dir(args, s), "summary.json"))]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {}

        def submit(jobs):
            for a, seed in dict.fromkeys(jobs):
                if (done := cached(args, a, seed)) is not None:
                    results[a, seed] = done
                elif not args.report_only and (a, seed) not in pending.values():
                    pending[pool.submit(scratch_job, args, a, seed)] = (a, seed)

        search_futures = [(s, pool.submit(search_job, args, s)) for s in searched]
        submit([(a, seed) for seed in range(args.seeds) for a in presets.values()])  # beside the searches
        for space, fut in search_futures:
            searches[space] = fut.result()
            log(f"{space}: search done ({searches[space]['seconds']:.0f} s), front {len(searches[space]['front'])}, "
                f"retraining {len(searches[space]['picks'])} of it and {len(searches[space]['rank'])} rank archs")
        # seed by seed over every network, so that a run cut short has every space at as many seeds
        jobs = [(p["arch"], seed) for seed in range(args.seeds) for s in searches.values() for p in s["picks"]]
        submit(jobs + [(a, seed) for seed in range(args.rank_seeds) for s in searches.values() for a in s["rank"]])
        log(f"{len(results)} from-scratch trainings found done, {len(pending)} to run or running")
        for fut in as_completed(pending):
            results[pending[fut]] = fut.result()
            if len(results) % 5 == 0:
                log(f"{len(results)} from-scratch trainings done")
    log(f"{len(results)} from-scratch trainings done")

    trained = {a for a, _ in results}
    measured_archs = sorted(({p["arch"] for s in searches.values() for p in s["picks"]} | set(presets.values()))
                            & trained)
    log(f"measuring {len(measured_archs)} networks side by side")
    ms = dict(zip(measured_archs, measure_side_by_side(args, measured_archs)))
    report = build_report(args, searches, presets, results, ms)
    if "all_ops" in searches and len([a for a in searches["all_ops"]["rank"]
                                      if all((a, s) in results for s in range(args.rank_seeds))]) >= 4:
        rank = [a for a in searches["all_ops"]["rank"] if all((a, s) in results for s in range(args.rank_seeds))]
        inherited = inherited_accuracy(args, rank)
        scratch = [[results[a, s]["held_out"] for s in range(args.rank_seeds)] for a in rank]
        tau = kendalltau(inherited, [np.mean(x) for x in scratch]).statistic
        ceiling = kendalltau([x[0] for x in scratch], [x[1] for x in scratch]).statistic if args.rank_seeds > 1 \
            else float("nan")
        report += (f"\n\nall_ops supernet rank correlation ({len(rank)} latency-spread archs, held-out accuracy): "
                   f"Kendall tau inherited vs from scratch (mean of {args.rank_seeds} seeds) = {tau:.3f}; "
                   f"two from-scratch seeds = {ceiling:.3f} (the noise ceiling); inherited "
                   f"{min(inherited):.3f}-{max(inherited):.3f}, from scratch "
                   f"{min(np.mean(x) for x in scratch):.3f}-{max(np.mean(x) for x in scratch):.3f}")
    how = (f"supernet {args.supernet_epochs} epochs ({args.supernet_sampler}), {args.trials} one-shot trials"
           if args.mode == "one_shot" else
           f"multi-trial: {args.trials} trials trained from scratch for <= {args.trial_epochs} epochs (MO-ASHA)")
    head = (f"space value: digits_distorted {args.size}x{args.size}, {'QUICK ' if args.quick else ''}{how} (nsga2), "
            f"top {args.top} retrained {args.epochs} epochs x {args.seeds} seeds, cpu 1 thread batch 1; "
            f"{time.time() - t0:.0f} s in all")
    text = head + "\n\n" + report
    print("\n" + text)
    with open(os.path.join(args.work, "report.md"), "w") as f:
        f.write(text + "\n")
    if args.record:
        from results import append_results

        append_results("Space value: fronts of mobile / resnet / all_ops vs presets", "bench/space_value.py", text)
    return 0


def build_report(args, searches, presets, results, ms) -> str:
    """The per-space table, the domination verdicts and the surviving ops."""
    from nas.search.pareto import hypervolume, non_dominated
    from search_spaces import Arch
    from search_spaces.builder import build_model

    def point(arch: str) -> dict:
        accs = [results[arch, s]["test"] for s in range(args.seeds) if (arch, s) in results]
        params = sum(p.numel() for p in build_model(Arch.from_string(arch)).parameters())
        return {"acc": float(np.mean(accs)), "sd": float(np.std(accs)), "n": len(accs), "ms": ms[arch],
                "params": params}

    def acc(pt: dict) -> str:
        return f"{pt['acc']:.3f} ± {pt['sd']:.3f}" + (f" ({pt['n']} of {args.seeds} seeds)" if pt["n"] < args.seeds
                                                      else "")

    ref = (0.0, 1.1 * max(ms.values()))
    fronts, lines = {}, []
    lines += ["| space | network | test acc (mean ± sd) | measured ms | params k | predicted ms | search acc | ops "
              "| plug-ins |", "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for space, s in searches.items():
        pts = []
        for p in s["picks"]:
            if p["arch"] not in ms:
                lines.append(f"| {space} | trial {p['trial']} | pending (not trained yet) | | | "
                             f"{p['predicted_ms']:.3f} | {p['search_accuracy']:.3f} | | |")
                continue
            pt = {**point(p["arch"]), **p}
            ops, plugins = ops_of(p["arch"])
            pts.append(pt)
            lines.append(f"| {space} | trial {p['trial']} | {acc(pt)} | {pt['ms']:.3f} | "
                         f"{pt['params'] / 1e3:.1f} | {p['predicted_ms']:.3f} | {p['search_accuracy']:.3f} | "
                         f"{', '.join(sorted(ops))} | {', '.join(sorted(plugins - {'none'})) or '-'} |")
        if pts:
            fronts[space] = pts
    for name, arch in presets.items():
        if arch not in ms:
            lines.append(f"| preset | {name} x{PRESETS[name]} | pending (not trained yet) | | | - | - | | - |")
            continue
        pt = point(arch)
        ops, _ = ops_of(arch)
        fronts.setdefault("presets", []).append({**pt, "name": name})
        lines.append(f"| preset | {name} x{PRESETS[name]} | {acc(pt)} | {pt['ms']:.3f} | "
                     f"{pt['params'] / 1e3:.1f} | - | - | {', '.join(sorted(ops))} | - |")

    def minimised(pts):
        return np.array([[-p["acc"], p["ms"]] for p in pts]).reshape(-1, 2)

    lines += ["", "| space | measured front size | hypervolume (acc x ms, ref acc 0, "
              f"{ref[1]:.2f} ms) |", "| --- | ---: | ---: |"]
    for space, pts in fronts.items():
        m = minimised(pts)
        nd = m[non_dominated(m)] if len(m) else m
        lines.append(f"| {space} | {len(nd)} | {hypervolume(nd, (-ref[0], ref[1])):.4f} |")
    lines.append("")
    for a, b in (("all_ops", "mobile"), ("all_ops", "presets"), ("mobile", "presets"), ("resnet", "presets"),
                 ("all_ops", "resnet")):
        if a in fronts and b in fronts:
            lines.append(domination_line(a, fronts[a], b, fronts[b]))
    return "\n".join(lines)


def domination_line(a: str, pa: list[dict], b: str, pb: list[dict]) -> str:
    """Whether front `a` weakly dominates every point of `b`, and b's latency over a's at equal accuracy."""
    covered = [any(p["acc"] >= q["acc"] and p["ms"] <= q["ms"] for p in pa) for q in pb]
    ratios = []
    for q in pb:  # the fastest point of a at least as accurate as q: q's latency over its latency
        better = [p["ms"] for p in pa if p["acc"] >= q["acc"]]
        if better:
            ratios.append(q["ms"] / min(better))
    ratio = f"{min(ratios):.2f}x-{max(ratios):.2f}x" if ratios else f"n/a (no point of {a} is as accurate)"
    return (f"- {a} front vs {b}: {sum(covered)}/{len(pb)} of {b}'s points weakly dominated by {a}'s; "
            f"{b}'s latency / {a}'s at >= equal accuracy: {ratio} over {len(ratios)} comparable points")


if __name__ == "__main__":
    sys.exit(main())
