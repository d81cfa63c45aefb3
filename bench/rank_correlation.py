"""Benchmark: does the supernet rank architectures as training them from scratch does? (mobile, digits)

Trains the mobile space's supernet on digits (8x8, the images' own size), picks N architectures
spread over the space's range of parameter counts (evenly spaced quantiles of 300 random samples),
scores each with inherited weights (BN recalibrated on training batches, as the search does) and
trains each from scratch with the same recipe, twice (two seeds). Both accuracies are measured on
the held-out split (val + test, 540 images). Printed: Kendall tau and Spearman rho between the
inherited and the mean from-scratch accuracy (goal: tau >= 0.5), and the tau between the two
from-scratch seeds: the ceiling that the noise of the from-scratch figures puts on any predictor.

    .venv/bin/python bench/rank_correlation.py                   # about 15 min on 2 cores
    .venv/bin/python bench/rank_correlation.py --archs 6 --supernet-epochs 3 --epochs 1   # a smoke run
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

import torch



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--space", default="mobile")
    p.add_argument("--size", type=int, default=8, help="input height = width (digits are 8x8 natively; default 8)")
    p.add_argument("--archs", type=int, default=12, help="architectures compared (default: 12)")
    p.add_argument("--supernet-epochs", type=int, default=30, help="supernet training epochs (default: 30)")
    p.add_argument("--epochs", type=int, default=6, help="from-scratch training epochs per arch (default: 6)")
    p.add_argument("--seeds", type=int, default=2, help="from-scratch runs per arch (default: 2)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--sampler", default="fair", choices=("uniform", "fair", "sandwich"))
    p.add_argument("--bn-batches", type=int, default=4)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a busy 2-core machine two OpenMP threads stall each other)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def spread(space, n: int, seed: int) -> list:
    """`n` distinct architectures at evenly spaced quantiles of the parameter counts of random samples."""
    rng = random.Random(seed)
    pool = sorted({space.sample(rng) for _ in range(300)}, key=space.params)
    picks = []
    for i in range(n):
        arch = pool[round(i * (len(pool) - 1) / max(1, n - 1))]
        if arch not in picks:
            picks.append(arch)
    return picks


def main(argv=None) -> int:
    from scipy.stats import kendalltau, spearmanr
    from torch.utils.data import ConcatDataset, DataLoader

    import search_spaces
    from nas.data import load_dataset, make_loaders
    from nas.evaluate import evaluate, score_arch
    from nas.supernet import Supernet
    from nas.train import TrainConfig, train_model, train_supernet

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    splits = load_dataset("digits", input_size=args.size, seed=args.seed)
    space = search_spaces.load(args.space, in_channels=splits.in_channels, input_size=args.size,
                               num_classes=splits.num_classes)
    train, _, _ = make_loaders(splits, args.batch, seed=args.seed)
    held_out = DataLoader(ConcatDataset([splits.val, splits.test]), batch_size=256)
    cfg = TrainConfig(epochs=args.supernet_epochs, batch_size=args.batch, lr=args.lr, sampler=args.sampler,
                      warmup_epochs=1, seed=args.seed)
    work = tempfile.mkdtemp(prefix="rank_corr_")
    torch.manual_seed(args.seed)
    supernet = Supernet(space)
    print(f"training the {args.space} supernet on digits {args.size}x{args.size}: {args.supernet_epochs} epochs, "
          f"{args.sampler} sampler, {sum(p.numel() for p in supernet.parameters()) / 1e6:.2f} M shared parameters",
          flush=True)
    train_supernet(supernet, train, cfg, os.path.join(work, "supernet"), progress=True)
    t_super = time.time() - t0

    archs = spread(space, args.archs, args.seed)
    rows = []
    for i, arch in enumerate(archs):
        inherited = score_arch(supernet, arch, train, held_out, args.bn_batches)
        scratch = []
        for s in range(args.seeds):  # a second seed measures the noise of the from-scratch accuracies
            torch.manual_seed(args.seed + 1000 * s + i)
            model = space.build(arch)
            scratch_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, warmup_epochs=1,
                                      seed=args.seed + s)
            train_model(model, make_loaders(splits, args.batch, seed=args.seed + s)[0], scratch_cfg,
                        os.path.join(work, f"arch{i}_seed{s}"), progress=False)
            scratch.append(evaluate(model, held_out)["accuracy"])
        rows.append((space.params(arch), inherited, sum(scratch) / len(scratch), scratch))
        print(f"  arch {i + 1:2d}/{len(archs)}: {space.params(arch) / 1e3:7.1f} k params, depth {arch.depth():2d}  "
              f"inherited {inherited:.3f}  from scratch {' '.join(f'{a:.3f}' for a in scratch)}  "
              f"({time.time() - t0:.0f} s)", flush=True)
    column = lambda k: [r[k] for r in rows]  # noqa: E731
    tau = kendalltau(column(1), column(2)).statistic
    rho = spearmanr(column(1), column(2)).statistic
    print(f"Kendall tau (inherited vs from scratch, mean of {args.seeds} seeds) = {tau:.3f}, Spearman rho = {rho:.3f} "
          f"over {len(rows)} archs (goal tau >= 0.5)")
    if args.seeds > 1:
        noise = kendalltau([r[3][0] for r in rows], [r[3][1] for r in rows]).statistic
        print(f"noise ceiling: Kendall tau between two from-scratch seeds = {noise:.3f}")
    print(f"tau(params vs from scratch) = {kendalltau(column(0), column(2)).statistic:.3f}; held-out accuracy "
          f"spread: inherited {min(column(1)):.3f}-{max(column(1)):.3f}, from scratch {min(column(2)):.3f}-"
          f"{max(column(2)):.3f}; supernet {t_super:.0f} s, total {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
