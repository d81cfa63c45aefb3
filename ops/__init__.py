"""The op library: every convolution type and plug-in block of shared/OPS.md, built by name."""
# one family per module; importing registers the ops
from . import (  # noqa: E402,F401  # noqa: E402,F401  # noqa: E402,F401
                       attention,
                       context,
                       conv,
                       conv3d,
                       deformable,
                       fusion,
                       inception,
                       involution,
                       mobile,
                       residual,
                       separable,
                       spatial,
                       upsample,
)
from .registry import HParam, OpError, OpSpec, UnknownOpError, build_op, op_names, op_spec, register_op, resolve_hparams

__all__ = ["HParam", "OpError", "OpSpec", "UnknownOpError", "build_op", "op_names", "op_spec", "register_op",
           "resolve_hparams"]
