"""Benchmark: every op's params, MACs, memory traffic and measured CPU latency, side by side.

The point of the table: MACs alone do not predict speed. Each op is built at c_in = c_out =
--channels on a batch-1 --size x --size input (upsample-family ops at stride 1, asff with three
pyramid levels) and run single-threaded. Latency is the median over --repeats rounds; within a
round every op runs once (a few times for sub-millisecond ops, averaged) in a fresh random order,
so slow drift and bursts of load on a shared machine spread over all ops instead of landing on a
few; the fastest sample ("min ms") is shown too, as the figure least disturbed by other load. "time/MAC vs conv" is (latency / MACs) of the op over the same ratio for `conv` (3x3):
above 1 the op is slower than its MAC count suggests. The rank correlations at the end say how
well MACs, memory traffic and parameter count order the ops by latency (1 = perfectly).

    .venv/bin/python bench/op_costs.py                     # defaults: 64 channels, 56x56, 30 rounds
    .venv/bin/python bench/op_costs.py --ops conv,mbconv,deform_conv --repeats 50 --markdown
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import time

import torch

sys.modules.pop("ops", None) if getattr(sys.modules.get("ops"), "__file__", "") == os.path.abspath(__file__) else None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--channels", type=int, default=64, help="c_in = c_out (default: 64)")
    p.add_argument("--size", type=int, default=56, help="input height = width (default: 56)")
    p.add_argument("--repeats", type=int, default=50, help="timed rounds over all ops (default: 50)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs of each op first (default: 3)")
    p.add_argument("--ops", default="", help="comma-separated op names (default: every registered op)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    p.add_argument("--min-sample-ms", type=float, default=2.0,
                   help="ops faster than this run several times per sample, averaged (default: 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the round orders (default: 0)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (for bench/RESULTS.md)")
    return p.parse_args(argv)


def rank(values):
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x, y):
    """Spearman's rho: Pearson correlation of the (tie-averaged) ranks."""
    rx, ry = rank(x), rank(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (sx * sy) if sx and sy else float("nan")


def kendall_tau_b(x, y):
    """Kendall's tau-b (tie-corrected), O(n^2): fine for tens of ops."""
    conc = disc = tx = ty = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif (dx > 0) == (dy > 0):
                conc += 1
            else:
                disc += 1
    denom = math.sqrt((conc + disc + tx) * (conc + disc + ty))
    return (conc - disc) / denom if denom else float("nan")


def build(name, channels, size):
    """The op at its defaults or, where those cannot be built at this shape, with the first choice of
    one hparam that can (shuffle_v1's default groups=3 does not divide 64 channels, say)."""
    from nas.cost import count, op_example
    from ops import op_spec

    attempts = [{}] + [{h.name: c} for h in op_spec(name).hparams for c in h.choices if c != h.default]
    first_error = None
    for hp in attempts:
        try:
            module, inputs = op_example(name, channels, channels, size, **hp)
            module.eval()
            return module, inputs, count(module, inputs=inputs), hp
        except Exception as e:
            first_error = first_error or e
    raise first_error


def time_once(module, inputs, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        module(inputs)
    return (time.perf_counter() - t0) / inner


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from nas.cost import format_bytes, format_count
    from ops import op_names, op_spec

    names = [n.strip() for n in args.ops.split(",") if n.strip()] or op_names()
    for n in names:
        op_spec(n)  # unknown name: fail now, with close matches
    started = time.perf_counter()

    built, skipped, changed = {}, {}, {}
    for name in names:
        try:
            module, inputs, cost, hp = build(name, args.channels, args.size)
        except Exception as e:  # an op that cannot be built at this shape is reported, not fatal
            skipped[name] = str(e).splitlines()[0] if str(e) else type(e).__name__
            continue
        built[name] = (module, inputs, cost)
        if hp:
            changed[name] = hp

    samples = {n: [] for n in built}
    inner = {}
    rng = random.Random(args.seed)
    with torch.inference_mode():
        for name, (module, inputs, _) in built.items():
            for _ in range(args.warmup):
                module(inputs)
            t = min(time_once(module, inputs, 1) for _ in range(2))
            inner[name] = max(1, math.ceil(args.min_sample_ms / 1e3 / max(t, 1e-7)))
        order = list(built)
        from tqdm import tqdm

        for _ in tqdm(range(args.repeats), desc="rounds", disable=not sys.stderr.isatty(), leave=False):
            rng.shuffle(order)
            for name in order:
                module, inputs, _ = built[name]
                samples[name].append(time_once(module, inputs, inner[name]))
    elapsed = time.perf_counter() - started

    rows = []
    for name, (_, _, cost) in built.items():
        s = sorted(samples[name])
        med = statistics.median(s)
        q1, q3 = s[len(s) // 4], s[(3 * len(s)) // 4]
        rows.append(dict(name=name, family=op_spec(name).family, params=cost.params, macs=cost.macs,
                         traffic=cost.memory_traffic_bytes, latency=med, best=s[0], spread=(q3 - q1) / 2 / med if med else 0.0))
    ref = next((r for r in rows if r["name"] == "conv" and r["macs"]), None)
    for r in rows:
        if ref and r["macs"]:
            r["vs_conv"] = (r["latency"] / r["macs"]) / (ref["latency"] / ref["macs"])
        else:
            r["vs_conv"] = None

    header = ["op", "family", "params", "MACs", "traffic", "latency ms", "±IQR/2", "min ms", "time/MAC vs conv"]
    table = [[r["name"] + "".join(f" ({k}={v})" for k, v in changed.get(r["name"], {}).items()), r["family"], format_count(r["params"]), format_count(r["macs"]),
              format_bytes(r["traffic"]), f"{r['latency'] * 1e3:.3f}", f"{r['spread'] * 100:.0f}%", f"{r['best'] * 1e3:.3f}",
              _ratio(r)] for r in rows]
    print(f"# ops at batch 1, {args.channels}->{args.channels} channels, {args.size}x{args.size}, "
          f"{args.threads} thread(s), median of {args.repeats} interleaved rounds after {args.warmup} warm-up runs")
    print(f"# torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}; "
          f"{len(rows)} ops timed, {len(skipped)} skipped; {elapsed:.0f} s")
    print(_render(header, table, args.markdown))
    for name, hp in changed.items():
        print(f"{name}: built with {', '.join(f'{k}={v}' for k, v in hp.items())}: its defaults cannot be built here")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")

    lat = [r["latency"] for r in rows]
    if len(rows) >= 3:
        print()
        print(f"rank correlation with latency over {len(rows)} ops (Spearman rho / Kendall tau-b):")
        for label, key in (("MACs", "macs"), ("memory traffic", "traffic"), ("params", "params")):
            xs = [r[key] for r in rows]
            print(f"  {label:<15} {spearman(xs, lat):+.2f} / {kendall_tau_b(xs, lat):+.2f}")
        best = [r["best"] for r in rows]
        xs = [r["macs"] for r in rows]
        print(f"  MACs vs min     {spearman(xs, best):+.2f} / {kendall_tau_b(xs, best):+.2f}   "
              f"(the fastest run of each op instead of the median)")
        with_macs = [r for r in rows if r["macs"]]
        if len(with_macs) >= 3 and len(with_macs) < len(rows):
            xs, ys = [r["macs"] for r in with_macs], [r["latency"] for r in with_macs]
            print(f"  MACs, {len(with_macs)} ops with MACs > 0: {spearman(xs, ys):+.2f} / {kendall_tau_b(xs, ys):+.2f}")
        if ref:  # ops with almost no MACs (se, cbam) have huge ratios that say little: leave them out
            ratios = sorted((r["vs_conv"], r["name"]) for r in rows
                            if r["vs_conv"] is not None and r["macs"] >= ref["macs"] / 100)
            lo, hi = ratios[0], ratios[-1]
            print(f"time per MAC relative to conv, over the {len(ratios)} ops with at least 1% of conv's MACs, "
                  f"spans {lo[0]:.2f}x ({lo[1]}) to {hi[0]:.2f}x ({hi[1]}): a {hi[0] / lo[0]:.0f}-fold range")
    return 0


def _ratio(r) -> str:
    if not r["macs"]:
        return "n/a (0 MACs)"
    return "-" if r["vs_conv"] is None else f"{r['vs_conv']:.2f}"


def _render(header, table, markdown):
    right = {2, 3, 4, 5, 6, 7, 8}
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "| " + " | ".join("---:" if i in right else "---" for i in range(len(header))) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in table]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]

    def fmt(row):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in table)])


if __name__ == "__main__":
    sys.exit(main())
