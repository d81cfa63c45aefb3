"""Benchmark: which kind of path variety stops a weight-sharing supernet from training? (resnet space, digits)

The heterogeneous spaces (`resnet`, `all_ops`) end supernet training near chance on the budget where the
MBConv-only `mobile` space trains (bench/space_value.py). This bench takes that apart: the same supernet,
data and optimizer (SGD lr 0.1, 1 warm-up epoch, cosine; one path a step), trained under path samplers that
add one kind of variety at a time to a fixed reference path (every op the position's first candidate, the
deepest and widest stage, no plug-ins). Printed per scenario: the training accuracy of the sampled paths per
epoch, and the held-out (val) accuracy of the reference path and of 8 random paths of the whole space, both
with BN recalibrated on 8 training batches as the search does.

Scenarios (`--scenarios`, default: all):

- fixed: the reference path every step (an ordinary network: the ceiling)
- one-position: the reference path with one op decision drawn from the first two op types
- two-archs: two fixed architectures that mix the first two op types position by position, alternating
- elastic-width: the reference path with every width decision drawn
- one-op-type: every decision drawn except the ops, which stay the first op type (width, depth, plug-ins vary)
- two-types-per-net: the reference path, each step all of it one of the first two op types
- two-types-mixed: the reference path with every op decision drawn from the first two op types
- two-types-mixed-zero-init: as two-types-mixed, the last BN of every residual branch initialised to zero
- anchor-1: every decision drawn, but the ops stay the first op type except at one random position
- ops-only: the reference path with every op decision drawn from all op types
- all: every decision drawn (what `supernet.sampler: uniform` trains)

    .venv/bin/python bench/supernet_mixing.py                         # about 40 min on 2 cores
    .venv/bin/python bench/supernet_mixing.py --quick                 # smoke run, a minute
    .venv/bin/python bench/supernet_mixing.py --scenarios fixed all --epochs 10 --record
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

ROOT = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

SCENARIOS = ("fixed", "one-position", "two-archs", "elastic-width", "one-op-type", "two-types-per-net",
             "two-types-mixed", "two-types-mixed-zero-init", "anchor-1", "ops-only", "all")
# the last BN of each residual branch (timm's zero_init_last): the block starts as its shortcut
LAST_BN = {"basic_residual": "bn2", "bottleneck": "bn3", "resnext": "bn3", "pyramid": "bn3"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--space", default="resnet")
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=6, help="supernet epochs per scenario (default: 6)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    p.add_argument("--workers", type=int, default=2, help="processes, one thread each (default: 2)")
    p.add_argument("--quick", action="store_true", help="1 epoch at 8x8, three scenarios: a smoke run")
    p.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.size, args.scenarios = 1, 8, ["fixed", "two-types-mixed-zero-init", "all"]
    return args


class ScenarioSampler:
    """The path of each step under one scenario, from the space's decisions and a reference assignment."""

    def __init__(self, space, scenario: str, seed: int):
        self.space, self.scenario = space, scenario
        self.rng = random.Random(f"{scenario}:{seed}")
        self.decisions = list(space.decisions())
        self.op_keys = [d.key for d in self.decisions if d.key.endswith(".op")]
        if not self.op_keys:
            raise SystemExit(f"space '{space.name}' has no per-layer op decisions")
        self.choices = {d.key: list(d.choices) for d in self.decisions}
        self.types = [o for o in self.choices[self.op_keys[0]] if o != "skip"][:2]
        self.reference = {k: max(c) if k.endswith((".depth", ".width")) else c[0] for k, c in self.choices.items()}
        self.reference.update(self._ops(dict.fromkeys(self.op_keys, self.types[0])))
        self.two_archs = [{**self.reference, **self._ops({k: self.types[(i + j) % 2] for i, k in enumerate(
            self.op_keys)})} for j in (0, 1)]

    def _ops(self, wanted: dict) -> dict:
        """`wanted` op per op decision, or that decision's first choice where the op is not offered there."""
        return {k: o if o in self.choices[k] else self.choices[k][0] for k, o in wanted.items()}

    def _drawn(self, keys=None, ops=None) -> dict:
        out = dict(self.reference)
        for d in self.decisions:
            if keys is None or d.key in keys:
                choices = [c for c in d.choices if ops is None or not d.key.endswith(".op") or c in ops]
                out[d.key] = self.rng.choice(choices or list(d.choices))
        return out

    name = "scenario"

    def paths(self, step: int) -> list:
        return [self.path(step)]

    def path(self, step: int):
        s, r, ops = self.scenario, self.rng, self.op_keys
        a = {
            "fixed": lambda: self.reference,
            "one-position": lambda: self._drawn({ops[min(1, len(ops) - 1)]}, self.types),
            "two-archs": lambda: self.two_archs[step % 2],
            "elastic-width": lambda: self._drawn({d.key for d in self.decisions if d.key.endswith(".width")}),
            "one-op-type": lambda: self._drawn(ops=self.types[:1]),
            "two-types-per-net": lambda: {**self.reference, **self._ops(dict.fromkeys(ops, r.choice(self.types)))},
            "two-types-mixed": lambda: self._drawn(set(ops), self.types),
            "two-types-mixed-zero-init": lambda: self._drawn(set(ops), self.types),
            "anchor-1": lambda: {**self._drawn(),
                                 **self._ops(dict.fromkeys(r.sample(ops, len(ops) - 1), self.types[0]))},
            "ops-only": lambda: self._drawn(set(ops)),
            "all": lambda: self._drawn(),
        }[s]()
        return self.space.decode(a)


def zero_init_residual_branches(supernet) -> int:
    """Zero the last BN scale of every residual op's shared tensors; returns how many tensors were zeroed."""
    n = 0
    for position in supernet.ops.values():
        for store in position.values():
            last = LAST_BN.get(store.where.split("'")[1])
            for attr in store.attrs.values():
                if last and attr.startswith(last + "__weight"):
                    with torch.no_grad():
                        getattr(store, attr).zero_()
                    n += 1
    return n


def run_scenario(args, scenario: str) -> dict:
    from nas.data import make_loaders
    from nas.evaluation.classification import evaluate, recalibrate_bn
    from nas.spec.resolve import load_space, load_splits
    from nas.spec.sections import load_spec
    from nas.supernet.supernet import Supernet
    from nas.training.loop import TrainConfig, train_supernet

    torch.set_num_threads(1)
    spec = load_spec({"name": "mixing", "data": {"name": "digits_distorted", "input_size": args.size,
                                                  "batch_size": args.batch}, "space": {"name": args.space}})
    splits = load_splits(spec)
    space = load_space(spec, splits)
    torch.manual_seed(args.seed)
    net = Supernet(space)
    if scenario.endswith("zero-init"):
        zero_init_residual_branches(net)
    train, val, _ = make_loaders(splits, args.batch, seed=args.seed)
    sampler = ScenarioSampler(space, scenario, args.seed)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=0.1, warmup_epochs=1)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as run_dir:  # the loop `nas search` trains with, checkpoints thrown away
        history = train_supernet(net, (train, val), cfg, run_dir, progress=False, sampler=sampler)
    per_epoch = [record["accuracy"] for record in history]
    rng = random.Random(args.seed + 1)
    randoms = [space.decode({d.key: rng.choice(list(d.choices)) for d in sampler.decisions}) for _ in range(8)]
    held_out = [evaluate(recalibrate_bn(net, train, 8, arch=a), val)["accuracy"] for a in randoms]
    reference = evaluate(recalibrate_bn(net, train, 8, arch=space.decode(sampler.reference)), val)["accuracy"]
    return {"scenario": scenario, "train": per_epoch, "reference": reference,
            "random_mean": sum(held_out) / len(held_out), "random_max": max(held_out),
            "seconds": time.time() - t0}


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(run_scenario, [args] * len(args.scenarios), args.scenarios))
    ceiling = next((r["train"][-1] for r in results if r["scenario"] == "fixed"), None)
    lines = [f"supernet mixing: space {args.space}, digits_distorted {args.size}x{args.size}, {args.epochs} epochs "
             f"x batch {args.batch}, SGD lr 0.1, one path a step; {time.time() - t0:.0f} s in all", "",
             "| scenario | train acc of the sampled paths, per epoch | last / fixed | reference path val acc | "
             "8 random paths val acc (mean, max) | s |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        ratio = f"{r['train'][-1] / ceiling:.2f}" if ceiling else "-"
        lines.append(f"| {r['scenario']} | {' '.join(f'{a:.2f}' for a in r['train'])} | {ratio} | "
                     f"{r['reference']:.3f} | {r['random_mean']:.3f}, {r['random_max']:.3f} | {r['seconds']:.0f} |")
    text = "\n".join(lines)
    print(text)
    if args.record:
        from results import append_results

        append_results("Supernet mixing", f"bench/supernet_mixing.py{' --quick' if args.quick else ''}", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
