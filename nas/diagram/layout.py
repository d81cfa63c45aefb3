"""What a picture of an `Arch` shows, as plain values: rows of blocks (stem, stage layers, head, classifier or
decoder) with op, hparams, plug-ins, channels, stride, resolution, parameters and predicted latency.

One row is one layer position (its op, a blurpool after a strided op, its plug-ins) or one module of the head
(classifier; a decoder's laterals, context, fusion, upsampling steps). Each row carries the latency units
(nas.latency.units) it runs, so its predicted latency is the calibrated sum of exactly the table entries the
predictor sums for the whole network; the rows' units in order are `arch_units(arch)`. Parameters are counted
on the real module (built on the meta device), so the rows add up to the network's parameters. What follows
the encoder depends on the arch's head kind (`arch.task`): a builder registered per kind (`register_head_rows`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nas.cost import format_count
from nas.latency.units import Unit, classifier_unit, layer_units
from ops import op_spec, resolve_hparams
from search_spaces.arch import Arch, Classifier, Layer
from search_spaces.builder import build_model


@dataclass
class Row:
    """One block of the picture: a layer position or one module of the head."""

    group: str  # "stem", "stage 2", "head", "classifier", "decoder", ...
    op: str  # the op (or module kind) it runs
    detail: str = ""  # hparams, short: "k5 e6"
    plugins: tuple[str, ...] = ()  # plug-in ops after it, in order
    c_in: int = 0
    c_out: int = 0
    stride: int = 1
    size_in: int = 0
    size_out: int = 0
    params: int = 0
    note: str = ""  # e.g. "blurpool", "from stage 2", "tapped: P1"
    units: list[Unit] = field(default_factory=list)
    latency_ms: float | None = None
    stage: int | None = None  # the stage index of a stage layer


@dataclass
class Diagram:
    """Everything a renderer draws: a title, header lines, the rows, and the totals the shares are of."""

    title: str
    lines: list[str]
    rows: list[Row]
    params: int
    latency_ms: float | None = None  # calibrated prediction of the whole network (None: no latency model)
    latency_note: str = ""  # where the latency comes from, or why there is none

    def param_share(self, row: Row) -> float:
        return row.params / self.params if self.params else 0.0

    def latency_share(self, row: Row) -> float | None:
        if row.latency_ms is None or not self.latency_ms:
            return None
        return row.latency_ms / self.latency_ms


# Arch head kind (arch.task) -> rows of everything outside the encoder: (rows before the stem, rows after it)
HEAD_ROWS: dict[str, Callable[[Arch, nn.Module, list[Row]], tuple[list[Row], list[Row]]]] = {}


def register_head_rows(kind: str, fn: Callable[[Arch, nn.Module, list[Row]], tuple[list[Row], list[Row]]]) -> None:
    """Register how architectures with head `kind` are drawn outside the encoder: `fn(arch, model, encoder_rows)`
    returns the rows before the stem and after the encoder (`model` is the built network, on the meta device)."""
    HEAD_ROWS[kind] = fn


def params_of(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hparam_text(op: str, hparams) -> str:
    """`kernel=5, expand=6` as `k5 e6` (the op's short names; other hparams as key=value), defaults filled in.
    A default is shown only when it is a searched shape number (kernel, expansion: `k3 e6`): `se=0.0` and
    `norm=bn` say nothing."""
    try:
        spec = {h.name: h for h in op_spec(op).hparams}
        hparams = resolve_hparams(op, dict(hparams))
    except (KeyError, ValueError):
        spec = {}
    parts = []
    for k, v in (hparams.items() if isinstance(hparams, dict) else hparams):
        h = spec.get(k)
        numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
        if h is not None and v == h.default and not (h.elastic and h.short and numeric and v):
            continue
        v = ".".join(str(x) for x in v) if isinstance(v, (tuple, list)) else v
        parts.append(f"{h.short}{v}" if h is not None and h.short and numeric else f"{k}={v}")
    return " ".join(parts)


def plugin_text(layer: Layer) -> tuple[str, ...]:
    return tuple(p.op for p in layer.plugins)


def build_meta(arch: Arch) -> nn.Module:
    """The network of `arch` without allocating weights (meta device); on the CPU for an op the meta device
    cannot build."""
    try:
        with torch.device("meta"):
            return build_model(arch)
    except (NotImplementedError, RuntimeError):
        return build_model(arch)


def encoder_rows(arch: Arch, model: nn.Module) -> list[Row]:
    """A row per layer of the stem, the stages and the head, with the shapes flowing through them."""
    c, size = arch.in_channels, arch.input_size
    sections = [("stem", None, arch.stem, model.stem)]
    sections += [(f"stage {i + 1}", i, stage, model.stages[i]) for i, stage in enumerate(arch.stages)]
    sections += [("head", None, arch.head, model.head)]
    rows = []
    for group, index, layers, modules in sections:
        for layer, module in zip(layers, modules):
            units, c_out, size_out = layer_units(layer, c, size)
            note = "blurpool" if layer.downsample == "blurpool" and layer.stride > 1 else ""
            rows.append(Row(group, layer.op, hparam_text(layer.op, layer.hparams), plugin_text(layer), c, c_out,
                            layer.stride, size, size_out, params_of(module), note, units, stage=index))
            c, size = c_out, size_out
    return rows


def classifier_rows(arch: Arch, model: nn.Module, encoder: list[Row]) -> tuple[list[Row], list[Row]]:
    """The classifier: pool, hidden FCs, linear, after the encoder."""
    clf = arch.classifier or Classifier(10)
    c, size = (encoder[-1].c_out, encoder[-1].size_out) if encoder else (arch.in_channels, arch.input_size)
    hidden = "fc " + "-".join(map(str, clf.hidden)) + " " if clf.hidden else ""
    detail = f"pool {hidden}linear" + (f" dropout={clf.dropout:g}" if clf.dropout else "")
    row = Row("classifier", "classifier", detail, (), c, clf.num_classes, 1, size, 1, params_of(model.classifier),
              units=[classifier_unit(clf, c, size)])
    return [], [row]


register_head_rows("classification", classifier_rows)


def arch_rows(arch: Arch, model: nn.Module | None = None) -> list[Row]:
    """Every row of `arch` in network order."""
    model = model if model is not None else build_meta(arch)
    encoder = encoder_rows(arch, model)
    before, after = HEAD_ROWS[arch.task](arch, model, encoder)
    return before + encoder + after


def fill_latency(rows: list[Row], latency_model) -> float:
    """Each row's calibrated latency (ms) from `latency_model` (a `LatencyModel`); returns the network's
    prediction (the rows plus the calibration's per-network intercept)."""
    for r in rows:
        r.latency_ms = sum(latency_model.unit_cost(u) for u in r.units)
    return latency_model.calibration.intercept + sum(r.latency_ms for r in rows)


def arch_title(arch: Arch) -> str:
    return arch.space or "architecture"


def arch_diagram(arch: Arch, latency_model=None, title: str | None = None, lines: list[str] | None = None,
                 latency_note: str = "", macs: int | None = None) -> Diagram:
    """The `Diagram` of `arch`; with `latency_model`, each row's share of its predicted latency."""
    model = build_meta(arch)
    rows = arch_rows(arch, model)
    total = params_of(model)
    latency = fill_latency(rows, latency_model) if latency_model is not None else None
    head = [f"{arch.task}, input {arch.in_channels}x{arch.input_size}x{arch.input_size}, {arch.num_classes} classes",
            f"{format_count(total)} params" + (f", {format_count(macs)} MACs" if macs is not None else "")
            + (f", {latency:.3g} ms predicted" if latency is not None else "")]
    if not latency_note:
        latency_note = ("" if latency_model is not None else
                        "no latency model: parameter shares only (give --table LATENCY.json or a run folder)")
    return Diagram(title or arch_title(arch), head + list(lines or []), rows, total, latency, latency_note)


__all__ = ["Diagram", "Row", "arch_diagram", "arch_rows", "register_head_rows", "HEAD_ROWS", "hparam_text",
           "params_of"]
