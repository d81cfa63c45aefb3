"""What a module or an `Arch` costs: parameters, MACs, activation memory and memory traffic.

One forward pass (batch as given, `torch.no_grad()`, eval mode, the model's own dtype and device)
runs under two dispatch modes at once, so every figure is of the tensor ops that really execute,
functional ones included (residual adds, SE gating, channel-shuffle copies, a
`torchvision.ops.deform_conv2d` called inside a parent module's `forward`):

- `macs`: multiply-accumulates, from `torch.utils.flop_counter.FlopCounterMode` (its FLOPs / 2)
  for the ops it covers (convolutions of every kind, linear/matmul, attention), plus formulas of
  our own for the sampling ops it gives zero (`_EXTRA_MACS` below: deformable convolution, grid
  sampling, affine grid, bilinear/bicubic resizing) and per-module formulas for ops whose core is an
  element-wise multiply-then-sum (`_MODULE_MACS`: involution). As in fvcore and most papers, element-wise
  work (norms, activations, adds, pooling) is not a MAC: that cost shows up in memory traffic.
- `activation_bytes`: the bytes of every new tensor the forward produces (view ops and in-place
  results excluded): the total activation memory a training step would keep, at most.
- `peak_activation_bytes`: the largest input + output activation footprint of any single op
  (weights excluded; a tensor read and written in place counted once). A lower bound of the
  peak memory of inference: at least that much must be live at once.
- `memory_traffic_bytes`: the sum over ops of bytes read (activation inputs and weights) plus
  bytes written (outputs): the "memory access cost" of ShuffleNet V2's guidelines. For a model
  whose ops are leaf modules that each run one tensor op (Conv2d, BatchNorm2d, ReLU, Linear),
  this is the sum over leaf modules of input + weight + output bytes.

Sizes are those of the actual tensors, so the dtype is the model's (float32 unless it says
otherwise) and the batch is the input's. Traffic counts each op's own reads and writes once (no
caches, no im2col buffers inside a kernel): an idealised, device-independent figure.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from ops import build_op, op_spec
from search_spaces import build_model

__all__ = ["Cost", "count", "count_with_output", "count_arch", "count_op", "op_example", "make_inputs",
           "format_count", "format_bytes"]


@dataclass(frozen=True)
class Cost:
    """The cost of one forward pass; see the module docstring for the definitions."""

    params: int
    macs: int
    activation_bytes: int
    peak_activation_bytes: int
    memory_traffic_bytes: int

    @property
    def flops(self) -> int:
        """2 x MACs (one multiply and one add each)."""
        return 2 * self.macs

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


# --- MAC formulas for ops FlopCounterMode does not cover -------------------------------------
# FlopCounterMode keys its table by OpOverloadPacket (`torch.ops.torchvision.deform_conv2d`,
# not `.default`: an overload as key is silently never matched, checked with torch 2.14.1), passes
# tensor arguments as shapes and the output shape as `out_shape`, and expects FLOPs (= 2 x MACs).

def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def _deform_conv2d_flops(input_shape, weight_shape, offset_shape, mask_shape, bias_shape, stride_h, stride_w,
                         pad_h, pad_w, dil_h, dil_w, groups, offset_groups, use_mask, *, out_shape, **_):
    """torchvision::deform_conv2d. Per output position (n x h_out x w_out), with k = kh x kw taps:

        conv part:      c_out x (c_in / groups) x k   MACs   (as a plain grouped conv)
        sampling:       4 x c_in x k                  MACs   (each sampled value is a bilinear
                                                              blend of its 4 neighbours)
        mask (DCNv2):   1 x c_in x k                  MACs   (use_mask: the sample times its mask)

    The bilinear weights themselves (a few ops per tap and offset group, not per channel) and the
    bias are not counted."""
    c_in = input_shape[1]
    c_out, c_in_per_group, kh, kw = weight_shape
    positions = out_shape[0] * _prod(out_shape[2:])
    sampled = positions * c_in * kh * kw
    macs = positions * c_out * c_in_per_group * kh * kw + 4 * sampled + (sampled if use_mask else 0)
    return 2 * macs


def _grid_sampler_2d_flops(input_shape, grid_shape, interpolation_mode, *args, out_shape, **_):
    """aten::grid_sampler_2d: per output value (n x c x h_out x w_out) a blend of 4 neighbours
    (bilinear, mode 0) or 16 (bicubic, mode 2); nearest (mode 1) only copies: 0 MACs."""
    taps = {0: 4, 1: 0, 2: 16}.get(int(interpolation_mode), 4)
    return 2 * taps * _prod(out_shape)


def _affine_grid_flops(theta_shape, size, *args, out_shape, **_):
    """aten::affine_grid_generator: each of the n x h x w grid points is theta (2x3) times (x, y, 1)."""
    return 2 * 3 * _prod(out_shape)


def _resize_flops(taps):
    def flops(*args, out_shape, **_):
        return 2 * taps * _prod(out_shape)

    flops.__doc__ = f"resize: {taps} MACs per output value"
    return flops


_EXTRA_MACS: dict[Any, Any] = {
    torch.ops.aten.grid_sampler_2d: _grid_sampler_2d_flops,
    torch.ops.aten.affine_grid_generator: _affine_grid_flops,
    torch.ops.aten.upsample_bilinear2d: _resize_flops(4),
    torch.ops.aten._upsample_bilinear2d_aa: _resize_flops(4),
    torch.ops.aten.upsample_bicubic2d: _resize_flops(16),
}


# Ops whose core is element-wise tensor algebra (a broadcast multiply then a sum) that FlopCounterMode
# cannot tell from, say, SE gating: their MACs come from a per-module formula, keyed by the registered
# op name, applied to the module and its output in a forward hook.
def _involution_macs(module, output) -> int:
    """involution: every output value of the c_in-channel core is a k x k weighted sum (k^2 MACs)."""
    n, _, h, w = output.shape
    return n * module.c_in * module.kernel ** 2 * h * w


_MODULE_MACS: dict[str, Any] = {"involution": _involution_macs}


def _flop_mapping() -> dict[Any, Any]:
    mapping = dict(_EXTRA_MACS)
    try:  # registers torchvision's custom ops; ops/ uses it for deform_conv
        import torchvision  # noqa: F401

        mapping[torch.ops.torchvision.deform_conv2d] = _deform_conv2d_flops
    except (ImportError, AttributeError, RuntimeError):
        pass
    return mapping


# --- memory: one pass over the executed ops --------------------------------------------------
_WRITE_ONLY_SELF = {torch.ops.aten.copy_, torch.ops.aten.fill_, torch.ops.aten.zero_}
_NO_TRAFFIC = {torch.ops.aten.empty, torch.ops.aten.empty_like, torch.ops.aten.empty_strided,
               torch.ops.aten.new_empty, torch.ops.aten.new_empty_strided}


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _MemoryMode(TorchDispatchMode):
    """Adds up, per executed op, activation and weight bytes read and bytes written."""

    def __init__(self, weight_storages: set[int]):
        super().__init__()
        self.weights = weight_storages
        self.traffic = self.activations = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if func.is_view or packet in _NO_TRAFFIC:
            return out
        schema_args = func._schema.arguments
        write_only = {a.name for a in schema_args if a.kwarg_only and a.alias_info is not None
                      and a.alias_info.is_write}  # out= arguments
        mutates = any(a.alias_info is not None and a.alias_info.is_write for a in schema_args)
        positional = list(args)
        if packet in _WRITE_ONLY_SELF and positional:
            positional = positional[1:]
        inputs = _tensors((positional, {k: v for k, v in kwargs.items() if k not in write_only}))
        outputs = _tensors(out)
        in_storages = {_storage(t) for t in _tensors((args, kwargs))}
        fresh = [t for t in outputs if _storage(t) not in in_storages]
        if not fresh and not mutates:
            return out  # returns (an alias of) its input without touching memory: _unsafe_view, alias, ...
        self.traffic += sum(_nbytes(t) for t in inputs) + sum(_nbytes(t) for t in outputs)
        self.activations += sum(_nbytes(t) for t in fresh)
        touched: dict[int, int] = {}
        for t in inputs + outputs:
            s = _storage(t)
            if s not in self.weights:
                touched[s] = max(touched.get(s, 0), _nbytes(t))
        self.peak = max(self.peak, sum(touched.values()))
        return out


# --- public API ------------------------------------------------------------------------------

def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.float32, torch.device("cpu")


def _is_shape(x) -> bool:
    return isinstance(x, (tuple, list, torch.Size)) and all(isinstance(d, int) for d in x)


def make_inputs(model: nn.Module, input_shape) -> torch.Tensor | list[torch.Tensor]:
    """Random input(s) in the model's dtype and device: one tensor for a shape, a list for a list of shapes."""
    dtype, device = _model_dtype_device(model)
    gen = torch.Generator().manual_seed(0)

    def one(shape):
        return torch.randn(tuple(shape), generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)

    if _is_shape(input_shape):
        return one(input_shape)
    if isinstance(input_shape, (tuple, list)) and input_shape and all(_is_shape(s) for s in input_shape):
        return [one(s) for s in input_shape]
    raise ValueError(f"input_shape must be a shape such as (1, 3, 32, 32) or a list of shapes; got {input_shape!r}")


def count(model: nn.Module, input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None, *,
          inputs: Any = None) -> Cost:
    """The `Cost` of one forward pass of `model`.

    `input_shape` is the full input shape, batch included (`(1, 3, 224, 224)`), or a list of shapes for
    a module whose forward takes a list of tensors (asff). Or pass `inputs=` directly: a tensor or a
    list of tensors is the forward's one argument; a tuple is unpacked into several arguments.
    """
    return count_with_output(model, input_shape, inputs=inputs)[0]


def count_with_output(model: nn.Module, input_shape=None, *, inputs: Any = None) -> tuple[Cost, Any]:
    """`count`, and the forward's output (to show its shape, say)."""
    if inputs is None:
        if input_shape is None:
            raise ValueError("count(): give input_shape or inputs")
        inputs = make_inputs(model, input_shape)
    call_args = inputs if isinstance(inputs, tuple) else (inputs,)
    weights = {_storage(t) for t in list(model.parameters()) + list(model.buffers())}
    memory = _MemoryMode(weights)
    extra_macs: list[int] = []
    hooks = [m.register_forward_hook(lambda mod, _, out, f=_MODULE_MACS[name]: extra_macs.append(f(mod, out)))
             for m in model.modules() if (name := getattr(type(m), "op_name", None)) in _MODULE_MACS]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_flop_mapping()) as flops:
            with memory:
                output = model(*call_args)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return Cost(params=sum(p.numel() for p in model.parameters()), macs=flops.get_total_flops() // 2 + sum(extra_macs),
                activation_bytes=memory.activations, peak_activation_bytes=memory.peak,
                memory_traffic_bytes=memory.traffic), output


def count_arch(arch) -> Cost:
    """The `Cost` of the network `arch` describes, at batch 1 and `arch.in_channels x arch.input_size^2`."""
    return count(build_model(arch), (1, arch.in_channels, arch.input_size, arch.input_size))


# --- single ops, as `nas ops` and bench/op_costs.py show them ---------------------------------------

def op_example(name: str, c_in: int, c_out: int, size: int, stride: int = 1, batch: int = 1,
               **hparams: Any) -> tuple[nn.Module, Any]:
    """Build op `name` and an example input for it at `batch x c_in x size x size`.

    Upsample-family ops are built at stride 1 (they scale by their own `upsample` hparam). A
    multi-level fusion op (one whose `in_channels` is a list, asff) gets one map per level, finest
    first, each the ceil-half of the one before, with its target level (`module.level`) at `size`.
    An op with a `size` hparam (gdc: a kernel as large as the feature map) gets `size` unless given."""
    spec = op_spec(name)
    if spec.family == "upsample":
        stride = 1
    if "size" in spec.hparam_names() and "size" not in hparams:
        hparams = {**hparams, "size": size}  # a kernel as large as the map (gdc) can only be built at `size`
    module = build_op(name, c_in, c_out, stride, **hparams)
    in_channels = getattr(module, "in_channels", None)
    if isinstance(in_channels, (tuple, list)):
        level = int(getattr(module, "level", 0))
        sizes = [size * 2 ** (level - i) for i in range(level + 1)]  # finest .. target
        while len(sizes) < len(in_channels):
            sizes.append(-(-sizes[-1] // 2))  # ceil-half: what a stride-2 network produces
        return module, make_inputs(module, [(batch, int(c), s, s) for c, s in zip(in_channels, sizes)])
    return module, make_inputs(module, (batch, c_in, size, size))


def count_op(name: str, c_in: int, c_out: int, size: int, stride: int = 1, batch: int = 1, **hparams: Any) -> Cost:
    """The `Cost` of op `name` built as `op_example` builds it."""
    module, inputs = op_example(name, c_in, c_out, size, stride, batch, **hparams)
    return count(module, inputs=inputs)


def format_count(n: float) -> str:
    """1234567 -> '1.23M' (SI prefixes, three significant digits)."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}" if isinstance(n, float) and n != int(n) else str(int(n))


def format_bytes(n: float) -> str:
    """1572864 -> '1.5 MiB'."""
    for div, suffix in ((2 ** 30, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.3g} {suffix}"
    return f"{int(n)} B"
