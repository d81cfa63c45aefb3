"""The latency units of a dense-prediction network's decoder, each at its real input shape.

`SegNet` runs: [stn] -> stem, stages, head (nas.latency.units) -> pyramid (coarser levels pooled when
the encoder has fewer than three strides) -> a lateral per level -> context on the coarsest -> fusion at
the finest -> upsampling steps -> classifier. The STN, the laterals, the context module and each
upsampling step are registered ops, tabulated as op units at their input shapes. Three parts are not
single ops and get unit kinds of their own, registered here:

    seg_pool        the 1x1 max-pool at stride 2 that makes a missing pyramid level
    seg_fuse        fusion of the three laterals at the finest level (ASFF; or resize + sum | concat
                    + pointwise), timed on the finest map with the coarser two held as buffers
    seg_classifier  the 1x1 conv to the classes, and the final resize when the input is no multiple
                    of the finest stride
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from nas.latency.units import Unit, encoder_units, op_unit, out_size, register_head_units, register_unit, stage_channels
from search_spaces.arch import Arch, Decoder
from search_spaces.segmentation import Pyramid, SegDecoder, build_call, decoder_recipe, fuse_call, pyramid

POOL, FUSE, SEG_CLASSIFIER = "seg_pool", "seg_fuse", "seg_classifier"


@register_unit(POOL, "pool")
def _pool(unit: Unit) -> nn.Module:
    return nn.MaxPool2d(1, unit.stride)


class LevelFusion(nn.Module):
    """`SegDecoder.fused` of the three laterals, given the finest; the middle and coarsest are fixed buffers."""

    def __init__(self, fusion: str, channels: int, sizes):
        super().__init__()
        self.decoder = SegDecoder([nn.Identity()] * 3, nn.Identity(), build_call(fuse_call(fusion, channels)),
                                  fusion, nn.Identity(), nn.Identity())
        g = torch.Generator().manual_seed(0)
        self.register_buffer("middle", torch.randn(1, channels, sizes[1], sizes[1], generator=g))
        self.register_buffer("coarsest", torch.randn(1, channels, sizes[2], sizes[2], generator=g))

    def forward(self, x):
        n = x.shape[0]
        return self.decoder.fused([x, self.middle.expand(n, -1, -1, -1), self.coarsest.expand(n, -1, -1, -1)])


@register_unit(FUSE, "fusion")
def _fuse(unit: Unit) -> nn.Module:
    h = dict(unit.hparams)
    return LevelFusion(h["fusion"], unit.c_in, h["sizes"])


class SegClassifier(nn.Module):
    """The decoder's 1x1 conv to the classes, then a bilinear resize to `out` x `out` if the size differs."""

    def __init__(self, c_in: int, num_classes: int, out: int):
        super().__init__()
        self.conv, self.out = nn.Conv2d(c_in, num_classes, 1), int(out)

    def forward(self, x):
        x = self.conv(x)
        if x.shape[-1] != self.out or x.shape[-2] != self.out:
            x = F.interpolate(x, size=(self.out, self.out), mode="bilinear", align_corners=False)
        return x


@register_unit(SEG_CLASSIFIER, "classifier")
def _seg_classifier(unit: Unit) -> nn.Module:
    return SegClassifier(unit.c_in, unit.c_out, dict(unit.hparams)["out"])


def _call_unit(call, size: int) -> Unit:
    op, c_in, c_out, hparams = call
    return op_unit(op, hparams, c_in, c_out, 1, size)


def decoder_units(dec: Decoder, pyr, sizes, input_size: int) -> list[Unit]:
    """The units of decoder `dec` over pyramid `pyr` whose three levels are `sizes` wide (finest first):
    laterals, context, fusion, upsampling steps, classifier."""
    r = decoder_recipe(dec, pyr, input_size)
    c = dec.channels
    units = [_call_unit(call, s) for call, s in zip(r["laterals"], sizes)]
    if r["context"] is not None:
        units.append(_call_unit(r["context"], sizes[-1]))
    units.append(Unit(FUSE, c, c, 1, sizes[0], (("fusion", dec.fusion), ("sizes", tuple(sizes)))))
    size = sizes[0]
    for call in r["upsample"]:
        units.append(_call_unit(call, size))
        size *= int(call[3]["upsample"])
    units.append(Unit(SEG_CLASSIFIER, c, dec.num_classes, 1, size, (("out", int(input_size)),)))
    return units


def pyramid_units(levels: list[tuple[int, int]], extra: int) -> tuple[list[Unit], list[int]]:
    """The pooling units of the `extra` pooled levels after tapped (channels, size) `levels`, and all sizes."""
    units, sizes = [], [s for _, s in levels]
    c = levels[-1][0]
    for _ in range(extra):
        units.append(Unit(POOL, c, c, 2, sizes[-1]))
        sizes.append(out_size(sizes[-1], 2))
    return units, sizes


def stn_unit(in_channels: int, size: int) -> Unit:
    return op_unit("stn", {}, in_channels, in_channels, 1, size)


def seg_arch_units(arch: Arch) -> list[Unit]:
    """Every unit of a dense-prediction `Arch` in order: [stn], encoder, pooled levels, decoder."""
    encoder, outs = encoder_units(arch)
    pyr = pyramid(arch)
    pools, sizes = pyramid_units([outs[i] for i in pyr.indices], pyr.extra)
    stn = [stn_unit(arch.in_channels, arch.input_size)] if arch.decoder.stn else []
    return stn + encoder + pools + decoder_units(arch.decoder, pyr, sizes, arch.input_size)


def space_decoder_units(space) -> list[Unit]:
    """Every STN, pooling and decoder unit an arch of dense-prediction `space` can contain: each decoder
    choice over each combination of the channel counts the pyramid levels can have."""
    spec, sample = space.spec.decoder, pyramid(space.sample(0))
    outs = stage_channels(space)
    levels = [outs[i] for i in sample.indices]
    units = [stn_unit(space.in_channels, space.input_size)] if True in spec.stn else []
    sizes = pyramid_units(levels, sample.extra)[1]
    for c in sorted(levels[-1][0]):
        units += pyramid_units([(c, levels[-1][1])], sample.extra)[0]
    for widths in itertools.product(*(sorted(ch) for ch, _ in levels)):
        pyr = Pyramid(sample.indices, widths + (widths[-1],) * sample.extra, sample.strides, sample.extra)
        for up, ctx, fusion, channels in itertools.product(spec.upsample, spec.context, spec.fusion, spec.channels):
            dec = Decoder(space.num_classes, channels, up, ctx, fusion, False)
            units += decoder_units(dec, pyr, sizes, space.input_size)
    return units


register_head_units("segmentation", seg_arch_units, space_decoder_units)
