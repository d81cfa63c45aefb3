"""GPU readiness: run every CUDA path of convnas once and print the figures (issue 16).

    1  latency   the `cuda` profile: the `mobile` space's table at 224x224 (batch 1 and 64, float16,
                 channels_last), calibrated and validated on 30 random networks: share within ±10%, MAPE,
                 Kendall tau, beside a re-measurement of the same networks and the MACs proxy
    2  overhead  supernet step / extracted-subnet step (same path, interleaved); supernet training step time in
                 fp32, bf16 and fp16 AMP (losses finite) and bf16 with channels_last vs contiguous
    3  throughput supernet training img/s at 32x32 and 224x224 (sampled paths; one path) against that path's
                 subnet trained standalone; peak GPU memory of the all_ops supernet (32x32, batch 64)
    4  ddp       2 processes on the one device (gloo) = 1 process on the same shards within 1e-5; sync_bn: true
    5  ray       a Ray Tune one-shot search with gpus_per_trial 0.25: 4 trials at once (CPU: 2, 1 CPU each)
    6  search    `nas search experiments/cifar10_mobile.yaml` on a synthetic CIFAR-10 folder with tiny budgets:
                 exit 0, and best/model.py runs standalone

Nothing is downloaded (synthetic images, scikit-learn's digits). Each step runs on its own: one that fails is
reported as FAIL with its error's last line and the others still run; the exit code is 1 if any failed. The
markdown table goes to stdout and, with --out DIR (default: $OUT when set), to DIR/gpu_check.md with the
figures in DIR/gpu_check.json. Progress goes to stderr. Full sizes on CUDA take < 8 minutes on one H200;
--quick (or --device cpu) runs tiny sizes: 16x16/32x32 inputs, few networks and batches.

    python bench/gpu_check.py                         # CUDA when available
    python bench/gpu_check.py --device cpu --quick    # ~90 s on a 2-core CPU
    python bench/gpu_check.py --steps 1,4 --out results/
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the step modules and supernet_overhead.py

STEPS = {1: "latency profile", 2: "step overhead, AMP, channels_last", 3: "throughput, memory", 4: "DDP, sync_bn",
         5: "Ray Tune concurrency", 6: "nas search cifar10_mobile"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda if available, else cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (always so on the CPU)")
    p.add_argument("--steps", default=",".join(map(str, STEPS)), help="comma-separated steps (default: all)")
    p.add_argument("--out", help="folder for gpu_check.md and gpu_check.json (default: $OUT when set)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (tables, checkpoints, runs)")
    args = p.parse_args(argv)
    try:
        args.steps = sorted({int(s) for s in args.steps.split(",") if s.strip()})
    except ValueError:
        p.error(f"--steps: '{args.steps}' is not a comma-separated list of step numbers")
    if not args.steps or not set(args.steps) <= set(STEPS):
        p.error(f"--steps: choose from {', '.join(map(str, STEPS))}")
    return args


def step_functions():
    from gpu_check_runs import step_ddp, step_ray, step_search
    from gpu_check_steps import step_latency, step_overhead, step_throughput

    return {1: step_latency, 2: step_overhead, 3: step_throughput, 4: step_ddp, 5: step_ray, 6: step_search}


def last_line(e: BaseException) -> str:
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}".rstrip(": ")


def finite(obj):
    """The figures with NaN and infinities as None (strict JSON)."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def machine(device: str) -> dict:
    import torch

    from nas.latency.profile import cpu_model

    m = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}
    if device == "cuda":
        m.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda)
    return m


def markdown(report: dict) -> str:
    m = report["machine"]
    where = f"{m['gpu']} (CUDA {m['cuda']})" if "gpu" in m else f"CPU {m['cpu']} ({m['cores']} cores)"
    lines = [f"## GPU check — {report['date']}, {report['device']}{' --quick' if report['quick'] else ''}, {where}",
             "", f"torch {m['torch']}; total {report['seconds']:.0f} s", "",
             "| # | step | status | figures | goal | s |", "| --- | --- | --- | --- | --- | ---: |"]
    for n, r in report["steps"].items():
        goal = r["goal"] + ("" if r["goal_met"] is None else f" ({'met' if r['goal_met'] else 'not met'})")
        text = r["text"] if r["status"] == "PASS" else r["error"]
        cells = [n, r["name"], r["status"], text, goal, f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # nas.train trains on CUDA whenever torch sees it; subprocesses too
        # small models on few cores: one thread each (`nas search` in a subprocess took 3x longer with two threads
        # fighting other processes for two cores)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda, but torch sees no CUDA device; use --device cpu", file=sys.stderr)
        return 2
    if device == "cpu":
        torch.set_num_threads(1)  # small models: one thread is faster, and fair to a shared machine
    from gpu_check_steps import CheckFailed, log, make_plan

    work = tempfile.mkdtemp(prefix="gpu_check-")
    plan = make_plan(device, args.quick, work)
    funcs = step_functions()
    t_all = time.time()
    report = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "device": device, "quick": plan.quick,
              "machine": machine(device), "steps": {}}
    try:
        for n in args.steps:
            log(f"step {n}: {STEPS[n]}")
            t0 = time.time()
            entry = {"name": STEPS[n], "status": "PASS", "text": "", "goal": "", "goal_met": None, "figures": {},
                     "error": None}
            try:
                r = funcs[n](plan)
                entry.update(text=r.text, goal=r.goal, goal_met=r.goal_met, figures=r.figures)
            except Exception as e:  # noqa: BLE001 - every step is reported, whatever it raised
                entry.update(status="FAIL", error=last_line(e))
                if not isinstance(e, CheckFailed):
                    traceback.print_exc(file=sys.stderr)
            entry["seconds"] = time.time() - t0
            report["steps"][str(n)] = entry
            log(f"step {n}: {entry['status']} in {entry['seconds']:.0f} s: {entry['text'] or entry['error']}")
    finally:
        if args.keep:
            log(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = time.time() - t_all
    text = markdown(report)
    print(text)
    out = args.out or os.environ.get("OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "gpu_check.md"), "w") as f:
            f.write(text)
        with open(os.path.join(out, "gpu_check.json"), "w") as f:
            json.dump(finite(report), f, indent=1, allow_nan=False)
    return 1 if any(r["status"] == "FAIL" for r in report["steps"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
