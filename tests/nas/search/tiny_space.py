"""A tiny search space and spec so that whole searches run in seconds in the test suite."""
import torch

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

# An encoder-decoder over synthetic shapes at 16x16: three stride-2 stages (pyramid at 1/2, 1/4, 1/8), every
# decoder choice of the dense_prediction space at small widths.
TINY_SEG_SPACE = """
name: tiny_seg
input: {channels: 3, size: 16}
num_classes: 3
stem:
  - {op: conv, c_out: 8, kernel: 3}
stages:
  - {depth: [1], width: [8, 12], stride: 2, ops: {dw_separable: {kernel: 3}, mbconv: {kernel: 3, expand: 3}}}
  - {depth: [1, 2], width: [12, 16], stride: 2, ops: {dw_separable: {kernel: 3}}}
  - {depth: [1], width: [16], stride: 2, downsample: [stride, blurpool], ops: {dw_separable: {kernel: 3}}}
decoder:
  upsample: [transposed, bilinear_conv, pixel_shuffle]
  context: [aspp, rfb, none]
  fusion: [asff, sum, concat]
  stn: [true, false]
  channels: [8, 16]
"""


def tiny_spec_in(folder, name: str = "tiny", space_text: str = TINY_SPACE, **sections) -> dict:
    """The tiny_spec dict for a run in `folder/run` (a space of its own and other sections when given)."""
    torch.set_num_threads(1)
    space = folder / f"{name}.yaml"
    space.write_text(space_text)
    return {
        "name": name, "seed": 0, "run_dir": str(folder / "run"),
        "data": {"name": "digits", "input_size": 16, "batch_size": 128},
        "space": {"name": str(space)},
        "supernet": {"epochs": 2, "lr": 0.1, "warmup_epochs": 0},
        "hardware": {"kind": "cpu", "threads": 1, "calibration_archs": 3, "warmup": 2, "repeats": 10},
        "search": {"trials": 6, "population": 4, "bn_batches": 1},
        "tracking": {"wandb": {"mode": "offline"}},
        **sections,
    }
