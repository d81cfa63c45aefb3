"""`nas search SPEC`: train the supernet, search the Pareto front, track it, export the chosen network."""
from __future__ import annotations

import argparse
import os
import sys

from nas.errors import UserError
from nas.search.runner import SearchRun
from nas.spec.sections import COST_METRICS, load_spec


def register(sub) -> None:
    p = sub.add_parser(
        "search", help="run a hardware-aware search from a YAML spec",
        description="Train a weight-sharing supernet, search the accuracy/latency Pareto front with Optuna or "
                    "Ray Tune under the spec's constraints, log it (wandb offline by default, plus trials.csv, "
                    "pareto.html/png) and export the chosen architecture to RUN/best/.",
        epilog="example: nas search experiments/quickstart.yaml --set search.trials=50 --set search.sampler=tpe",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", nargs="?", help="the search spec (YAML), or a run folder (its spec.yaml; with --resume: "
                                           "continue it where it now lies, e.g. after `mv`); omit with "
                                           "--print-spec to see the defaults")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. search.trials=50 (repeatable; VALUE is read as YAML)")
    p.add_argument("--resume", action="store_true", help="continue the run in the spec's run folder")
    p.add_argument("--worker", action="store_true",
                   help="join the running search of the same spec from another process or machine (sharing its "
                        "run folder and search.storage): wait for its supernet and latency table, run trials of its "
                        "study until search.trials are done; the driver writes the front")
    p.add_argument("--wait", type=float, default=3600.0, metavar="SECONDS",
                   help="--worker: how long to wait for the driver to open its trials (default: 3600)")
    p.add_argument("--print-spec", action="store_true", help="print the fully resolved spec with defaults and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def load_run_spec(target: str | None, overrides: list[str]):
    """The spec of a YAML file, or of a run folder (its spec.yaml, run_dir set to the folder where it lies now)."""
    if target and os.path.isdir(target):
        spec_file = os.path.join(target, "spec.yaml")
        if not os.path.isfile(spec_file):
            raise UserError(f"{target}: a folder without spec.yaml is not a run folder; pass a spec YAML file")
        spec = load_spec(spec_file, overrides)
        spec.run_dir = target
        return spec
    return load_spec(target, overrides)


def run(args) -> int:
    spec = load_run_spec(args.spec, args.overrides)
    if args.print_spec:
        sys.stdout.write(spec.to_yaml())
        return 0
    if not args.spec:
        raise UserError("a spec file is needed, e.g. `nas search experiments/quickstart.yaml`")
    if args.worker and args.resume:
        raise UserError("--worker joins the driver's run as it is; drop --resume (the driver resumes the run)")
    search = SearchRun(spec, resume=args.resume, progress=False if args.quiet else None, worker=args.worker)
    if args.worker:
        w = search.work(args.wait)
        print(f"worker: ran {w['ran']} trials; the study ({w['study']}) holds {w['done']} of {w['trials']} done; "
              f"the driver writes the front to {search.dir}/")
        return 0
    summary = search.run()
    print(format_summary(summary, search.dir))
    return 0


def format_summary(summary: dict, run_dir: str) -> str:
    if "devices" in summary:
        return format_devices(summary, run_dir)
    lines = [f"{summary['trials']} trials ({summary['complete']} complete) in {summary['seconds']:.0f} s; "
             f"front of {len(summary['front'])}, hypervolume {summary['hypervolume']:.4g}"]
    for r in sorted(summary["front"], key=lambda r: r.get("latency_ms", 0)):
        shown = [k for k in r if k not in COST_METRICS and k not in ("trial", "on_front", "ok", "feasible")
                 and isinstance(r[k], float)] + ["latency_ms", "params", "macs"]
        metrics = "  ".join(f"{k}={r[k]:.4g}" for k in shown if isinstance(r.get(k), (int, float)))
        lines.append(f"  #{r['trial']:<4d} {metrics}")
    if "retrain" in summary:
        lines += format_retrain(summary["retrain"])
    if "best" in summary:
        source = "retrained front, test quality vs measured latency" if summary.get("best_from") == "retrained" \
            else "one-shot front"
        lines.append(f"best/: trial {summary['best']['trial']} ({source})")
    lines.append(f"outputs: {run_dir}/ (trials.csv, pareto.csv, pareto.html, pareto.png, study.db, best/)")
    return "\n".join(l for l in lines if l)


def format_devices(summary: dict, run_dir: str) -> str:
    """A several-device search: each device's front (its latency), hypervolume and exported point."""
    lines = [f"{summary['trials']} trials ({summary['complete']} complete) over {len(summary['devices'])} devices "
             f"in {summary['seconds']:.0f} s"]
    for name, d in summary["devices"].items():
        lines.append(f"{name}: front of {len(d['front'])}, hypervolume {d['hypervolume']:.4g}"
                     + (f", best/{name}/: trial {d['best']['trial']} of {d['best']['device']}'s search"
                        if "best" in d else ""))
        for r in sorted(d["front"], key=lambda r: r.get("latency_ms", 0)):
            shown = [k for k in r if k not in COST_METRICS and "@" not in k and isinstance(r[k], float)]
            metrics = "  ".join(f"{k}={r[k]:.4g}" for k in [*shown, "latency_ms", "params"]
                                if isinstance(r.get(k), (int, float)))
            lines.append(f"  #{r['trial']:<4d} ({r['device']}) {metrics}")
    lines.append(f"outputs: {run_dir}/ (trials.csv, pareto@DEVICE.csv/.html/.png, study.db, best/DEVICE/)")
    return "\n".join(lines)


def format_retrain(retrain: dict) -> list[str]:
    """The retrained networks and the baseline: test accuracy, latency measured side by side, predicted."""
    n, q = retrain["epochs"], retrain.get("metric", "accuracy")
    lines = [f"retrained from scratch ({n} epoch{'s' * (n != 1)}; latency measured side by side):"]
    rows = [(f"#{r['trial']}", r) for r in retrain["archs"]]
    if "baseline" in retrain:
        rows.append((retrain["baseline"]["name"], retrain["baseline"]))
    width = max(len(name) for name, _ in rows)
    for name, r in rows:
        predicted = r.get("predicted_latency_ms")
        lines.append(f"  {name:<{width}}  test {q} {r[f'test_{q}']:.4f}  {r['measured_latency_ms']:7.3f} ms"
                     + (f" (predicted {predicted:.3f})" if predicted is not None else "") + f"  {r['params']:,} params")
    return lines + [retrain.get("verdict", "")]
