"""Benchmark: does the supernet rank architectures as training them from scratch does? (mobile, digits)

Trains the mobile space's supernet, picks N architectures spread over the space's latency range
(evenly spaced quantiles of the predicted latency of 600 samples drawn from the smallest to the
largest corner of the space, so the picks span it rather than cluster at its middle as uniform samples
do), scores each with inherited weights (BN recalibrated on training batches, as the search does) and
trains each from scratch with the same recipe, with several seeds. Both accuracies are measured on the
held-out split (val + test). Printed: Kendall tau and Spearman rho between the inherited and the mean
from-scratch accuracy (goal: tau >= 0.5), and the tau between two from-scratch seeds: the ceiling that
the noise of the from-scratch figures puts on any predictor.

The default data is `digits_distorted` (digits under random affine distortion and pixel noise, shipped
with scikit-learn like digits). On plain `digits` every network of the space scores ~98%, differences
are a few of 540 images, and two from-scratch seeds of the same networks agree at tau ~0.3: no
predictor can be judged there (`--data digits` runs that case).

The supernet and the from-scratch runs are independent until scoring: they run in `--workers`
processes of one thread each, the supernet first, then the slowest from-scratch runs.

    .venv/bin/python bench/rank_correlation.py                   # about 2 h on 2 cores
    .venv/bin/python bench/rank_correlation.py --archs 4 --supernet-epochs 1 --epochs 1 --size 8   # smoke run
    .venv/bin/python bench/rank_correlation.py --work DIR --sampler sandwich --supernet-epochs 8   # reuse DIR
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--space", default="mobile")
    p.add_argument("--data", default="digits_distorted", choices=("digits_distorted", "digits"))
    p.add_argument("--size", type=int, default=16, help="input height = width (default: 16)")
    p.add_argument("--archs", type=int, default=12, help="architectures compared (default: 12)")
    p.add_argument("--copies", type=int, default=2, help="distorted copies of each digit (default: 2)")
    p.add_argument("--supernet-epochs", type=int, default=40,
                   help="supernet training epochs (default: 40; sandwich trains 3 paths a step: a third is as long)")
    p.add_argument("--epochs", type=int, default=12, help="from-scratch training epochs per arch (default: 12)")
    p.add_argument("--seeds", type=int, default=2, help="from-scratch runs per arch (default: 2)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--sampler", default="fair", choices=("uniform", "fair", "sandwich"))
    p.add_argument("--bn-batches", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="training processes, one thread each (default: 2)")
    p.add_argument("--work", help="folder for the latency table and every training, kept and reused: a second run "
                                  "with another --sampler retrains only the supernet (default: a new temp folder)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def spread(space, n: int, cost, seed: int) -> list:
    """`n` distinct architectures at evenly spaced quantiles of `cost` over 600 corner samples, cheapest first."""
    from nas.search.spread import spread_assignments

    return sorted((space.decode(a) for a in spread_assignments(space, n, cost, seed)), key=cost)


def load(args):
    """The data, the space and the loaders every process uses (deterministic in args.seed)."""
    from torch.utils.data import ConcatDataset, DataLoader

    import search_spaces
    from nas.data.datasets import load_dataset, make_loaders

    kw = {"copies": args.copies} if args.data == "digits_distorted" else {}
    splits = load_dataset(args.data, input_size=args.size, seed=args.seed, **kw)
    space = search_spaces.load(args.space, in_channels=splits.in_channels, input_size=args.size,
                               num_classes=splits.num_classes)
    held_out = DataLoader(ConcatDataset([splits.val, splits.test]), batch_size=256)
    return splits, space, held_out


def train_supernet_job(args, work: str) -> float:
    """Train the supernet into `work`/supernet; returns the seconds it took."""
    from nas.data.datasets import make_loaders
    from nas.supernet.supernet import Supernet
    from nas.training.loop import TrainConfig, train_supernet

    torch.set_num_threads(1)
    t0 = time.time()
    splits, space, _ = load(args)
    cfg = TrainConfig(epochs=args.supernet_epochs, batch_size=args.batch, lr=args.lr, sampler=args.sampler,
                      warmup_epochs=1, seed=args.seed)
    torch.manual_seed(args.seed)
    train_supernet(Supernet(space), make_loaders(splits, args.batch, seed=args.seed)[0], cfg,
                   supernet_dir(args, work), resume=True, progress=False)
    return time.time() - t0


def supernet_dir(args, work: str) -> str:
    return os.path.join(work, f"supernet_{args.sampler}_{args.supernet_epochs}")


def from_scratch_job(args, arch_string: str, i: int, s: int, work: str) -> float:
    """Held-out accuracy of `arch` trained from scratch with seed `s`."""
    from nas.data.datasets import make_loaders
    from nas.evaluation.classification import evaluate
    from nas.training.loop import TrainConfig, train_model
    from search_spaces.arch import Arch

    torch.set_num_threads(1)
    splits, space, held_out = load(args)
    torch.manual_seed(args.seed + 1000 * s + i)
    model = space.build(Arch.from_string(arch_string))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, warmup_epochs=1, seed=args.seed + s)
    train_model(model, make_loaders(splits, args.batch, seed=args.seed + s)[0], cfg,
                os.path.join(work, f"arch{i}_seed{s}_e{args.epochs}"), resume=True, progress=False)
    return evaluate(model, held_out)["accuracy"]


def main(argv=None) -> int:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from scipy.stats import kendalltau, spearmanr

    from nas.spec.sections import HardwareSection
    from nas.data.datasets import make_loaders
    from nas.evaluation.classification import evaluate, recalibrate_bn
    from nas.latency.stage import prepare
    from nas.supernet.supernet import Supernet
    from nas.training.loop import CHECKPOINT

    args = parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    splits, space, held_out = load(args)
    work = args.work or tempfile.mkdtemp(prefix="rank_corr_")
    hardware = HardwareSection(kind="cpu", threads=1, warmup=3, repeats=20, calibration_archs=8)
    latency = prepare(space, hardware, os.path.join(work, "latency"), progress=False, seed=args.seed)
    archs = spread(space, args.archs, latency.predict, args.seed)
    print(f"{args.data} {args.size}x{args.size}: {len(splits.train)} training, {len(held_out.dataset)} held-out "
          f"images; {len(archs)} {args.space} architectures, predicted {latency.predict(archs[0]):.2f}-"
          f"{latency.predict(archs[-1]):.2f} ms, {space.params(archs[0]) / 1e3:.0f}-{space.params(archs[-1]) / 1e3:.0f} "
          f"k params ({time.time() - t0:.0f} s)", flush=True)
    print(f"training the supernet ({args.supernet_epochs} epochs, {args.sampler} sampler) and {len(archs)} x "
          f"{args.seeds} from-scratch networks ({args.epochs} epochs) in {args.workers} processes", flush=True)
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        supernet_job = pool.submit(train_supernet_job, args, work)
        order = sorted(((i, s) for i in range(len(archs)) for s in range(args.seeds)), key=lambda t: -t[0])
        jobs = {(i, s): pool.submit(from_scratch_job, args, archs[i].to_string(), i, s, work) for i, s in order}
        t_super = supernet_job.result()
        print(f"supernet trained ({t_super:.0f} s)", flush=True)
        supernet = Supernet(space)
        supernet.load_state_dict(torch.load(os.path.join(supernet_dir(args, work), CHECKPOINT), weights_only=True)["model"])
        train = make_loaders(splits, args.batch, seed=args.seed)[0]
        rows = []
        for i, arch in enumerate(archs):
            inherited = evaluate(recalibrate_bn(supernet, train, args.bn_batches, arch=arch), held_out)["accuracy"]
            scratch = [jobs[i, s].result() for s in range(args.seeds)]
            rows.append({"ms": latency.predict(arch), "params": space.params(arch), "inherited": inherited,
                         "scratch": sum(scratch) / len(scratch), "seeds": scratch})
            print(f"  arch {i + 1:2d}/{len(archs)}: {rows[-1]['ms']:6.2f} ms, {rows[-1]['params'] / 1e3:7.1f} k "
                  f"params, depth {arch.depth():2d}  inherited {inherited:.3f}  from scratch "
                  f"{' '.join(f'{a:.3f}' for a in scratch)}  ({time.time() - t0:.0f} s)", flush=True)

    col = lambda k: [r[k] for r in rows]  # noqa: E731
    tau = kendalltau(col("inherited"), col("scratch")).statistic
    rho = spearmanr(col("inherited"), col("scratch")).statistic
    print(f"\nKendall tau (inherited vs from scratch, mean of {args.seeds} seeds) = {tau:.3f}, Spearman rho = "
          f"{rho:.3f} over {len(rows)} archs (goal tau >= 0.5: {'met' if tau >= 0.5 else 'NOT met'})")
    if args.seeds > 1:
        noise = kendalltau([r["seeds"][0] for r in rows], [r["seeds"][1] for r in rows]).statistic
        print(f"noise ceiling: Kendall tau between two from-scratch seeds = {noise:.3f}")
    for k in ("ms", "params"):
        print(f"tau({k} vs from scratch) = {kendalltau(col(k), col('scratch')).statistic:.3f}, "
              f"tau({k} vs inherited) = {kendalltau(col(k), col('inherited')).statistic:.3f}")
    print(f"held-out accuracy: inherited {min(col('inherited')):.3f}-{max(col('inherited')):.3f}, from scratch "
          f"{min(col('scratch')):.3f}-{max(col('scratch')):.3f}; supernet {t_super:.0f} s, total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
