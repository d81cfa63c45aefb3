"""The least value of a cost metric over every architecture of a space (what a constraint is checked against).

`exact_minimum(space, metric)` is exact, not a sampled guess: every metric here decomposes over the
units of a network (nas.latency.units: each op, plug-in, blurpool and the classifier at its real input
shape). Parameters, MACs and calibrated latency are sums over units (the latency calibration is a
per-unit affine map plus one intercept, see nas.latency.predictor); peak activation memory is a max over
ops, hence over units. A layer's value is its op's units combined with its plug-in's, so its best
choice is the best op plus the best plug-in; a network's value is its layers' values combined, and the
only coupling between positions is the channel count one hands to the next. Dynamic programming over
positions with the channel count as the state (stage depth, width and downsampling mode enumerated per
stage) therefore finds the minimum over the whole space of a classification head.

`greedy_minimum` is an upper bound (coordinate descent over whole networks), for heads whose pyramid
couples encoder and decoder: a task reports it as an estimate, and a run does not refuse on it.
"""
from __future__ import annotations

import math
from typing import Callable

from nas.cost import count, count_arch
from nas.latency.units import classifier_unit, final_channels, op_unit, position_units
from nas.spec.sections import COST_METRICS

# --- per-unit costs --------------------------------------------------------------------------------

_COUNTS: dict = {}


def _count(unit):
    """nas.cost.count of one unit's module at its input shape (batch 1), cached by unit key."""
    key = unit.key()
    if key not in _COUNTS:
        _COUNTS[key] = count(unit.build(), unit.input_shape(1))
    return _COUNTS[key]


def _params(unit) -> float:
    key = ("params", unit.key())
    if key not in _COUNTS:
        _COUNTS[key] = float(sum(p.numel() for p in unit.build().parameters()))
    return _COUNTS[key]


def _latency(latency_model):
    if latency_model is None:
        raise ValueError("minimum_achievable: latency_ms needs a latency model (nas latency build)")
    return latency_model.unit_cost, _add, latency_model.calibration.intercept


def _add(a: float, b: float) -> float:
    return a + b


# metric -> (latency model -> (unit -> value, how values combine, the per-network constant))
UNIT_METRICS: dict[str, Callable] = {
    "latency_ms": _latency,
    "params": lambda _: (_params, _add, 0.0),
    "macs": lambda _: (lambda u: float(_count(u).macs), _add, 0.0),
    "peak_activation_mb": lambda _: (lambda u: _count(u).peak_activation_bytes / 2 ** 20, max, 0.0),
}


def unit_metric(metric: str, latency_model=None) -> tuple[Callable, Callable[[float, float], float], float]:
    """(unit -> value, how values combine, the per-network constant) for `metric`."""
    if metric not in UNIT_METRICS:
        raise ValueError(f"unknown metric '{metric}'; valid: {', '.join(COST_METRICS)}")
    return UNIT_METRICS[metric](latency_model)


# --- the minimum over a space ----------------------------------------------------------------------

def exact_minimum(space, metric: str, latency_model=None) -> float:
    """The least value of `metric` over every architecture of a classification `space` (see the module doc)."""
    value, combine, constant = unit_metric(metric, latency_model)
    zero = 0.0 if combine is not max else -math.inf
    cache: dict[tuple, float] = {}

    def fold(units) -> float:
        out = zero
        for u in units:
            out = combine(out, value(u))
        return out

    def layer(pos, ci: int, co: int, down: str) -> float:
        """The best op plus the best plug-in at `pos` for (ci, co, down); +inf where nothing fits."""
        key = (pos.key, ci, co, down)
        if key not in cache:
            ops = [fold(position_units(pos, ci, co, v, down)) for v in pos.candidates if not v.is_none]
            plugs = [zero if p.is_none else fold([_plugin_unit(p, co, pos.output_size)]) for p in pos.plugins]
            cache[key] = combine(min(ops, default=math.inf), min(plugs, default=zero))
        return cache[key]

    positions = space.positions()
    by_section = {s: [p for p in positions if p.section == s] for s in ("stem", "stage", "head")}
    best = {space.spec.in_channels: zero}  # channels -> least value of the network so far

    def side(section: str, specs) -> None:
        nonlocal best
        for pos, ls in zip(by_section[section], specs):
            nxt: dict[int, float] = {}
            for c, v in best.items():
                for w in (ls.widths or (c,)):
                    if any(not x.is_none for x in pos.candidates) and (c, w) in pos.shapes:
                        _keep_min(nxt, w, combine(v, layer(pos, c, w, "stride")))
                if pos.optional:
                    _keep_min(nxt, c, v)
            best = nxt

    side("stem", space.spec.stem)
    for k, st in enumerate(space.spec.stages):
        poss = [p for p in by_section["stage"] if p.stage == k]
        nxt = {}
        for w in st.widths:
            tails = [zero]  # tails[d - 1]: the least value of layers 1 .. d-1 at width w
            for pos in poss[1:]:
                tail = layer(pos, w, w, "stride")
                if any(x.is_none for x in pos.candidates):
                    tail = min(tail, zero)
                tails.append(combine(tails[-1], tail))
            rest = min(tails[d - 1] for d in st.depths)
            for c, v in best.items():
                first = min(layer(poss[0], c, w, d) for d in st.downsample)
                _keep_min(nxt, w, combine(combine(v, first), rest))
        best = nxt
    side("head", space.spec.head)
    size = final_channels(space)[1]
    clf = space.sample(0).classifier
    total = min(combine(v, value(classifier_unit(clf, c, size))) for c, v in best.items())
    return float(constant + total if combine is not max else total)


def _plugin_unit(p, c: int, size: int):
    return op_unit(p.op, p.hparams, c, c, 1, size)


def _keep_min(d: dict, k, v: float) -> None:
    if v < d.get(k, math.inf):
        d[k] = v


def greedy_minimum(space, metric: str, latency_model=None) -> float:
    """Greedy coordinate descent over decisions on whole networks (for spaces with a decoder)."""
    if metric == "latency_ms":
        if latency_model is None:
            raise ValueError("minimum_achievable: latency_ms needs a latency model (nas latency build)")
        score = latency_model.predict
    else:
        def score(arch):
            c = count_arch(arch)
            return {"params": c.params, "macs": c.macs,
                    "peak_activation_mb": c.peak_activation_bytes / 2 ** 20}[metric]
    return float(score(space.smallest(score=score)))
