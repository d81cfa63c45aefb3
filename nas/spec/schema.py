"""Typed dataclass validation with one-line errors that name the key path (`search.trials: ...`)."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from nas.errors import UserError


class SpecError(UserError):
    """A spec value that is missing, unknown or of the wrong type; the message names the key path."""


def _type_name(tp) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_type_name(get_args(tp)[0])}" if get_args(tp) else "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {type(None): "null", float: "a number", int: "an integer", str: "a string", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _shape_fits(value: Any, tp) -> bool:
    """`value` is a mapping and `tp` a dataclass or dict, or `value` is a list and `tp` a list type."""
    if get_origin(tp) in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, dict) and (dataclasses.is_dataclass(tp) or get_origin(tp) is dict)


def coerce(value: Any, tp, path: str) -> Any:
    """Check `value` against the annotation `tp`, converting YAML scalars where it is unambiguous."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in get_args(tp)], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"{path}: {value!r} is not allowed{hint}; valid: {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        errors = []
        for arg in get_args(tp):
            try:
                return coerce(value, arg, path)
            except SpecError as e:
                errors.append(e)
        # a mapping or a list that fits one alternative's shape: that alternative's error says what is wrong inside
        fitting = [e for arg, e in zip(get_args(tp), errors) if _shape_fits(value, arg)]
        if len(fitting) == 1:
            raise fitting[0]
        raise SpecError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise SpecError(f"{path}: expected null, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise SpecError(f"{path}: expected a mapping with keys {', '.join(field_names(tp))}, got {value!r}")
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        item = get_args(tp)[0] if get_args(tp) else Any
        out = [coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{path}: expected a mapping, got {value!r}")
        vt = get_args(tp)[1] if get_args(tp) else Any
        return {str(k): coerce(v, vt, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise SpecError(f"{path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise SpecError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-3 without a dot as a string
            except ValueError:
                pass
        raise SpecError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise SpecError(f"{path}: expected a string, got {value!r}")
    return value


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def from_dict(cls, data: dict, path: str = ""):
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise one-line `SpecError`s."""
    hints = typing.get_type_hints(cls)
    names = field_names(cls)
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise SpecError(f"{prefix}{key}: unknown key; {hint}valid keys: {', '.join(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = coerce(data[f.name], hints[f.name], f"{prefix}{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{prefix}{f.name}: missing required key ({_type_name(hints[f.name])})")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check:
        check(path)
    return obj


def to_dict(obj) -> Any:
    """Plain YAML-friendly data from a (nested) dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
