"""`nas export ARCH --out model.py`: an architecture (+ weights) as one standalone PyTorch file (+ ONNX)."""
from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Write ARCH as one readable Python file that needs only torch: the op classes it uses copied from
convnas's ops/, a `Net` with literal arguments, `load_net()` and a smoke test under __main__. The
framework model's state dict (--weights) loads into `Net()` unchanged; --onnx also writes OUT.onnx
(dynamo exporter, dynamic batch)."""

EPILOG = """\
ARCH is an Arch YAML file (e.g. RUN/best/arch.yaml), a preset name (mobilenet_v2, resnet18, ...,
see search_spaces/presets) or a compact arch string (`in3x32;stem:conv_c16;s:mbconv_c24_s2_e6;...`).

examples:
  nas export runs/quickstart/best/arch.yaml --weights runs/quickstart/best/weights.pt --out model.py
  nas export mobilenet_v2 --out mobilenet_v2.py --onnx
  python model.py                          smoke test: builds Net, loads the weights, runs one input"""


def register(sub) -> None:
    p = sub.add_parser("export", help="write an architecture as a standalone PyTorch file (and ONNX)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arch", help="Arch YAML file, preset name or arch string")
    p.add_argument("--weights", metavar="W.pt", help="state dict of the framework model (torch.save'd)")
    p.add_argument("--out", required=True, metavar="model.py", help="the Python file to write")
    p.add_argument("--onnx", action="store_true", help="also write the model as ONNX beside --out")
    p.set_defaults(func=run)


def load_arch(text: str):
    """An `Arch` from a YAML file path, a preset name or an arch string; one clear line otherwise."""
    from search_spaces.arch import Arch
    from search_spaces.presets import load_preset, preset_names

    path = Path(text)
    if path.suffix in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"arch file {path} does not exist")
        return Arch.from_yaml(path.read_text())
    if text in preset_names():
        return load_preset(text)
    if ";" in text or text.startswith("in"):
        return Arch.from_string(text)
    return load_preset(text)  # unknown: the preset error names the valid presets


def run(args) -> int:
    from nas.export import export

    if Path(args.out).suffix != ".py":
        raise ValueError(f"--out {args.out}: expected a .py file name, e.g. --out model.py")
    if args.weights and not Path(args.weights).is_file():
        raise FileNotFoundError(f"--weights {args.weights} does not exist")
    arch = load_arch(args.arch)
    for path in export(arch, args.out, args.weights, onnx=args.onnx):
        print(f"wrote {path}")
    return 0
