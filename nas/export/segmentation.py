"""The export writer for dense-prediction archs: `segmentation_code(arch, src)` for `nas.export.code.MODEL_WRITERS`.

It writes `SegDecoder` (copied from search_spaces.segmentation: torch only) and a `Net` whose
`__init__` holds literal op calls (from the same `decoder_recipe` that `SegNet` builds from) and
whose `forward_features` / `forward` are SegNet's own source, so `SegNet(arch).state_dict()` loads
into the generated `Net()` unchanged.
"""
from __future__ import annotations

import inspect

from nas.export.code import _block, encoder_code, op_call, register_writer
from nas.export.opsource import OpSource
from search_spaces.arch import Arch
from search_spaces.segmentation import SegDecoder, SegNet, decoder_recipe, pyramid

RESERVED = ("SegDecoder",)  # the class this writer defines besides Net


def _call(src: OpSource, call) -> str:
    return "nn.Identity()" if call is None else op_call(src, call[0], call[1], call[2], 1, call[3])


def decoder_code(arch: Arch, src: OpSource, indent: int) -> str:
    """`SegDecoder(...)` with literal op calls."""
    r = decoder_recipe(arch.decoder, pyramid(arch), arch.input_size)
    pad = " " * (indent + 4)
    laterals = ", ".join(_call(src, c) for c in r["laterals"])
    upsample = _block([_call(src, c) for c in r["upsample"]], indent + 4)
    args = [f"laterals=[{laterals}]", f"context={_call(src, r['context'])}", f"fuse={_call(src, r['fuse'])}",
            f"fusion={str(r['fusion'])!r}", f"upsample={upsample}",
            f"classifier=nn.Conv2d({int(r['classifier'][0])!r}, {int(r['classifier'][1])!r}, 1)"]
    return "SegDecoder(\n" + "".join(f"{pad}{a},\n" for a in args) + " " * indent + ")"


def segmentation_code(arch: Arch, src: OpSource) -> str:
    """`class SegDecoder` and `class Net(nn.Module)` with the attributes and forward of SegNet."""
    pyr = pyramid(arch)
    stn = _call(src, ("stn", arch.in_channels, arch.in_channels, {}) if arch.decoder.stn else None)
    stem, stage_block, head, _ = encoder_code(arch, src)
    methods = "\n".join(inspect.getsource(m) for m in (SegNet.forward_features, SegNet.forward))
    return f'''{inspect.getsource(SegDecoder).rstrip()}


class Net(nn.Module):
    """Segmentation network: [stn], stem, stages, head, then a decoder over three pyramid levels."""

    def __init__(self):
        super().__init__()
        self.stn = {stn}
        self.stem = {stem}
        self.stages = {stage_block}
        self.head = {head}
        self.levels, self.extra_levels = {tuple(int(i) for i in pyr.indices)!r}, {int(pyr.extra)!r}
        self.decoder = {decoder_code(arch, src, 8)}

{methods.rstrip()}'''


register_writer("segmentation", segmentation_code)
