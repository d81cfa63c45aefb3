"""The op library: every convolution type and plug-in block of shared/OPS.md, built by name."""
from .registry import (HParam, OpError, OpSpec, UnknownOpError, build_op, op_names, op_spec, register_op,
                       resolve_hparams)

# one family per module; importing registers the ops
from . import conv, separable, conv3d, deformable, involution, upsample  # noqa: E402,F401
from . import residual, mobile, inception  # noqa: E402,F401
from . import attention, context, spatial, fusion  # noqa: E402,F401

__all__ = ["HParam", "OpError", "OpSpec", "UnknownOpError", "build_op", "op_names", "op_spec", "register_op",
           "resolve_hparams"]
