"""`nas show ARCH | RUN_DIR [--trial N]`: a picture of an architecture (SVG + PNG) and its rows as text."""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import NamedTuple

from nas.commands.export import load_arch
from nas.cost import count_arch
from nas.diagram import arch_diagram, write_diagram
from nas.diagram.text import diagram_text
from nas.errors import MissingFile, UserError
from nas.export.run import chosen_trial, run_spec, trial_arch
from nas.latency.predictor import Calibration, LatencyModel
from nas.latency.stage import saved_model
from nas.latency.table import LatencyTable, MissingEntriesError
from nas.spec.resolve import load_space
from search_spaces.arch import Arch

DESCRIPTION = """\
Draw an architecture as a block diagram: the stem, each stage's layers (op, hparams such as kernel and
expansion, plug-ins, channels in->out, stride, resolution in->out), the head and the classifier or the
decoder, with each layer's share of the parameters and, given a latency table, of the predicted latency
as bars. Writes NAME.svg and NAME.png and prints the same rows as text.

ARCH is an Arch YAML file (e.g. RUN/best/arch.yaml), a preset name or a compact arch string; RUN_DIR is
a search run folder (`nas search` wrote it), whose trial N is drawn (default: the run's chosen point)
with the latency predicted by the run's own table and calibration."""

EPILOG = """\
examples:
  nas show runs/quickstart/best/arch.yaml           -> runs/quickstart/best/arch.svg, arch.png
  nas show runs/quickstart --trial 17               -> runs/quickstart/pictures/trial_17.svg, .png
  nas show mobilenet_v2 --out pictures/             -> pictures/mobilenet_v2.svg, .png (parameters only)
  nas show arch.yaml --table runs/q/latency/cpu-t1-b1-float32.json --space mobile"""


def register(sub) -> None:
    p = sub.add_parser("show", help="draw an architecture (SVG + PNG) with per-layer latency and params shares",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", metavar="ARCH|RUN_DIR", help="Arch YAML file, preset name, arch string, or a search run "
                                                          "folder")
    p.add_argument("--trial", type=int, metavar="N", help="with RUN_DIR: the trial to draw (default: the chosen one)")
    p.add_argument("--out", metavar="DIR", help="folder for the pictures (default: beside the Arch YAML; "
                                                "RUN_DIR/pictures/; the current folder for a preset or string)")
    p.add_argument("--name", metavar="NAME", help="file name without extension (default: the YAML's name, "
                                                  "trial_N, the preset's name, or 'arch')")
    p.add_argument("--table", metavar="LATENCY.json", help="a latency table (`nas latency build`) for the "
                                                           "latency shares; a run folder uses its own")
    p.add_argument("--space", metavar="NAME", help="the space whose calibration in --table applies (default: the "
                                                   "arch's own `space`)")
    p.add_argument("--no-png", action="store_true", help="write the SVG only")
    p.add_argument("--quiet", action="store_true", help="print only the paths written, not the rows")
    p.set_defaults(func=run)


def table_model(path: str, signature: str) -> LatencyModel:
    """The latency model of table `path` with its calibration for space signature `signature` (`mobile@3x32`; the
    plain sum of the entries when it has none)."""
    table = LatencyTable.load(path, allow_foreign=True)  # a picture only: a table from another machine is fine
    cal = (table.calibrations or {}).get(signature)
    return LatencyModel(table, Calibration.from_dict(cal) if cal else None)


def model_note(model: LatencyModel, signature: str) -> str:
    """Which table and calibration the latency shares come from."""
    how = (f"calibration for {signature}" if model.calibration.form != "identity" else
           f"no calibration for {signature}: uncalibrated sum of entries")
    return f"latency: {model.table.profile.key()} table {model.table.path} ({how})"


def _table_file(path: str) -> str:
    if not Path(path).is_file():
        raise MissingFile(f"--table {path} does not exist; build one with `nas latency build`")
    return path


def _signature(space: str, arch) -> str:
    return f"{space}@{arch.in_channels}x{arch.input_size}"


class Source(NamedTuple):
    """What to draw and where: the arch, its title and extra header lines, the latency model (None: params only)
    and the line saying where it comes from, the default folder and file name."""

    arch: Arch
    title: str
    lines: list[str]
    model: LatencyModel | None
    note: str
    out: Path
    name: str


def from_run(args) -> Source:
    """Trial N (default: the chosen point) of a run folder, with the run's latency table and calibration."""
    spec = run_spec(args.arch)
    trial = chosen_trial(args.arch) if args.trial is None else args.trial
    arch, metrics = trial_arch(args.arch, spec.name, trial)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    space = load_space(spec, arch)
    signature = _signature(args.space or space.name, arch)
    if args.table:
        model = table_model(_table_file(args.table), signature)
    else:
        model = saved_model(space, spec.hardware, str(Path(args.arch, "latency")))
    note = model_note(model, signature) if model else "no latency table in the run folder: parameter shares only"
    title = f"{spec.name}: trial {trial} ({space.name})"
    return Source(arch, title, [shown] if shown else [], model, note, Path(args.arch, "pictures"), f"trial_{trial}")


def from_arch(args) -> Source:
    """An Arch YAML file, a preset or an arch string, with --table's latency model if given."""
    if args.trial is not None:
        raise UserError(f"--trial: needs a search run folder; {args.arch} is not a folder")
    if "/" in args.arch and ";" not in args.arch and not Path(args.arch).exists():
        raise MissingFile(f"{args.arch} does not exist (expected an Arch YAML file or a search run folder)")
    arch = load_arch(args.arch)
    path = Path(args.arch)
    if path.is_file():
        out, name, title = path.parent, path.stem, f"{path} ({arch.space or 'no space'})"
    else:
        is_preset = re.fullmatch(r"[A-Za-z0-9_]+", args.arch) is not None
        out, name, title = Path("."), args.arch if is_preset else "arch", args.arch if is_preset else arch.space
    model, note = None, ""
    if args.table:
        signature = _signature(args.space or arch.space, arch)
        model = table_model(_table_file(args.table), signature)
        note = model_note(model, signature)
    return Source(arch, title or "architecture", [], model, note, out, name)


def run(args) -> int:
    src = (from_run if Path(args.arch).is_dir() else from_arch)(args)
    try:
        diagram = arch_diagram(src.arch, src.model, title=src.title, lines=src.lines, latency_note=src.note,
                               macs=count_arch(src.arch).macs)
    except MissingEntriesError as e:  # a table of another space (or input size): what to build is in the message
        raise UserError(str(e)) from None
    written = write_diagram(diagram, Path(args.out or src.out) / (args.name or src.name), png=not args.no_png)
    if not args.quiet:
        print("\n".join(diagram_text(diagram)) + "\n")
    for p in written:
        print(f"wrote {p}")
    return 0
