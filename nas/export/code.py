"""Arch (+ weights) -> one standalone, readable PyTorch file (+ .pt weights, + .onnx).

The generated file imports torch only (and torchvision's `deform_conv2d` when a deformable conv is
used): the op classes are copied from `ops/` (`nas.export.opsource`), and `Net` is written out with literal
constructor arguments and the module tree of the framework's model for that task, so the framework
model's `state_dict()` loads into `Net()` unchanged. The model class is chosen by `arch.task`
through `MODEL_WRITERS`; a task without a writer is an error naming the tasks that have one.

Weights passed as a model or state dict are saved beside the file as `<name>.pt` (CPU tensors, for
`torch.load(weights_only=True)`); a saved `.pt` is named relative to the file. ONNX goes through
`torch.onnx.export(dynamo=True)`: with torch 2.14 that exports torchvision's deform_conv2d (opset 20),
while the legacy TorchScript exporter fails on it; the batch dimension is dynamic.
"""
from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from nas.errors import MissingFile, UserError
from nas.export.opsource import OpSource
from nas.io import atomic_torch_save, atomic_write_bytes, atomic_write_text
from ops import op_spec, resolve_hparams
from ops.layers import make_act
from search_spaces.arch import Arch, Classifier, Decoder, Layer
from search_spaces.arch_check import check_arch
from search_spaces.builder import build_model, check_buildable, layer_out_channels

RESERVED = ("Net", "SegDecoder", "ARCH", "WEIGHTS", "load_net", "os", "sys")  # names the file defines besides ops


def save_weights(model: nn.Module | dict[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Save a model's (or a state dict's) tensors on the CPU, atomically; loadable with weights_only=True."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    atomic_torch_save({k: v.detach().cpu() for k, v in state.items()}, str(path))
    return Path(path)


# --- code for one layer, mirroring search_spaces.builder ---
def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def op_call(src: OpSource, op: str, c_in: int, c_out: int, stride: int = 1, hparams: dict | None = None) -> str:
    """`Cls(c_in, c_out, stride=s, k=v)`: the call build_op makes, arguments equal to the signature's defaults left out."""
    cls = op_spec(op).cls
    params = inspect.signature(cls.__init__).parameters
    args = [repr(int(c_in)), repr(int(c_out))]
    for key, value in {"stride": stride, **resolve_hparams(op, dict(hparams or {}))}.items():
        default = params[key].default if key in params else inspect.Parameter.empty
        if not _same(value, default):
            args.append(f"{key}={value!r}")
    return f"{src.name(cls)}({', '.join(args)})"


def layer_code(src: OpSource, layer: Layer, c_in: int) -> str:
    """One layer position as `nn.Sequential(op, [blurpool], plug-ins...)` (builder.build_layer)."""
    if layer.downsample == "blurpool" and layer.stride > 1:
        calls = [op_call(src, layer.op, c_in, layer.c_out, 1, layer.kwargs),
                 op_call(src, "blurpool", layer.c_out, layer.c_out, layer.stride)]
    else:
        calls = [op_call(src, layer.op, c_in, layer.c_out, layer.stride, layer.kwargs)]
    c = layer.c_out
    for p in layer.plugins:
        calls.append(op_call(src, p.op, c, p.c_out, p.stride, p.kwargs))
        c = p.c_out
    return f"nn.Sequential({', '.join(calls)})"


def _block(items: list[str], indent: int, comments: list[str] | None = None) -> str:
    """`nn.Sequential(` + one item per line + `)`."""
    if not items:
        return "nn.Sequential()"
    pad = " " * (indent + 4)
    rows = [f"{pad}{item},{'  # ' + comments[i] if comments and comments[i] else ''}" for i, item in enumerate(items)]
    return "nn.Sequential(\n" + "\n".join(rows) + "\n" + " " * indent + ")"


def sequence_code(src: OpSource, layers, c_in: int, indent: int) -> tuple[str, int]:
    """Consecutive layers as one `nn.Sequential`, and the channel count that comes out (builder.build_sequence)."""
    items = []
    for layer in layers:
        items.append(layer_code(src, layer, c_in))
        c_in = layer_out_channels(layer)
    return _block(items, indent), c_in


def act_code(kind: str) -> str:
    """The activation module make_act builds, as a constructor call."""
    module = make_act(kind)
    inplace = ", ".join(["inplace=True"] if getattr(module, "inplace", False) else [])
    return f"nn.{type(module).__name__}({inplace})"


def classifier_code(clf: Classifier, c_in: int, indent: int) -> str:
    """Pool, flatten, hidden FC + act, dropout, linear (builder.build_classifier)."""
    items = ["nn.AdaptiveAvgPool2d(1)", "nn.Flatten(1)"]
    for h in clf.hidden:
        items += [f"nn.Linear({int(c_in)!r}, {int(h)!r})", act_code(clf.act)]
        c_in = h
    if clf.dropout > 0:
        items.append(f"nn.Dropout({float(clf.dropout)!r})")
    items.append(f"nn.Linear({int(c_in)!r}, {int(clf.num_classes)!r})")
    return _block(items, indent)


def encoder_code(arch: Arch, src: OpSource) -> tuple[str, str, str, int]:
    """The code of the stem, the stages and the head (attributes of Net, at 8 spaces), and the channels out."""
    stem, c = sequence_code(src, arch.stem, arch.in_channels, 8)
    stages = []
    for stage in arch.stages:
        code, c = sequence_code(src, stage, c, 12)
        stages.append(code)
    head, c = sequence_code(src, arch.head, c, 8)
    return stem, _block(stages, 8, [f"stage {i + 1}" for i in range(len(stages))]), head, c


def classification_code(arch: Arch, src: OpSource) -> str:
    """`class Net(nn.Module)` with the attributes and forward of search_spaces.builder.Net."""
    stem, stage_block, head, c = encoder_code(arch, src)
    clf = classifier_code(arch.classifier or Classifier(10), c, 8)
    return f'''class Net(nn.Module):
    """{arch.task.capitalize()} network: stem, stages, head, classifier."""

    def __init__(self):
        super().__init__()
        self.stem = {stem}
        self.stages = {stage_block}
        self.head = {head}
        self.num_features = {int(c)!r}
        self.classifier = {clf}

    def forward_features(self, x):
        return self.head(self.stages(self.stem(x)))

    def forward(self, x):
        return self.classifier(self.forward_features(x))'''


# Arch head kind (arch.task) -> writer(arch, src) returning the source of `class Net(nn.Module)`; ops it names go
# through src.name
MODEL_WRITERS: dict[str, Callable[[Arch, OpSource], str]] = {"classification": classification_code}


def register_writer(kind: str, writer: Callable[[Arch, OpSource], str]) -> None:
    """Register the writer of `class Net` for architectures with head `kind`."""
    MODEL_WRITERS[kind] = writer


def docstring_text(text: str) -> str:
    """`text` for a line of a triple-quoted docstring: backslashes, quotes and anything unprintable escaped."""
    out = text.encode("ascii", "backslashreplace").decode("ascii")
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in out)
    return out.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")


def generate_code(arch: Arch, weights_file: str | None = None) -> str:
    """The source of the standalone file for `arch` (`weights_file`: default weights, relative to the file).

    Every value goes into the code as the `repr` of a checked int, float, bool, tuple or name (`Arch` checks its
    fields when built; `check_buildable` its ops), never as pasted text: the arch string is the constant `ARCH`.
    """
    check_arch(arch, (Layer, Classifier, Decoder))  # again: an Arch changed in place (object.__setattr__) is not written unchecked
    check_buildable(arch)
    writer = MODEL_WRITERS.get(arch.task)
    if writer is None:
        raise UserError(f"no code writer for task '{arch.task}' yet; valid: {', '.join(MODEL_WRITERS)}")
    src = OpSource(reserved=RESERVED)
    net = writer(arch, src)
    ops_text = src.text()
    future = "from __future__ import annotations\n\n" if src.future_annotations else ""
    stdlib = [i for i in src.imports if i.split()[1].split(".")[0] in sys.stdlib_module_names]
    by_module = lambda line: line.split()[1]  # noqa: E731
    imports = "\n".join(sorted(["import math", "import os", "import sys", *stdlib], key=by_module) + [
        "", "import torch", "from torch import nn", "import torch.nn.functional as F",
        *sorted((i for i in src.imports if i not in stdlib), key=by_module)])
    c, n = int(arch.in_channels), int(arch.input_size)
    shape = f"1, {c!r}, {n!r}, {n!r}"
    weights = None if weights_file is None else str(weights_file)
    return f'''"""{arch.task.capitalize()} network exported by convnas (`nas export`): plain PyTorch, no convnas needed.

Architecture: {docstring_text(arch.to_string())} (the constant ARCH below)

    net = load_net()          # Net() with the weights beside this file, if there are any, in eval mode
    y = net(torch.randn({shape}))

Run `python {{this file}} [WEIGHTS.pt]` for a smoke test on a random {c!r}x{n!r}x{n!r} input.
"""
{future}{imports}

ARCH = {str(arch.to_string())!r}
WEIGHTS = {weights!r}  # state dict beside this file (torch.load(..., weights_only=True)); None: no weights

# ---- ops (copied from convnas's ops/ package) ----


{ops_text}


# ---- the network ----


{net}


def load_net(weights=WEIGHTS):
    """`Net()` in eval mode, with `weights` (a state-dict path, relative to this file) loaded when given."""
    net = Net()
    if weights:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), weights)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


if __name__ == "__main__":
    net = load_net(os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else WEIGHTS)
    with torch.no_grad():
        y = net(torch.randn({shape}))
    print(f"Net: {{sum(p.numel() for p in net.parameters()):,}} parameters; output {{tuple(y.shape)}}")
'''


def write_code(arch: Arch, path: str | os.PathLike, weights: nn.Module | dict | str | os.PathLike | None = None) -> Path:
    """Write the `.py` for `arch`; weights: a model/state dict (saved beside as .pt), a saved .pt path, or None."""
    path = Path(path)
    weights_file = None
    if isinstance(weights, (nn.Module, dict)):
        weights_file = save_weights(weights, path.with_suffix(".pt")).name
    elif weights is not None:
        w = Path(weights)
        if not w.is_file():
            raise MissingFile(f"export: weights file {w} does not exist")
        weights_file = os.path.relpath(w.resolve(), path.resolve().parent)
    code = generate_code(arch, weights_file)
    atomic_write_text(str(path), code)
    return path


def export_onnx(model: nn.Module, path: str | os.PathLike, in_channels: int, input_size: int) -> Path:
    """`model` as one ONNX file, dynamic batch, via the dynamo exporter (the legacy one fails on deform_conv2d)."""
    # torch 2.14: dynamo=True is the default, opset 20; torch.export specialises a size-1 dim, hence batch 2
    model = model.eval()
    x = torch.randn(2, in_channels, input_size, input_size)
    program = torch.onnx.export(model, (x,), None, dynamo=True, verbose=False, input_names=["input"],
                                output_names=["output"], dynamic_shapes=({0: torch.export.Dim("batch")},))
    atomic_write_bytes(str(path), program.model_proto.SerializeToString())  # one file, weights inside
    return Path(path)


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a saved state dict into `model`; a mismatch is one line naming the first differing keys."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # empty, truncated, not a torch file, or a pickle weights_only refuses
        raise UserError(f"weights {path}: not a readable torch state dict ({type(e).__name__}); pass the "
                        f"weights.pt that `nas export`/`nas search` wrote (torch.save(model.state_dict(), ...))"
                        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights {path}: expected a state dict (torch.save(model.state_dict(), ...)), "
                         f"got {type(state).__name__}")
    mine = model.state_dict()
    missing, unexpected = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    wrong = [k for k in mine if k in state and tuple(state[k].shape) != tuple(mine[k].shape)]
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {what} (e.g. {v[0]})" for what, v in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong)) if v]
        raise UserError(f"weights {path} do not fit this architecture: {', '.join(parts)} keys")
    model.load_state_dict(state)
    return model


def export(arch: Arch, out: str | os.PathLike, weights: str | os.PathLike | None = None, onnx: bool = False) -> list[Path]:
    """What `nas export` does: the .py (weights checked against the arch, then referenced), and the .onnx."""
    model = None
    if weights is not None or onnx:
        model = build_model(arch)
        if weights is not None:
            load_weights(model, weights)
    written = [write_code(arch, out, weights)]
    if onnx:
        print("exporting ONNX (torch.export + onnxscript; up to a minute for an ImageNet-size network)...",
              file=sys.stderr, flush=True)
        written.append(export_onnx(model, Path(out).with_suffix(".onnx"), arch.in_channels, arch.input_size))
    return written


def write_onnx(model: nn.Module, arch: Arch, path: str | os.PathLike) -> Path:
    """`export_onnx` with the input shape taken from `arch` (what a search run's export stage calls)."""
    return export_onnx(model, path, arch.in_channels, arch.input_size)
