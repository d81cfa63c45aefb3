"""`Arch`: one concrete architecture, an immutable value that every part of the framework speaks."""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

import yaml

from ops import op_spec

from .arch_check import ArchError, check_arch, show
from .safe_yaml import parse_yaml


def _freeze(hparams: dict[str, Any] | tuple | None) -> tuple[tuple[str, Any], ...]:
    items = hparams.items() if isinstance(hparams, dict) else (hparams or ())
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items))


_STRING_CHARS = re.compile(r"[A-Za-z0-9_.,;:=+/-]+")  # every character `Arch.to_string` writes
MAX_STRING = 100_000


def _plain_int(v: Any) -> Any:
    """A numpy (or other Integral) integer as an int; anything else unchanged, for the checks to judge."""
    return int(v) if isinstance(v, numbers.Integral) and not isinstance(v, (bool, int)) else v


def _mapping(d: Any, path: str, what: str) -> dict:
    if not isinstance(d, dict):
        raise ArchError(f"{path}: must be a mapping ({what}), got {show(d)}")
    return d


def _list(v: Any, path: str, what: str) -> list | tuple:
    if not isinstance(v, (list, tuple)):
        raise ArchError(f"{path}: must be a list ({what}), got {show(v)}")
    return v


def _layer_from_dict(d: Any, path: str) -> "Layer":
    """`Layer.from_dict` with errors naming `path`; values are kept as given (check_arch judges them)."""
    d = dict(_mapping(d, path, "op, c_out, stride, downsample, plugins, hparams"))
    for key in ("op", "c_out"):
        if key not in d:
            raise ArchError(f"{path}: missing key '{key}'")
    if not all(isinstance(k, str) for k in d):
        raise ArchError(f"{path}: keys must be names, got {show(next(k for k in d if not isinstance(k, str)))}")
    op, c_out = d.pop("op"), _plain_int(d.pop("c_out"))
    stride, down = _plain_int(d.pop("stride", 1)), d.pop("downsample", "stride")
    plugins = tuple(_layer_from_dict(p, f"{path}.plugins[{i}]")
                    for i, p in enumerate(_list(d.pop("plugins", ()) or (), f"{path}.plugins", "plug-in layers")))
    return Layer(op, c_out, stride, _freeze(d), plugins, down)


@dataclass(frozen=True)
class Layer:
    """One op at one position: name, output channels, stride, hparams, plug-ins applied after it."""

    op: str
    c_out: int
    stride: int = 1
    hparams: tuple[tuple[str, Any], ...] = ()
    plugins: tuple["Layer", ...] = ()
    downsample: str = "stride"  # "stride": the op strides; "blurpool": op at stride 1, then a blurpool

    def __post_init__(self):
        object.__setattr__(self, "hparams", _freeze(self.hparams))
        object.__setattr__(self, "plugins", tuple(self.plugins))
        object.__setattr__(self, "c_out", _plain_int(self.c_out))
        object.__setattr__(self, "stride", _plain_int(self.stride))

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.hparams)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "c_out": self.c_out}
        if self.stride != 1:
            d["stride"] = self.stride
        if self.downsample != "stride":
            d["downsample"] = self.downsample
        d.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.hparams})
        if self.plugins:
            d["plugins"] = [p.to_dict() for p in self.plugins]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Layer":
        return _layer_from_dict(d, "layer")

    def to_string(self) -> str:
        parts = [self.op, f"c{self.c_out}"]
        if self.stride != 1:
            parts.append(f"s{self.stride}")
        if self.downsample != "stride":
            parts.append(f"ds={self.downsample}")
        shorts = {h.name: h.short for h in op_spec(self.op).hparams}
        for k, v in self.hparams:
            v = ".".join(str(x) for x in v) if isinstance(v, tuple) else v
            short = shorts.get(k)
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            parts.append(f"{short}{v}" if short and numeric else f"{k}={v}")
        return "_".join(parts) + "".join("+" + p.to_string() for p in self.plugins)

    @classmethod
    def from_string(cls, s: str) -> "Layer":
        main, *plugins = s.split("+")
        tokens = main.split("_")
        # op names contain underscores: take the longest registered prefix
        for n in range(len(tokens), 0, -1):
            try:
                spec = op_spec("_".join(tokens[:n]))
                break
            except KeyError:
                continue
        else:
            op_spec(main)  # raises the unknown-op error with close matches
        d: dict[str, Any] = {"op": spec.name}
        by_short = sorted(((h.short, h.name) for h in spec.hparams if h.short), key=lambda t: -len(t[0]))

        def field(tok: str) -> tuple[str, Any] | None:
            if "=" in tok:
                k, v = tok.split("=", 1)
                k = {"ds": "downsample"}.get(k, k)
                return k, (v if k == "downsample" else _parse_value(v))
            if re.fullmatch(r"c\d+", tok):
                return "c_out", int(tok[1:])
            if re.fullmatch(r"s\d+", tok):
                return "stride", int(tok[1:])
            for short, name in by_short:
                if tok.startswith(short) and _is_number(tok[len(short):]):
                    return name, _parse_value(tok[len(short):])
            return None

        keys = set(spec.hparam_names()) | {"ds"}

        def starts_key(toks: list[str], j: int) -> bool:  # toks[j:] begin with `some_key=`
            for k in range(j, len(toks)):
                if "=" in toks[k]:
                    return "_".join(toks[j:k] + [toks[k].split("=", 1)[0]]) in keys
            return False

        rest, i = tokens[n:], 0
        while i < len(rest):
            tok, i = rest[i], i + 1
            while "=" not in tok and field(tok) is None and i < len(rest):  # key with underscores: dw_act=relu
                tok, i = tok + "_" + rest[i], i + 1
            while "=" in tok and i < len(rest) and "=" not in rest[i] and field(rest[i]) is None \
                    and not starts_key(rest, i):
                tok, i = tok + "_" + rest[i], i + 1  # string value with underscores: up=bilinear_conv
            parsed = field(tok)
            if parsed is None:
                raise ValueError(f"arch string: cannot read '{tok}' in '{main}' (op '{spec.name}' has hparams "
                                 f"{', '.join(spec.hparam_names()) or 'none'})")
            d[parsed[0]] = parsed[1]
        if plugins:
            d["plugins"] = [cls.from_string(p).to_dict() for p in plugins]
        return cls.from_dict(d)


def _is_number(s: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(\.\d+)?(e-?\d+)?", s))


def _parse_value(v: str) -> Any:
    if "." in v and not _is_number(v):
        return tuple(_parse_value(x) for x in v.split("."))
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(v, v)


def _part_from_dict(cls: type, d: Any, path: str) -> Any:
    """A Classifier or Decoder from its mapping (None or {}: none)."""
    if d is None or (isinstance(d, dict) and not d):
        return None
    names = [f.name for f in fields(cls)]
    _mapping(d, path, f"keys {', '.join(names)}")
    unknown = [k for k in d if k not in names]
    if unknown:
        raise ArchError(f"{path}: unknown key {show(unknown[0])}; valid keys: {', '.join(names)}")
    if "num_classes" not in d:
        raise ArchError(f"{path}: missing key 'num_classes'")
    kw = dict(d)
    if isinstance(kw.get("hidden"), list):
        kw["hidden"] = tuple(kw["hidden"])
    return cls(**kw)


@dataclass(frozen=True)
class Classifier:
    """Pooling + optional hidden FC layers + final linear layer of a classification net."""

    num_classes: int
    hidden: tuple[int, ...] = ()
    act: str = "relu"
    dropout: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "num_classes", _plain_int(self.num_classes))
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(_plain_int(h) for h in self.hidden))

    def to_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "hidden": list(self.hidden), "act": self.act, "dropout": self.dropout}


@dataclass(frozen=True)
class Decoder:
    """Dense-prediction decoder: context module, multi-level fusion, upsampling op, optional STN in front."""

    num_classes: int
    channels: int = 64
    upsample: str = "bilinear_conv"  # transposed | bilinear_conv | pixel_shuffle
    context: str = "none"  # aspp | rfb | none
    fusion: str = "sum"  # asff | sum | concat
    stn: bool = False

    def __post_init__(self):
        object.__setattr__(self, "num_classes", _plain_int(self.num_classes))
        object.__setattr__(self, "channels", _plain_int(self.channels))

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("num_classes", "channels", "upsample", "context", "fusion", "stn")}


@dataclass(frozen=True)
class Arch:
    """A concrete network: stem layers, stages of layers, head layers, then a classifier or a decoder."""

    stages: tuple[tuple[Layer, ...], ...]
    stem: tuple[Layer, ...] = ()
    head: tuple[Layer, ...] = ()
    classifier: Classifier | None = None
    decoder: Decoder | None = None
    in_channels: int = 3
    input_size: int = 32
    space: str = ""
    meta: tuple[tuple[str, Any], ...] = field(default=(), compare=False)  # free-form, not part of identity

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(tuple(s) for s in self.stages))
        object.__setattr__(self, "stem", tuple(self.stem))
        object.__setattr__(self, "head", tuple(self.head))
        object.__setattr__(self, "in_channels", _plain_int(self.in_channels))
        object.__setattr__(self, "input_size", _plain_int(self.input_size))
        check_arch(self, (Layer, Classifier, Decoder))

    @property
    def task(self) -> str:
        return "segmentation" if self.decoder is not None else "classification"

    @property
    def num_classes(self) -> int:
        return (self.decoder or self.classifier).num_classes

    def layers(self) -> list[Layer]:
        """Every layer in order: stem, stages, head."""
        return [*self.stem, *(l for s in self.stages for l in s), *self.head]

    def depth(self) -> int:
        return sum(len(s) for s in self.stages)

    def replace(self, **changes) -> "Arch":
        return replace(self, **changes)

    # --- dict / YAML ---
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"space": self.space, "in_channels": self.in_channels, "input_size": self.input_size,
                             "stem": [l.to_dict() for l in self.stem],
                             "stages": [[l.to_dict() for l in s] for s in self.stages],
                             "head": [l.to_dict() for l in self.head]}
        if self.classifier is not None:
            d["classifier"] = self.classifier.to_dict()
        if self.decoder is not None:
            d["decoder"] = self.decoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Arch":
        """The Arch of a mapping (as `to_dict` writes it); a bad field is one `ArchError` line naming its path."""
        known = ("space", "in_channels", "input_size", "stem", "stages", "head", "classifier", "decoder")
        _mapping(d, "arch", f"keys {', '.join(known)}")
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ArchError(f"arch: unknown key {show(unknown[0])}; valid keys: {', '.join(sorted(known))}")
        if "stages" not in d:
            raise ArchError("arch: missing key 'stages' (a list of stages, each a list of layers)")
        stages = tuple(tuple(_layer_from_dict(l, f"stages[{s}][{i}]")
                             for i, l in enumerate(_list(stage, f"stages[{s}]", "layers")))
                       for s, stage in enumerate(_list(d["stages"], "stages", "stages, each a list of layers")))
        stem, head = (tuple(_layer_from_dict(l, f"{k}[{i}]") for i, l in enumerate(_list(d.get(k) or (), k, "layers")))
                      for k in ("stem", "head"))
        return cls(stages=stages, stem=stem, head=head,
                   classifier=_part_from_dict(Classifier, d.get("classifier"), "classifier"),
                   decoder=_part_from_dict(Decoder, d.get("decoder"), "decoder"),
                   in_channels=_plain_int(d.get("in_channels", 3)), input_size=_plain_int(d.get("input_size", 32)),
                   space=d.get("space", ""))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120)

    @classmethod
    def from_yaml(cls, text: str, source: str | None = None) -> "Arch":
        """The Arch of YAML text (bounded: `safe_yaml`); invalid YAML or fields raise one `ArchError` line
        (starting with `source`, e.g. the file name, when given)."""
        head = f"{source}: " if source else ""
        raw = parse_yaml(text, source or "arch YAML", ArchError)
        try:
            return cls.from_dict(raw)
        except ArchError as e:
            raise ArchError(f"{head}{e}") from None

    # --- compact string ---
    def to_string(self) -> str:
        """Compact, human-readable form: `in3x32;stem:...;s:...,...;s:...;head:...;cls:...` (round-trips)."""
        parts = [f"in{self.in_channels}x{self.input_size}"]
        if self.space:
            parts.append(f"space:{self.space}")
        if self.stem:
            parts.append("stem:" + ",".join(l.to_string() for l in self.stem))
        parts += ["s:" + ",".join(l.to_string() for l in s) for s in self.stages]
        if self.head:
            parts.append("head:" + ",".join(l.to_string() for l in self.head))
        if self.classifier is not None:
            c = self.classifier
            parts.append(f"cls:n{c.num_classes}_h{'.'.join(map(str, c.hidden)) or '-'}_a={c.act}_d{c.dropout}")
        if self.decoder is not None:
            c = self.decoder
            parts.append(f"dec:n{c.num_classes}/c{c.channels}/up={c.upsample}/ctx={c.context}/fuse={c.fusion}"
                         f"/stn={int(c.stn)}")
        return ";".join(parts)

    @classmethod
    def from_string(cls, s: str) -> "Arch":
        """The Arch of a compact string (`to_string`); a bad string or field raises one `ArchError` line."""
        if not isinstance(s, str):
            raise ArchError(f"arch string: must be a string, got {show(s)}")
        bad = _STRING_CHARS.sub("", s.strip())
        if bad:
            raise ArchError(f"arch string: character {bad[0]!r} is not allowed; valid: letters, digits and "
                            f"_ . , ; : = + - /")
        if len(s) > MAX_STRING:
            raise ArchError(f"arch string: {len(s)} characters; valid: at most {MAX_STRING}")
        try:
            return cls._from_string(s)
        except ArchError:
            raise
        except (ValueError, KeyError, IndexError, TypeError) as e:
            msg = str(e).strip() or type(e).__name__
            raise ArchError(msg if msg.startswith("arch string:") else f"arch string: {msg}") from None

    @classmethod
    def _from_string(cls, s: str) -> "Arch":
        d: dict[str, Any] = {"stages": []}
        for part in s.strip().split(";"):
            try:
                cls._read_section(part, d)
            except ArchError:
                raise
            except (ValueError, KeyError, IndexError, TypeError) as e:
                msg = str(e).strip() or type(e).__name__
                if msg.startswith("arch string:"):
                    raise ArchError(msg) from None
                raise ArchError(f"arch string: cannot read section '{part[:40]}' ({msg}); valid sections: "
                                f"inCxS, space:NAME, stem:L,..., s:L,..., head:L,..., cls:nN_h-_a=ACT_dP, "
                                f"dec:nN/cC/up=U/ctx=X/fuse=F/stn=0|1") from None
        return cls.from_dict(d)

    @staticmethod
    def _read_section(part: str, d: dict[str, Any]) -> None:
        """One `;`-separated section of an arch string into the mapping `d` (for from_dict)."""
        key, _, body = part.partition(":")
        if key.startswith("in") and not body:
            c, size = key[2:].split("x")
            d["in_channels"], d["input_size"] = int(c), int(size)
        elif key == "space":
            d["space"] = body
        elif key in ("stem", "head"):
            d[key] = [Layer.from_string(t).to_dict() for t in body.split(",")]
        elif key == "s":
            d["stages"].append([Layer.from_string(t).to_dict() for t in body.split(",")])
        elif key == "cls":
            n, h, a, dr = body.split("_")
            d["classifier"] = {"num_classes": int(n[1:]), "act": a[2:], "dropout": float(dr[1:]),
                               "hidden": [] if h == "h-" else [int(x) for x in h[1:].split(".")]}
        elif key == "dec":
            f = dict(t.split("=", 1) if "=" in t else (t[0], t[1:]) for t in body.split("/"))
            if f["stn"] not in ("0", "1"):
                raise ValueError(f"stn={f['stn']} is not 0 or 1")
            d["decoder"] = {"num_classes": int(f["n"]), "channels": int(f["c"]), "upsample": f["up"],
                            "context": f["ctx"], "fusion": f["fuse"], "stn": f["stn"] == "1"}
        else:
            raise ValueError(f"arch string: unknown section '{part[:40]}'; sections are in, space, stem, s, "
                             f"head, cls, dec")

    def __str__(self) -> str:
        return self.to_string()
