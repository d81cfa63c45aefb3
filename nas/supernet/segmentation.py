"""`SegSupernet`: the weight-sharing supernet of a dense-prediction space (encoder + decoder choices).

The encoder is `nas.supernet.supernet.Supernet` over the same positions (the space seen as a classification
space: its classifier is built but never used). The STN in front of the stem is one shared module.
The decoder's parts are shared per decision, as the encoder's candidates are per position: one set
of laterals and one classifier, one module per context, per fusion and per upsampling op, each built
at the largest `channels` choice (and the laterals for the widest pyramid the encoder can produce);
a smaller `channels` takes leading slices (elastic width, as Once-for-All). So each part trains on
every path that picks it: with one module per whole decoder combination the supernet stayed at the
background-only optimum on synthetic shapes (loss ~0.6 after 12 epochs), with per-channels parts it
learnt slowly, and with these it learns (see the report). Slicing a layer that reads a concatenation
(ASPP's and RFB's fuse, the concat fusion) takes leading input channels, which at a smaller width do
not line up with the same branches: the weights are still shared consistently, so `extract` is exact.
A path runs a template `SegDecoder` for its own widths whose tensors are slices of the shared modules.
`extract(arch)` is `SegNet(arch)` with those slices copied in: in eval mode it computes what
`forward(x, arch)` computes.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections import OrderedDict
from typing import Iterator

import torch
from torch import nn
from torch.func import functional_call

from nas.supernet.supernet import Supernet, SupernetError
from ops import build_op
from search_spaces.arch import Arch, Classifier, Decoder
from search_spaces.schema import DECODER_FIELDS, ClassifierSpec
from search_spaces.segmentation import SegDecoder, SegNet, build_call, build_decoder, decoder_recipe, pyramid

TEMPLATE_CACHE = 1024


class EncoderSpace:
    """A dense-prediction space seen as a classification space over the same positions (for `Supernet`)."""

    def __init__(self, space):
        self._space = space
        self.spec = dataclasses.replace(space.spec, decoder=None, classifier=ClassifierSpec())

    def __getattr__(self, name):
        if name.startswith("__") or name == "_space":  # copy / pickle probe before __init__ ran
            raise AttributeError(name)
        return getattr(self._space, name)


def _tensors(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from module.named_parameters()
    yield from module.named_buffers()


def part_keys(dec: Decoder) -> dict[str, str | None]:
    """The ModuleDict key of each shared decoder part a decoder choice uses (context / fuse: None for none / sum)."""
    return {"laterals": "all", "context": None if dec.context == "none" else dec.context,
            "fuse": None if dec.fusion == "sum" else dec.fusion, "upsample": dec.upsample, "classifier": "all"}


class _Slices:
    """A template module and, per tensor, its owner and attribute in the max-size module and the slice."""

    def __init__(self, template: nn.Module, big: nn.Module, what: str):
        self.template, self.entries = template, []
        for name, t in _tensors(template):
            owner_name, _, attr = name.rpartition(".")
            owner = big.get_submodule(owner_name)
            ref = getattr(owner, attr, None)
            if not isinstance(ref, torch.Tensor) or ref.dim() != t.dim() or any(
                    s > b for s, b in zip(t.shape, ref.shape)):
                raise SupernetError(f"seg supernet: {what}: tensor '{name}' {tuple(t.shape)} is no slice of the "
                                    f"max-size decoder's {None if ref is None else tuple(ref.shape)}")
            idx = None if t.shape == ref.shape else tuple(slice(0, s) for s in t.shape)
            self.entries.append((name, owner, attr, idx))

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, owner, attr, idx in self.entries:
            t = getattr(owner, attr)
            out[name] = t if idx is None else t[idx]
        return out


class SegSupernet(nn.Module):
    """Single-path one-shot supernet over a dense-prediction `SearchSpace`; `forward(x, arch)` -> logits."""

    def __init__(self, space):
        super().__init__()
        dec = getattr(space.spec, "decoder", None)
        if dec is None:
            raise SupernetError(f"seg supernet: space '{space.name}' has no decoder; use nas.supernet.supernet.Supernet")
        self.space = space
        self.encoder = Supernet(EncoderSpace(space))
        self.stn = build_op("stn", space.in_channels, space.in_channels) if True in dec.stn else None
        self.pyramid = pyramid(space.decode({d.key: d.choices[0] for d in space.decisions()}))
        widest = dataclasses.replace(self.pyramid, channels=self._widest_levels())
        self.laterals, self.contexts, self.fuses = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        self.upsamples, self.classifiers = nn.ModuleDict(), nn.ModuleDict()
        for up, ctx, fuse in itertools.product(dec.upsample, dec.context, dec.fusion):
            d = Decoder(space.num_classes, max(dec.channels), up, ctx, fuse, False)
            recipe, keys = decoder_recipe(d, widest, space.input_size), part_keys(d)
            parts = {"laterals": lambda: nn.ModuleList(build_call(c) for c in recipe["laterals"]),
                     "context": lambda: build_call(recipe["context"]), "fuse": lambda: build_call(recipe["fuse"]),
                     "upsample": lambda: nn.Sequential(*(build_call(c) for c in recipe["upsample"])),
                     "classifier": lambda: nn.Conv2d(*recipe["classifier"], 1)}
            for part, make in parts.items():
                store = self._store(part)
                if keys[part] is not None and keys[part] not in store:
                    store[keys[part]] = make()
        self._shared: dict[Decoder, SegDecoder] = {}  # views over the shared parts, not registered
        self._templates: "OrderedDict[tuple, _Slices]" = OrderedDict()
        self._sync_bn = False

    def _store(self, part: str) -> nn.ModuleDict:
        return {"laterals": self.laterals, "context": self.contexts, "fuse": self.fuses, "upsample": self.upsamples,
                "classifier": self.classifiers}[part]

    def shared_decoder(self, dec: Decoder) -> SegDecoder:
        """A max-size `SegDecoder` made of the shared parts that `dec` picks (a view: no weights of its own)."""
        dec = dataclasses.replace(dec, stn=False)
        found = self._shared.get(dec)
        if found is None:
            keys, got = part_keys(dec), {}
            for part, key in keys.items():
                store = self._store(part)
                if key is not None and key not in store:
                    raise SupernetError(f"seg supernet: decoder {part} '{key}' is not a choice of space "
                                        f"'{self.space.name}'; choices: {', '.join(store)}")
                got[part] = nn.Identity() if key is None else store[key]
            found = SegDecoder(got["laterals"], got["context"], got["fuse"], dec.fusion, got["upsample"],
                               got["classifier"])
            self._shared[dec] = found
        return found

    def _widest_levels(self) -> tuple[int, ...]:
        """Per pyramid level, the most channels that level's stage (the head for the last) can output."""
        positions = self.space.positions()
        last = len(self.space.spec.stages) - 1
        widths = []
        for k in self.pyramid.indices:
            ws = [c for p in positions if (p.section == "stage" and p.stage == k)
                  or (k == last and p.section == "head") for c in p.c_out]
            widths.append(max(ws))
        widths += [widths[-1]] * self.pyramid.extra
        return tuple(widths)

    def use_sync_bn(self, enabled: bool = True) -> None:
        """Run the paths with SyncBatchNorm (DDP on CUDA); the shared weights are unchanged."""
        self._sync_bn = bool(enabled)
        self.encoder.use_sync_bn(enabled)
        self._templates.clear()

    # --- one path -----------------------------------------------------------------------------------
    def _check(self, arch: Arch):
        if arch.decoder is None:
            raise SupernetError("seg supernet: the arch has no decoder; it is not of a dense-prediction space")
        pyr = pyramid(arch)
        if (pyr.indices, pyr.strides) != (self.pyramid.indices, self.pyramid.strides):
            raise SupernetError(f"seg supernet: arch pyramid {pyr.strides} (stages {pyr.indices}) differs from the "
                                f"space's {self.pyramid.strides} (stages {self.pyramid.indices})")
        dec = self.space.spec.decoder
        for f in DECODER_FIELDS:
            if getattr(arch.decoder, f) not in getattr(dec, f):
                raise SupernetError(f"seg supernet: decoder.{f}={getattr(arch.decoder, f)!r} is not a choice of space "
                                    f"'{self.space.name}'; choices: {', '.join(map(str, getattr(dec, f)))}")
        return pyr

    def _decoder_slices(self, arch: Arch) -> _Slices:
        pyr = self._check(arch)
        dec = dataclasses.replace(arch.decoder, stn=False)
        key = (dec, pyr.channels)
        found = self._templates.get(key)
        if found is not None:
            self._templates.move_to_end(key)
            return found
        shared = self.shared_decoder(dec)
        with torch.device("meta"):
            template = build_decoder(dec, pyr, self.space.input_size)
            if self._sync_bn:
                template = nn.SyncBatchNorm.convert_sync_batchnorm(template)
        found = _Slices(template, shared, f"decoder {dec} at level widths {pyr.channels}")
        self._templates[key] = found
        if len(self._templates) > TEMPLATE_CACHE:
            self._templates.popitem(last=False)
        return found

    def encoder_arch(self, arch: Arch) -> Arch:
        """`arch` as the classification arch the encoder supernet knows (no decoder, a classifier)."""
        return arch.replace(decoder=None, classifier=Classifier(self.space.num_classes))

    def features(self, x: torch.Tensor, arch: Arch) -> list[torch.Tensor]:
        """The pyramid maps of `arch`'s encoder path (after the STN when chosen), finest first."""
        if arch.decoder.stn:
            x = self.stn(x)
        ends = {f"stages.{k}.{len(s) - 1}.": k for k, s in enumerate(arch.stages)}
        taps = [None] * len(arch.stages)
        for prefix, layer in self.encoder.layers(self.encoder_arch(arch)):
            if prefix == "classifier.":
                break
            x = layer(x)
            if prefix in ends:
                taps[ends[prefix]] = x
        taps[-1] = x  # after the head, if any
        feats = [taps[i] for i in self.pyramid.indices]
        for _ in range(self.pyramid.extra):
            feats.append(torch.nn.functional.max_pool2d(feats[-1], 1, 2))
        return feats

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        slices = self._decoder_slices(arch)
        template = slices.template
        if template.training != self.training:
            template.train(self.training)
        return functional_call(template, slices.tensors(), (self.features(x, arch), x.shape[-2:]))

    @torch.no_grad()
    def extract(self, arch: Arch) -> SegNet:
        """`SegNet(arch)` holding copies of this path's weights (and BN statistics)."""
        slices = self._decoder_slices(arch)
        with torch.device("meta"):
            model = SegNet(arch)
        device = next(self.parameters()).device
        model = model.to_empty(device=device)
        state = {n: t for n, t in _tensors(self.encoder.extract(self.encoder_arch(arch)))
                 if not n.startswith("classifier.")}
        if arch.decoder.stn:
            state.update(("stn." + n, t) for n, t in _tensors(self.stn))
        state.update(("decoder." + n, t) for n, t in slices.tensors().items())
        for name, t in _tensors(model):
            src = state.get(name)
            if src is None or src.shape != t.shape:
                raise SupernetError(f"seg supernet: extract({arch.to_string()[:60]}...): tensor '{name}' has no slice")
            t.copy_(src)
        return model.train(self.training)
