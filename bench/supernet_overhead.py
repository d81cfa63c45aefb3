"""Benchmark: a supernet training step on a sampled path against the extracted subnet trained standalone.

For each of N random paths of a space, the supernet (`forward(x, arch)`: cached templates holding
slices of the shared max-size tensors) and `extract(arch)` (a plain module) each take a full SGD step
(forward, backward, optimizer step, as nas.training.loop takes it) on the same batch. Steps are interleaved
(the order alternating between rounds) so that bursts of load on a shared machine hit both alike; per
path the ratio of median step times is taken, and the median over paths printed (goal <= 1.10 on CPU).

A second part measures the peak resident memory of a process that trains the all_ops supernet on
digits (32x32, batch 64, the spec defaults) for a few steps, its largest path included (goal < 3 GB).

    .venv/bin/python bench/supernet_overhead.py                       # mobile and all_ops, 10 paths each
    .venv/bin/python bench/supernet_overhead.py --spaces mobile --paths 3 --no-rss
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import time

import torch



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--spaces", default="mobile,all_ops", help="comma-separated spaces (default: mobile,all_ops)")
    p.add_argument("--paths", type=int, default=10, help="random paths per space (default: 10)")
    p.add_argument("--rounds", type=int, default=5, help="timed steps of each model per path (default: 5)")
    p.add_argument("--size", type=int, default=16, help="input height = width (default: 16)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default: 32)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rss", action="store_true", help="skip the all_ops peak-memory run")
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rss-steps", type=int, default=8, help="training steps of the peak-memory run (default: 8)")
    return p.parse_args(argv)


def sgd_step(model, opt, x, y, arch=None) -> float:
    """One training step as nas.training.loop takes it (the optimizer sees the parameters that have gradients)."""
    from nas.training.loop import used_parameters_only

    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    out = model(x) if arch is None else model(x, arch)
    torch.nn.functional.cross_entropy(out, y).backward()
    with used_parameters_only(opt):
        opt.step()
    return time.perf_counter() - t


def overhead(space_name: str, args) -> list[float]:
    import search_spaces
    from nas.supernet.supernet import Supernet

    torch.manual_seed(args.seed)
    space = search_spaces.load(space_name, input_size=args.size)
    supernet = Supernet(space).train()
    rng = random.Random(args.seed)
    x = torch.randn(args.batch, space.spec.in_channels, args.size, args.size)
    y = torch.randint(0, space.spec.num_classes, (args.batch,))
    ratios = []
    for i in range(args.paths):
        arch = space.sample(rng)
        sub = supernet.extract(arch).train()
        o_sup = torch.optim.SGD(supernet.parameters(), lr=1e-3, momentum=0.9)
        o_sub = torch.optim.SGD(sub.parameters(), lr=1e-3, momentum=0.9)
        sgd_step(supernet, o_sup, x, y, arch)  # warm-up: template construction, allocator
        sgd_step(sub, o_sub, x, y)
        t_sup, t_sub = [], []
        for r in range(args.rounds):
            if r % 2:
                t_sub.append(sgd_step(sub, o_sub, x, y))
                t_sup.append(sgd_step(supernet, o_sup, x, y, arch))
            else:
                t_sup.append(sgd_step(supernet, o_sup, x, y, arch))
                t_sub.append(sgd_step(sub, o_sub, x, y))
        a, b = statistics.median(t_sup), statistics.median(t_sub)
        ratios.append(a / b)
        print(f"  {space_name} path {i + 1}/{args.paths}: supernet {a * 1e3:8.1f} ms  subnet {b * 1e3:8.1f} ms  "
              f"ratio {a / b:.3f}  ({arch.depth()} layers)", flush=True)
    return ratios


def rss_child(args) -> None:
    """Train the all_ops supernet on digits for a few steps (largest path first); print peak RSS in MB."""
    import search_spaces
    from nas.data.datasets import load_dataset, make_loaders
    from nas.supernet.supernet import Supernet
    from nas.training.loop import TrainConfig, make_optimizer

    splits = load_dataset("digits", input_size=32, seed=0)
    space = search_spaces.load("all_ops", in_channels=splits.in_channels, input_size=32,
                               num_classes=splits.num_classes)
    supernet = Supernet(space).train()
    opt = make_optimizer(supernet, TrainConfig())
    train, _, _ = make_loaders(splits, 64, seed=0)
    rng = random.Random(0)
    archs = [space.largest()] + [space.sample(rng) for _ in range(args.rss_steps - 1)]
    for arch, (x, y) in zip(archs, train):
        sgd_step(supernet, opt, x, y, arch)
    print(f"RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_child:
        rss_child(args)
        return 0
    print(f"supernet step / subnet step, {args.size}x{args.size}, batch {args.batch}, {args.threads} thread(s), "
          f"{args.paths} paths x {args.rounds} interleaved rounds")
    summary = {}
    for name in args.spaces.split(","):
        ratios = overhead(name, args)
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        summary[name] = (statistics.median(ratios), q[0], q[2])
        print(f"{name}: median ratio {summary[name][0]:.3f} (IQR {q[0]:.3f}-{q[2]:.3f}) over {len(ratios)} paths")
    if not args.no_rss:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", "--threads",
                              str(args.threads), "--rss-steps", str(args.rss_steps)],
                             capture_output=True, text=True, check=True).stdout
        mb = float(out.strip().splitlines()[-1].split()[1])
        print(f"all_ops supernet training on digits (32x32, batch 64, {args.rss_steps} steps incl. the largest "
              f"path): peak RSS {mb:.0f} MB (goal < 3072 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
