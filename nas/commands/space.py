"""`nas space list | show SPACE`: the shipped search spaces, and one space's decisions, size and extremes."""
from __future__ import annotations

import argparse
import math
import textwrap

import search_spaces
from nas.cost import count_arch, format_count
from nas.errors import UserError
from nas.tasks import get_task
from search_spaces.safe_yaml import load_yaml

DESCRIPTION = """\
list: the shipped search spaces (search_spaces/*.yaml) with their decision count and size.
show: one space (a shipped name or a YAML path): every decision with its choices, the number of
architectures (as 10^x), the parameters of its weight-sharing supernet (what supernet training
holds in memory), and its smallest and largest architecture by parameters with their parameters
and MACs (nas/cost.py, batch 1 at the space's input size).

The smallest / largest architecture is found greedily, decision by decision: each takes the choice
that minimises (maximises) the parameter count with all others fixed, repeated until nothing
changes. Parameters are additive over layers, so this is exact for per-layer choices; depth and
width interact with them, so it is a close approximation, not a proof of the extreme."""

EPILOG = """\
examples:
  nas space list
  nas space show mobile
  nas space show mobile --set input_size=64 --set num_classes=100
  nas space show my_space.yaml --no-cost"""


def register(subparsers) -> None:
    p = subparsers.add_parser("space", help="list the shipped search spaces or show one",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("list", help="the shipped search spaces")
    ls.set_defaults(func=run_list)
    show = sub.add_parser("show", help="one space's decisions, size and smallest/largest architectures",
                          description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("space", metavar="SPACE", help="a shipped space name (see `nas space list`) or a YAML path")
    show.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a key of the space file (value read as YAML), e.g. --set input_size=64 "
                           "or --set stages.0.depth=[1,2] (repeatable)")
    show.add_argument("--no-cost", action="store_true", help="skip the smallest/largest architectures")
    show.set_defaults(func=run_show)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set input_size=64")
        out[key.strip()] = load_yaml(value)
    return out


def size_text(n: int) -> str:
    return f"10^{math.log10(n):.1f} ({n:,} architectures)" if n >= 10 ** 6 else f"{n:,} architectures"


def run_list(args) -> int:
    rows = []
    for name in search_spaces.shipped_spaces():
        space = search_spaces.load(name)
        rows.append((name, str(len(space.decisions())), f"10^{math.log10(space.size()):.1f}", space.task,
                     space.spec.description))
    widths = [max(len(r[i]) for r in rows + [("name", "decisions", "size", "task", "")]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(("name", "decisions", "size", "task"), widths)) + "  description")
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    return 0


def _cost_line(space, arch) -> str:
    try:
        cost = count_arch(arch)
        return f"params {format_count(cost.params)}, MACs {format_count(cost.macs)}"
    except Exception as e:  # noqa: BLE001 - e.g. the dense-prediction network is not buildable yet
        reason = " ".join(str(e).split())[:100]
        return f"params {space.params(arch):,} (encoder only; cannot build: {reason})"


def supernet_line(space) -> str:
    """The supernet's shared parameters and their float32 size, beside the largest subnet's."""
    shared = sum(p.numel() for p in get_task(space.task).build_supernet(space).parameters())
    largest = space.params(space.largest())
    return (f"supernet: {format(shared, ',')} shared parameters ({shared * 4 / 2**20:.1f} MiB in float32), "
            f"{shared / max(largest, 1):.1f}x the largest architecture's")


def run_show(args) -> int:
    space = search_spaces.load(args.space, **_overrides(args.set))
    spec = space.spec
    print(f"space {space.name}: {spec.description}")
    print(f"input {spec.in_channels}x{spec.input_size}x{spec.input_size}, {spec.num_classes} classes, {space.task}, "
          f"{len(space.positions())} layer positions")
    decisions = space.decisions()
    print(f"\n{len(decisions)} decisions (key, number of choices, choices):")
    kw = max((len(d.key) for d in decisions), default=0)
    for d in decisions:
        choices = ", ".join(str(c) for c in d.choices)
        lines = textwrap.wrap(choices, 110 - kw) or [""]
        print(f"  {d.key.ljust(kw)}  {len(d.choices):>3}  {lines[0]}")
        for line in lines[1:]:
            print(" " * (kw + 9) + line)
    print(f"\nsize: {size_text(space.size())}")
    if args.no_cost:
        return 0
    print(supernet_line(space))
    for label, arch in (("smallest", space.smallest()), ("largest", space.largest())):
        print(f"\n{label} by parameters: {_cost_line(space, arch)}")
        print(f"  {arch.to_string()}")
    return 0
