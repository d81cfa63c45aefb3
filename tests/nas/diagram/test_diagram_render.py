"""Every shipped space's architectures and every preset drawn as SVG and PNG: valid, complete, nothing overlapping."""
import io
import random
import xml.etree.ElementTree as ET

import pytest
from diagram_helpers import fake_model, shipped_archs
from PIL import Image

import search_spaces
from nas.diagram import arch_diagram, draw_arch
from nas.diagram.png import scene_png
from nas.diagram.scene import BAR_W, LATENCY_COLOUR, PARAMS_COLOUR, Rect, Text, diagram_scene, text_width
from nas.diagram.svg import scene_svg

ARCHS = shipped_archs()
SVG = "{http://www.w3.org/2000/svg}"


def arch_ops(arch) -> set[str]:
    """Every op the architecture runs: its layers and plug-ins, and a decoder's context and upsampling op."""
    ops = {op for x in arch.layers() for op in (x.op, *(p.op for p in x.plugins))}
    if arch.decoder is not None:
        ops.add(arch.decoder.upsample)
        if arch.decoder.context != "none":
            ops.add(arch.decoder.context)
        if arch.decoder.stn:
            ops.add("stn")
    return ops


def svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg.encode())  # valid XML, or this raises
    assert root.tag == f"{SVG}svg"
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def extent(t: Text) -> tuple[float, float]:
    w = text_width(t.text, t.size)
    return (t.x - w, t.x) if t.anchor == "end" else (t.x, t.x + w)


@pytest.mark.parametrize("arch", [a for _, a in ARCHS], ids=[i for i, _ in ARCHS])
def test_every_architecture_renders_naming_every_op(arch, tmp_path):
    svg_path, png_path = draw_arch(arch, tmp_path / "arch")
    texts = svg_texts(svg_path.read_text())
    words = {w for t in texts for w in t.replace("+", " ").split()}
    assert arch_ops(arch) <= words, arch_ops(arch) - words
    with Image.open(png_path) as img:
        img.load()
        assert img.format == "PNG" and img.mode == "RGB"
        rows = len(arch_diagram(arch).rows)
        assert 600 < img.width < 3000 and img.height > rows * 24  # a row is 24 px before the 1.5x scale
        assert len(set(img.convert("L").getdata())) > 10  # something drawn, not a blank canvas


@pytest.mark.parametrize("space_name", ["mobile", "all_ops", "dense_prediction"])
def test_no_text_overlaps_another_or_leaves_the_canvas(space_name):
    space = search_spaces.load(space_name)
    archs = [space.sample(random.Random(i)) for i in range(4)]
    for arch in archs:
        scene = diagram_scene(arch_diagram(arch, fake_model(archs)))
        texts = [i for i in scene.items if isinstance(i, Text)]
        for t in texts:
            a, b = extent(t)
            assert 0 <= a and b <= scene.width and 0 < t.y <= scene.height, t
        by_line: dict[float, list] = {}
        for t in texts:
            by_line.setdefault(round(t.y, 1), []).append(extent(t))
        for y, spans in by_line.items():
            spans.sort()
            for (a0, b0), (a1, b1) in zip(spans, spans[1:]):
                assert b0 <= a1 + 0.5, (y, spans)
        # a bar per row with a share, inside its track, the largest filling it
        d = arch_diagram(arch, fake_model(archs))
        for colour, n in ((LATENCY_COLOUR, sum(r.latency_ms > 0 for r in d.rows)),
                          (PARAMS_COLOUR, sum(r.params > 0 for r in d.rows))):
            bars = [i for i in scene.items if isinstance(i, Rect) and i.fill == colour]
            assert len(bars) == n and all(0 < b.w <= BAR_W for b in bars)
            assert max(b.w for b in bars) == pytest.approx(BAR_W)


def test_text_is_escaped_and_the_png_is_scaled(tmp_path):
    arch = search_spaces.load("mobile").sample(random.Random(0))
    d = arch_diagram(arch, title="a <b> & 'c'")
    scene = diagram_scene(d)
    svg = scene_svg(scene, d.title)
    assert "a <b> & 'c'" in svg_texts(svg)
    with Image.open(io.BytesIO(scene_png(scene, scale=1.0))) as img:
        assert img.size == (scene.width, scene.height)


def test_latency_column_only_with_a_latency_model():
    arch = search_spaces.load("mobile").sample(random.Random(1))
    with_lat = diagram_scene(arch_diagram(arch, fake_model([arch])))
    without = diagram_scene(arch_diagram(arch))
    assert "predicted latency share" in with_lat.texts() and "predicted latency share" not in without.texts()
    assert without.width < with_lat.width
    assert any(t.endswith(" ms") for t in with_lat.texts())
