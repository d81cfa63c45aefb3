"""Shared max-size tensors: the `TensorStore` of one group of op variants, and how a variant's tensors slice it.

A variant's tensor is taken out of the store's tensor of the same name: leading entries in every
dimension, the centre crop in the kernel dimensions (dims >= 2 of a 4-D or 5-D weight).
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import torch
from torch import nn


class SupernetError(ValueError):
    """A space the supernet cannot share weights over (e.g. an op that is not monotone in an elastic hparam)."""


def signature_of(module: nn.Module) -> tuple:
    """(name, shape, kind) of every tensor of a module."""
    return (tuple((n, tuple(t.shape), "param") for n, t in module.named_parameters()) +
            tuple((n, tuple(t.shape), "buffer") for n, t in module.named_buffers()))


_SIGNATURES: dict[tuple, tuple] = {}


def _signature(key: tuple, build) -> tuple:
    """The tensor signature of `build()` (built on the meta device), cached per process by `key`."""
    sig = _SIGNATURES.get(key)
    if sig is None:
        sig = _SIGNATURES[key] = signature_of(meta_build(build))
    return sig


def _init_like(src: torch.Tensor, shape: tuple) -> torch.Tensor:
    """A tensor of `shape` holding `src` in its leading/centre part and, around it, values of src's mean and
    spread (for members whose largest tensors sit in different members, e.g. (16, 24) and (24, 16))."""
    src = src.detach()
    if tuple(src.shape) == tuple(shape):
        return src.clone()
    out = torch.empty(shape, dtype=src.dtype)
    if src.is_floating_point() and src.numel() > 1:
        out.normal_(float(src.mean()), float(src.std()))
    else:
        out.fill_(src.reshape(-1)[0] if src.numel() else 0)
    idx = slice_index(src.shape, torch.Size(shape))
    out[idx] = src
    return out


class TensorStore(nn.Module):
    """The shared max-size tensors of one group: for every tensor name (and rank) that any member module has,
    the elementwise largest shape over the members. A member is one (op variant, c_in, c_out) build.

    One max-size module would do when a single member has every tensor at its largest, but an op whose
    structure depends on the channels (a projection shortcut only when c_in != c_out, a norm where a conv
    would be) has no such member; the store still shares every tensor the members have in common.
    Initial values come from real builds of the members that hold each tensor at its largest.
    """

    def __init__(self, members: list[tuple[tuple, Any]], where: str):
        super().__init__()
        self.where = where
        shapes: dict[tuple, list[int]] = {}
        owner: dict[tuple, tuple[int, int]] = {}
        for i, (key, build) in enumerate(members):
            for name, shape, kind in _signature(key, build):
                k = (name, len(shape), kind)
                shapes[k] = [max(a, b) for a, b in zip(shapes[k], shape)] if k in shapes else list(shape)
                numel = math.prod(shape)
                if k not in owner or numel > owner[k][0]:
                    owner[k] = (numel, i)
        ranks: dict[str, int] = {}
        for name, _, _ in shapes:
            ranks[name] = ranks.get(name, 0) + 1
        self.attrs: dict[tuple, str] = {}
        real: dict[int, nn.Module] = {}
        for k, shape in shapes.items():
            name, ndim, kind = k
            attr = name.replace(".", "__") + (f"__{ndim}d_{kind}" if ranks[name] > 1 else "")
            i = owner[k][1]
            if i not in real:
                try:
                    real[i] = members[i][1]()
                except ValueError as e:
                    raise SupernetError(f"supernet: {where}: {e}") from None
            src = real[i].get_parameter(name) if kind == "param" else real[i].get_buffer(name)
            value = _init_like(src, tuple(shape))
            if kind == "param":
                self.register_parameter(attr, nn.Parameter(value, requires_grad=src.requires_grad))
            else:
                self.register_buffer(attr, value)
            self.attrs[k] = attr

    def attr(self, name: str, ndim: int, kind: str) -> str | None:
        return self.attrs.get((name, ndim, kind))


def slice_index(small: torch.Size, big: torch.Size) -> tuple | None:
    """Index taking `small` out of `big`: leading entries, centre crop in the kernel dims of conv weights."""
    if tuple(small) == tuple(big):
        return None
    kernel_dims = len(big) in (4, 5)
    idx = []
    for d, (s, b) in enumerate(zip(small, big)):
        if s == b:
            idx.append(slice(None))
        elif kernel_dims and d >= 2:
            start = (b - s) // 2
            idx.append(slice(start, start + s))
        else:
            idx.append(slice(0, s))
    return tuple(idx)


def named_tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor, str]]:
    for name, t in module.named_parameters():
        yield name, t, "param"
    for name, t in module.named_buffers():
        yield name, t, "buffer"


def bind_tensors(child: nn.Module, store: TensorStore, prefix: str, what: str) -> list:
    """Entries mapping every tensor of `child` to the store's tensor of the same name (checked to be no smaller)."""
    entries = []
    for name, t, kind in named_tensors(child):
        attr = store.attr(name, t.dim(), kind)
        if attr is None:
            raise SupernetError(f"supernet: {what} has {kind} '{name}' {tuple(t.shape)} that the shared max-size "
                                f"variant {store.where} lacks; an op must keep its tensor names across elastic "
                                f"variants")
        ref = getattr(store, attr)
        if any(s > b for s, b in zip(t.shape, ref.shape)):
            raise SupernetError(f"supernet: {what} has {kind} '{name}' of shape {tuple(t.shape)}, larger than the "
                                f"{tuple(ref.shape)} of the shared max-size variant {store.where}; the op is not "
                                f"monotone in its elastic hparams")
        entries.append((prefix + name, store, attr, slice_index(t.shape, ref.shape)))
    return entries


def meta_build(fn, *args, **kwargs):
    """Build on the meta device (no memory, no init); an op whose constructor needs real tensors on the CPU."""
    try:
        with torch.device("meta"):
            return fn(*args, **kwargs)
    except (ValueError, TypeError):
        raise
    except Exception:  # noqa: BLE001 - e.g. a constructor computing a filter from real values
        return fn(*args, **kwargs)
