"""The units latency is tabulated by: one module of a built network at its real input shape.

`build_layer` makes each layer position a Sequential of: the op (strided, or at stride 1 followed by a
blurpool), then its plug-ins. Each of those modules is one `Unit`, and so is the classifier; a network's
latency is predicted from the units of its `Arch` (`arch_units`); a dense-prediction arch has decoder units
instead of the classifier (nas.latency.decoder_units). A unit is identified by its op variant (op + hparams,
defaults filled in), c_in, c_out, stride and input spatial size, so two positions or two layers that run the
same module on the same shape share one table entry. Units that are no registered op (the classifier, the
decoder's fusion, ...) are built by the builder registered for their name (`register_unit`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ops import build_op, op_spec, resolve_hparams
from search_spaces.arch import Arch, Classifier, Layer
from search_spaces.builder import build_classifier

CLASSIFIER = "classifier"

# unit name -> (family, builder of its module) for units that are not registered ops
UNIT_BUILDERS: dict[str, tuple[str, Callable[["Unit"], Any]]] = {}
# Arch head kind (arch.task) -> (units of an arch, every unit a space can hold) after the encoder
HEAD_UNITS: dict[str, tuple[Callable[[Arch], list], Callable[[Any], list]]] = {}


def register_head_units(kind: str, arch_fn: Callable[[Arch], list], space_fn: Callable[[Any], list]) -> None:
    """Register how the latency units of architectures with head `kind` ("classification", "segmentation") are
    listed: `arch_fn(arch)` every unit of one arch, `space_fn(space)` the head's units over a whole space."""
    HEAD_UNITS[kind] = (arch_fn, space_fn)


def register_unit(name: str, family: str):
    """Register the builder of the module of unit kind `name` (a unit that is no op of the registry)."""
    def deco(fn):
        UNIT_BUILDERS[name] = (family, fn)
        return fn
    return deco


def _norm_value(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


@dataclass(frozen=True)
class Unit:
    """One measurable module: `op` with `hparams` mapping N x c_in x size x size to c_out channels, strided."""

    op: str
    c_in: int
    c_out: int
    stride: int = 1
    size: int = 32
    hparams: tuple[tuple[str, Any], ...] = ()

    @property
    def family(self) -> str:
        """The op family (conv, block, plugin, pool, ...), or the family of a registered unit kind ('classifier')."""
        found = UNIT_BUILDERS.get(self.op)
        return found[0] if found else op_spec(self.op).family

    def key(self) -> str:
        """Stable text identity, the table's key: `mbconv[expand=6,kernel=3] 16>24 s2 @32`."""
        hp = ",".join(f"{k}={_fmt(v)}" for k, v in self.hparams)
        return f"{self.op}[{hp}] {self.c_in}>{self.c_out} s{self.stride} @{self.size}"

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.c_in, self.size, self.size)

    def build(self):
        """A fresh module for this unit (random weights, eval mode)."""
        found = UNIT_BUILDERS.get(self.op)
        if found:
            return found[1](self).eval()
        return build_op(self.op, self.c_in, self.c_out, self.stride, **dict(self.hparams)).eval()

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "c_in": self.c_in, "c_out": self.c_out, "stride": self.stride, "size": self.size,
                "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in self.hparams}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Unit":
        hp = tuple(sorted((k, _norm_value(v)) for k, v in (d.get("hparams") or {}).items()))
        return cls(d["op"], int(d["c_in"]), int(d["c_out"]), int(d.get("stride", 1)), int(d["size"]), hp)


def _fmt(v: Any) -> str:
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


@register_unit(CLASSIFIER, CLASSIFIER)
def _classifier(unit: Unit):
    h = dict(unit.hparams)
    clf = Classifier(int(h["num_classes"]), tuple(h.get("hidden", ())), h.get("act", "relu"), 0.0)
    return build_classifier(clf, unit.c_in)


def op_unit(op: str, hparams, c_in: int, c_out: int, stride: int, size: int) -> Unit:
    """A unit with its hparams resolved against the op's defaults (so `{}` and `{kernel: 3}` agree)."""
    hp = dict(hparams) if not isinstance(hparams, dict) else hparams
    full = resolve_hparams(op, hp)
    return Unit(op, int(c_in), int(c_out), int(stride), int(size),
                tuple(sorted((k, _norm_value(v)) for k, v in full.items())))


def classifier_unit(clf: Classifier, c_in: int, size: int) -> Unit:
    """The classifier (pool, hidden FCs, linear); dropout is a no-op at inference and not part of the key."""
    hp = {"num_classes": clf.num_classes, "hidden": tuple(clf.hidden), "act": clf.act}
    return Unit(CLASSIFIER, int(c_in), int(clf.num_classes), 1, int(size), tuple(sorted(hp.items())))


def out_size(size: int, stride: int) -> int:
    return math.ceil(size / stride)


def layer_units(layer: Layer, c_in: int, size: int) -> tuple[list[Unit], int, int]:
    """The units of one layer position at input (c_in, size), and the (channels, size) that come out."""
    units: list[Unit] = []
    if layer.downsample == "blurpool" and layer.stride > 1:
        units.append(op_unit(layer.op, layer.hparams, c_in, layer.c_out, 1, size))
        units.append(op_unit("blurpool", {}, layer.c_out, layer.c_out, layer.stride, size))
    else:
        units.append(op_unit(layer.op, layer.hparams, c_in, layer.c_out, layer.stride, size))
    size = out_size(size, layer.stride)
    c = layer.c_out
    for p in layer.plugins:
        units.append(op_unit(p.op, p.hparams, c, p.c_out, p.stride, size))
        c, size = p.c_out, out_size(size, p.stride)
    return units, c, size


def sequence_units(layers: Iterable[Layer], c_in: int, size: int) -> tuple[list[Unit], int, int]:
    out: list[Unit] = []
    for layer in layers:
        units, c_in, size = layer_units(layer, c_in, size)
        out += units
    return out, c_in, size


def encoder_units(arch: Arch) -> tuple[list[Unit], list[tuple[int, int]]]:
    """The units of the stem, stages and head of `arch`, and the (channels, size) out of each stage (the
    head folded into the last)."""
    c, size = arch.in_channels, arch.input_size
    units, c, size = sequence_units(arch.stem, c, size)
    outs = []
    for stage in arch.stages:
        more, c, size = sequence_units(stage, c, size)
        units += more
        outs.append((c, size))
    more, c, size = sequence_units(arch.head, c, size)
    units += more
    if outs:
        outs[-1] = (c, size)
    return units, outs or [(c, size)]


def arch_units(arch: Arch) -> list[Unit]:
    """Every unit of `Arch`, in order: stem, stages, head, then the classifier (or the decoder's units)."""
    return HEAD_UNITS[arch.task][0](arch)


def classifier_arch_units(arch: Arch) -> list[Unit]:
    """The units of a classification arch: the encoder's, then the classifier."""
    units, outs = encoder_units(arch)
    c, size = outs[-1]
    return units + [classifier_unit(arch.classifier or Classifier(10), c, size)]


def position_units(pos, c_in: int, c_out: int, variant, down: str, plugin=None) -> list[Unit]:
    """The units of one candidate at a `Position` (search_spaces.space) for one (c_in, c_out) and downsample mode."""
    if variant.is_none:
        return []
    plugins = () if plugin is None or plugin.is_none else (Layer(plugin.op, c_out, 1, plugin.hparams),)
    layer = Layer(variant.op, c_out, pos.stride, variant.hparams, plugins,
                  down if pos.stride > 1 else "stride")
    return layer_units(layer, c_in, pos.input_size)[0]


def stage_channels(space) -> list[tuple[set[int], int]]:
    """Per stage, the channel counts that can come out of it and the spatial size there; the head is folded
    into the last stage (a space without stages: one entry, after the stem and head)."""
    chans, size = {space.spec.in_channels}, space.spec.input_size
    outs: dict[int, tuple[set[int], int]] = {}
    for pos in space.positions():
        keep = pos.optional and pos.section != "stage"
        chans = {co for _, co in pos.shapes} | (chans if keep else set())
        size = pos.output_size
        if pos.section == "stage":
            outs[pos.stage] = (chans, size)
    found = [outs[k] for k in sorted(outs)] or [(chans, size)]
    found[-1] = (chans, size)
    return found


def final_channels(space) -> tuple[set[int], int]:
    """The channel counts that can reach the classifier, and the spatial size there."""
    return stage_channels(space)[-1]


def space_units(space) -> list[Unit]:
    """Every unit any architecture of `space` can contain: each candidate at each (c_in, c_out) and downsample
    mode of each position, each plug-in after it, the blurpools, and the classifier at each input width (or,
    for a dense-prediction space, every decoder choice at each pyramid width: `space_decoder_units`)."""
    seen: dict[str, Unit] = {}

    def add(units: Iterable[Unit]) -> None:
        for u in units:
            seen.setdefault(u.key(), u)

    for pos in space.positions():
        for ci, co in pos.shapes:
            for down in pos.downsample:
                for v in pos.candidates:
                    add(position_units(pos, ci, co, v, down))
            for p in pos.plugins:
                if not p.is_none:
                    add([op_unit(p.op, p.hparams, co, co, 1, pos.output_size)])
    add(HEAD_UNITS[space.task][1](space))
    return list(seen.values())


def classifier_space_units(space) -> list[Unit]:
    """The classifier at each width that can reach it."""
    chans, size = final_channels(space)
    clf = space.sample(0).classifier or Classifier(10)
    return [classifier_unit(clf, c, size) for c in sorted(chans)]


register_head_units("classification", classifier_arch_units, classifier_space_units)
