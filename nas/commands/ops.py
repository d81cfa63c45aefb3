"""`nas ops`: the op catalog — every registered op, its hparams, and what it costs at a given shape."""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from typing import Any

from nas.cost import count_with_output, format_bytes, format_count, op_example
from nas.errors import UserError
from ops import op_names, op_spec
from ops.registry import ACT, FAMILIES, NORM
from search_spaces.safe_yaml import load_yaml

DESCRIPTION = """\
List every registered op (convolution types, blocks, plug-ins, upsampling, pooling) with its family,
its hparams (default, then the values a search space may choose from) and its parameters and MACs
when built at one shape: c_in = c_out = --channels, on a --size x --size input, at --stride
(upsample-family ops are always built at stride 1; asff gets three pyramid levels). An op that
cannot be built at that shape shows why instead of its cost. --op NAME shows one op in full."""

EPILOG = """\
examples:
  nas ops                                  every op at 64 channels, 56x56, stride 1
  nas ops --family block --stride 2        the blocks, downsampling
  nas ops --op mbconv --set kernel=5       one op's spec, description and cost with kernel 5
  nas ops --format csv > ops.csv           machine-readable (also: --format json)
  nas ops --no-cost                        names, families and hparams only (no building)

MACs count multiply-accumulates of convolutions, matmuls and sampling (FLOPs = 2 x MACs); see
nas/cost.py for what is and is not counted, and bench/op_costs.py for why MACs do not predict latency."""


# kept literal so that `nas --help` need not import torch; run() checks it against ops.registry.FAMILIES
FAMILY_HELP = "conv, block, plugin, upsample, pool"


def register(subparsers) -> None:
    p = subparsers.add_parser("ops", help="list the op catalog with hparams, params and MACs",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--op", metavar="NAME", help="show one op: full spec, description and cost")
    p.add_argument("--family", metavar="NAME", help=f"only the ops of this family: {FAMILY_HELP}")
    p.add_argument("--channels", type=_positive, default=64, metavar="C",
                   help="input channels, and output channels unless --c-out (default: 64)")
    p.add_argument("--c-out", type=_positive, default=None, metavar="C", help="output channels (default: --channels)")
    p.add_argument("--size", type=_positive, default=56, metavar="S", help="input height = width (default: 56)")
    p.add_argument("--stride", type=_positive, default=1, metavar="S", help="stride (default: 1)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="with --op: build with this hparam value (repeatable), e.g. --set kernel=5")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)")
    p.add_argument("--no-cost", action="store_true", help="do not build the ops: names, families, hparams only")
    p.set_defaults(func=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set kernel=5")
        parsed = load_yaml(value) if value else value
        out[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


# --- one row per op ---------------------------------------------------------------------------

def op_row(name: str, channels: int, c_out: int, size: int, stride: int, with_cost: bool = True,
           hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Spec and cost of one op as a plain dict (what every output format is made from)."""
    spec = op_spec(name)
    row: dict[str, Any] = {
        "name": spec.name, "family": spec.family, "description": spec.description,
        "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
        "hparams": [{"name": h.name, "default": h.default, "choices": list(h.choices), "elastic": h.elastic,
                     "short": h.short, "doc": h.doc} for h in spec.hparams],
    }
    if not with_cost:
        return row
    built_stride = 1 if spec.family == "upsample" else stride
    row["shape"] = {"c_in": channels, "c_out": c_out, "size": size, "stride": built_stride,
                    "hparams": dict(hparams or {})}
    row.update(params=None, macs=None, activation_bytes=None, peak_activation_bytes=None,
               memory_traffic_bytes=None, output_shape=None, error=None)
    try:
        module, inputs = op_example(name, channels, c_out, size, stride, **(hparams or {}))
        cost, out = count_with_output(module, inputs=inputs)
    except Exception as e:  # any build or forward failure becomes the row's reason, not a crash
        row["error"] = _one_line(e)
        return row
    row.update(cost.to_dict())
    row["output_shape"] = list(out.shape) if hasattr(out, "shape") else None
    return row


def _one_line(e: BaseException) -> str:
    msg = (e.args[0] if isinstance(e, KeyError) and e.args else str(e)).strip().splitlines()
    text = msg[0] if msg else ""
    return text if isinstance(e, ValueError) else f"{type(e).__name__}: {text}"


def _shared_hparams():
    return {NORM.name: NORM, ACT.name: ACT}


def _hparams_text(row: dict[str, Any], mark_shared: bool = True) -> str:
    shared = _shared_hparams()
    parts = []
    for h in row["hparams"]:
        std = shared.get(h["name"])
        if mark_shared and std is not None and h["default"] == std.default and tuple(h["choices"]) == std.choices:
            parts.append(f"{h['name']}={_value(h['default'])}*")
        elif h["choices"]:
            parts.append(f"{h['name']}={_value(h['default'])}{{{','.join(_value(c) for c in h['choices'])}}}")
        else:
            parts.append(f"{h['name']}={_value(h['default'])}")
    return " ".join(parts) or "-"


def _value(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(_value(x) for x in v) + ")"
    return str(v)


# --- formats ----------------------------------------------------------------------------------

def _table(rows: list[dict[str, Any]], with_cost: bool) -> str:
    header = ["name", "family"] + (["params", "MACs", "output"] if with_cost else []) + ["hparams (default{choices})"]
    lines = []
    for r in rows:
        cells = [r["name"], r["family"]]
        if with_cost:
            if r.get("error"):
                cells += ["-", "-", "-"]
            else:
                shape = r["output_shape"]
                cells += [format_count(r["params"]), format_count(r["macs"]),
                          "x".join(str(d) for d in shape[1:]) if shape else "?"]
        cells.append(_hparams_text(r))
        lines.append(cells)
    widths = [max(len(str(c[i])) for c in [header, *lines]) for i in range(len(header) - 1)]
    numeric = {"params", "MACs"}

    def fmt(cells):
        out = [(str(c).rjust(w) if header[i] in numeric else str(c).ljust(w)) for i, (c, w) in
               enumerate(zip(cells[:-1], widths))]
        return "  ".join(out + [str(cells[-1])]).rstrip()

    text = [fmt(header), fmt(["-" * w for w in widths] + ["-" * len(header[-1])])]
    for r, cells in zip(rows, lines):
        text.append(fmt(cells))
        if with_cost and r.get("error"):
            text.append(" " * (widths[0] + 2) + "cannot build here: " + r["error"])
    shared = _shared_hparams()
    if any(_hparams_text(r) != _hparams_text(r, mark_shared=False) for r in rows):
        text.append("")
        text.append("* " + "; ".join(f"{h.name}: {'|'.join(h.choices)}" for h in shared.values())
                    + " (the same choices for every op that has them)")
    if with_cost and rows:
        s = rows[0]["shape"]
        c_out = s["c_out"]
        text.append(f"cost at batch 1, c_in={s['c_in']} -> c_out={c_out}, {s['size']}x{s['size']} input, "
                    f"stride {_requested_stride(rows)} (upsample ops at stride 1); output is C x H x W; "
                    f"{sum(1 for r in rows if r.get('error'))} of {len(rows)} could not be built")
    return "\n".join(text)


def _requested_stride(rows):
    for r in rows:
        if r["family"] != "upsample":
            return r["shape"]["stride"]
    return 1


def _csv(rows: list[dict[str, Any]], with_cost: bool) -> str:
    fields = ["name", "family", "hparams"]
    if with_cost:
        fields += ["params", "macs", "activation_bytes", "peak_activation_bytes", "memory_traffic_bytes",
                   "output_shape", "error"]
    fields.append("description")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        rec = {k: r.get(k) for k in fields}
        rec["hparams"] = _hparams_text(r, mark_shared=False)
        if with_cost:
            rec["output_shape"] = "x".join(map(str, r["output_shape"])) if r.get("output_shape") else ""
            rec["error"] = r.get("error") or ""
        w.writerow(rec)
    return buf.getvalue().rstrip("\n")


def _detail(r: dict[str, Any]) -> str:
    lines = [f"{r['name']}  ({r['family']}; {r['class']})", f"  {r['description'] or '(no description)'}", ""]
    if r["hparams"]:
        lines.append("  hparams:")
        w = max(len(h["name"]) for h in r["hparams"])
        for h in r["hparams"]:
            extra = []
            if h["choices"]:
                extra.append("choices " + ", ".join(_value(c) for c in h["choices"]))
            if h["short"]:
                extra.append(f"short '{h['short']}'")
            if h["elastic"]:
                extra.append("elastic (shares a sliced max-size weight)")
            doc = f" — {h['doc']}" if h["doc"] else ""
            lines.append(f"    {h['name'].ljust(w)}  default {_value(h['default'])}"
                         f"{'; ' + '; '.join(extra) if extra else ''}{doc}")
    else:
        lines.append("  hparams: none")
    if "shape" in r:
        s = r["shape"]
        chosen = "".join(f", {k}={_value(v)}" for k, v in s["hparams"].items())
        lines += ["", f"  at batch 1, {s['c_in']}->{s['c_out']} channels, {s['size']}x{s['size']}, "
                      f"stride {s['stride']}{chosen}:"]
        if r.get("error"):
            lines.append(f"    cannot build: {r['error']}")
        else:
            lines += [f"    output          {'x'.join(map(str, r['output_shape'] or []))}",
                      f"    params          {format_count(r['params'])} ({r['params']})",
                      f"    MACs            {format_count(r['macs'])} ({r['macs']})",
                      f"    activations     {format_bytes(r['activation_bytes'])} "
                      f"(peak per op {format_bytes(r['peak_activation_bytes'])})",
                      f"    memory traffic  {format_bytes(r['memory_traffic_bytes'])}"]
    return "\n".join(lines)


def run(args) -> int:
    if args.family is not None and args.family not in FAMILIES:
        import difflib

        close = difflib.get_close_matches(args.family, FAMILIES, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"--family: unknown family '{args.family}'; {hint}valid: {', '.join(FAMILIES)}")
    c_out = args.c_out or args.channels
    with_cost = not args.no_cost
    if args.op is not None:
        op_spec(args.op)  # unknown name: one line with close matches (nas.cli prints it)
        row = op_row(args.op, args.channels, c_out, args.size, args.stride, with_cost, _parse_sets(args.set))
        rows = [row]
    else:
        if args.set:
            raise UserError("--set needs --op NAME (hparams differ between ops)")
        rows = [op_row(n, args.channels, c_out, args.size, args.stride, with_cost) for n in op_names(args.family)]
        if not rows:
            where = f" in family '{args.family}'" if args.family else ""
            print(f"no ops registered{where}", file=sys.stderr)
            return 1
    if args.format == "json":
        print(json.dumps(rows[0] if args.op else rows, indent=2, default=str))
    elif args.format == "csv":
        print(_csv(rows, with_cost))
    elif args.op:
        print(_detail(rows[0]))
    else:
        print(_table(rows, with_cost))
    return 0
