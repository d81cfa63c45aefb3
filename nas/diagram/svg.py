"""A `Scene` as SVG text (hand-written, every text escaped)."""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from nas.diagram.scene import Line, Rect, Scene, Text

FONT_FAMILY = "'DejaVu Sans Mono', Menlo, Consolas, monospace"


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _rect(r: Rect) -> str:
    attrs = f'x="{_num(r.x)}" y="{_num(r.y)}" width="{_num(r.w)}" height="{_num(r.h)}" fill="{r.fill}"'
    if r.radius:
        attrs += f' rx="{_num(r.radius)}"'
    if r.stroke:
        attrs += f' stroke="{r.stroke}"'
    if r.title:
        return f"<rect {attrs}><title>{escape(r.title)}</title></rect>"
    return f"<rect {attrs}/>"


def _line(line: Line) -> str:
    return (f'<line x1="{_num(line.x1)}" y1="{_num(line.y1)}" x2="{_num(line.x2)}" y2="{_num(line.y2)}" '
            f'stroke="{line.colour}" stroke-width="{_num(line.width)}"/>')


def _text(t: Text) -> str:
    attrs = f'x="{_num(t.x)}" y="{_num(t.y)}" font-size="{_num(t.size)}" fill="{t.colour}"'
    if t.anchor != "start":
        attrs += f' text-anchor="{t.anchor}"'
    if t.bold:
        attrs += ' font-weight="bold"'
    return f"<text {attrs}>{escape(t.text)}</text>"


DRAW = {Rect: _rect, Line: _line, Text: _text}


def scene_svg(scene: Scene, title: str = "") -> str:
    """The SVG document of `scene`."""
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{scene.width}" height="{scene.height}" '
            f'viewBox="0 0 {scene.width} {scene.height}" font-family={quoteattr(FONT_FAMILY)} '
            f'xml:space="preserve">')
    body = [f"<title>{escape(title)}</title>"] if title else []
    body.append(f'<rect width="{scene.width}" height="{scene.height}" fill="#ffffff"/>')
    body += [DRAW[type(item)](item) for item in scene.items]
    return "\n".join(['<?xml version="1.0" encoding="UTF-8"?>', head, *body, "</svg>", ""])
