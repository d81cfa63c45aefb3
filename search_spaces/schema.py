"""The YAML format of a search space, parsed into plain frozen values with one-line errors.

A space file is a mapping (every key but `name` optional):

    name: mobile                      # the shipped name, or the file's stem
    description: one line for `nas space list`
    input: {channels: 1, size: 32}
    num_classes: 10
    filter_invalid: false             # true: drop a candidate where its channel rules fail, else error
    stem:                             # layers, in order (see LAYER below)
      - {op: conv, c_out: [16, 24], stride: 1, kernel: 3}
    stages:
      - depth: [2, 3, 4]              # a choice list, one int, or {min: 2, max: 4}
        width: [24, 32]               # one decision per stage, shared by its layers
        stride: 2                     # applies to the first layer of the stage
        downsample: [stride, blurpool]  # one decision per stage: strided op, or op + blurpool
        ops:                          # per-layer candidates: op -> {hparam: value or choices}
          mbconv: {kernel: [3, 5, 7], expand: [3, 4, 6]}
          dw_separable: {kernel: [3, 5]}
        plugins: [none, se, cbam]     # after each layer: names, or a mapping like `ops`
    head: [...]                       # layers, like the stem
    classifier: {hidden: [], act: relu, dropout: 0.0}
    decoder:                          # dense prediction only (instead of a classifier)
      upsample: [transposed, bilinear_conv, pixel_shuffle]
      context: [aspp, rfb, none]
      fusion: [asff, sum, concat]
      stn: [true, false]
      channels: [32, 64]

LAYER (stem and head): `op: NAME` plus its hparams as keys, or `ops:` a mapping as in a stage
(`none` among them makes the layer optional); `c_out` an int or a choice list (omitted: the
channels stay as they come in); `stride`; `plugins`. An hparam value of `$input_size` is the
spatial size of the layer's input (e.g. `gdc: {size: $input_size}`).

Hparam values: a list is a choice list, a scalar one fixed value; for an hparam whose default
is a tuple (aspp `rates`), a list of numbers is one value and a list of lists the choices. Each
op's hparam choices expand into variants, labelled `op` plus one token per hparam that varies
(`mbconv_k3_e6`, the short names of the op's schema, as in `Arch.to_string`).
"""
from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from ops import UnknownOpError, op_spec
from ops.registry import ACT

NONE = "none"
INPUT_SIZE = "$input_size"
DOWNSAMPLE = ("stride", "blurpool")
SPACE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}\Z")  # a space's name: it goes into arch strings and code
DECODER_FIELDS = ("upsample", "context", "fusion", "stn", "channels")  # decisions "decoder.<field>"
DECODER_CHOICES = {"upsample": ("transposed", "bilinear_conv", "pixel_shuffle"), "context": ("aspp", "rfb", NONE),
                   "fusion": ("asff", "sum", "concat")}


class SpaceError(ValueError):
    """A search-space file (or decision assignment) that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Variant:
    """One candidate at a layer position: an op with all its hparams fixed (`none`: no layer)."""

    label: str
    op: str
    hparams: tuple[tuple[str, Any], ...] = ()
    path: str = field(default="", compare=False)  # YAML key path, for error messages

    @property
    def is_none(self) -> bool:
        return self.op == NONE


NONE_VARIANT = Variant(NONE, NONE)


@dataclass(frozen=True)
class LayerSpec:
    """A stem or head layer: candidate variants, output width choices (None: c_out = c_in), stride, plug-ins."""

    path: str
    ops: tuple[Variant, ...]
    widths: tuple[int, ...] | None
    stride: int
    plugins: tuple[Variant, ...]


@dataclass(frozen=True)
class StageSpec:
    """A stage: depth and width choices, its stride and downsampling choices, per-layer candidates."""

    path: str
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    stride: int
    downsample: tuple[str, ...]
    ops: tuple[Variant, ...]
    plugins: tuple[Variant, ...]


@dataclass(frozen=True)
class ClassifierSpec:
    hidden: tuple[int, ...] = ()
    act: str = "relu"
    dropout: float = 0.0


@dataclass(frozen=True)
class DecoderSpec:
    upsample: tuple[str, ...]
    context: tuple[str, ...]
    fusion: tuple[str, ...]
    stn: tuple[bool, ...]
    channels: tuple[int, ...]


@dataclass(frozen=True)
class SpaceSpec:
    name: str
    description: str
    in_channels: int
    input_size: int
    num_classes: int
    stem: tuple[LayerSpec, ...]
    stages: tuple[StageSpec, ...]
    head: tuple[LayerSpec, ...]
    classifier: ClassifierSpec | None
    decoder: DecoderSpec | None
    filter_invalid: bool = False


# --- small checks ---------------------------------------------------------------------------------

def did_you_mean(word: Any, allowed, template: str = "did you mean '{}'? ") -> str:
    """The closest of `allowed` to `word` (difflib) as a hint in `template`; "" when none is close."""
    close = difflib.get_close_matches(str(word), allowed, n=1)
    return template.format(close[0]) if close else ""


def _keys(d: Any, allowed: tuple[str, ...], path: str) -> dict:
    if not isinstance(d, dict):
        raise SpaceError(f"{path}: expected a mapping with keys {', '.join(allowed)}, got {d!r}")
    for k in d:
        if k not in allowed:
            raise SpaceError(f"{path}.{k}: unknown key; {did_you_mean(k, allowed)}valid keys: {', '.join(allowed)}")
    return d


def _int(v: Any, path: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise SpaceError(f"{path}: expected an integer >= {minimum}, got {v!r}")
    return v


def _choices(v: Any, path: str, what: str) -> tuple:
    """A scalar or a non-empty list, as a tuple without duplicates."""
    vals = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    if not vals:
        raise SpaceError(f"{path}: empty choice list; give at least one {what}")
    for i, x in enumerate(vals):
        if x in vals[:i]:
            raise SpaceError(f"{path}: {x!r} is listed twice")
    return vals


def _ints(v: Any, path: str, what: str, minimum: int = 1) -> tuple[int, ...]:
    vals = _choices(v, path, what)
    return tuple(_int(x, f"{path}[{i}]" if isinstance(v, list) else path, minimum) for i, x in enumerate(vals))


def _names(v: Any, path: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    vals = _choices(v, path, what)
    for x in vals:
        if x not in allowed:
            hint = did_you_mean(x, allowed, " (did you mean '{}'?)")
            raise SpaceError(f"{path}: {x!r} is not allowed{hint}; valid: {', '.join(allowed)}")
    return vals


# --- op variants -----------------------------------------------------------------------------------

def _token(name: str, value: Any, short: str) -> str:
    v = ".".join(str(x) for x in value) if isinstance(value, tuple) else value
    numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
    return f"{short}{v}" if short and numeric else f"{name}={v}"


def _hparam_values(op: str, hp, raw: Any, path: str) -> tuple:
    """The choices given for one hparam, type-checked against its default."""
    tuple_valued = isinstance(hp.default, tuple)
    if tuple_valued:
        if isinstance(raw, (list, tuple)) and raw and all(isinstance(x, (list, tuple)) for x in raw):
            vals = tuple(tuple(x) for x in raw)
        else:
            vals = (tuple(raw) if isinstance(raw, (list, tuple)) else raw,)
    else:
        vals = _choices(raw, path, "value")
    if not vals:
        raise SpaceError(f"{path}: empty choice list; give at least one value")
    out = []
    for x in vals:
        if x == INPUT_SIZE:
            out.append(x)
            continue
        d = hp.default
        if isinstance(d, bool) and not isinstance(x, bool):
            raise SpaceError(f"{path}: op '{op}' hparam '{hp.name}' takes true/false, got {x!r}")
        if isinstance(d, float) and isinstance(x, int) and not isinstance(x, bool):
            x = float(x)
        if isinstance(d, (int, float)) and not isinstance(d, bool) and (
                isinstance(x, bool) or not isinstance(x, (int, float))):
            raise SpaceError(f"{path}: op '{op}' hparam '{hp.name}' takes a number, got {x!r}")
        if isinstance(d, str) and hp.choices and x not in hp.choices:
            raise SpaceError(f"{path}: {x!r} is not allowed for op '{op}' hparam '{hp.name}'; "
                             f"valid: {', '.join(map(str, hp.choices))}")
        out.append(x)
    return tuple(out)


def expand_op(name: Any, raw: Any, path: str) -> list[Variant]:
    """All variants of one op entry `name: {hparam: choices}` (`path` is the entry's key path)."""
    if name == NONE:
        if raw not in (None, {}):
            raise SpaceError(f"{path}: 'none' takes no hparams")
        return [NONE_VARIANT]
    try:
        spec = op_spec(str(name))
    except UnknownOpError as e:
        raise SpaceError(f"{path}: {e}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping of hparam choices like {{kernel: [3, 5]}}, got {raw!r}")
    names = spec.hparam_names()
    choices: list[tuple[str, tuple]] = []
    for k, v in raw.items():
        if k not in names:
            raise SpaceError(f"{path}.{k}: op '{name}' has no hparam '{k}'; {did_you_mean(k, names)}"
                             f"valid: {', '.join(names) or 'none'}")
        choices.append((k, _hparam_values(str(name), spec.hparam(k), v, f"{path}.{k}")))
    shorts = {h.name: h.short for h in spec.hparams}
    variants = []
    for combo in itertools.product(*(vals for _, vals in choices)):
        hps = tuple(sorted(zip((k for k, _ in choices), combo)))
        tokens = [_token(k, v, shorts[k]) for (k, vals), v in zip(choices, combo) if len(vals) > 1]
        variants.append(Variant("_".join([str(name), *tokens]), str(name), hps, path))
    return variants


def parse_variants(raw: Any, path: str, *, allow_none: bool, what: str = "op") -> tuple[Variant, ...]:
    """`[a, b, {c: {...}}]` or `{a: {...}, b: null}` into variants (labels unique)."""
    if raw is None:
        raise SpaceError(f"{path}: empty choice list; give at least one {what}")
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, dict):
        entries = [(k, v, f"{path}.{k}") for k, v in raw.items()]
    elif isinstance(raw, list):
        entries = []
        for i, item in enumerate(raw):
            if isinstance(item, dict) and len(item) == 1:
                (k, v), = item.items()
                entries.append((k, v, f"{path}[{i}].{k}"))
            elif isinstance(item, str):
                entries.append((item, None, f"{path}[{i}]"))
            else:
                raise SpaceError(f"{path}[{i}]: expected an op name or {{op: {{hparam: choices}}}}, got {item!r}")
    else:
        raise SpaceError(f"{path}: expected a list of op names or a mapping op -> hparam choices, got {raw!r}")
    if not entries:
        raise SpaceError(f"{path}: empty choice list; give at least one {what}")
    out: list[Variant] = []
    for name, hp, p in entries:
        if name == NONE and not allow_none:
            raise SpaceError(f"{p}: 'none' is not allowed here (a stage layer always has an op; use skip, "
                             f"and depth choices, to vary depth)")
        for v in expand_op(name, hp, p):
            if any(o.label == v.label for o in out):
                raise SpaceError(f"{p}: candidate '{v.label}' is listed twice")
            out.append(v)
    return tuple(out)


# --- sections --------------------------------------------------------------------------------------

LAYER_KEYS = ("op", "ops", "c_out", "stride", "plugins")


def parse_layer(raw: Any, path: str) -> LayerSpec:
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping like {{op: conv, c_out: 16, kernel: 3}}, got {raw!r}")
    if "op" in raw and "ops" in raw:
        raise SpaceError(f"{path}: give either 'op' (one op) or 'ops' (candidates), not both")
    if "ops" in raw:
        _keys(raw, LAYER_KEYS[1:], path)
        ops = parse_variants(raw["ops"], f"{path}.ops", allow_none=True)
    elif "op" in raw:
        name = raw["op"]
        hps = {k: v for k, v in raw.items() if k not in LAYER_KEYS}
        if name != NONE:
            try:
                names = op_spec(str(name)).hparam_names()
            except UnknownOpError as e:
                raise SpaceError(f"{path}.op: {e}") from None
            _keys(raw, LAYER_KEYS + tuple(names), path)
        ops = tuple(expand_op(name, hps, path))
    else:
        raise SpaceError(f"{path}: missing key 'op' (one op) or 'ops' (candidates)")
    widths = _ints(raw["c_out"], f"{path}.c_out", "width") if "c_out" in raw else None
    plugins = parse_variants(raw["plugins"], f"{path}.plugins", allow_none=True, what="plug-in") \
        if "plugins" in raw else (NONE_VARIANT,)
    return LayerSpec(path, ops, widths, _int(raw.get("stride", 1), f"{path}.stride"), plugins)


STAGE_KEYS = ("depth", "width", "stride", "downsample", "ops", "plugins")


def _depths(raw: Any, path: str) -> tuple[int, ...]:
    if isinstance(raw, dict):
        _keys(raw, ("min", "max"), path)
        lo = _int(raw.get("min", 1), f"{path}.min")
        if "max" not in raw:
            raise SpaceError(f"{path}.max: missing; give {{min: 2, max: 4}} or a list of depths")
        hi = _int(raw["max"], f"{path}.max")
        if lo > hi:
            raise SpaceError(f"{path}: min depth {lo} is above max depth {hi}")
        return tuple(range(lo, hi + 1))
    return tuple(sorted(_ints(raw, path, "depth")))


def parse_stage(raw: Any, path: str) -> StageSpec:
    _keys(raw, STAGE_KEYS, path)
    for k in ("depth", "width", "ops"):
        if k not in raw:
            raise SpaceError(f"{path}.{k}: missing required key")
    stride = _int(raw.get("stride", 1), f"{path}.stride")
    down = _names(raw.get("downsample", "stride"), f"{path}.downsample", DOWNSAMPLE, "downsampling")
    if stride == 1 and down != ("stride",):
        raise SpaceError(f"{path}.downsample: a stage with stride 1 has no downsampling point; valid: stride")
    plugins = parse_variants(raw["plugins"], f"{path}.plugins", allow_none=True, what="plug-in") \
        if "plugins" in raw else (NONE_VARIANT,)
    return StageSpec(path, _depths(raw["depth"], f"{path}.depth"), _ints(raw["width"], f"{path}.width", "width"),
                     stride, down, parse_variants(raw["ops"], f"{path}.ops", allow_none=False), plugins)


def parse_decoder(raw: Any, path: str) -> DecoderSpec:
    _keys(raw, DECODER_FIELDS, path)
    parts = {k: _names(raw.get(k, allowed[0] if k != "context" else NONE), f"{path}.{k}", allowed, k)
             for k, allowed in DECODER_CHOICES.items()}
    stn = _choices(raw.get("stn", False), f"{path}.stn", "true/false")
    if any(not isinstance(x, bool) for x in stn):
        raise SpaceError(f"{path}.stn: expected true/false or a list of them, got {raw.get('stn')!r}")
    return DecoderSpec(stn=stn, channels=_ints(raw.get("channels", 64), f"{path}.channels", "width"), **parts)


TOP_KEYS = ("name", "description", "input", "num_classes", "filter_invalid", "stem", "stages", "head", "classifier",
            "decoder")


def parse_space(raw: Any, name: str = "", root: str = "space") -> SpaceSpec:
    """Validate a space mapping (as read from YAML) into a `SpaceSpec`; bad input raises `SpaceError`."""
    _keys(raw, TOP_KEYS, root)
    inp = _keys(raw.get("input", {}), ("channels", "size"), f"{root}.input")
    stages = raw.get("stages")
    if not isinstance(stages, list) or not stages:
        raise SpaceError(f"{root}.stages: expected a non-empty list of stages, got {stages!r}")
    for k in ("stem", "head"):
        if not isinstance(raw.get(k, []), list):
            raise SpaceError(f"{root}.{k}: expected a list of layers, got {raw[k]!r}")
    if "classifier" in raw and "decoder" in raw:
        raise SpaceError(f"{root}.decoder: a space has a classifier or a decoder, not both")
    decoder = parse_decoder(raw["decoder"], f"{root}.decoder") if "decoder" in raw else None
    classifier = None
    if decoder is None:
        c = _keys(raw.get("classifier", {}), ("hidden", "act", "dropout"), f"{root}.classifier")
        hidden = c.get("hidden", [])
        if not isinstance(hidden, list):
            raise SpaceError(f"{root}.classifier.hidden: expected a list of widths, got {hidden!r}")
        dropout = c.get("dropout", 0.0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise SpaceError(f"{root}.classifier.dropout: expected a number in [0, 1), got {dropout!r}")
        act = _names(c.get("act", "relu"), f"{root}.classifier.act", ACT.choices, "activation")
        if len(act) > 1:
            raise SpaceError(f"{root}.classifier.act: expected one activation, got {c['act']!r}")
        classifier = ClassifierSpec(tuple(_int(h, f"{root}.classifier.hidden[{i}]") for i, h in enumerate(hidden)),
                                    act[0], float(dropout))
    space_name = str(raw.get("name") or name)
    if not SPACE_NAME.match(space_name):
        raise SpaceError(f"{root}.name: {space_name[:60]!r} is not a usable space name; valid: letters, digits and "
                         f"_ . + - (at most 100; a space file's stem is its default name)")
    filt = raw.get("filter_invalid", False)
    if not isinstance(filt, bool):
        raise SpaceError(f"{root}.filter_invalid: expected true/false, got {filt!r}")
    return SpaceSpec(
        name=space_name, description=str(raw.get("description", "")),
        in_channels=_int(inp.get("channels", 3), f"{root}.input.channels"),
        input_size=_int(inp.get("size", 32), f"{root}.input.size"),
        num_classes=_int(raw.get("num_classes", 10), f"{root}.num_classes"),
        stem=tuple(parse_layer(l, f"{root}.stem[{i}]") for i, l in enumerate(raw.get("stem", []))),
        stages=tuple(parse_stage(s, f"{root}.stages[{i}]") for i, s in enumerate(stages)),
        head=tuple(parse_layer(l, f"{root}.head[{i}]") for i, l in enumerate(raw.get("head", []))),
        classifier=classifier, decoder=decoder, filter_invalid=filt)
