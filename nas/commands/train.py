"""`nas train SPEC`: train the spec's supernet (one process, N processes with --nproc, or Ray Train),
or with --arch one architecture from scratch."""
from __future__ import annotations

import argparse
import hashlib
import os

from nas.commands.export import load_arch
from nas.data import make_loaders
from nas.errors import UserError
from nas.io import say
from nas.launch import supernet_dir, train_supernet_from_spec
from nas.runlock import RunLock
from nas.spec.resolve import load_space, load_splits
from nas.spec.sections import load_spec
from nas.tasks import task_for
from nas.training.checkpoint import CHECKPOINT
from nas.training.loop import TrainConfig


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train the spec's weight-sharing supernet (or one architecture with --arch)",
        description="Train the supernet of the spec's space on its dataset into RUN/supernet/ (the folder `nas search` "
                    "uses), checkpointing every epoch. --nproc N runs N data-parallel processes on this machine "
                    "(gloo on CPU, nccl on CUDA); `distributed: {backend: ray, num_workers: N}` in the spec runs on "
                    "Ray Train. data.batch_size is the global batch.",
        epilog="example: nas train experiments/quickstart.yaml --nproc 2 --set supernet.epochs=5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="the spec (YAML) whose data, space and supernet sections are used")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. supernet.epochs=5 (repeatable; VALUE is read as YAML)")
    p.add_argument("--nproc", type=int, default=None, help="data-parallel processes on this machine (torch elastic "
                                                           "launcher); default: the spec's distributed section")
    p.add_argument("--arch", default=None, help="train this architecture (arch string or YAML file) from scratch "
                                                "instead of the supernet, into RUN/train/")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    spec = load_spec(args.spec, args.overrides)
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc: {args.nproc} is not a process count; valid: integers >= 1")
    with RunLock(spec.out_dir, "nas train"):  # a `nas search` or another `nas train` on the folder is refused
        return _train(args, spec)


def _train(args, spec) -> int:
    progress = not args.quiet
    if args.arch:
        return _train_arch(spec, args.arch, args.resume, progress, args.nproc)
    ckpt = os.path.join(supernet_dir(spec), CHECKPOINT)
    if os.path.exists(ckpt) and not args.resume:
        raise UserError(f"run folder '{supernet_dir(spec)}' already holds a supernet checkpoint; pass --resume to "
                        f"continue it, or choose another folder with --set run_dir=PATH")
    if args.resume and not os.path.exists(ckpt):
        say(f"--resume: no checkpoint in '{supernet_dir(spec)}' yet; training from the first epoch")
    result = train_supernet_from_spec(spec, resume=args.resume, progress=progress, nproc=args.nproc)
    last = (result.get("history") or [result.get("metrics") or {}])[-1]
    summary = ", ".join(f"{k} {last[k]:.4g}" for k in ("epoch", "loss", "accuracy") if isinstance(last.get(k),
                                                                                                 (int, float)))
    print(f"supernet trained ({result['world_size']} process{'es' if result['world_size'] > 1 else ''}): "
          f"{summary or 'nothing left to train'}; checkpoint {result['checkpoint']}")
    return 0


def _train_arch(spec, text: str, resume: bool, progress: bool, nproc) -> int:
    if nproc and nproc > 1:
        raise UserError("--arch trains in one process; drop --nproc (data-parallel training is for the supernet)")
    arch = load_arch(text)
    splits = load_splits(spec)
    space = load_space(spec, splits)
    task = task_for(spec.task, space)
    model = task.build_model(arch)
    cfg = TrainConfig.from_spec(spec)
    loaders = make_loaders(splits, cfg.batch_size, seed=spec.seed, num_workers=spec.data.num_workers)
    run_dir = os.path.join(spec.out_dir, "train", hashlib.sha1(arch.to_string().encode()).hexdigest()[:10])
    task.train(model, loaders, cfg, run_dir, resume=resume, progress=progress)
    test = task.evaluate(model, loaders[2])
    shown = ", ".join(f"{q} {test[q]:.4f}" for q in task.quality)
    print(f"test {shown} (loss {test['loss']:.4f}); checkpoint {run_dir}/{CHECKPOINT}")
    return 0
