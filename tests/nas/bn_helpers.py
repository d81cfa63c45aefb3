"""Non-trivial BatchNorm statistics for the equivalence tests (export, extracted supernet paths)."""
import torch
from torch import nn


def randomize_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics and affine weights, so that a misplaced tensor changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return module
