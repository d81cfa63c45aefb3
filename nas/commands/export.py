"""`nas export ARCH --out model.py` or `nas export RUN_DIR [--trial N]`: an architecture (+ weights) as one
standalone PyTorch file (+ ONNX)."""
from __future__ import annotations

import argparse
from pathlib import Path

from nas.errors import MissingFile, UserError
from nas.export.code import export
from nas.export.run import export_run
from search_spaces.arch import Arch
from search_spaces.presets import load_preset, preset_names

DESCRIPTION = """\
Write ARCH as one readable Python file that needs only torch: the op classes it uses copied from
convnas's ops/, a `Net` with literal arguments, `load_net()` and a smoke test under __main__. The
framework model's state dict (--weights) loads into `Net()` unchanged; --onnx also writes OUT.onnx
(dynamo exporter, dynamic batch).

Given a search run folder instead, it exports trial N of that run (any trial, not only the front), with
weights extracted from the run's trained supernet, into RUN_DIR/trials/N/ (model.py, weights.pt,
arch.yaml); without --trial it re-exports the run's chosen point into RUN_DIR/best/, with its picture
(arch.svg, arch.png: see `nas show`) and a README.md model card."""

EPILOG = """\
ARCH is an Arch YAML file (e.g. RUN/best/arch.yaml), a preset name (mobilenet_v2, resnet18, ...,
see search_spaces/presets), a compact arch string (`in3x32;stem:conv_c16;s:mbconv_c24_s2_e6;...`)
or the folder of a search run (`nas search` wrote it: spec.yaml, study.db, supernet/).

examples:
  nas export runs/quickstart/best/arch.yaml --weights runs/quickstart/best/weights.pt --out model.py
  nas export mobilenet_v2 --out mobilenet_v2.py --onnx
  nas export runs/quickstart --trial 17            -> runs/quickstart/trials/17/{model.py,weights.pt,arch.yaml}
  nas export runs/quickstart --trial 17 --out m17  any folder
  nas export runs/quickstart                       the chosen point again (summary.json "best") -> best/
  python model.py                          smoke test: builds Net, loads the weights, runs one input"""


def register(sub) -> None:
    p = sub.add_parser("export", help="write an architecture as a standalone PyTorch file (and ONNX)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", metavar="ARCH|RUN_DIR",
                   help="Arch YAML file, preset name, arch string, or a search run folder")
    p.add_argument("--weights", metavar="W.pt", help="state dict of the framework model (torch.save'd)")
    p.add_argument("--trial", type=int, metavar="N", help="with RUN_DIR: the trial to export (default: the chosen one)")
    p.add_argument("--out", metavar="model.py|DIR",
                   help="the Python file to write; with RUN_DIR a folder (default RUN_DIR/trials/N/)")
    p.add_argument("--onnx", action="store_true", help="also write the model as ONNX beside --out")
    p.add_argument("--device", metavar="NAME", help="with the RUN_DIR of several devices: whose search and chosen "
                                                    "point (default: the first device)")
    p.set_defaults(func=run)


def load_arch(text: str):
    """An `Arch` from a YAML file path, a preset name or an arch string; one clear line otherwise."""
    path = Path(text)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise MissingFile(f"arch file {path} does not exist")
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise UserError(f"arch file {path}: not UTF-8 text; valid: an Arch YAML file (e.g. RUN/best/arch.yaml)"
                            ) from None
        return Arch.from_yaml(text, source=str(path))
    if text in preset_names():
        return load_preset(text)
    if ";" in text or text.startswith("in"):
        return Arch.from_string(text)
    return load_preset(text)  # unknown: the preset error names the valid presets


def run_folder(args) -> int:
    """`nas export RUN_DIR [--trial N] [--out DIR]`: one trial of a search run, weights from its supernet."""
    if args.weights:
        raise UserError(f"--weights: not used with a run folder ({args.arch}); the weights come from its supernet")
    if args.out and Path(args.out).suffix == ".py":
        raise UserError(f"--out {args.out}: with a run folder --out is a folder "
                         f"(model.py, weights.pt, arch.yaml go in it)")
    trial, metrics, written = export_run(args.arch, args.trial, args.out, onnx=args.onnx, device=args.device)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
    print(f"trial {trial}" + (f": {shown}" if shown else ""))
    if not any(p.name == "weights.pt" for p in written):
        print("no weights: a multi_trial run keeps no supernet (retrain the architecture)")
    for path in written:
        print(f"wrote {path}")
    return 0


def run(args) -> int:
    if Path(args.arch).is_dir():
        return run_folder(args)
    if args.trial is not None or args.device is not None:
        flag = "--trial" if args.trial is not None else "--device"
        raise UserError(f"{flag}: needs a search run folder; {args.arch} is not a folder")
    if "/" in args.arch and ";" not in args.arch and not Path(args.arch).exists():
        raise MissingFile(f"{args.arch} does not exist (expected a search run folder or an Arch YAML file)")
    if not args.out:
        raise UserError("--out: required when exporting an architecture, e.g. --out model.py")
    if Path(args.out).suffix != ".py":
        raise UserError(f"--out {args.out}: expected a .py file name, e.g. --out model.py")
    if args.weights and not Path(args.weights).is_file():
        raise MissingFile(f"--weights {args.weights} does not exist")
    arch = load_arch(args.arch)
    for path in export(arch, args.out, args.weights, onnx=args.onnx):
        print(f"wrote {path}")
    return 0
