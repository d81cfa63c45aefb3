"""Pictures of architectures: a layout of rows (layout.py), placed once (scene.py), drawn as SVG and PNG."""
from nas.diagram import segmentation  # noqa: F401  (registers the rows of dense-prediction archs)
from nas.diagram.draw import draw_arch, write_diagram
from nas.diagram.layout import Diagram, Row, arch_diagram, arch_rows, register_head_rows

__all__ = ["Diagram", "Row", "arch_diagram", "arch_rows", "draw_arch", "register_head_rows", "write_diagram"]
