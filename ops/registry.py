"""The op registry: every candidate op is a class registered under a name with its hparam schema."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

FAMILIES = ("conv", "block", "plugin", "upsample", "pool")


class OpError(ValueError):
    """An op was asked for something it cannot build."""


class UnknownOpError(OpError, KeyError):
    """No op is registered under that name."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0] if self.args else ""


def op_error(op: str, arg: str, problem: str, valid: str) -> OpError:
    """One-line build-time error naming the op, the argument and what would be valid."""
    sep = "" if problem.startswith("=") else " "  # op_error(op, "c_out", "=16 must ...") reads "c_out=16 must"
    return OpError(f"op '{op}': {arg}{sep}{problem}; valid: {valid}")


@dataclass(frozen=True)
class HParam:
    """One hyper-parameter of an op: its default, the values a search space may choose from."""

    name: str
    default: Any
    choices: tuple = ()
    elastic: bool = False  # variants differing only here share one sliced max-size weight
    short: str = ""  # abbreviation used in compact arch strings (timm style, e.g. k3 e6)
    doc: str = ""


@dataclass(frozen=True)
class OpSpec:
    """A registered op: name, class, family, one-line description and hparam schema."""

    name: str
    cls: type
    family: str
    description: str
    hparams: tuple[HParam, ...] = field(default_factory=tuple)

    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hparams}

    def hparam(self, name: str) -> HParam:
        for h in self.hparams:
            if h.name == name:
                return h
        raise op_error(self.name, f"hparam '{name}'", "does not exist", ", ".join(self.hparam_names()) or "none")

    def hparam_names(self) -> list[str]:
        return [h.name for h in self.hparams]


_REGISTRY: dict[str, OpSpec] = {}

# hparams shared by every op whose convs are Conv->Norm->Act
NORM = HParam("norm", "bn", ("bn", "gn", "ln", "none"), short="n", doc="normalisation after each conv")
ACT = HParam("act", "relu", ("relu", "relu6", "hswish", "silu", "none"), short="a", doc="activation")


def register_op(name: str, *, family: str, hparams: tuple[HParam, ...] = (), description: str = "") -> Callable[[type], type]:
    """Class decorator: register `cls(c_in, c_out, stride=1, **hparams)` under `name`."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")

    def wrap(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"op '{name}' is registered twice ({_REGISTRY[name].cls.__name__}, {cls.__name__})")
        doc = description or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = OpSpec(name, cls, family, doc, tuple(hparams))
        cls.op_name = name
        return cls

    return wrap


def op_names(family: str | None = None) -> list[str]:
    """Registered op names (optionally of one family), in registration order."""
    return [n for n, s in _REGISTRY.items() if family is None or s.family == family]


def op_spec(name: str) -> OpSpec:
    """The `OpSpec` registered under `name`; unknown names list close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"known ops: {', '.join(_REGISTRY)}"
        raise UnknownOpError(f"unknown op '{name}'; {hint}") from None


def resolve_hparams(name: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with `hparams`; an unknown hparam name is an `OpError`."""
    spec = op_spec(name)
    unknown = set(hparams) - set(spec.hparam_names())
    if unknown:
        bad = sorted(unknown)[0]
        close = difflib.get_close_matches(bad, spec.hparam_names(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise op_error(name, f"hparam '{bad}'", f"is unknown ({hint.strip()})" if hint else "is unknown",
                       ", ".join(spec.hparam_names()) or "no hparams")
    return {**spec.defaults(), **hparams}


def build_op(name: str, c_in: int, c_out: int, stride: int = 1, **hparams: Any):
    """Build op `name` mapping N x c_in x H x W to N x c_out x ceil(H/stride) x ceil(W/stride)."""
    spec = op_spec(name)
    if int(c_in) <= 0 or int(c_out) <= 0:
        raise op_error(name, "channels", f"must be positive (got c_in={c_in}, c_out={c_out})", "integers >= 1")
    return spec.cls(int(c_in), int(c_out), stride=int(stride), **resolve_hparams(name, hparams))
