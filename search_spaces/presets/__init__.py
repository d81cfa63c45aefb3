"""Hand-designed reference networks as `Arch` values: torchvision's models, op for op.

Each `<name>.yaml` beside this file is an Arch YAML (`Arch.to_dict()`) with the structure, parameter
count and MACs of `torchvision.models.<name>(weights=None)` at 224x224 and 1000 classes. Derived
variants (`DERIVED`) are a stored preset with `load_preset`'s adjustments applied:

- num_classes / in_channels replace the classifier's output and the stem's input;
- input_size below the preset's sets strided layers to stride 1, earliest first (the stem conv, its
  pool, the first stages: the usual CIFAR adaptation), until the last feature map is at least
  MIN_FINAL_SIZE wide: 32x32 -> total stride 8 (a 4x4 map), 64x64 -> 16;
- width_mult scales stem and stage widths (and absolute channel hparams) to make_divisible(c * w, 8)
  and head widths by max(1, w): torchvision's `mobilenet_v2(width_mult=...)` rule.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import replace
from pathlib import Path

from ops.layers import make_divisible

from ..arch import Arch, Layer
from ..probe import probe
from ..schema import SpaceError

PRESET_DIR = Path(__file__).resolve().parent

# name -> (stored preset, load_preset adjustments)
DERIVED = {
    # the baseline the quickstart search compares its Pareto front against (scikit-learn digits: 1x32x32)
    "mobilenet_v2_digits": ("mobilenet_v2", dict(num_classes=10, input_size=32, in_channels=1, width_mult=0.5)),
}

MIN_FINAL_SIZE = 4  # stride reduction keeps the last feature map at least this large
CHANNEL_HPARAMS = ("hidden", "width")  # hparams that are absolute channel counts (0 = derived by the op)


def preset_names() -> list[str]:
    """Every preset `load_preset` accepts: the stored YAMLs, then the derived variants."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml")) + sorted(DERIVED)


def load_preset(name: str, num_classes: int | None = None, input_size: int | None = None,
                in_channels: int | None = None, width_mult: float | None = None) -> Arch:
    """The preset `name` as an `Arch`, adapted to another class count, input size, channel count or width."""
    if name in DERIVED:
        base, adjust = DERIVED[name]
        given = dict(num_classes=num_classes, input_size=input_size, in_channels=in_channels, width_mult=width_mult)
        return load_preset(base, **{**adjust, **{k: v for k, v in given.items() if v is not None}})
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SpaceError(f"preset '{name}': {arg}={value!r} is invalid; valid: an integer >= 1")
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(str(name), preset_names(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise SpaceError(f"unknown preset '{name}'; {hint}valid: {', '.join(preset_names())}")
    arch = Arch.from_yaml(path.read_text())
    if width_mult is not None and width_mult != 1:
        arch = scale_width(arch, width_mult)
    if input_size is not None and input_size != arch.input_size:
        arch = reduce_strides(arch, input_size)
    if num_classes is not None:
        arch = arch.replace(classifier=replace(arch.classifier, num_classes=int(num_classes)))
    if in_channels is not None:
        arch = arch.replace(in_channels=int(in_channels))
    return arch


def _scale_layer(layer: Layer, mult: float) -> Layer:
    hp = {k: (make_divisible(v * mult, 8) if k in CHANNEL_HPARAMS and v else v) for k, v in layer.hparams}
    return replace(layer, c_out=make_divisible(layer.c_out * mult, 8), hparams=hp,
                   plugins=tuple(_scale_layer(p, mult) for p in layer.plugins))


def scale_width(arch: Arch, mult: float) -> Arch:
    """Stem and stage widths times `mult` (multiples of 8); head widths times max(1, mult)."""
    if mult <= 0:
        raise SpaceError(f"width_mult={mult} is invalid; valid: a number > 0, e.g. 0.5, 0.75, 1.4")
    return arch.replace(stem=tuple(_scale_layer(l, mult) for l in arch.stem),
                        stages=tuple(tuple(_scale_layer(l, mult) for l in s) for s in arch.stages),
                        head=tuple(_scale_layer(l, max(1.0, mult)) for l in arch.head))


def reduce_strides(arch: Arch, input_size: int) -> Arch:
    """`arch` at `input_size`: strided layers set to stride 1, earliest first, while the last map is too small."""
    if input_size < 1:
        raise SpaceError(f"input_size={input_size} is invalid; valid: a positive number of pixels, e.g. 32")
    layers = arch.layers()
    strides = [l.stride for l in layers]
    total = math.prod(strides)
    target = max(1, input_size // MIN_FINAL_SIZE)  # the largest total stride that keeps the map wide enough
    c_in = arch.in_channels
    for i, (layer, s) in enumerate(zip(layers, strides)):
        if total <= target:
            break
        # a unit that changes channels only when strided (ShuffleNet v2's downsampling unit) keeps its stride
        if s > 1 and probe(layer.op, layer.hparams, c_in, layer.c_out, 1)[0] is None:
            strides[i], total = 1, total // s
        c_in = layer.c_out
    it = iter(strides)

    def restride(layers):
        return tuple(replace(l, stride=next(it)) for l in layers)

    return arch.replace(stem=restride(arch.stem), stages=tuple(restride(s) for s in arch.stages),
                        head=restride(arch.head), input_size=input_size)
