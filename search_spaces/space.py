"""`SearchSpace`: named categorical decisions, their decoding into an `Arch`, and the layer positions.

Decisions (one flat, ordered list; only those with more than one choice are listed):

    stem.l{i}.op / .width / .plugin       a stem layer's op variant, its c_out, its plug-in
    s{k}.depth  s{k}.width  s{k}.downsample   per stage k (0-based): one decision each, shared by its layers
    s{k}.l{j}.op  s{k}.l{j}.plugin       per layer j (0-based) of stage k, up to the largest depth
    head.l{i}.op / .width / .plugin
    decoder.upsample .context .fusion .stn .channels   (dense-prediction spaces)

An op choice is one flat categorical over every variant of every candidate op at that position
(`mbconv_k5_e6`, `dw_separable_k3`, `skip`), as in SPOS: Optuna and Ray Tune then see plain
string categoricals with a fixed set of values per key. Layers beyond a stage's chosen depth are
inactive: their keys are still decisions (so the set of keys never changes), decode ignores them.

`Position`s are the layer slots of the network (stem layers, each stage's layers up to its
largest depth, head layers), with the input size and every (c_in, c_out) pair a layer there can
meet: what the supernet and the latency table are built over.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any, Iterable

from torch import nn

from search_spaces.builder import build_model

from .arch import Arch, Classifier, Decoder, Layer
from .layout import Layout, Position, stage_key
from .probe import probe
from .schema import DECODER_FIELDS, NONE, LayerSpec, SpaceError, SpaceSpec, Variant


@dataclass(frozen=True)
class Decision:
    """One named categorical choice: what Optuna's `suggest_categorical` / Ray Tune's `tune.choice` take."""

    key: str
    choices: tuple


class SearchSpace:
    """A validated space: decisions(), decode(), sample(), build(), size(), positions(), smallest(), largest()."""

    def __init__(self, spec: SpaceSpec, check: str = "build", raw: dict | None = None):
        """`check`: "build" try-builds every candidate at each of its shapes; "forward" also runs it.
        `raw`: the mapping `spec` was parsed from (kept so that `load(space, **overrides)` can re-apply)."""
        if check not in ("build", "forward"):
            raise ValueError(f"check must be 'build' or 'forward', got {check!r}")
        self.spec, self.raw = spec, raw
        self.name = spec.name
        self.check = check
        self._positions = Layout(spec, check).positions()
        self._by_key = {p.key: p for p in self._positions}
        self._labels = {p.key: {v.label: v for v in p.candidates} for p in self._positions}
        self._plugin_labels = {p.key: {v.label: v for v in p.plugins} for p in self._positions}
        self._decisions = self._make_decisions()
        self._decision_map = {d.key: d for d in self._decisions}

    @property
    def in_channels(self) -> int:
        return self.spec.in_channels

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def task(self) -> str:
        return "segmentation" if self.spec.decoder is not None else "classification"

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self._decisions)} decisions, 10^{math.log10(self.size()):.1f} archs)"

    def _make_decisions(self) -> list[Decision]:
        out: list[Decision] = []

        def add(key: str, choices: Iterable) -> None:
            choices = tuple(choices)
            if len(choices) > 1:
                out.append(Decision(key, choices))

        def layer(pos: Position, widths) -> None:
            add(f"{pos.key}.op", (v.label for v in pos.candidates))
            if widths:
                add(f"{pos.key}.width", widths)
            add(f"{pos.key}.plugin", (v.label for v in pos.plugins))

        for pos, ls in zip(self._section("stem"), self.spec.stem):
            layer(pos, ls.widths)
        for k, st in enumerate(self.spec.stages):
            add(f"{stage_key(k)}.depth", st.depths)
            add(f"{stage_key(k)}.width", st.widths)
            add(f"{stage_key(k)}.downsample", st.downsample)
            for pos in self._stage(k):
                layer(pos, None)
        for pos, ls in zip(self._section("head"), self.spec.head):
            layer(pos, ls.widths)
        dec = self.spec.decoder
        if dec is not None:
            for f in DECODER_FIELDS:
                add(f"decoder.{f}", getattr(dec, f))
        return out

    def _section(self, section: str) -> list[Position]:
        return [p for p in self._positions if p.section == section]

    def _stage(self, k: int) -> list[Position]:
        return [p for p in self._positions if p.section == "stage" and p.stage == k]

    # --- decisions, positions, decoding, sampling ---------------------------------------------------
    def decisions(self) -> list[Decision]:
        """Every decision with more than one choice, in network order (stem, stages, head, decoder)."""
        return list(self._decisions)

    def positions(self) -> list[Position]:
        """Every layer slot in network order: stem layers, each stage up to its largest depth, head layers."""
        return list(self._positions)

    def position(self, key: str) -> Position:
        return self._by_key[key]

    def size(self) -> int:
        """The number of distinct architectures (layers beyond a stage's depth do not multiply)."""
        n = 1
        for pos, ls in zip(self._section("stem") + self._section("head"), self.spec.stem + self.spec.head):
            real = sum(1 for v in pos.candidates if not v.is_none)
            n *= real * len(ls.widths or (1,)) * len(pos.plugins) + (len(pos.candidates) - real)
        for k, st in enumerate(self.spec.stages):
            per = [len(p.candidates) * len(p.plugins) for p in self._stage(k)]
            n *= len(st.widths) * len(st.downsample) * sum(math.prod(per[:d]) for d in st.depths)
        dec = self.spec.decoder
        if dec is not None:
            n *= math.prod(len(getattr(dec, f)) for f in DECODER_FIELDS)
        return n

    def _pick(self, a: dict[str, Any], key: str, choices: tuple) -> Any:
        if len(choices) == 1:
            return choices[0]
        if key not in a:
            raise SpaceError(f"decode: missing decision '{key}'; choices: {', '.join(map(str, choices))}")
        v = a[key]
        for c in choices:
            if c == v and isinstance(c, bool) == isinstance(v, bool):  # True is not the width 1
                return c
        for c in choices:  # values that went through a string form (CLI, CSV): match by text
            if str(c) == str(v):
                return c
        raise SpaceError(f"decode: {key}={v!r} is not a choice; choices: {', '.join(map(str, choices))}")

    def decode(self, assignment: dict[str, Any]) -> Arch:
        """The `Arch` for one assignment {decision key: choice}; keys of inactive layers may be left out."""
        a = dict(assignment)
        for key in a:
            if key not in self._decision_map:
                import difflib

                close = difflib.get_close_matches(key, list(self._decision_map), n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise SpaceError(f"decode: unknown decision '{key}'; {hint}"
                                 f"decisions: {', '.join(self._decision_map) or 'none (a fixed space)'}")
        c = self.spec.in_channels
        stem, c = self._decode_layers(a, self.spec.stem, self._section("stem"), c)
        stages = []
        for k, st in enumerate(self.spec.stages):
            sk = stage_key(k)
            depth = self._pick(a, f"{sk}.depth", st.depths)
            width = self._pick(a, f"{sk}.width", st.widths)
            down = self._pick(a, f"{sk}.downsample", st.downsample)
            layers = []
            for pos in self._stage(k)[:depth]:
                layers.append(self._layer(a, pos, self._op(a, pos), width,
                                          down if pos.index == 0 and pos.stride > 1 else "stride"))
            stages.append(tuple(layers))
            c = width
        head, c = self._decode_layers(a, self.spec.head, self._section("head"), c)
        spec, dec, clf = self.spec, self.spec.decoder, self.spec.classifier
        decoder = None if dec is None else Decoder(
            spec.num_classes, **{f: self._pick(a, f"decoder.{f}", getattr(dec, f)) for f in DECODER_FIELDS})
        classifier = None if clf is None else Classifier(spec.num_classes, clf.hidden, clf.act, clf.dropout)
        return Arch(tuple(stages), stem, head, classifier, decoder, spec.in_channels, spec.input_size, spec.name)

    def _op(self, a: dict[str, Any], pos: Position) -> Variant:
        ops = self._labels[pos.key]
        return ops[self._pick(a, f"{pos.key}.op", tuple(ops))]

    def _layer(self, a: dict[str, Any], pos: Position, v: Variant, c_out: int, down: str) -> Layer:
        plugs = self._plugin_labels[pos.key]
        p = plugs[self._pick(a, f"{pos.key}.plugin", tuple(plugs))]
        plugins = () if p.is_none else (Layer(p.op, c_out, 1, p.hparams),)
        return Layer(v.op, c_out, pos.stride, v.hparams, plugins, down)

    def _decode_layers(self, a, specs: tuple[LayerSpec, ...], poss: list[Position], c: int):
        """Stem or head layers (a `none` op leaves its slot empty); returns them and the channels out."""
        out = []
        for ls, pos in zip(specs, poss):
            v = self._op(a, pos)
            if v.is_none:
                continue
            c = self._pick(a, f"{pos.key}.width", ls.widths) if ls.widths else c
            out.append(self._layer(a, pos, v, c, "stride"))
        return tuple(out), c

    def sample_assignment(self, rng: Any = None) -> dict[str, Any]:
        """One uniformly drawn choice per decision; `rng`: random.Random, numpy Generator, a seed or None."""
        r = as_rng(rng)
        return {d.key: d.choices[r(len(d.choices))] for d in self._decisions}

    def sample(self, rng: Any = None) -> Arch:
        """A random architecture (each decision uniform, as single-path one-shot training samples)."""
        return self.decode(self.sample_assignment(rng))

    def build(self, arch: Arch) -> nn.Module:
        """The plain PyTorch module of `arch`."""
        return build_model(arch)

    # --- arch -> positions / assignment ----------------------------------------------------------------
    def locate(self, arch: Arch) -> list[tuple[Position, Layer, int]]:
        """Each layer of `arch` with its position and input channels, in network order."""
        out: list[tuple[Position, Layer, int]] = []
        c = self._locate_layers("stem", arch.stem, arch.in_channels, out)
        for k, stage in enumerate(arch.stages):
            poss = self._stage(k)
            if k >= len(self.spec.stages) or len(stage) > len(poss):
                raise SpaceError(f"arch: stage {k} with {len(stage)} layers is not in space '{self.name}'")
            for pos, layer in zip(poss, stage):
                out.append((pos, layer, c))
                c = _out_channels(layer)
        self._locate_layers("head", arch.head, c, out)
        return out

    def _locate_layers(self, section: str, layers, c: int, out: list) -> int:
        """Match stem/head layers to their slots in order (an optional slot may stay empty)."""
        layers = list(layers)
        for pos in self._section(section):
            if layers and any(_matches(v, layers[0]) for v in pos.candidates):
                out.append((pos, layers.pop(0), c))
                c = _out_channels(out[-1][1])
            elif not pos.optional:
                what = f"'{layers[0].to_string()}'" if layers else "(missing)"
                raise SpaceError(f"arch: {section} layer {what} is not a candidate at {pos.key}")
        if layers:
            raise SpaceError(f"arch: {section} layer '{layers[0].to_string()}' has no position in space '{self.name}'")
        return c

    def encode(self, arch: Arch) -> dict[str, Any]:
        """The assignment that decodes to `arch` (the inverse of `decode`); raises if it is not in the space."""
        a: dict[str, Any] = {}
        found = {pos.key: layer for pos, layer, _ in self.locate(arch)}
        for pos in self._positions:
            layer = found.get(pos.key)
            if layer is None:
                if pos.section != "stage" and len(pos.candidates) > 1:
                    a[f"{pos.key}.op"] = NONE
                continue
            v = next((v for v in pos.candidates if _matches(v, layer)), None)
            if v is None:
                raise SpaceError(f"arch: layer '{layer.to_string()}' is not a candidate at {pos.key}")
            a[f"{pos.key}.op"] = v.label
            plug = layer.plugins[0] if layer.plugins else None
            p = next((p for p in pos.plugins if (p.is_none and plug is None) or (plug and _matches(p, plug))), None)
            if p is None or len(layer.plugins) > 1:
                raise SpaceError(f"arch: plug-ins of '{layer.to_string()}' are not candidates at {pos.key}")
            a[f"{pos.key}.plugin"] = p.label
            if pos.section != "stage":
                a[f"{pos.key}.width"] = layer.c_out
            elif pos.index == 0:
                sk = stage_key(pos.stage)
                a[f"{sk}.depth"], a[f"{sk}.width"] = len(arch.stages[pos.stage]), layer.c_out
                a[f"{sk}.downsample"] = layer.downsample
        if arch.decoder is not None:
            a.update({f"decoder.{f}": getattr(arch.decoder, f) for f in DECODER_FIELDS})
        a = {k: v for k, v in a.items() if k in self._decision_map}
        if self.decode(a) != replace(arch, space=self.name):
            raise SpaceError(f"arch: '{arch.to_string()[:80]}' is not an architecture of space '{self.name}'")
        return a

    # --- extremes by parameter count ----------------------------------------------------------------
    def params(self, arch: Arch) -> int:
        """Parameters of `build(arch)` (encoder and classifier; a decoder is not counted), without building it."""
        n = 0
        for pos, layer, c in self.locate(arch):
            blur = layer.downsample == "blurpool" and layer.stride > 1
            n += probe(layer.op, layer.hparams, c, layer.c_out, 1 if blur else layer.stride)[1]
            n += sum(probe(p.op, p.hparams, layer.c_out, p.c_out, p.stride)[1] for p in layer.plugins)
            c = _out_channels(layer)
        if arch.classifier is not None:
            layers = arch.layers()
            c = _out_channels(layers[-1]) if layers else arch.in_channels
            for h in (*arch.classifier.hidden, arch.classifier.num_classes):
                n, c = n + c * h + h, h
        return n

    def _extreme(self, sign: int, score=None) -> Arch:
        """Greedy coordinate search: per decision, the choice that minimises sign * score, others fixed."""
        score = score or self.params
        a = {d.key: d.choices[0 if sign > 0 else -1] for d in self._decisions}
        for _ in range(4):
            changed = False
            for d in self._decisions:
                order = d.choices if sign > 0 else d.choices[::-1]  # ties: first (smallest) / last (largest)
                best = min(order, key=lambda ch: sign * score(self.decode({**a, d.key: ch})))
                changed |= best != a[d.key]
                a[d.key] = best
            if not changed:
                break
        return self.decode(a)

    def smallest(self, score=None) -> Arch:
        """The architecture with (greedily) the fewest parameters, or the lowest `score(arch)`."""
        return self._extreme(1, score)

    def largest(self, score=None) -> Arch:
        """The architecture with (greedily) the most parameters, or the highest `score(arch)`."""
        return self._extreme(-1, score)


def _out_channels(layer: Layer) -> int:
    return layer.plugins[-1].c_out if layer.plugins else layer.c_out


def _matches(v: Variant, layer: Layer) -> bool:
    return not v.is_none and v.op == layer.op and tuple(v.hparams) == tuple(layer.hparams)


def as_rng(rng: Any):
    """`n -> index in [0, n)` from a random.Random, a numpy Generator, an int seed or None."""
    if rng is None or isinstance(rng, int):
        rng = random.Random(rng)
    if isinstance(rng, random.Random):
        return rng.randrange
    if hasattr(rng, "integers"):
        return lambda n: int(rng.integers(n))
    raise TypeError(f"rng: expected random.Random, numpy.random.Generator, an int seed or None, got {type(rng)}")
