"""A `Scene` as a PNG, drawn with Pillow's ImageDraw (DejaVu Sans Mono where installed, else Pillow's own font)."""
from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from nas.diagram.scene import Line, Rect, Scene, Text

MONO = ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")
# characters Pillow's built-in font lacks, and what stands in for them
ASCII = str.maketrans({"→": ">", "…": "~", "·": "|", "–": "-", "×": "x", "←": "<"})


@lru_cache(maxsize=None)
def _font(size: int, bold: bool) -> tuple[ImageFont.FreeTypeFont, bool]:
    """The font at `size` px, and whether it is the monospace one (else non-ASCII characters are replaced)."""
    try:
        return ImageFont.truetype(MONO[bold], size), True
    except OSError:
        return ImageFont.load_default(size=size), False


def _draw_text(draw: ImageDraw.ImageDraw, t: Text, scale: float) -> None:
    font, mono = _font(round(t.size * scale), t.bold)
    text = t.text if mono else t.text.translate(ASCII)
    draw.text((t.x * scale, t.y * scale), text, fill=t.colour, font=font, anchor="rs" if t.anchor == "end" else "ls")


def scene_png(scene: Scene, scale: float = 1.5) -> bytes:
    """The PNG bytes of `scene`, `scale` times its size in pixels."""
    img = Image.new("RGB", (round(scene.width * scale), round(scene.height * scale)), "#ffffff")
    draw = ImageDraw.Draw(img)
    for item in scene.items:
        if isinstance(item, Rect):
            box = [item.x * scale, item.y * scale, (item.x + item.w) * scale, (item.y + item.h) * scale]
            draw.rounded_rectangle(box, radius=item.radius * scale, fill=item.fill, outline=item.stroke,
                                   width=max(1, round(scale)) if item.stroke else 0)
        elif isinstance(item, Line):
            draw.line([item.x1 * scale, item.y1 * scale, item.x2 * scale, item.y2 * scale], fill=item.colour,
                      width=max(1, round(item.width * scale)))
        else:
            _draw_text(draw, item, scale)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
