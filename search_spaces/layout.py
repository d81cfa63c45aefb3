"""The layer positions of a parsed space, each candidate try-built at every shape it can meet.

Walking the network in order (stem, stages, head), each slot gets its input size, stride, every
(c_in, c_out) pair a layer there can meet (the first layer of a stage: the previous widths x this
stage's widths; later layers: (w, w)), and its candidates. A candidate that fails to build at one
of its shapes is a `SpaceError` naming its YAML key path, or, with `filter_invalid: true`, is left
out of that slot (still an error if it builds nowhere).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .probe import probe, probe_forward
from .schema import INPUT_SIZE, LayerSpec, SpaceError, SpaceSpec, Variant


@dataclass(frozen=True)
class Position:
    """One layer slot: where it is, what comes in, and every candidate it may hold."""

    key: str  # "stem.l0", "s2.l1", "head.l0"
    section: str  # stem | stage | head
    stage: int  # stage index; -1 in the stem and head
    index: int  # layer index within its stage (or the stem / head)
    input_size: int  # H = W of the input
    stride: int
    shapes: tuple[tuple[int, int], ...]  # every (c_in, c_out) a layer here can meet
    candidates: tuple[Variant, ...]  # op variants; a `none` variant when the layer may be left out
    plugins: tuple[Variant, ...]  # plug-in variants after the op (`none`: no plug-in)
    downsample: tuple[str, ...] = ("stride",)  # "stride" | "blurpool", at a stage's first layer
    optional: bool = False  # the layer may be absent (stage depth below index + 1, or a `none` op)

    @property
    def c_in(self) -> tuple[int, ...]:
        return tuple(sorted({ci for ci, _ in self.shapes}))

    @property
    def c_out(self) -> tuple[int, ...]:
        return tuple(sorted({co for _, co in self.shapes}))

    @property
    def output_size(self) -> int:
        return math.ceil(self.input_size / self.stride)

    def variant(self, label: str) -> Variant:
        for v in self.candidates:
            if v.label == label:
                return v
        raise KeyError(label)


def stage_key(k: int) -> str:
    return f"s{k}"


class Layout:
    """Builds the `Position`s of `spec`; `check`: "build" (try-build) or "forward" (also run once)."""

    def __init__(self, spec: SpaceSpec, check: str = "build"):
        self.spec, self.check = spec, check
        self._positions: list[Position] = []
        self._layout()

    def positions(self) -> list[Position]:
        return list(self._positions)

    def _check_variant(self, v: Variant, key: str, shapes, stride: int, size: int, exact: bool) -> str | None:
        for ci, co in shapes:
            if self.check == "forward":
                err = probe_forward(v.op, v.hparams, ci, co, stride, size, exact)
            else:
                err = probe(v.op, v.hparams, ci, co, stride)[0]
            if err:
                return f"{err} (at {key}: c_in={ci}, c_out={co}, stride {stride}, {size}x{size} input)"
        return None

    def _candidates(self, variants, where, key, shapes, strides, size, exact, dropped) -> tuple[Variant, ...]:
        """The variants that build at every shape (and stride mode) of this position."""
        kept, first = [], None
        for v in variants:
            if not v.is_none and any(val == INPUT_SIZE for _, val in v.hparams):
                v = replace(v, hparams=tuple((k, size if val == INPUT_SIZE else val) for k, val in v.hparams))
            err = None if v.is_none else next(
                (e for s in strides if (e := self._check_variant(v, key, shapes, s, size, exact))), None)
            if err is None:
                kept.append(v)
                continue
            if not self.spec.filter_invalid:
                raise SpaceError(f"{v.path}: {err}")
            dropped.setdefault(v.label, f"{v.path}: {err}")
            first = first or err
        if not kept:
            raise SpaceError(f"{where}: no candidate builds at {key}; the first failure: {first}")
        return tuple(kept)

    def _add(self, spec, section, stage, index, size, stride, shapes, down, optional, dropped) -> Position:
        """Validate (or, with filter_invalid, filter) the candidates of one slot and record it."""
        key = f"{section if section != 'stage' else stage_key(stage)}.l{index}"
        exact = section != "head"  # a head op may pool the map (gdc)
        strides = sorted({stride if d == "stride" else 1 for d in down})
        ops = self._candidates(spec.ops, f"{spec.path}.ops", key, shapes, strides, size, exact, dropped)
        out = math.ceil(size / stride)
        plug_shapes = tuple(sorted({(co, co) for _, co in shapes}))
        plugins = self._candidates(spec.plugins, f"{spec.path}.plugins", key, plug_shapes, [1], out, exact, dropped)
        if "blurpool" in down:
            for _, co in shapes:
                err = probe("blurpool", (), co, co, stride)[0]
                if err:
                    raise SpaceError(f"{spec.path}.downsample: {err} (at {key})")
        optional = optional or any(v.is_none for v in ops)
        pos = Position(key, section, stage, index, size, stride, shapes, ops, plugins, tuple(down), optional)
        self._positions.append(pos)
        return pos

    @staticmethod
    def _unused(spec, positions: list[Position], dropped: dict[str, str]) -> None:
        """With filter_invalid, a candidate that builds nowhere is still an error."""
        used = {v.label for p in positions for v in (*p.candidates, *p.plugins)}
        for v in (*spec.ops, *spec.plugins):
            if v.label not in used and v.label in dropped:
                raise SpaceError(dropped[v.label])

    def _layout(self) -> None:
        spec = self.spec
        chans, size = [spec.in_channels], spec.input_size
        chans, size = self._layout_layers("stem", spec.stem, chans, size)
        for k, st in enumerate(spec.stages):
            dropped: dict[str, str] = {}
            poss = []
            for j in range(max(st.depths)):
                if j == 0:
                    shapes, stride, down = [(ci, w) for ci in chans for w in st.widths], st.stride, st.downsample
                else:
                    shapes, stride, down = [(w, w) for w in st.widths], 1, ("stride",)
                poss.append(self._add(st, "stage", k, j, size, stride, tuple(shapes), down, j >= min(st.depths),
                                      dropped))
                size = math.ceil(size / stride)
            self._unused(st, poss, dropped)
            chans = sorted(st.widths)
        self._layout_layers("head", spec.head, chans, size)

    def _layout_layers(self, section: str, layers: tuple[LayerSpec, ...], chans: list[int], size: int):
        """Stem or head slots; returns the channel counts and the size that come out."""
        for i, ls in enumerate(layers):
            dropped: dict[str, str] = {}
            shapes = [(c, w) for c in chans for w in ls.widths] if ls.widths else [(c, c) for c in chans]
            pos = self._add(ls, section, -1, i, size, ls.stride, tuple(shapes), ("stride",), False, dropped)
            if pos.optional and ls.stride > 1:
                raise SpaceError(f"{ls.path}.stride: an optional layer (one with 'none') must have stride 1")
            self._unused(ls, [pos], dropped)
            chans = sorted({co for _, co in shapes} | (set(chans) if pos.optional else set()))
            size = pos.output_size
        return chans, size

