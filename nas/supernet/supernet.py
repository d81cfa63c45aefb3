"""The weight-sharing supernet: single-path one-shot with elastic (sliced) ops.

At each layer position the candidates are grouped: variants of one op that differ only in elastic
hparams (`HParam(elastic=True)`: kernel, expansion, ...) and in channels share ONE set of max-size
tensors (a `TensorStore`), built with the largest value of each elastic hparam in the group and the
largest channels the position meets (Once-for-All); different ops, different non-elastic hparams and
a different stride keep their own (SPOS). Plug-ins are grouped the same way per position, and the
classifier has the largest in_features.

`forward(x, arch)` runs one path. Each layer of `arch` is built once as a small template on the
meta device (`search_spaces.builder.build_layer`, the very classes `build_model` uses) and cached;
at each call every parameter and buffer of the template is set to a slice of the shared tensor of
the same name (what `torch.func.functional_call` does, without its per-call cost): leading channels
in every dimension, the centre crop in the kernel dimensions (dims >= 2 of a 4-D or 5-D weight).
Gradients flow into the shared max-size tensors; BatchNorm running statistics are views, so their
in-place updates land in the shared buffers. `extract(arch)` is `build_model(arch)` with those
slices copied in: in eval mode it computes what the supernet computes on that path.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Iterator

import torch
from torch import nn

from nas.supernet.tensor_store import SupernetError, TensorStore, bind_tensors, meta_build, named_tensors
from ops import build_op, op_spec
from search_spaces.arch import Arch, Classifier, Layer
from search_spaces.builder import build_classifier, build_layer, build_model

TEMPLATE_CACHE = 4096  # templates kept (LRU); each is a few kB of meta-device modules


def _is_elastic(op: str, name: str) -> bool:
    spec = op_spec(op)
    return any(h.name == name and h.elastic for h in spec.hparams)


def group_key(op: str, hparams, stride: int) -> tuple:
    """What decides whether two variants share one max-size module: the op, its non-elastic hparams, the stride."""
    return (op, stride, tuple((k, v) for k, v in hparams if not _is_elastic(op, k)))


def _merge(group: tuple[str, int, dict], hparams) -> None:
    """Fold one variant's hparams into its group's build arguments: the largest value of each elastic hparam."""
    op, _, merged = group
    for k, v in hparams:
        merged[k] = max(merged[k], v) if k in merged and _is_elastic(op, k) else v


def _group_name(key: tuple, taken: set[str]) -> str:
    op, stride, fixed = key
    name = "_".join([op, f"s{stride}", *(f"{k}{v}" for k, v in fixed)]).replace(".", "p").replace(" ", "")
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


class _Binding:
    """A template module and, for each of its tensors, where its slice comes from in the max-size modules."""

    __slots__ = ("template", "entries", "slots", "generation")

    def __init__(self, template: nn.Module, entries: list[tuple[str, nn.Module, str, tuple | None]]):
        self.template, self.entries = template, entries
        self.generation = -1  # the Supernet generation whose views the template holds
        self.slots = []  # per entry: the template's dict that holds the tensor (_parameters or _buffers), its key
        for name, *_ in entries:
            module_name, _, key = name.rpartition(".")
            module = template.get_submodule(module_name)
            self.slots.append((module._parameters if key in module._parameters else module._buffers, key))

    def _sources(self) -> Iterator[tuple[str, torch.Tensor, tuple | None]]:
        for name, store, attr, idx in self.entries:
            # a store's _parameters/_buffers dict, not getattr: module.to() swaps buffers in that dict
            yield name, (store._parameters.get(attr) if attr in store._parameters else store._buffers[attr]), idx

    def tensors(self) -> dict[str, torch.Tensor]:
        """Template tensor name -> the slice of the shared tensor (views: gradients and BN updates reach it)."""
        return {name: t if idx is None else t[idx] for name, t, idx in self._sources()}

    def bound(self, generation: int) -> nn.Module:
        """The template holding slices of the shared tensors: what `torch.func.functional_call` would swap in,
        without its per-call cost. The views are made once (with autograd on, so gradients reach the shared
        tensors) and stay valid while the shared tensors are the same objects: in-place updates (optimizer
        steps, BN statistics, load_state_dict) show through them; `Supernet._apply` (.to(), .cuda(), ...)
        starts a new generation, which makes them anew."""
        if self.generation != generation:
            with torch.inference_mode(False), torch.enable_grad():
                for (slot, key), (_, t, idx) in zip(self.slots, self._sources()):
                    slot[key] = t if idx is None else t[idx]
            self.generation = generation
        return self.template


class Supernet(nn.Module):
    """Single-path one-shot supernet over a classification `SearchSpace`; `forward(x, arch)` runs one path."""

    def __init__(self, space):
        super().__init__()
        if getattr(space.spec, "decoder", None) is not None:
            raise SupernetError(f"supernet: space '{space.name}' is a dense-prediction space; the supernet covers "
                                f"classification spaces")
        self.space = space
        self.ops = nn.ModuleDict()  # position -> group -> TensorStore of the op's variants
        self.plugins = nn.ModuleDict()  # position -> group -> TensorStore of the plug-in's variants
        self.blurpools = nn.ModuleDict()  # position -> TensorStore (positions that may downsample by blur)
        self._op_groups: dict[str, dict[tuple, str]] = {}
        self._plugin_groups: dict[str, dict[tuple, str]] = {}
        widest = space.spec.in_channels
        for pos in space.positions():
            self._add_position(pos)
            widest = max([widest, *pos.c_out])
        clf = space.spec.classifier
        if clf is None:
            raise SupernetError(f"supernet: space '{space.name}' has no classifier")
        clf = Classifier(space.spec.num_classes, clf.hidden, clf.act, clf.dropout)
        self.classifier = TensorStore([(("classifier", clf, widest), partial(build_classifier, clf, widest))],
                                      "the classifier")
        self.widest = widest
        self._templates: "OrderedDict[tuple, _Binding]" = OrderedDict()
        self._located: "OrderedDict[Arch, list]" = OrderedDict()
        self._sync_bn = False
        self._generation = 0

    # --- construction ----------------------------------------------------------------------------
    @staticmethod
    def _slot(key: str) -> str:
        return key.replace(".", "_")

    @staticmethod
    def _store(op: str, hparams: dict, stride: int, shapes, where: str) -> TensorStore:
        hp = tuple(sorted(hparams.items()))
        args = ", ".join(f"{k}={v}" for k, v in hp)
        return TensorStore([(("op", op, hp, ci, co, stride), partial(build_op, op, ci, co, stride, **hparams))
                            for ci, co in sorted(set(shapes))], f"'{op}'({args}) at {where}")

    def _add_position(self, pos) -> None:
        slot = self._slot(pos.key)
        op_groups: dict[tuple, tuple[str, int, dict]] = {}
        for v in pos.candidates:
            if v.is_none:
                continue
            for down in pos.downsample:
                stride = 1 if down == "blurpool" else pos.stride
                _merge(op_groups.setdefault(group_key(v.op, v.hparams, stride), (v.op, stride, {})), v.hparams)
        plugin_groups: dict[tuple, tuple[str, int, dict]] = {}
        for v in pos.plugins:
            if not v.is_none:
                _merge(plugin_groups.setdefault(group_key(v.op, v.hparams, 1), (v.op, 1, {})), v.hparams)
        plugin_shapes = [(co, co) for co in pos.c_out]
        for store, index, groups, shapes in ((self.ops, self._op_groups, op_groups, pos.shapes),
                                             (self.plugins, self._plugin_groups, plugin_groups, plugin_shapes)):
            if not groups:
                continue
            taken: set[str] = set()
            names = {key: _group_name(key, taken) for key in groups}
            store[slot] = nn.ModuleDict({names[k]: self._store(op, hp, stride, shapes, pos.key)
                                         for k, (op, stride, hp) in groups.items()})
            index[pos.key] = names
        if "blurpool" in pos.downsample and pos.stride > 1:
            self.blurpools[slot] = self._store("blurpool", {}, pos.stride, plugin_shapes, pos.key)

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self._generation += 1  # tensors may have been replaced: the templates' cached views are stale
        return result

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._generation += 1
        return result

    def use_sync_bn(self, enabled: bool = True) -> None:
        """Run the paths with SyncBatchNorm (DDP on CUDA); the shared weights are unchanged."""
        self._sync_bn = bool(enabled)
        self._templates.clear()

    # --- binding a path's layers to slices ---------------------------------------------------------
    def _max_op(self, pos, layer: Layer) -> nn.Module:
        stride = 1 if layer.downsample == "blurpool" and layer.stride > 1 else layer.stride
        name = self._op_groups.get(pos.key, {}).get(group_key(layer.op, layer.hparams, stride))
        if name is None:
            raise SupernetError(f"supernet: '{layer.to_string()}' is not a candidate at {pos.key} of space "
                                f"'{self.space.name}'")
        return self.ops[self._slot(pos.key)][name]

    def _max_plugin(self, pos, plugin: Layer) -> nn.Module:
        name = self._plugin_groups.get(pos.key, {}).get(group_key(plugin.op, plugin.hparams, plugin.stride))
        if name is None:
            raise SupernetError(f"supernet: plug-in '{plugin.to_string()}' is not a candidate at {pos.key}")
        return self.plugins[self._slot(pos.key)][name]

    def _build_template(self, fn, *args) -> nn.Module:
        template = meta_build(fn, *args)
        if self._sync_bn:
            with torch.device("meta"):
                template = nn.SyncBatchNorm.convert_sync_batchnorm(template)
        return template

    def _layer_binding(self, pos, layer: Layer, c_in: int) -> _Binding:
        key = (pos.key, layer, c_in)
        binding = self._templates.get(key)
        if binding is not None:
            self._templates.move_to_end(key)
            return binding
        template = self._build_template(build_layer, layer, c_in)
        bigs = [self._max_op(pos, layer)]
        if layer.downsample == "blurpool" and layer.stride > 1:
            bigs.append(self.blurpools[self._slot(pos.key)])
        bigs += [self._max_plugin(pos, p) for p in layer.plugins]
        what = f"'{layer.to_string()}' at {pos.key} (c_in={c_in})"
        entries = []
        for i, (child, big) in enumerate(zip(template, bigs)):
            entries += bind_tensors(child, big, f"{i}.", what)
        return self._remember(key, _Binding(template, entries))

    def _classifier_binding(self, arch: Arch, c_in: int) -> _Binding:
        key = ("classifier", arch.classifier, c_in)
        binding = self._templates.get(key)
        if binding is None:
            template = self._build_template(build_classifier, arch.classifier, c_in)
            binding = self._remember(key, _Binding(template, bind_tensors(template, self.classifier, "",
                                                                          f"the classifier (in_features={c_in})")))
        return binding

    def _remember(self, key, binding: _Binding) -> _Binding:
        self._templates[key] = binding
        if len(self._templates) > TEMPLATE_CACHE:
            self._templates.popitem(last=False)
        return binding

    def _locate(self, arch: Arch) -> list:
        found = self._located.get(arch)
        if found is None:
            found = self.space.locate(arch)
            self._located[arch] = found
            if len(self._located) > TEMPLATE_CACHE:
                self._located.popitem(last=False)
        return found

    def _path(self, arch: Arch) -> Iterator[tuple[str, _Binding]]:
        """(state-dict prefix in `build_model(arch)`, binding) for every layer of the path, then the classifier."""
        prefixes = [f"stem.{i}." for i in range(len(arch.stem))]
        prefixes += [f"stages.{k}.{j}." for k, stage in enumerate(arch.stages) for j in range(len(stage))]
        prefixes += [f"head.{i}." for i in range(len(arch.head))]
        c = arch.in_channels
        for prefix, (pos, layer, c_in) in zip(prefixes, self._locate(arch)):
            yield prefix, self._layer_binding(pos, layer, c_in)
            c = layer.plugins[-1].c_out if layer.plugins else layer.c_out
        yield "classifier.", self._classifier_binding(arch, c)

    # --- the two uses ------------------------------------------------------------------------------
    def layers(self, arch: Arch) -> Iterator[tuple[str, nn.Module]]:
        """The path of `arch`, layer by layer, then the classifier: (its state-dict prefix in `build_model(arch)`,
        a module holding this supernet's slices, in this supernet's train/eval mode); `forward` runs them in turn."""
        for prefix, binding in self._path(arch):
            template = binding.bound(self._generation)
            if template.training != self.training:
                template.train(self.training)
            yield prefix, template

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        for _, module in self.layers(arch):
            x = module(x)
        return x

    @torch.no_grad()
    def extract(self, arch: Arch) -> nn.Module:
        """`build_model(arch)` holding copies of this path's weights (and BN statistics)."""
        with torch.device("meta"):
            model = build_model(arch)
        device = next(self.parameters()).device
        model = model.to_empty(device=device)
        state = {}
        for prefix, binding in self._path(arch):
            state.update((prefix + k, v) for k, v in binding.tensors().items())
        for name, t, _ in named_tensors(model):
            src = state.get(name)
            if src is None or src.shape != t.shape:
                raise SupernetError(f"supernet: extract({arch.to_string()[:60]}...): tensor '{name}' has no slice")
            t.copy_(src)
        return model.train(self.training)

    def check(self) -> int:
        """Bind every candidate at every input width of every position (raises on a non-monotone op);
        returns the number of layer templates checked."""
        n = 0
        for pos in self.space.positions():
            for v in pos.candidates:
                if v.is_none:
                    continue
                for c_in, c_out in pos.shapes:
                    for down in pos.downsample:
                        layer = Layer(v.op, c_out, pos.stride, v.hparams, (), down)
                        self._layer_binding(pos, layer, c_in)
                        n += 1
            for p in pos.plugins:
                if p.is_none:
                    continue
                v = next(v for v in pos.candidates if not v.is_none)
                for c_in, c_out in pos.shapes:
                    layer = Layer(v.op, c_out, pos.stride, v.hparams, (Layer(p.op, c_out, 1, p.hparams),))
                    self._layer_binding(pos, layer, c_in)
                    n += 1
        self._templates.clear()
        return n
