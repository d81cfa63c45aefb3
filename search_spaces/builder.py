"""Build a plain `nn.Module` from an `Arch`: stem, stages, head, classifier (or a decoder)."""
from __future__ import annotations

import torch
from torch import nn

from ops import OpError, build_op
from ops.layers import make_act

from .arch import Arch, Classifier, Layer
from .arch_check import ArchError


def build_layer(layer: Layer, c_in: int) -> nn.Sequential:
    """One layer position: the op (strided, or at stride 1 followed by a blurpool), then its plug-ins."""
    modules: list[nn.Module] = []
    if layer.downsample == "blurpool" and layer.stride > 1:
        modules.append(build_op(layer.op, c_in, layer.c_out, 1, **layer.kwargs))
        modules.append(build_op("blurpool", layer.c_out, layer.c_out, layer.stride))
    else:
        modules.append(build_op(layer.op, c_in, layer.c_out, layer.stride, **layer.kwargs))
    c = layer.c_out
    for p in layer.plugins:
        modules.append(build_op(p.op, c, p.c_out, p.stride, **p.kwargs))
        c = p.c_out
    return nn.Sequential(*modules)


def layer_out_channels(layer: Layer) -> int:
    return layer.plugins[-1].c_out if layer.plugins else layer.c_out


def build_sequence(layers, c_in: int) -> tuple[nn.Sequential, int]:
    """Consecutive layers as one Sequential, and the channel count that comes out."""
    mods = []
    for layer in layers:
        mods.append(build_layer(layer, c_in))
        c_in = layer_out_channels(layer)
    return nn.Sequential(*mods), c_in


def build_encoder(arch: Arch) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential, int]:
    """The stem, the stages (one Sequential of Sequentials) and the head of `arch`, and the channels out."""
    stem, c = build_sequence(arch.stem, arch.in_channels)
    stages = []
    for stage in arch.stages:
        seq, c = build_sequence(stage, c)
        stages.append(seq)
    head, c = build_sequence(arch.head, c)
    return stem, nn.Sequential(*stages), head, c


def build_classifier(clf: Classifier, c_in: int) -> nn.Sequential:
    """Global average pool, hidden FC layers with activation, dropout, final linear."""
    mods: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    for h in clf.hidden:
        mods += [nn.Linear(c_in, h), make_act(clf.act)]
        c_in = h
    if clf.dropout > 0:
        mods.append(nn.Dropout(clf.dropout))
    mods.append(nn.Linear(c_in, clf.num_classes))
    return nn.Sequential(*mods)


class Net(nn.Module):
    """A classification network assembled from an `Arch`."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.stem, self.stages, self.head, c = build_encoder(arch)
        self.num_features = c
        self.classifier = build_classifier(arch.classifier or Classifier(10), c)

    def forward_features(self, x):
        return self.head(self.stages(self.stem(x)))

    def forward(self, x):
        return self.classifier(self.forward_features(x))


# Arch head kind (arch.task) -> the module class built from an Arch of that kind
MODEL_CLASSES: dict[str, type[nn.Module]] = {"classification": Net}


def register_model_class(kind: str, cls: type[nn.Module]) -> None:
    """Register the module class that `build_model` builds for architectures with head `kind`."""
    MODEL_CLASSES[kind] = cls


def build_model(arch: Arch) -> nn.Module:
    """The plain module for `arch`: `Net` for classification, `SegNet` for a dense-prediction arch."""
    return MODEL_CLASSES[arch.task](arch)


def check_buildable(arch: Arch) -> None:
    """Raise `ArchError` naming the layer unless every op of `arch` accepts its arguments (odd kernels, channel
    rules, ...) and the classifier or decoder fits; built on the meta device, so no weights are allocated."""
    c = arch.in_channels
    where = [(f"stem[{i}]", l) for i, l in enumerate(arch.stem)]
    where += [(f"stages[{s}][{i}]", l) for s, stage in enumerate(arch.stages) for i, l in enumerate(stage)]
    where += [(f"head[{i}]", l) for i, l in enumerate(arch.head)]
    try:
        with torch.device("meta"):
            for path, layer in where:
                try:
                    build_layer(layer, c)
                except (OpError, ValueError, TypeError) as e:
                    raise ArchError(f"{path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
                c = layer_out_channels(layer)
            try:
                build_model(arch)
            except (OpError, ValueError) as e:
                raise ArchError(f"{arch.task}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    except ArchError:
        raise
    except (NotImplementedError, RuntimeError):  # an op that cannot be built on the meta device: on the CPU then
        build_model(arch)
