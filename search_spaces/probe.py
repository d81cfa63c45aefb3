"""Try-build one candidate at one real shape: does it build, how many parameters, does a forward fit.

Building happens on the meta device (no memory, no init cost); an op whose constructor needs real
tensors is built on the CPU instead. Results are cached per process, keyed by everything that
decides them, so a space's load and its `smallest()`/`largest()` share the work.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch

from ops import build_op


def _one_line(e: BaseException) -> str:
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(msg.split()) or type(e).__name__


def _build(op: str, c_in: int, c_out: int, stride: int, hparams: dict[str, Any], device: str):
    with torch.device(device):
        return build_op(op, c_in, c_out, stride, **hparams)


@lru_cache(maxsize=None)
def probe(op: str, hparams: tuple[tuple[str, Any], ...], c_in: int, c_out: int, stride: int
          ) -> tuple[str | None, int]:
    """(None, parameter count) when `op` builds at these channels and stride, else (the error, 0)."""
    kw = dict(hparams)
    try:
        module = _build(op, c_in, c_out, stride, kw, "meta")
    except (ValueError, TypeError) as e:  # the op's own build-time check (OpError is a ValueError)
        return _one_line(e), 0
    except Exception:  # noqa: BLE001 - a constructor that needs real tensors: build it for real
        try:
            module = _build(op, c_in, c_out, stride, kw, "cpu")
        except Exception as e:  # noqa: BLE001
            return _one_line(e), 0
    return None, sum(p.numel() for p in module.parameters())


@lru_cache(maxsize=None)
def probe_forward(op: str, hparams: tuple[tuple[str, Any], ...], c_in: int, c_out: int, stride: int, size: int,
                  exact_size: bool = True) -> str | None:
    """None when a forward on a 1 x c_in x size x size input gives 1 x c_out x ceil(size/stride)^2.

    Runs on the meta device; if the meta kernels cannot run an op, on the CPU with a real tensor.
    `exact_size=False` checks the channels only (ops that pool the map, such as `gdc`).
    """
    err, _ = probe(op, hparams, c_in, c_out, stride)
    if err:
        return err
    want = (1, c_out, math.ceil(size / stride), math.ceil(size / stride))
    shape = None
    for device in ("meta", "cpu"):
        try:
            module = _build(op, c_in, c_out, stride, dict(hparams), device).eval()
            with torch.no_grad():
                shape = tuple(module(torch.zeros(1, c_in, size, size, device=device)).shape)
            break
        except Exception as e:  # noqa: BLE001
            if device == "cpu":
                return f"op '{op}': forward on 1x{c_in}x{size}x{size} failed: {_one_line(e)}"
    if shape[:2] != want[:2] or (exact_size and shape != want):
        return f"op '{op}': output {'x'.join(map(str, shape))} on a 1x{c_in}x{size}x{size} input; " \
               f"expected {'x'.join(map(str, want))}"
    return None
