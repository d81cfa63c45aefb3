"""A `Diagram` as plain text lines, for the terminal."""
from __future__ import annotations

from nas.cost import format_count
from nas.diagram.layout import Diagram


def diagram_text(d: Diagram) -> list[str]:
    """The title, header lines and one line per row: group, op and hparams, plug-ins, shapes, shares."""
    lat = d.latency_ms is not None
    lines = [d.title, *d.lines] + ([d.latency_note] if d.latency_note else [])
    cells = [("group", "layer", "channels", "stride", "px", "note") + (("latency",) if lat else ()) + ("params",)]
    for r in d.rows:
        layer = " ".join(p for p in (r.op, r.detail, "".join(f"+ {p} " for p in r.plugins).strip()) if p)
        share = d.latency_share(r)
        cells.append((r.group, layer, f"{r.c_in}>{r.c_out}", f"s{r.stride}", f"{r.size_in}>{r.size_out}", r.note)
                     + ((f"{100 * share:.1f}% {r.latency_ms:.3g}ms" if share is not None else "",) if lat else ())
                     + (f"{100 * d.param_share(r):.1f}% {format_count(r.params)}",))
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines.append("")
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return lines
