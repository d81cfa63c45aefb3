"""`nas latency build | validate`: measure a space's latency table and check the predictor against real runs."""
from __future__ import annotations

import argparse
import os
import sys

import search_spaces
from nas.commands.space import _overrides
from nas.errors import MissingFile, UserError
from nas.latency.predictor import LatencyModel, fit_calibration, space_signature
from nas.latency.profile import DeviceProfile
from nas.latency.stage import profile_of
from nas.latency.table import LatencyTable, table_path
from nas.latency.units import space_units
from nas.latency.validate import format_report, validate
from nas.spec.resolve import load_space, load_splits
from nas.spec.sections import devices, load_spec
from search_spaces.loader import parse_yaml

DESCRIPTION = """\
build: measure the latency of every unit a space's networks can contain (each candidate op at each
position's real input shape, plug-ins, blurpools, the classifier) on a device profile, then fit the
calibration on a few whole networks measured end to end. Incremental: entries already in the table
are not measured again, and the table is saved as it goes, so an interrupted build resumes.
validate: measure N random networks end to end and compare them with the predictions (MAPE, share
within ±5% / ±10%, Kendall tau), beside a MACs-only linear proxy; writes a scatter (PNG, HTML).

SPEC_OR_SPACE is a search spec (its space:, data: and hardware: sections are used, and the table goes
to the run folder's latency/, where `nas search` finds it), a shipped space name or a space YAML."""

EPILOG = """\
examples:
  nas latency build experiments/quickstart.yaml
  nas latency build mobile --profile cpu --threads 1 --out tables/
  nas latency build mobile --set input_size=224 --set in_channels=3 --out tables/
  nas latency validate mobile --out tables/ --n 50"""


def register(subparsers) -> None:
    p = subparsers.add_parser("latency", help="build a latency table / validate the latency predictor",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    for name, helptext, func in (("build", "measure the table (missing entries only) and fit the calibration",
                                  run_build),
                                 ("validate", "compare predictions with end-to-end measurements", run_validate)):
        a = sub.add_parser(name, help=helptext, description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        a.add_argument("target", metavar="SPEC_OR_SPACE", help="a spec YAML, a shipped space name or a space YAML")
        a.add_argument("--out", metavar="DIR", help="where the table lives (default: the spec's run folder "
                                                      "latency/, or latency_tables/ for a space)")
        a.add_argument("--profile", choices=("cpu", "cuda", "onnxruntime-cpu"), help="device kind (default: the "
                       "spec's hardware.kind, else cpu)")
        a.add_argument("--threads", type=int, help="intra-op threads (default: spec, else 1)")
        a.add_argument("--batch", type=int, help="batch size (default: spec, else 1)")
        a.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), help="default: spec, else float32")
        a.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory format")
        a.add_argument("--repeats", type=int, help="timed runs per entry (default 60)")
        a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a key of the space (e.g. --set input_size=224)")
        a.add_argument("--allow-foreign", action="store_true", help="use a table measured on another machine")
        a.add_argument("--seed", type=int, default=0, help="seed of the sampled networks")
        a.add_argument("--device", metavar="NAME", help="a spec whose hardware: is a list of devices: which one "
                       "(default: the first; its table goes to the run folder's latency/NAME/)")
        if name == "build":
            a.add_argument("--calibrate", type=int, metavar="N", help="calibration networks (default: spec's "
                           "hardware.calibration_archs, else 24; 0: skip)")
        else:
            a.add_argument("--n", type=int, default=50, help="networks to measure (default 50)")
            a.add_argument("--repeat", action="store_true", help="measure them twice and report the agreement "
                           "of the two measurements too (the machine's noise floor)")
        a.set_defaults(func=func)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _is_spec(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        raw = parse_yaml(f, path, ValueError)
    return isinstance(raw, dict) and "stages" not in raw


def check_counts(args) -> None:
    """The count flags hold sensible values (one line naming the flag otherwise)."""
    for flag, low in (("threads", 1), ("batch", 1), ("repeats", 1), ("n", 2), ("calibrate", 0)):
        value = getattr(args, flag, None)
        if value is not None and value < low:
            raise UserError(f"--{flag}: {value} is too small; valid: an integer >= {low}")


def resolve(args):
    """(space, DeviceProfile, table folder, hardware section or None) from the command line."""
    check_counts(args)
    overrides = _overrides(args.set)
    hardware, out = None, args.out
    if _is_spec(args.target):
        spec = load_spec(args.target)
        hardware, folder = spec_device(spec, args.device)
        spec.space.overrides = {**spec.space.overrides, **overrides}  # --set wins over the spec and the data
        space = load_space(spec, load_splits(spec))
        profile = profile_of(hardware)
        out = out or folder
    elif args.device:
        raise UserError(f"--device {args.device}: names a device of a spec's hardware: list; "
                        f"'{args.target}' is not a spec")
    else:
        space = search_spaces.load(args.target, **overrides)
        profile = DeviceProfile()
        out = out or "latency_tables"
    changes = {k: v for k, v in (("kind", args.profile), ("threads", args.threads), ("batch", args.batch),
                                 ("dtype", args.dtype), ("channels_last", args.channels_last),
                                 ("repeats", args.repeats)) if v is not None}
    return space, profile.with_(**changes), out, hardware


def spec_device(spec, name: str | None):
    """The hardware section `nas latency` measures, and its table folder in the run folder: the spec's one
    `hardware:` (RUN/latency/), or the named (default: first) device of its list (RUN/latency/NAME/)."""
    named = devices(spec)
    if named is None:
        if name:
            raise UserError(f"--device {name}: the spec's hardware: is one device, not a list; drop --device")
        return spec.hardware, os.path.join(spec.out_dir, "latency")
    name = name or next(iter(named))
    if name not in named:
        raise UserError(f"--device {name}: not a device of the spec; valid: {', '.join(named)}")
    return named[name], os.path.join(spec.out_dir, "latency", name)


def _table_file(args, hardware, out: str, profile) -> str:
    """The spec's `hardware.table` when it names one (and --out is not given), else <out>/<profile key>.json."""
    named = getattr(hardware, "table", None)
    return named if named and not args.out else table_path(out, profile)


def run_build(args) -> int:
    space, profile, out, hardware = resolve(args)
    allow = args.allow_foreign or bool(getattr(hardware, "allow_foreign", False))
    path = _table_file(args, hardware, out, profile)
    table = (LatencyTable.load(path, profile, allow_foreign=allow) if os.path.isfile(path)
             else LatencyTable(profile, path=path))
    units = space_units(space)
    todo = len(table.missing(units))
    print(f"latency table {table.path}: {len(units)} entries for space '{space_signature(space)}', "
          f"{len(units) - todo} present, measuring {todo} on {profile.key()}", file=sys.stderr, flush=True)
    table.spaces = sorted(set(table.spaces) | {space_signature(space)})
    table.build(units, size=space.spec.input_size)
    table.save()
    n = args.calibrate if args.calibrate is not None else int(getattr(hardware, "calibration_archs", 24))
    if n > 0:
        cal = fit_calibration(space, table, n=n, seed=args.seed)
        loo = f", leave-one-out error {100 * cal.loo_mape:.1f}%" if cal.loo_mape is not None else ""
        print(f"calibration '{cal.form}' on {len(cal.points)} networks{loo}", file=sys.stderr)
    print(table.path)
    return 0


def run_validate(args) -> int:
    space, profile, out, hardware = resolve(args)
    allow = args.allow_foreign or bool(getattr(hardware, "allow_foreign", False))
    path = _table_file(args, hardware, out, profile)
    if not os.path.isfile(path):
        raise MissingFile(f"no latency table '{path}' for {profile.key()}; run `nas latency build "
                                f"{args.target} --out {os.path.dirname(path) or '.'}` first")
    table = LatencyTable.load(path, profile, allow_foreign=allow)
    model = LatencyModel.for_space(table, space)
    report = validate(space, model, n=args.n, seed=args.seed + 1, out_dir=out, repeat=args.repeat)
    print(format_report(report))
    return 0
