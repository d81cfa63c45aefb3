"""Type and range checks of every field of an `Arch` (what `nas export` writes as code); one `ArchError` line each.

`check_arch` runs whenever an `Arch` is built (dict, YAML, compact string, `SearchSpace.decode`,
`replace`); the message names the field path and what would be valid, e.g.
`stages[1][0].c_out: must be an integer from 1 to 1048576, got 0`.
"""
from __future__ import annotations

import math
import re
from typing import Any

from ops import op_spec
from ops.registry import ACT

from .schema import DECODER_CHOICES, DOWNSAMPLE, SPACE_NAME

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")  # op names, activations, string hparam values
MAX_COUNT = 1 << 20  # channels, classes, hidden widths, numeric hparams (absolute value)
MAX_STRIDE = 64
MAX_SIZE = 1 << 14  # input H = W
MAX_ITEMS = 64  # hidden layers, tuple-valued hparams, plug-ins


class ArchError(ValueError):
    """An `Arch` field of the wrong type or out of range; the message is one line naming the field path."""


def show(value: Any) -> str:
    """`repr(value)` cut to 60 characters: one line, quotes and newlines escaped."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(path: str, problem: str, value: Any) -> ArchError:
    return ArchError(f"{path}: {problem}, got {show(value)}")


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= MAX_COUNT


def check_int(v: Any, path: str, lo: int = 1, hi: int = MAX_COUNT) -> int:
    if not is_int(v) or not lo <= v <= hi:
        what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise fail(path, f"must be {what} (at most {hi})", v)
    return v


def check_name(v: Any, path: str, allowed=None) -> str:
    if not isinstance(v, str) or not NAME.match(v) or (allowed is not None and v not in allowed):
        valid = ", ".join(map(str, allowed)) if allowed is not None else "a name of letters, digits and _"
        raise fail(path, f"unknown name; valid: {valid}", v)
    return v


def check_space_name(v: Any, path: str = "space") -> str:
    if not isinstance(v, str) or (v and not SPACE_NAME.match(v)):
        raise fail(path, "must be a space name (letters, digits, _ . + -, at most 100) or empty", v)
    return v


def check_hparam(op: str, key: Any, value: Any, path: str) -> None:
    """`value` has the type of the op's declared default; a string is one of the declared choices."""
    spec = op_spec(op)
    names = spec.hparam_names()
    if key not in names:
        raise ArchError(f"{path}: op '{op}' has no hparam {show(key)}; valid: {', '.join(names) or 'none'}")
    hp = spec.hparam(key)
    d, where = hp.default, f"{path}.{key}"
    if isinstance(d, bool):
        if not isinstance(value, bool):
            raise fail(where, "must be true or false", value)
    elif isinstance(d, (int, float)):
        if not is_number(value):
            raise fail(where, f"must be a finite number of at most {MAX_COUNT} in absolute value", value)
    elif isinstance(d, str):
        check_name(value, where, hp.choices or None)
    elif isinstance(d, tuple) or d is None:
        if value is None and d is None:
            return
        if not isinstance(value, tuple) or len(value) > MAX_ITEMS or not all(is_number(x) for x in value):
            raise fail(where, f"must be a list of at most {MAX_ITEMS} numbers" + (" or null" if d is None else ""),
                       value)
    elif not (value is None or is_number(value) or (isinstance(value, str) and NAME.match(value))):
        raise fail(where, "must be a number, a name or null", value)


def check_layer(layer: Any, path: str, plugin: bool = False, layer_cls: type = object) -> None:
    if not isinstance(layer, layer_cls):
        raise fail(path, "must be a layer (op, c_out, ...)", layer)
    check_name(layer.op, f"{path}.op")
    try:
        op_spec(layer.op)
    except KeyError as e:
        raise ArchError(f"{path}.op: {e}") from None
    check_int(layer.c_out, f"{path}.c_out")
    check_int(layer.stride, f"{path}.stride", 1, MAX_STRIDE)
    if layer.downsample not in (("stride",) if plugin else DOWNSAMPLE):
        valid = "stride (a plug-in does not downsample)" if plugin else ", ".join(DOWNSAMPLE)
        raise fail(f"{path}.downsample", f"unknown; valid: {valid}", layer.downsample)
    for k, v in layer.hparams:
        check_hparam(layer.op, k, v, path)
    if plugin and layer.plugins:
        raise fail(f"{path}.plugins", "a plug-in has no plug-ins of its own", layer.plugins)
    if len(layer.plugins) > MAX_ITEMS:
        raise fail(f"{path}.plugins", f"at most {MAX_ITEMS} plug-ins", len(layer.plugins))
    for i, p in enumerate(layer.plugins):
        check_layer(p, f"{path}.plugins[{i}]", plugin=True, layer_cls=layer_cls)


def check_classifier(clf: Any, path: str = "classifier", classifier_cls: type = object) -> None:
    if not isinstance(clf, classifier_cls):
        raise fail(path, "must be a classifier (num_classes, hidden, act, dropout)", clf)
    check_int(clf.num_classes, f"{path}.num_classes")
    if not isinstance(clf.hidden, tuple) or len(clf.hidden) > MAX_ITEMS:
        raise fail(f"{path}.hidden", f"must be a list of at most {MAX_ITEMS} widths", clf.hidden)
    for i, h in enumerate(clf.hidden):
        check_int(h, f"{path}.hidden[{i}]")
    check_name(clf.act, f"{path}.act", ACT.choices)
    d = clf.dropout
    if not isinstance(d, (int, float)) or isinstance(d, bool) or not 0 <= d < 1:
        raise fail(f"{path}.dropout", "must be a number in [0, 1)", d)


def check_decoder(dec: Any, path: str = "decoder", decoder_cls: type = object) -> None:
    if not isinstance(dec, decoder_cls):
        raise fail(path, "must be a decoder (num_classes, channels, upsample, context, fusion, stn)", dec)
    check_int(dec.num_classes, f"{path}.num_classes")
    check_int(dec.channels, f"{path}.channels")
    for key, valid in DECODER_CHOICES.items():
        v = getattr(dec, key)
        if not isinstance(v, str) or v not in valid:  # the wording SegNet's own check uses
            raise ArchError(f"{path}.{key}: unknown {show(v)}; valid: {', '.join(valid)}")
    if not isinstance(dec.stn, bool):
        raise fail(f"{path}.stn", "must be true or false", dec.stn)


def check_arch(arch: Any, types: tuple[type, type, type] | None = None) -> None:
    """Raise `ArchError` (one line, the field path first) unless every field of `arch` is of a valid type and range;
    `types`: the (Layer, Classifier, Decoder) classes its parts must be (search_spaces.arch passes its own)."""
    layer_cls, classifier_cls, decoder_cls = types or (object, object, object)
    check_space_name(arch.space)
    check_int(arch.in_channels, "in_channels")
    check_int(arch.input_size, "input_size", 1, MAX_SIZE)
    if not arch.stages:
        raise ArchError("stages: must hold at least one stage (a list of layers), got none")
    for name in ("stem", "head"):
        for i, layer in enumerate(getattr(arch, name)):
            check_layer(layer, f"{name}[{i}]", layer_cls=layer_cls)
    for s, stage in enumerate(arch.stages):
        if not stage:
            raise ArchError(f"stages[{s}]: must hold at least one layer, got none")
        for i, layer in enumerate(stage):
            check_layer(layer, f"stages[{s}][{i}]", layer_cls=layer_cls)
    if arch.classifier is not None and arch.decoder is not None:
        raise ArchError("decoder: an arch has a classifier or a decoder, not both")
    if arch.classifier is not None:
        check_classifier(arch.classifier, classifier_cls=classifier_cls)
    if arch.decoder is not None:
        check_decoder(arch.decoder, decoder_cls=decoder_cls)
