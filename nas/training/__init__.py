"""The training loop (supernet and standalone), AMP, and the distributed primitives it uses."""
