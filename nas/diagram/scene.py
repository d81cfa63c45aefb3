"""Where everything of a `Diagram` goes: rectangles, lines and texts at pixel positions, for both renderers.

Text is set in a monospace font (DejaVu Sans Mono where there is one), so widths are known from the number of
characters and no text overlaps the next column: a text longer than its column is cut with an ellipsis. The
op names of a row are never cut: the columns are as wide as the longest op name needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from nas.cost import format_count
from nas.diagram.layout import Diagram, Row
from ops import op_spec

FONT = 13  # px, body text
CHAR = 0.61  # advance of one monospace character, in font sizes (DejaVu Sans Mono: 0.602)
ROW_H, BOX_H, GROUP_H = 24, 20, 22
MARGIN, INDENT, PAD = 16, 14, 6
BAR_W = 130
MAX_OP_CHARS = 44

# op family -> (stroke, fill) of its boxes; units that are no op have the family of their kind
FAMILY_COLOURS = {
    "conv": ("#4e79a7", "#dce6f2"), "block": ("#3b8a3e", "#dcefd9"), "plugin": ("#d9730d", "#fde3c8"),
    "upsample": ("#8e5a8a", "#efdfeb"), "pool": ("#8a6a55", "#ece3dc"), "head": ("#c44e52", "#f7dcdc"),
}
LATENCY_COLOUR, PARAMS_COLOUR, TRACK = "#d1495b", "#4e79a7", "#eceff3"
TEXT, MUTED, FRAME = "#1f2933", "#616e7c", "#f4f6f8"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str | None = None
    radius: float = 0
    title: str = ""  # a tooltip (SVG <title>)


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    colour: str
    width: float = 1


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # baseline
    text: str
    size: float = FONT
    colour: str = TEXT
    anchor: str = "start"  # start | end
    bold: bool = False


@dataclass
class Scene:
    """A picture as drawing primitives on a white canvas of `width` x `height` pixels."""

    width: int
    height: int
    items: list = field(default_factory=list)

    def texts(self) -> list[str]:
        return [i.text for i in self.items if isinstance(i, Text)]


def text_width(text: str, size: float = FONT) -> float:
    return len(text) * CHAR * size


def fit(text: str, width: float, size: float = FONT) -> str:
    """`text` cut with an ellipsis to fit `width` pixels."""
    n = int(width / (CHAR * size) + 1e-6)
    return text if len(text) <= n else text[:max(0, n - 1)] + "…"


def family(op: str) -> str:
    try:
        return op_spec(op).family
    except KeyError:
        return "head"


def row_tooltip(r: Row) -> str:
    plugins = "".join(f" + {p}" for p in r.plugins)
    lat = f", {r.latency_ms:.4g} ms" if r.latency_ms is not None else ""
    return (f"{r.group}: {r.op} {r.detail}{plugins}; {r.c_in}->{r.c_out} channels, stride {r.stride}, "
            f"{r.size_in}->{r.size_out} px; {r.params:,} params{lat}").replace("  ", " ")


def _share(share: float | None, biggest: float) -> float:
    return 0.0 if share is None or biggest <= 0 else share / biggest


class _Columns:
    """The x of each column, from the widest content of the rows."""

    def __init__(self, d: Diagram):
        c = CHAR * FONT
        op_chars = min(MAX_OP_CHARS, max((len(f"{r.op} {r.detail}".strip()) for r in d.rows), default=8))
        op_chars = max(op_chars, max((len(r.op) for r in d.rows), default=0), 12)
        plug_chars = max((len(" + ".join(r.plugins)) + 2 for r in d.rows if r.plugins), default=0)
        note_chars = min(16, max((len(r.note) for r in d.rows), default=0))
        self.op = MARGIN + INDENT
        self.op_w = op_chars * c + 2 * PAD
        self.plug = self.op + self.op_w + PAD
        self.plug_w = plug_chars * c + 2 * PAD if plug_chars else 0
        x = self.plug + self.plug_w + (2 * PAD if plug_chars else PAD)
        self.ch_end = x + 11 * c  # "1024→2048" right-aligned
        self.stride = self.ch_end + 2 * c
        self.res_end = self.stride + 3 * c + 9 * c  # "224→112"
        self.note = self.res_end + 2 * c
        self.note_w = note_chars * c
        self.lat = self.note + self.note_w + 3 * PAD
        self.lat_text = self.lat + BAR_W + PAD
        # "100.0%  0.123 ms"
        # without latencies the column is left out (the header says why)
        self.params = self.lat_text + 17 * c + 2 * PAD if d.latency_ms is not None else self.lat
        self.params_text = self.params + BAR_W + PAD
        self.right = self.params_text + 15 * c + MARGIN


def _header(d: Diagram, width: float, y: float) -> tuple[list, float]:
    items: list = [Text(MARGIN, y + 20, fit(d.title, width - 2 * MARGIN, 18), 18, TEXT, bold=True)]
    y += 28
    for line in d.lines:
        y += 17
        items.append(Text(MARGIN, y, fit(line, width - 2 * MARGIN, 12), 12, MUTED))
    if d.latency_note:
        y += 17
        colour = "#b45309" if d.latency_ms is None else MUTED
        items.append(Text(MARGIN, y, fit(d.latency_note, width - 2 * MARGIN, 12), 12, colour))
    return items, y + 12


def _column_titles(cols: _Columns, d: Diagram, y: float) -> list:
    s = 11
    titles = [Text(cols.op, y, "layer (op, hparams)", s, MUTED),
              Text(cols.ch_end, y, "channels", s, MUTED, "end"),
              Text(cols.stride, y, "stride", s, MUTED),
              Text(cols.res_end, y, "px", s, MUTED, "end"),
              Text(cols.params, y, "params share", s, MUTED)]
    if d.latency_ms is not None:
        titles.append(Text(cols.lat, y, "predicted latency share", s, MUTED))
    if cols.plug_w:
        titles.append(Text(cols.plug, y, "plug-ins", s, MUTED))
    return titles + [Line(MARGIN, y + 6, cols.right - MARGIN, y + 6, "#d5dbe1")]


def _bar(x: float, y: float, frac: float, colour: str, title: str) -> list:
    items = [Rect(x, y, BAR_W, BOX_H - 8, TRACK, radius=2)]
    if frac > 0:
        items.append(Rect(x, y, max(1.5, BAR_W * frac), BOX_H - 8, colour, radius=2, title=title))
    return items


def _share_texts(x: float, base: float, share: float, value: str) -> list:
    """`12.3%` right-aligned after a bar, then the value it is a share of."""
    pct_end = x + text_width("100.0%", 12)
    return [Text(pct_end, base, f"{100 * share:.1f}%", 12, anchor="end"),
            Text(pct_end + text_width("  ", 12), base, value, 12, MUTED)]


def _row(cols: _Columns, d: Diagram, r: Row, y: float, biggest_lat: float, biggest_par: float) -> list:
    stroke, fill = FAMILY_COLOURS.get(family(r.op), FAMILY_COLOURS["head"])
    top = y + (ROW_H - BOX_H) / 2
    base = top + BOX_H / 2 + FONT * 0.36
    items: list = [Rect(cols.op, top, cols.op_w, BOX_H, fill, stroke, 4, row_tooltip(r)),
                   Text(cols.op + PAD, base, r.op, bold=True)]
    if r.detail:
        x = cols.op + PAD + text_width(r.op + " ")
        items.append(Text(x, base, fit(r.detail, cols.op + cols.op_w - PAD - x), colour=MUTED))
    if r.plugins:
        p_stroke, p_fill = FAMILY_COLOURS["plugin"]
        items.append(Line(cols.op + cols.op_w, top + BOX_H / 2, cols.plug, top + BOX_H / 2, p_stroke))
        items.append(Rect(cols.plug, top, cols.plug_w, BOX_H, p_fill, p_stroke, BOX_H / 2))
        items.append(Text(cols.plug + PAD, base, "+ " + " + ".join(r.plugins), colour=TEXT))
    ch = f"{r.c_in}→{r.c_out}" if r.c_in != r.c_out else str(r.c_out)
    res = f"{r.size_in}→{r.size_out}" if r.size_in != r.size_out else str(r.size_out)
    items += [Text(cols.ch_end, base, ch, anchor="end"),
              Text(cols.stride, base, f"s{r.stride}" if r.stride != 1 else "", colour=MUTED),
              Text(cols.res_end, base, res, anchor="end")]
    if r.note:
        items.append(Text(cols.note, base, fit(r.note, cols.note_w + 2), 12, MUTED))
    bar_y = top + 4
    share = d.latency_share(r)
    if share is not None:
        items += _bar(cols.lat, bar_y, _share(share, biggest_lat), LATENCY_COLOUR, f"{r.latency_ms:.4g} ms")
        items += _share_texts(cols.lat_text, base, share, f"{r.latency_ms:.3g} ms")
    p = d.param_share(r)
    items += _bar(cols.params, bar_y, _share(p, biggest_par), PARAMS_COLOUR, f"{r.params:,} params")
    items += _share_texts(cols.params_text, base, p, format_count(r.params))
    return items


def _group_title(name: str, rows: list[Row], d: Diagram) -> str:
    sizes = f"{rows[0].size_in}→{rows[-1].size_out} px" if rows[0].size_in != rows[-1].size_out else \
        f"{rows[-1].size_out} px"
    parts = [name, f"{len(rows)} layer{'s' if len(rows) != 1 else ''}" if len(rows) > 1 else "", sizes,
             f"{100 * sum(r.params for r in rows) / d.params:.1f}% params" if d.params else ""]
    if d.latency_ms:
        parts.append(f"{100 * sum(r.latency_ms or 0 for r in rows) / d.latency_ms:.1f}% latency")
    return " · ".join(p for p in parts if p)


def _legend(d: Diagram, y: float) -> tuple[list, float]:
    items: list = []
    x = MARGIN
    used = {family(r.op) for r in d.rows} | ({"plugin"} if any(r.plugins for r in d.rows) else set())
    for fam, (stroke, fill) in FAMILY_COLOURS.items():
        if fam not in used:
            continue
        items += [Rect(x, y - 10, 12, 12, fill, stroke, 2), Text(x + 17, y, fam, 11, MUTED)]
        x += 17 + text_width(fam, 11) + 16
    return items, y + 8


def diagram_scene(d: Diagram) -> Scene:
    """The picture of `d`: title and header lines, column titles, a framed block per group of rows, a legend."""
    cols = _Columns(d)
    width = int(cols.right)
    items, y = _header(d, width, MARGIN)
    y += 14
    items += _column_titles(cols, d, y)
    y += 12
    lat = [d.latency_share(r) or 0.0 for r in d.rows]
    biggest_lat, biggest_par = max(lat, default=0.0), max((d.param_share(r) for r in d.rows), default=0.0)
    for name, group in groupby(d.rows, key=lambda r: r.group):
        rows = list(group)
        frame_h = GROUP_H + len(rows) * ROW_H + 6
        items.append(Rect(MARGIN - 6, y + 4, width - 2 * MARGIN + 12, frame_h, FRAME, radius=6))
        items.append(Text(MARGIN, y + 4 + 16, fit(_group_title(name, rows, d), width - 2 * MARGIN, 12), 12, TEXT,
                          bold=True))
        y += 4 + GROUP_H
        for r in rows:
            items += _row(cols, d, r, y, biggest_lat, biggest_par)
            y += ROW_H
        y += 10
    legend, y = _legend(d, y + 20)
    items += legend
    return Scene(width, int(y + MARGIN), items)
