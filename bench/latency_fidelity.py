"""How well does the latency predictor match end-to-end measurement? (cpu, 1 thread, batch 1)

For each case: build the space's latency table, fit the calibration on 24 networks (16 at 224x224)
measured end to end, then measure N other random networks end to end and compare: MAPE, share
within ±5% / ±10%, Kendall tau, for the calibrated table, the naive table sum and a MACs-only linear
proxy (fitted on the same calibration networks), and for a second measurement of the same networks
(the machine's noise floor). Goal: >= 90% within ±10% and tau >= 0.85.

    python bench/latency_fidelity.py                 # all cases, appends to bench/RESULTS.md
    python bench/latency_fidelity.py --cases mobile@32 --no-append

Tables and plots go to --out (default runs/bench_latency); a rerun reuses the tables (delete the
folder to measure afresh).
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time


import torch  # noqa: E402

# name@size -> (space, input size, validation networks, calibration networks, table repeats,
#               end-to-end repeats, warm-up); fewer and shorter runs at 224x224 (a network takes 0.1-0.5 s)
CASES = {
    "mobile@32": ("mobile", 32, 50, 24, 60, 60, 10),
    "all_ops@32": ("all_ops", 32, 50, 24, 40, 40, 5),
    "mobile@224": ("mobile", 224, 20, 16, 12, 12, 2),
}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from nas.latency.profile import cpu_model as from_proc

    return from_proc()


def run_case(key: str, out_root: str) -> dict:
    import search_spaces

    from nas.latency.predictor import LatencyModel, fit_calibration, space_signature
    from nas.latency.profile import DeviceProfile
    from nas.latency.table import LatencyTable
    from nas.latency.units import space_units
    from nas.latency.validate import format_report, validate

    name, size, n_val, n_cal, table_repeats, e2e_repeats, warmup = CASES[key]
    space = search_spaces.load(name, in_channels=3, input_size=size)
    out = os.path.join(out_root, key.replace("@", "-"))
    profile = DeviceProfile(kind="cpu", threads=1, batch=1, warmup=warmup, repeats=table_repeats)
    times = {}
    t0 = time.time()
    table = LatencyTable.open(out, profile)
    units = space_units(space)
    measured = table.build(units, size=size)
    table.spaces = [space_signature(space)]
    table.save()
    times["table_s"] = time.time() - t0
    table.profile = profile.with_(repeats=e2e_repeats)  # whole networks: fewer runs at 224x224
    t0 = time.time()
    if space_signature(space) not in table.calibrations:
        fit_calibration(space, table, n=n_cal, seed=0)
    times["calibration_s"] = time.time() - t0
    model = LatencyModel.for_space(table, space)
    t0 = time.time()
    report = validate(space, model, n=n_val, seed=1, out_dir=out, repeat=True)
    times["validation_s"] = time.time() - t0
    print(format_report(report), flush=True)
    print(f"  {len(units)} table entries ({measured} measured now), calibration '{model.calibration.form}' "
          f"{_cal_text(model.calibration)}; {', '.join(f'{k} {v:.0f}' for k, v in times.items())}", flush=True)
    return {"key": key, "report": report, "units": len(units), "times": times, "cal": model.calibration}


def _cal_text(cal) -> str:
    scales = ", ".join(f"{k} x{v:.3f}" for k, v in sorted(cal.scale.items()))
    return f"({scales}; {cal.per_unit * 1e3:+.1f} µs/unit; {cal.intercept:+.3f} ms)"


def markdown(results: list[dict], started: datetime.datetime, load: tuple[float, float]) -> str:
    lines = [f"\n## Latency fidelity — {started:%Y-%m-%d} (bench/latency_fidelity.py)\n",
             f"CPU: {cpu_model()} ({os.cpu_count()} cores, shared; load average {load[0]:.1f} at the start, "
             f"{load[1]:.1f} at the end), torch {torch.__version__.split('+')[0]}, profile cpu-t1-b1-float32 "
             f"(1 thread, batch 1, float32; the thread's CPU time, medians over interleaved rounds). Drift "
             f"correction: each round's samples are scaled by baseline / the median of a reference timed in "
             f"that round (a small conv stack beside table entries, a fixed network of the space beside whole "
             f"networks), so all figures are at the machine speed of the table's first measurement, not raw "
             f"times on the shared machine. Calibration on 24 networks per case (16 at 224x224), "
             f"validated on N other random networks of the space (3 input channels). 're-measurement' compares "
             f"a second end-to-end measurement of the same N networks with the first: the machine's noise "
             f"floor.\n",
             "| case | N | predictor | MAPE | within ±5% | within ±10% | Kendall tau |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        rep = r["report"]
        for key, label in (("model", f"table + calibration ({rep['calibration']})"), ("table_sum", "table sum"),
                           ("macs_proxy", "MACs linear proxy"), ("remeasure", "re-measurement")):
            f = rep.get(key)
            if f:
                lines.append(f"| {r['key']} | {f['n']} | {label} | {f['mape']:.1f}% | {100 * f['within_5']:.0f}% | "
                             f"{100 * f['within_10']:.0f}% | {f['kendall_tau']:.3f} |")
    lines.append("")
    for r in results:
        t = r["times"]
        lines.append(f"- {r['key']}: {r['units']} table entries; calibration {_cal_text(r['cal'])}; "
                     f"table {t['table_s']:.0f} s, calibration {t['calibration_s']:.0f} s, "
                     f"validation {t['validation_s']:.0f} s.")
    goal = all(r["report"]["model"]["within_10"] >= 0.9 and r["report"]["model"]["kendall_tau"] >= 0.85
               for r in results)
    lines.append(f"- Goal (>= 90% within ±10% and tau >= 0.85 in every case): {'met' if goal else 'not met'}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", default=os.path.join("runs", "bench_latency"))
    parser.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"))
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started, load0 = datetime.datetime.now(), os.getloadavg()[0]
    results = [run_case(key, args.out) for key in args.cases]
    text = markdown(results, started, (load0, os.getloadavg()[0]))
    print(text)
    if not args.no_append:
        new = not os.path.exists(args.results)
        with open(args.results, "a") as f:  # append: other benchmarks write their own sections
            f.write(("# Benchmark results\n" if new else "") + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
