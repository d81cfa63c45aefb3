"""A tiny search space so that whole searches run in seconds in the test suite."""

TINY_SPACE = """
name: tiny
input: {channels: 1, size: 16}
num_classes: 10
stem:
  - {op: conv, c_out: 8, stride: 2, kernel: 3}
stages:
  - {depth: [1, 2], width: [8, 16], stride: 1, ops: {mbconv: {kernel: [3, 5], expand: [1, 3]}}}
  - {depth: [1, 2], width: [16, 24], stride: 2, ops: {mbconv: {kernel: [3, 5], expand: [3]}, dw_separable: {kernel: [3]}}}
classifier: {dropout: 0.0}
"""
