"""An architecture's picture written to files: `<stem>.svg` and `<stem>.png` from one layout."""
from __future__ import annotations

from pathlib import Path

from nas.diagram.layout import Diagram, arch_diagram
from nas.diagram.png import scene_png
from nas.diagram.scene import diagram_scene
from nas.diagram.svg import scene_svg
from nas.io import atomic_write_bytes, atomic_write_text
from search_spaces.arch import Arch


def write_diagram(diagram: Diagram, stem: str | Path, png: bool = True) -> list[Path]:
    """Write `diagram` as `stem`.svg (and `stem`.png); returns the paths written."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    scene = diagram_scene(diagram)
    svg = stem.with_name(stem.name + ".svg")
    atomic_write_text(str(svg), scene_svg(scene, diagram.title))
    if not png:
        return [svg]
    out = stem.with_name(stem.name + ".png")
    atomic_write_bytes(str(out), scene_png(scene))
    return [svg, out]


def draw_arch(arch: Arch, stem: str | Path, latency_model=None, png: bool = True, **diagram_kw) -> list[Path]:
    """The picture of `arch` (latency shares when `latency_model` is given) as `stem`.svg and `stem`.png."""
    return write_diagram(arch_diagram(arch, latency_model, **diagram_kw), stem, png=png)
