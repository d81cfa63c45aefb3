"""How different are two devices' fronts? One supernet, a search per device (cpu-1t vs onnxruntime-cpu).

A one-shot search on digits (16x16) over the `mobile` space with `hardware:` a list of two devices: the
supernet is trained once, each device gets its latency table, its own NSGA-II study and its front (drawn from
every architecture the run scored: quality is shared, each device's latency is predicted for every one). The
figures:

- the share of front architectures the two devices have in common (Jaccard of the arch strings), for the run's
  fronts and for the fronts each device's own search found alone;
- each device's front evaluated on the other: the hypervolume of device A's front points with their latency on
  device B, over the hypervolume of B's own front (both under B's reference point; 1.0: A's front is as good on
  B as B's own, lower: what searching for the wrong device costs);
- Kendall's tau between the two devices' predicted latencies over every scored architecture (do the devices
  rank architectures alike?), and how many architectures were scored for both searches together.

    python bench/device_fronts.py --quick    # small space, 1 supernet epoch, 12 trials a device (~10 min on 2 busy
                                             # cores, most of it exporting the table's units to ONNX)
    python bench/device_fronts.py            # 8 epochs, 40 trials a device; appends to bench/RESULTS.md

The run folder (WORK/run) resumes: run again with more --trials and only the new trials run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.abspath(os.path.dirname(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402

# --quick: a small MBConv space of 33 table units (mobile has 455 at 16x16; onnxruntime-cpu exports each unit with
# the dynamo exporter, seconds apiece on a busy 2-core machine)
QUICK_SPACE = """
name: bench_devices
input: {channels: 1, size: 16}
num_classes: 10
stem:
  - {op: conv, c_out: 8, stride: 2, kernel: 3}
stages:
  - {depth: [1, 2], width: [8, 16], stride: 1, ops: {mbconv: {kernel: [3, 5], expand: [1, 3]}}}
  - {depth: [1, 2], width: [16, 24], stride: 2,
     ops: {mbconv: {kernel: [3, 5], expand: [3]}, dw_separable: {kernel: [3]}}}
classifier: {dropout: 0.0}
"""
PROFILES = {"cpu-1t": {"kind": "cpu", "threads": 1}, "cpu-2t": {"kind": "cpu", "threads": 2},
            "onnxruntime-cpu": {"kind": "onnxruntime-cpu", "threads": 1}}
DEVICES = ("cpu-1t", "onnxruntime-cpu")


def make_spec(work: str, quick: bool, trials: int, epochs: int, space: str) -> dict:
    if space == "quick":
        space = os.path.join(work, "bench_devices.yaml")
        with open(space, "w") as f:
            f.write(QUICK_SPACE)
    timing = {"warmup": 3, "repeats": 10 if quick else 30, "calibration_archs": 4 if quick else 12}
    return {
        "name": "device_fronts", "seed": 0, "run_dir": os.path.join(work, "run"),
        "data": {"name": "digits", "input_size": 16, "batch_size": 64},
        "space": {"name": space},
        "supernet": {"epochs": epochs, "lr": 0.1, "warmup_epochs": 0 if quick else 1},
        "hardware": [{**PROFILES[d], **timing} for d in DEVICES],
        "search": {"trials": trials, "population": 6 if quick else 12, "bn_batches": 2 if quick else 4},
        "tracking": {"wandb": {"enabled": False}},
    }


def cross_hypervolume(summary: dict, rows: list[dict], a: str, b: str, fronts: dict | None = None) -> float:
    """HV of device a's front with each point's latency on device b, over HV of b's own front (b's reference);
    `fronts` (device -> arch strings) instead of the run's fronts."""
    from nas.search.pareto import hypervolume, to_minimisation

    ref = summary["devices"][b]["reference_point"]
    by_arch = {r["arch"]: r for r in rows}
    if fronts is None:
        fronts = {d: [r["arch"] for r in summary["devices"][d]["front"]] for d in (a, b)}

    def hv(archs) -> float:
        pts = [[by_arch[x]["accuracy"], by_arch[x][f"latency_ms@{b}"]] for x in archs]
        return hypervolume(to_minimisation(pts, ["maximize", "minimize"]), ref) if pts else 0.0

    own_hv = hv(fronts[b])
    return hv(fronts[a]) / own_hv if own_hv > 0 else float("nan")


def own_front(rows: list[dict], device: str) -> set[str]:
    """The front of `device`'s own search alone (its study's trials, its latency): what a separate search finds."""
    from nas.search.pareto import non_dominated

    own = list({r["arch"]: r for r in rows if r["device"] == device}.values())
    pts = [[-r["accuracy"], r[f"latency_ms@{device}"]] for r in own]
    return {own[i]["arch"] for i in non_dominated(np.array(pts))} if own else set()


def kendall_tau(x, y) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(x, y).statistic)


def figures(run_dir: str) -> dict:
    """The bench's figures from a finished run folder (summary.json, trials.csv)."""
    import csv

    with open(os.path.join(run_dir, "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(run_dir, "trials.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("accuracy")]
    for r in rows:
        for k in ("accuracy", *(f"latency_ms@{d}" for d in DEVICES)):
            r[k] = float(r[k])
    unique = list({r["arch"]: r for r in rows}.values())
    fronts = {d: {r["arch"] for r in summary["devices"][d]["front"]} for d in DEVICES}
    a, b = DEVICES
    own = {d: own_front(rows, d) for d in DEVICES}
    with open(os.path.join(run_dir, "quality.jsonl")) as f:
        scored = sum(1 for _ in f)
    return {
        "trials": summary["trials"], "architectures": len(unique), "scored": scored,
        "front_sizes": {d: len(fronts[d]) for d in DEVICES},
        "common": len(fronts[a] & fronts[b]), "jaccard": len(fronts[a] & fronts[b]) / len(fronts[a] | fronts[b]),
        "own_common": len(own[a] & own[b]), "own_jaccard": len(own[a] & own[b]) / max(1, len(own[a] | own[b])),
        "own_sizes": {d: len(own[d]) for d in DEVICES},
        f"hv {a} front on {b}": cross_hypervolume(summary, rows, a, b),
        f"hv {b} front on {a}": cross_hypervolume(summary, rows, b, a),
        f"own hv {a} front on {b}": cross_hypervolume(summary, rows, a, b, own),
        f"own hv {b} front on {a}": cross_hypervolume(summary, rows, b, a, own),
        "kendall_tau_latency": kendall_tau([r[f"latency_ms@{a}"] for r in unique],
                                           [r[f"latency_ms@{b}"] for r in unique]),
        "latency_ratio_median": float(np.median([r[f"latency_ms@{b}"] / r[f"latency_ms@{a}"] for r in unique])),
        "hypervolume": {d: summary["devices"][d]["hypervolume"] for d in DEVICES},
        "seconds": summary["seconds"], "space": summary["space"],
    }


def report(fig: dict, quick: bool, epochs: int, trials: int) -> str:
    a, b = DEVICES
    lines = [f"device fronts: {'QUICK run' if quick else 'full run'}, {fig['space']} space on digits 16x16, supernet "
             f"{epochs} epoch(s), {trials} trials per device, {fig['seconds']:.0f} s in the last invocation",
             "", "| figure | value |", "| --- | ---: |",
             f"| trials (both searches) / distinct architectures / scored | {fig['trials']} / {fig['architectures']} / "
             f"{fig['scored']} |",
             f"| front size {a} / {b} | {fig['front_sizes'][a]} / {fig['front_sizes'][b]} |",
             f"| front architectures in common (Jaccard) | {fig['common']} ({fig['jaccard']:.2f}) |",
             f"| fronts of each device's own search alone: sizes {fig['own_sizes'][a]} / {fig['own_sizes'][b]}, in "
             f"common (Jaccard) | {fig['own_common']} ({fig['own_jaccard']:.2f}) |",
             f"| HV of {a}'s front on {b} / {b}'s own: run fronts, own-search fronts | "
             f"{fig[f'hv {a} front on {b}']:.3f}, {fig[f'own hv {a} front on {b}']:.3f} |",
             f"| HV of {b}'s front on {a} / {a}'s own: run fronts, own-search fronts | "
             f"{fig[f'hv {b} front on {a}']:.3f}, {fig[f'own hv {b} front on {a}']:.3f} |",
             f"| Kendall tau of the two devices' latencies | {fig['kendall_tau_latency']:.3f} |",
             f"| median latency ratio {b} / {a} | {fig['latency_ratio_median']:.2f} |"]
    return "\n".join(lines)


def main(argv=None) -> int:
    global DEVICES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 supernet epoch, 12 trials per device, few repeats")
    ap.add_argument("--work", default=os.path.join(ROOT, "runs", "bench_device_fronts"))
    ap.add_argument("--trials", type=int, default=None, help="trials per device")
    ap.add_argument("--epochs", type=int, default=None, help="supernet epochs")
    ap.add_argument("--space", default=None, help="a space name or YAML (default: mobile; --quick: a small "
                                                  "space written to WORK)")
    ap.add_argument("--devices", nargs=2, default=list(DEVICES), choices=sorted(PROFILES),
                    help=f"the two devices compared (default: {' '.join(DEVICES)})")
    ap.add_argument("--fresh", action="store_true", help="delete WORK/run first")
    ap.add_argument("--no-append", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)
    trials = args.trials or (12 if args.quick else 40)
    epochs = args.epochs or (1 if args.quick else 8)
    torch.set_num_threads(1)
    from nas.search.runner import SearchRun, holds_run
    from nas.spec.sections import load_spec

    DEVICES = tuple(args.devices)
    space = args.space or ("quick" if args.quick else "mobile")
    os.makedirs(args.work, exist_ok=True)
    spec = make_spec(args.work, args.quick, trials, epochs, space)
    if args.fresh:
        shutil.rmtree(spec["run_dir"], ignore_errors=True)
    t0 = time.perf_counter()
    SearchRun(load_spec(spec), resume=holds_run(spec["run_dir"]), progress=False).run()
    fig = figures(spec["run_dir"])
    print(f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump(fig, f, indent=1)
    text = report(fig, args.quick, epochs, trials)
    print(text)
    if not args.quick and not args.no_append:
        from results import append_results

        append_results("Device fronts: cpu-1t vs onnxruntime-cpu", "bench/device_fronts.py", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
