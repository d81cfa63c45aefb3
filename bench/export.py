"""Benchmark: the exported mobilenet_v2 preset against torchvision's mobilenet_v2, CPU inference latency.

`nas export` writes the preset as a standalone file (into a temp folder); it is imported from there
and given torchvision's weights, mapped tensor by tensor in state-dict order (the preset has the same
tensors in the same order), which the output check confirms. Both run in eval mode under no_grad on
the same input. Runs are interleaved: each round times both models at each batch size, the order
alternating between rounds, so drift and bursts of load on a shared machine hit both alike. Printed:
the median per-run latency of each, and the median over rounds of the per-round ratio exported /
torchvision (the goal: within 5%, i.e. 0.95-1.05).

    .venv/bin/python bench/export.py                  # batch 1 and 32, 1 thread, 30 rounds
    .venv/bin/python bench/export.py --threads 2 --rounds 50 --markdown
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torchvision
from tqdm import tqdm



def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes (default: 1,32)")
    p.add_argument("--size", type=int, default=224, help="input height = width (default: 224)")
    p.add_argument("--rounds", type=int, default=30, help="timed rounds (default: 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs of each model and batch first (default: 3)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    p.add_argument("--min-sample-ms", type=float, default=20.0,
                   help="a sample repeats the forward until it lasts this long, averaged (default: 20)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (for bench/RESULTS.md)")
    return p.parse_args(argv)


def exported_mobilenet_v2(folder: str):
    """`Net` of the file `nas export` writes for the mobilenet_v2 preset, imported from `folder`."""
    from nas.export.code import write_code
    from search_spaces.presets import load_preset

    path = write_code(load_preset("mobilenet_v2"), os.path.join(folder, "mobilenet_v2_export.py"))
    spec = importlib.util.spec_from_file_location("mobilenet_v2_export", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Net()


def forward_time(model, x, inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        model(x)
    return (time.perf_counter() - start) / inner


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        return platform.processor() or platform.machine()


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    reference = torchvision.models.mobilenet_v2(weights=None).eval()
    with tempfile.TemporaryDirectory() as folder:
        exported = exported_mobilenet_v2(folder).eval()
    mapped = dict(zip(exported.state_dict(), reference.state_dict().values()))
    exported.load_state_dict(mapped)
    models = {"exported": exported, "torchvision": reference}
    inputs = {b: torch.randn(b, 3, args.size, args.size) for b in batches}
    with torch.no_grad():
        diff = (exported(inputs[batches[0]]) - reference(inputs[batches[0]])).abs().max().item()
        inner = {}
        for b, x in inputs.items():
            for _ in range(args.warmup):
                for m in models.values():
                    m(x)
            once = min(forward_time(m, x, 1) for m in models.values())
            inner[b] = max(1, round(args.min_sample_ms / 1000 / once))
        times = {(name, b): [] for name in models for b in batches}
        for r in tqdm(range(args.rounds), desc="rounds", disable=not sys.stderr.isatty()):
            order = list(models) if r % 2 == 0 else list(models)[::-1]
            for b in batches:
                for name in order:
                    times[name, b].append(forward_time(models[name], inputs[b], inner[b]))
    print(f"# mobilenet_v2 at {args.size}x{args.size}, CPU ({cpu_name()}), {args.threads} thread(s), eval + no_grad; "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}; {args.rounds} interleaved rounds; "
          f"output max |diff| with torchvision's weights: {diff:.1e}")
    header = ["batch", "exported ms", "torchvision ms", "ratio exported/torchvision (median of rounds)"]
    rows = []
    for b in batches:
        ratios = [e / t for e, t in zip(times["exported", b], times["torchvision", b])]
        rows.append([str(b), f"{statistics.median(times['exported', b]) * 1e3:.2f}",
                     f"{statistics.median(times['torchvision', b]) * 1e3:.2f}",
                     f"{statistics.median(ratios):.3f} (IQR {_quartiles(ratios)})"])
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        for row in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def _quartiles(values) -> str:
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.3f}-{q[2]:.3f}"


if __name__ == "__main__":
    sys.exit(main())
