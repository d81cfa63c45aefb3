"""`SegNet`: the encoder-decoder network of an `Arch` with a `Decoder` (dense prediction).

    input -> [stn] -> stem -> stages (-> head on the last stage)          the encoder, as builder.Net
    pyramid: the last stage output at each distinct stride, the last three strides: finest, middle,
             coarsest (fewer than three strides: coarser levels are added by a 1x1 max-pool at
             stride 2 of the coarsest, as FPN's P6)
    decoder: lateral pointwise ConvBNReLU of each level to `channels`; the context module (aspp | rfb |
             none) on the coarsest lateral; fusion at the finest level (asff; or sum | concat + pointwise
             after bilinear resizing to the finest); upsampling by the finest stride in x4/x2 steps of the
             `upsample` op (transposed kernel 2u, bilinear_conv, pixel_shuffle); a 1x1 conv to num_classes;
             a final bilinear resize only when the input size is not a multiple of the stride.

Laterals come before the context module so that it always maps `channels` to `channels`: its
weights then do not depend on the encoder widths (the supernet shares them across widths). ASPP
takes the largest of its offered rate triples whose largest rate is below the coarsest map size.
`forward`, `forward_features` and `SegDecoder` use torch only, so an exporter can copy them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ops import build_op, op_spec

from .arch import Arch, Decoder
from .builder import build_encoder, layer_out_channels, register_model_class
from .schema import DECODER_CHOICES

LEVELS = 3  # pyramid levels the decoder fuses: finest, middle, coarsest
FUSIONS = DECODER_CHOICES["fusion"]
CONTEXTS = DECODER_CHOICES["context"]
UPSAMPLES = DECODER_CHOICES["upsample"]


@dataclass(frozen=True)
class Pyramid:
    """Which stage outputs feed the decoder: stage indices, the channels and strides of all three levels,
    and how many coarser levels are pooled from the coarsest tapped one."""

    indices: tuple[int, ...]
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    extra: int


def _layer_stride(layer) -> int:
    s = layer.stride
    for p in layer.plugins:
        s *= p.stride
    return s


def stage_outputs(arch: Arch) -> list[tuple[int, int]]:
    """(channels, cumulative stride) after each stage; the head is folded into the last stage."""
    if not arch.stages:
        raise ValueError("SegNet: the arch has no stages; a dense-prediction encoder needs at least one")
    c, s = arch.in_channels, 1
    for layer in arch.stem:
        c, s = layer_out_channels(layer), s * _layer_stride(layer)
    out = []
    for stage in arch.stages:
        for layer in stage:
            c, s = layer_out_channels(layer), s * _layer_stride(layer)
        out.append((c, s))
    for layer in arch.head:
        c, s = layer_out_channels(layer), s * _layer_stride(layer)
    out[-1] = (c, s)
    return out


def pyramid(arch: Arch) -> Pyramid:
    """The last stage at each distinct stride, the last three strides (pooled extras when fewer)."""
    outs = stage_outputs(arch)
    last: dict[int, int] = {}
    for i, (_, s) in enumerate(outs):
        last[s] = i
    indices = sorted(last.values())[-LEVELS:]
    channels = [outs[i][0] for i in indices]
    strides = [outs[i][1] for i in indices]
    extra = LEVELS - len(indices)
    for _ in range(extra):
        channels.append(channels[-1])
        strides.append(strides[-1] * 2)
    return Pyramid(tuple(indices), tuple(channels), tuple(strides), extra)


def upsample_steps(stride: int) -> list[int]:
    """Scale factors taking the finest level back to the input: x4 steps, then one x2 if needed
    (a stride that is no power of two takes the largest power of two below it; the rest is resized)."""
    n = max(0, int(stride).bit_length() - 1)  # floor(log2(stride))
    return [4] * (n // 2) + [2] * (n % 2)


def aspp_rates(map_size: int) -> tuple[int, ...]:
    """The largest of ASPP's offered rate triples whose largest rate is below the map size."""
    choices = sorted(op_spec("aspp").hparam("rates").choices, key=max)
    fitting = [r for r in choices if max(r) < map_size]
    return tuple(fitting[-1] if fitting else choices[0])


class SegDecoder(nn.Module):
    """Laterals to `channels`, context on the coarsest, fusion at the finest level, upsampling, classifier.

    `forward(features, size)` takes the three pyramid maps, finest first, and returns logits of
    spatial size `size`. Torch only: built from ready modules so that exported code can reuse it.
    """

    def __init__(self, laterals, context, fuse, fusion, upsample, classifier):
        super().__init__()
        self.laterals = nn.ModuleList(laterals)
        self.context = context
        self.fuse = fuse
        self.fusion = fusion
        self.upsample = upsample
        self.classifier = classifier

    def fused(self, features):
        """The fused map at the finest level (before upsampling)."""
        xs = [lateral(f) for lateral, f in zip(self.laterals, features)]
        xs[-1] = self.context(xs[-1])
        if self.fusion == "asff":
            return self.fuse(xs)
        size = xs[0].shape[-2:]
        xs = [xs[0]] + [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in xs[1:]]
        if self.fusion == "concat":
            return self.fuse(torch.cat(xs, dim=1))
        return self.fuse(xs[0] + xs[1] + xs[2])

    def forward(self, features, size):
        x = self.classifier(self.upsample(self.fused(features)))
        if x.shape[-2:] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


def upsample_call(kind: str, channels: int, scale: int) -> tuple:
    """One upsampling step of the decoder's op (transposed: kernel 2 x scale, the FCN choice)."""
    extra = {"kernel": 2 * scale} if kind == "transposed" else {}
    return (kind, channels, channels, {"upsample": scale, **extra})


def check_decoder(dec: Decoder, pyr: Pyramid) -> None:
    """A one-line error for decoder choices that cannot be built over this pyramid (the fields themselves are
    checked when the Arch is built: search_spaces.arch_check)."""
    ratios = [b // a if b % a == 0 else 0 for a, b in zip(pyr.strides, pyr.strides[1:])]
    if dec.fusion == "asff" and ratios != [2, 2]:
        raise ValueError(f"decoder.fusion: asff needs pyramid strides that double level to level, got "
                         f"{pyr.strides}; valid here: sum, concat")


def fuse_call(fusion: str, channels: int):
    """The op call that fuses the three laterals (`channels` each) at the finest level (None for sum)."""
    c = channels
    return {"asff": ("asff", c, c, {"level": 0, "in_channels": (c,) * LEVELS}),
            "concat": ("pointwise", LEVELS * c, c, {}), "sum": None}[fusion]


def decoder_recipe(dec: Decoder, pyr: Pyramid, input_size: int) -> dict:
    """The decoder as op calls `(op, c_in, c_out, hparams)` (None: identity), what `build_decoder` builds
    and an exporter writes: laterals, context, fuse, fusion, upsample steps, classifier (c_in, classes)."""
    check_decoder(dec, pyr)
    c = dec.channels
    context = None
    if dec.context == "aspp":
        coarsest = max(1, -(-input_size // pyr.strides[-1]))
        context = ("aspp", c, c, {"rates": aspp_rates(coarsest)})
    elif dec.context == "rfb":
        context = ("rfb", c, c, {})
    fuse = fuse_call(dec.fusion, c)
    steps = [upsample_call(dec.upsample, c, s) for s in upsample_steps(pyr.strides[0])]
    return {"laterals": [("pointwise", ci, c, {}) for ci in pyr.channels], "context": context, "fuse": fuse,
            "fusion": dec.fusion, "upsample": steps, "classifier": (c, dec.num_classes)}


def build_call(call) -> nn.Module:
    """The module of one recipe op call (None: identity)."""
    return nn.Identity() if call is None else build_op(call[0], call[1], call[2], 1, **call[3])


def build_decoder(dec: Decoder, pyr: Pyramid, input_size: int) -> SegDecoder:
    """The `SegDecoder` of `dec` over pyramid `pyr` (level channels and strides, finest first)."""
    r = decoder_recipe(dec, pyr, input_size)
    return SegDecoder([build_call(c) for c in r["laterals"]], build_call(r["context"]), build_call(r["fuse"]),
                      r["fusion"], nn.Sequential(*(build_call(c) for c in r["upsample"])),
                      nn.Conv2d(*r["classifier"], 1))


class SegNet(nn.Module):
    """A dense-prediction network assembled from an `Arch` with a decoder: N x C x H x W -> N x K x H x W."""

    def __init__(self, arch: Arch):
        super().__init__()
        if arch.decoder is None:
            raise ValueError("SegNet: the arch has no decoder; give it one (Decoder(num_classes, ...)) or use Net")
        dec, pyr = arch.decoder, pyramid(arch)
        self.stn = build_op("stn", arch.in_channels, arch.in_channels) if dec.stn else nn.Identity()
        self.stem, self.stages, self.head, _ = build_encoder(arch)
        self.levels, self.extra_levels = pyr.indices, pyr.extra
        self.decoder = build_decoder(dec, pyr, arch.input_size)

    def forward_features(self, x):
        """The three pyramid maps, finest first."""
        x = self.stem(self.stn(x))
        taps = []
        for stage in self.stages:
            x = stage(x)
            taps.append(x)
        taps[-1] = self.head(taps[-1])
        features = [taps[i] for i in self.levels]
        for _ in range(self.extra_levels):
            features.append(F.max_pool2d(features[-1], 1, 2))
        return features

    def forward(self, x):
        return self.decoder(self.forward_features(x), x.shape[-2:])


register_model_class("segmentation", SegNet)
